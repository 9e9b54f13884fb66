//! Tests of [`super::Chain`] on the fs and memory backends: stalled writers,
//! concurrent writers with compaction, lagging hints, an older release's
//! tombstones and what a crash leaves.

use std::future::Future;

use super::*;
use crate::storage::{Backend, Limits};

#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// A document that is a list of items: every update appends one, so a lost
/// or doubled update shows.
struct Items;

impl Codec for Items {
    type Doc = Vec<String>;
    type Error = TestError;

    fn empty(&self) -> std::result::Result<Vec<String>, TestError> {
        Ok(Vec::new())
    }

    fn decode(
        &self,
        _n: u64,
        bytes: Bytes,
    ) -> impl Future<Output = std::result::Result<Vec<String>, TestError>> + Send {
        let doc = serde_json::from_slice(&bytes).map_err(TestError::from);
        async move { doc }
    }

    fn encode(&self, _n: u64, doc: &mut Vec<String>) -> Bytes {
        Bytes::from(serde_json::to_vec(doc).unwrap())
    }
}

const LAYOUT: Layout = Layout {
    name: |n| format!("doc-{n}"),
    parse: |p| p.strip_prefix("doc-")?.parse().ok(),
    dir: "/",
    hint: "doc.latest",
    floor_dir: "doc.floor/",
    first: 1,
};

const SMALL: Policy = Policy {
    keep: 4,
    budget: 64,
    window: 512,
};

fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let fs = Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
    let name = format!("generations-{}", uuid::Uuid::new_v4());
    let memory = Store::open(Backend::Memory(name), &Limits::default()).unwrap();
    vec![(fs, Some(dir)), (memory, None)]
}

async fn push(chain: &Chain, item: String) {
    chain
        .update(&Items, |doc| {
            doc.push(item.clone());
            Ok::<_, TestError>(())
        })
        .await
        .unwrap_or_else(|e| panic!("push failed: {e:?}"));
}

async fn newest(chain: &Chain) -> (u64, Vec<String>) {
    let (n, doc) = chain.read(&Items).await.unwrap();
    (n.unwrap(), doc)
}

async fn generation_files(store: &Store) -> Vec<String> {
    store
        .list_shallow("/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .filter(|p| p.starts_with("doc-"))
        .collect()
}

fn items(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("c{i}")).collect()
}

#[tokio::test]
async fn a_writer_stalled_across_100_commits_and_compactions_is_not_told_it_won() {
    for (store, _dir) in stores() {
        let chain = Chain::with_policy(store.clone(), LAYOUT, SMALL);
        push(&chain, "c0".into()).await;
        // The stalled writer reads generation 1 and prepares generation 2.
        let (n, mut stale) = newest(&chain).await;
        stale.push("stalled".into());
        for i in 1..=100 {
            push(&chain, format!("c{i}")).await;
        }
        assert!(
            !store.exists(&(LAYOUT.name)(n + 1)).await.unwrap(),
            "compaction removed the name the stalled writer aims at"
        );
        let won = chain
            .commit(n + 1, Items.encode(n + 1, &mut stale))
            .await
            .unwrap();
        assert!(!won, "a stalled writer must not be reported as a success");
        assert!(!store.exists(&(LAYOUT.name)(n + 1)).await.unwrap());
        let (latest, doc) = newest(&chain).await;
        assert_eq!(latest, 101);
        assert_eq!(doc, items(0..101), "the 100 commits are all there");
        // Its retry lands on top of them.
        push(&chain, "stalled".into()).await;
        let (_, doc) = newest(&chain).await;
        assert_eq!(doc.len(), 102);
        assert_eq!(doc.iter().filter(|i| *i == "stalled").count(), 1);
        let files = generation_files(&store).await;
        assert!(files.len() as u64 <= 2 * SMALL.keep, "{files:?}");
    }
}

#[tokio::test]
async fn a_writer_slow_between_its_create_and_its_check_won_and_is_told_so() {
    for (store, _dir) in stores() {
        let chain = Chain::with_policy(store.clone(), LAYOUT, SMALL);
        push(&chain, "c0".into()).await;
        let (n, mut doc) = newest(&chain).await;
        doc.push("slow".into());
        let bytes = Items.encode(n + 1, &mut doc);
        assert!(chain.create(n + 1, bytes.clone()).await.unwrap());
        // Others build on the slow writer's generation, and compaction
        // passes it before the writer checks the floor.
        for i in 1..=60 {
            push(&chain, format!("c{i}")).await;
        }
        assert!(chain.confirm(n + 1, &bytes).await.unwrap());
        let (_, doc) = newest(&chain).await;
        assert_eq!(doc.iter().filter(|i| *i == "slow").count(), 1);
        assert_eq!(doc.len(), 62);
    }
}

#[tokio::test]
async fn a_writer_stalled_beyond_the_window_learns_the_outcome_is_unknown() {
    for (store, _dir) in stores() {
        let policy = Policy { window: 8, ..SMALL };
        let chain = Chain::with_policy(store.clone(), LAYOUT, policy);
        push(&chain, "c0".into()).await;
        let (n, mut stale) = newest(&chain).await;
        stale.push("stalled".into());
        for i in 1..=40 {
            push(&chain, format!("c{i}")).await;
        }
        let outcome = chain.commit(n + 1, Items.encode(n + 1, &mut stale)).await;
        assert!(
            matches!(outcome, Err(GenerationError::OutcomeUnknown { .. })),
            "{outcome:?}"
        );
        assert!(!store.exists(&(LAYOUT.name)(n + 1)).await.unwrap());
        assert_eq!(newest(&chain).await.1, items(0..41));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_compaction_lose_no_update() {
    for (which, (store, _dir)) in stores().into_iter().enumerate() {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let chain = Chain::with_policy(store.clone(), LAYOUT, SMALL);
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    push(&chain, format!("w{w}-{i}")).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let chain = Chain::with_policy(store.clone(), LAYOUT, SMALL);
        let (latest, mut doc) = newest(&chain).await;
        assert_eq!(latest, 200, "store {which}");
        doc.sort();
        doc.dedup();
        assert_eq!(
            doc.len(),
            200,
            "every update landed exactly once (store {which})"
        );
        // Compaction ran beside the writers: a few generations stay, and
        // the newest few markers.
        chain.reclaim().await.unwrap();
        let files = generation_files(&store).await;
        assert!(files.len() as u64 <= 2 * SMALL.keep, "{files:?}");
        assert!(store.list(LAYOUT.floor_dir).await.unwrap().len() <= 4);
    }
}

#[tokio::test]
async fn a_reader_behind_a_lagging_hint_ignores_a_recreated_name_below_the_floor() {
    for (store, _dir) in stores() {
        let chain = Chain::with_policy(store.clone(), LAYOUT, SMALL);
        for i in 0..30 {
            push(&chain, format!("c{i}")).await;
        }
        // A stalled writer's object at a freed name, and a hint pointing
        // at it (a writer that stalled before writing its hint).
        store
            .write_if_absent(&(LAYOUT.name)(3), Bytes::from_static(b"[\"bogus\"]"))
            .await
            .unwrap();
        store.write(LAYOUT.hint, Bytes::from("3")).await.unwrap();
        assert_eq!(newest(&chain).await, (30, items(0..30)));
        // _cleanup's reclaim removes the leftover, and only it.
        let reclaimed = chain.reclaim().await.unwrap();
        assert_eq!(reclaimed.blobs, 1);
        assert!(!store.exists(&(LAYOUT.name)(3)).await.unwrap());
        assert_eq!(chain.reclaim().await.unwrap(), Reclaimed::default());
        assert_eq!(newest(&chain).await, (30, items(0..30)));
    }
}

#[tokio::test]
async fn an_older_releases_tombstones_are_read_past_and_compacted_within_budget() {
    for (store, _dir) in stores() {
        // As an older release left it: superseded generations tombstoned,
        // the hint behind, the two newest whole.
        for n in 1..=98 {
            store
                .write(&(LAYOUT.name)(n), Bytes::from_static(LEGACY_TOMBSTONE))
                .await
                .unwrap();
        }
        for n in [99, 100] {
            let doc = serde_json::to_vec(&items(0..n as usize)).unwrap();
            store.write(&(LAYOUT.name)(n), doc.into()).await.unwrap();
        }
        store.write(LAYOUT.hint, Bytes::from("40")).await.unwrap();
        let policy = Policy {
            budget: 16,
            ..SMALL
        };
        let chain = Chain::with_policy(store.clone(), LAYOUT, policy);
        assert_eq!(newest(&chain).await, (100, items(0..100)));
        // One commit compacts at most `budget` generations.
        push(&chain, "c100".into()).await;
        assert_eq!(generation_files(&store).await.len(), 101 - 15);
        // _cleanup compacts the rest at once, down to the floor (96) that
        // generation 101 calls for.
        let reclaimed = chain.reclaim().await.unwrap();
        assert_eq!(reclaimed.blobs, 96 - 16);
        assert_eq!(generation_files(&store).await.len(), 6);
        assert_eq!(newest(&chain).await, (101, items(0..101)));
    }
}

#[tokio::test]
async fn a_compactor_that_saw_an_older_floor_changes_nothing() {
    for (store, _dir) in stores() {
        let chain = Chain::with_policy(store.clone(), LAYOUT, SMALL);
        for i in 0..40 {
            push(&chain, format!("c{i}")).await;
        }
        let before = chain.floor_and_marker().await.unwrap();
        assert_eq!(before.0.value, 36);
        // A compactor that listed the floor long ago (0) and only now acts.
        let done = chain
            .compact(12, &Floor::default(), Marker::default())
            .await;
        assert_eq!(done.unwrap(), Reclaimed::default());
        let after = chain.floor_and_marker().await.unwrap();
        assert_eq!(after.0.value, 36, "the floor never goes down");
        assert_eq!(after.1.digests, before.1.digests);
        assert_eq!(newest(&chain).await, (40, items(0..40)));
    }
}

#[test]
fn the_floor_keeps_between_keep_plus_one_and_twice_keep_generations() {
    let p = SMALL;
    for latest in 0..100u64 {
        let t = p.target(latest);
        assert_eq!(t % p.keep, 0);
        if latest >= 2 * p.keep {
            let kept = latest - t + 1;
            assert!(
                (p.keep + 1..=2 * p.keep).contains(&kept),
                "{latest}: {kept}"
            );
        } else {
            assert_eq!(t, 0);
        }
    }
}

/// As replicas sharing one `fs` directory do: every writer opens its own
/// store, so no floor is shared in memory and each writer's floor comes
/// from its own listings of the markers alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_that_share_only_the_directory_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let chain = Chain::with_policy(open(), LAYOUT, SMALL);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                push(&chain, format!("w{w}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (latest, mut doc) = newest(&Chain::with_policy(open(), LAYOUT, SMALL)).await;
    assert_eq!(latest, 200);
    doc.sort();
    doc.dedup();
    assert_eq!(doc.len(), 200, "every update landed exactly once");
}
