use super::*;
use crate::state::{Pause, RepositoryMetadata};
use crate::storage::{Backend, Limits, Store};

async fn state_with(ids: &[&str]) -> Arc<StateStore> {
    let dir = tempfile::tempdir().unwrap().keep();
    let store = Store::open(Backend::Fs(dir), &Limits::default()).unwrap();
    let state = Arc::new(StateStore::open(store).await.unwrap());
    state
        .update(|doc| {
            for id in ids {
                doc.operations.insert(
                    id.to_string(),
                    Operation {
                        repository: "r".into(),
                        node_id: "n".into(),
                        start_millis: 1,
                        kind: OpKind::Cleanup,
                        extra: Default::default(),
                    },
                );
            }
            Ok::<_, StateError>(())
        })
        .await
        .unwrap();
    state
}

fn guard(state: &Arc<StateStore>, id: &str) -> OpGuard {
    OpGuard {
        state: state.clone(),
        id: id.into(),
        armed: true,
        timer: OpTimer::start("cleanup"),
    }
}

#[tokio::test]
async fn a_guard_releases_its_record_when_ended_dropped_or_unwound() {
    let state = state_with(&["ended", "dropped", "panicked", "kept"]).await;
    guard(&state, "ended").end().await;
    let early_return = |g: OpGuard| -> std::result::Result<(), ()> {
        let _held = g;
        Err(())
    };
    assert!(early_return(guard(&state, "dropped")).is_err());
    let g = guard(&state, "panicked");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _held = g;
        panic!("an operation failed halfway");
    }));
    assert!(unwound.is_err());
    // Released from tasks of their own: wait for them, bounded.
    for _ in 0..100 {
        let doc = state.refresh().await.unwrap();
        if doc.operations.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<String> = state
        .refresh()
        .await
        .unwrap()
        .operations
        .into_keys()
        .collect();
    assert_eq!(left, vec!["kept".to_string()]);
}

fn doc(paused: bool) -> StateDoc {
    let mut doc = StateDoc::default();
    doc.repositories.insert(
        "r".into(),
        RepositoryMetadata {
            kind: "fs".into(),
            settings: Default::default(),
            uuid: None,
            extra: Default::default(),
        },
    );
    if paused {
        doc.paused.insert(
            "r".into(),
            Pause {
                reason: Some("disk swap".into()),
                since_millis: 0,
            },
        );
    }
    doc
}

#[test]
fn the_precondition_names_the_first_thing_that_refuses() {
    let all = [
        Verb::Snapshot,
        Verb::Clone,
        Verb::Delete,
        Verb::Cleanup,
        Verb::Restore,
        Verb::Analyze,
        Verb::Rotate,
    ];
    for verb in all {
        assert!(matches!(
            precondition(&doc(false), "missing", false, verb),
            Err(ServiceError::RepositoryMissing { .. })
        ));
        assert!(precondition(&doc(false), "r", false, verb).is_ok());
        let paused = precondition(&doc(true), "r", false, verb);
        match verb {
            Verb::Rotate => assert!(paused.is_ok()),
            _ => assert!(
                matches!(&paused, Err(ServiceError::RepositoryPaused { reason: Some(r), .. }) if r == "disk swap"),
                "{verb:?}"
            ),
        }
        let readonly = precondition(&doc(false), "r", true, verb);
        match verb {
            Verb::Restore => assert!(readonly.is_ok()),
            _ => assert!(
                matches!(&readonly, Err(ServiceError::Repository { reason: RepositoryRefusal::ReadOnly(v), .. }) if *v == verb),
                "{verb:?}"
            ),
        }
    }
}

#[tokio::test]
async fn begin_refuses_a_paused_repository_inside_the_compare_and_swap() {
    let state = state_with(&[]).await;
    state
        .update(|d| {
            *d = doc(true);
            Ok::<_, StateError>(())
        })
        .await
        .unwrap();
    let ops = Operations::new(state.clone(), "n".into());
    let start = Start {
        repository: "r",
        verb: Verb::Cleanup,
        readonly: false,
        id: "c1".into(),
        kind: OpKind::Cleanup,
    };
    let refused = ops.begin(start, || unreachable!()).await;
    assert!(matches!(
        refused,
        Err(ServiceError::RepositoryPaused { .. })
    ));
    assert!(state.refresh().await.unwrap().operations.is_empty());
}
