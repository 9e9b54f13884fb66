//! A repository never shares storage with anything else, and cleanup only
//! ever deletes objects of its own format: registrations that overlap are
//! refused, and a location that holds other files keeps them.

use std::path::Path;

use serde_json::{json, Value};

use super::harness::{docs, files_under, keystore_with, Server};

/// A server whose `path_repo` is `repos` (shared by several deployments).
async fn server_on(data: &Path, repos: &Path, extra: &str) -> Server {
    std::fs::create_dir_all(data).unwrap();
    std::fs::create_dir_all(repos).unwrap();
    let config = format!(
        "heartbeat_secs = 1\npath_repo = [\"{}\"]\n{extra}",
        repos.display()
    );
    Server::start_with(data, Some(&config)).await
}

async fn put(s: &Server, name: &str, kind: &str, settings: Value) -> super::harness::Resp {
    s.call(
        "PUT",
        &format!("/_snapshot/{name}"),
        Some(json!({"type": kind, "settings": settings})),
    )
    .await
}

fn assert_refused(r: &super::harness::Resp, words: &str) {
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_type(), "repository_exception");
    assert!(r.reason().contains(words), "{words}: {}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_location_that_contains_or_lies_inside_another_repository_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repos = dir.path().join("repos");
    let s = server_on(&dir.path().join("node"), &repos, "").await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 40)).await;
    let expected = s.all_docs("logs").await;
    s.put_fs_repository("prod", "prod").await;
    s.create_snapshot("prod", "s1", "logs").await;
    let before = files_under(&repos.join("prod"));

    // The finding: the path_repo root, which holds `prod`.
    let root = put(&s, "x", "fs", json!({"location": "."})).await;
    assert_refused(&root, "contains repository [prod]");
    let abs = put(
        &s,
        "x",
        "fs",
        json!({"location": repos.display().to_string()}),
    )
    .await;
    assert_refused(&abs, "contains repository [prod]");
    let nested = put(&s, "x", "fs", json!({"location": "prod/inner"})).await;
    assert_refused(&nested, "lies inside repository [prod]");
    assert!(
        !repos.join("prod/inner").exists(),
        "a refused registration creates nothing"
    );
    let dotted = put(&s, "x", "fs", json!({"location": "other/../prod/./x"})).await;
    assert_refused(&dotted, "lies inside repository [prod]");
    // The same location twice with both writable: two names, one repository.
    let twice = put(&s, "x", "fs", json!({"location": "prod"})).await;
    assert_refused(&twice, "contains repository [prod]");
    assert_eq!(s.call("GET", "/_snapshot/x", None).await.status, 404);

    // A sibling whose name shares a prefix is another place; a read-only
    // registration of the same location deletes nothing and is allowed.
    s.put_fs_repository("prod2", "prod2").await;
    s.ok(
        "PUT",
        "/_snapshot/prod-ro",
        Some(json!({"type": "fs", "settings": {"location": "prod", "readonly": true}})),
    )
    .await;
    assert_eq!(
        s.ok("GET", "/_snapshot/prod-ro/_all", None).await["total"],
        1
    );
    // Memory repositories of one name are one place too.
    let first = put(&s, "y", "memory", json!({"location": "m"})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let same_memory = put(&s, "z", "memory", json!({"location": "m"})).await;
    assert_refused(&same_memory, "contains repository [y]");
    // An empty location is the default store, like no location at all.
    assert_eq!(put(&s, "m1", "memory", json!({})).await.status, 200);
    let empty = put(&s, "m2", "memory", json!({"location": ""})).await;
    assert_refused(&empty, "contains repository [m1]");
    // Control and invisible characters never reach a path.
    let newline = put(&s, "nl", "fs", json!({"location": "cc\nINJECTED LINE"})).await;
    assert_refused(&newline, "location");
    assert!(!repos.join("cc\nINJECTED LINE").exists());
    // A location that is a file is refused without naming real paths.
    std::fs::write(repos.join("a-file"), b"x").unwrap();
    let file = put(&s, "f", "fs", json!({"location": "a-file"})).await;
    assert_refused(&file, "is not a directory");
    assert!(
        !file.text.contains(&repos.display().to_string()),
        "{}",
        file.text
    );

    assert_eq!(files_under(&repos.join("prod")), before);
    s.ok("DELETE", "/logs", None).await;
    s.restore("prod", "s1", json!({})).await;
    assert_eq!(s.all_docs("logs").await, expected);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_may_not_hold_the_state_store_the_data_store_or_the_keystore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    // path.repo is the data directory itself: every store of the node is
    // reachable by a location.
    let s = server_on(&data, &data, "").await;
    let state = put(&s, "x", "fs", json!({"location": "state"})).await;
    assert_refused(&state, "the state store");
    let inside = put(&s, "x", "fs", json!({"location": "data/indices"})).await;
    assert_refused(&inside, "lies inside the data store");
    let whole = put(&s, "x", "fs", json!({"location": "."})).await;
    assert_refused(&whole, "contains");
    s.put_fs_repository("ok", "backups").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_deletes_only_its_own_objects_when_its_location_holds_another_repository() {
    // Two deployments share one path.repo but not their state: neither can
    // know the other's registrations. The second registers the root.
    let dir = tempfile::tempdir().unwrap();
    let repos = dir.path().join("repos");
    let a = server_on(&dir.path().join("a"), &repos, "").await;
    a.create_index("logs", 2).await;
    a.bulk("logs", &docs("l", 120)).await;
    let expected = a.all_docs("logs").await;
    a.put_fs_repository("prod", "prod").await;
    a.create_snapshot("prod", "s1", "logs").await;
    a.create_snapshot("prod", "s2", "logs").await;
    // Files of some other tool beside and inside prod's location.
    std::fs::write(repos.join("notes.txt"), b"keep me").unwrap();
    std::fs::create_dir_all(repos.join("prod/chunks/ab")).unwrap();
    std::fs::write(repos.join("prod/chunks/ab/not-a-chunk"), b"keep").unwrap();
    std::fs::create_dir_all(repos.join("prod/other-app")).unwrap();
    std::fs::write(repos.join("prod/other-app/index-9"), b"keep").unwrap();
    std::fs::write(repos.join("prod/README"), b"keep").unwrap();
    let before = files_under(&repos.join("prod"));

    let b = server_on(&dir.path().join("b"), &repos, "").await;
    b.put_fs_repository("wide", ".").await;
    let cleaned = b.ok("POST", "/_snapshot/wide/_cleanup", None).await;
    assert_eq!(cleaned["results"]["deleted_blobs"], 0, "{cleaned}");
    assert_eq!(cleaned["results"]["deleted_bytes"], 0, "{cleaned}");
    assert_eq!(files_under(&repos.join("prod")), before);
    assert!(repos.join("notes.txt").exists());

    // prod's own cleanup also leaves what is not its own (it may reclaim
    // an unreferenced data key of its own: the operations-core issue).
    a.ok("POST", "/_snapshot/prod/_cleanup", None).await;
    let strays = ["chunks/ab/not-a-chunk", "other-app/index-9", "README"];
    for stray in strays {
        assert!(repos.join("prod").join(stray).exists(), "{stray}");
    }
    assert_eq!(a.ok("GET", "/_snapshot/prod/_all", None).await["total"], 2);
    a.ok("DELETE", "/logs", None).await;
    a.restore("prod", "s2", json!({})).await;
    assert_eq!(a.all_docs("logs").await, expected);
    // A real delete then cleanup reclaims prod's objects, not the strays.
    a.ok("DELETE", "/_snapshot/prod/s1,s2", None).await;
    a.ok("POST", "/_snapshot/prod/_cleanup", None).await;
    for stray in strays {
        assert!(repos.join("prod").join(stray).exists(), "{stray}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_cleanup_refuse_a_location_that_came_to_overlap_another() {
    let dir = tempfile::tempdir().unwrap();
    let repos = dir.path().join("repos");
    let s = server_on(&dir.path().join("node"), &repos, "").await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 20)).await;
    s.put_fs_repository("a", "a").await;
    s.create_snapshot("a", "s1", "logs").await;
    s.put_fs_repository("b", "b").await;
    // Someone replaces b's directory by a link to a's.
    std::fs::remove_dir_all(repos.join("b")).unwrap();
    std::os::unix::fs::symlink(repos.join("a"), repos.join("b")).unwrap();
    let before = files_under(&repos.join("a"));
    for action in ["_cleanup", "_verify"] {
        let r = s
            .call("POST", &format!("/_snapshot/b/{action}"), None)
            .await;
        assert_refused(&r, "repository [a]");
    }
    assert_eq!(files_under(&repos.join("a")), before);
    assert_eq!(s.ok("GET", "/_snapshot/a/_all", None).await["total"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_registration_creates_nothing_behind_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let repos = dir.path().join("repos");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let s = server_on(&dir.path().join("node"), &repos, "").await;
    std::os::unix::fs::symlink(&elsewhere, repos.join("evil")).unwrap();
    let r = put(&s, "evil", "fs", json!({"location": "evil/created/deep"})).await;
    assert_refused(
        &r,
        "doesn't match any of the locations specified by path.repo",
    );
    assert!(
        !elsewhere.join("created").exists(),
        "nothing created outside path.repo"
    );
    assert!(files_under(&elsewhere).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_repositories_in_one_bucket_never_share_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = super::s3::bucket().await;
    let ks = keystore_with(&[
        ("s3.client.default.access_key", "test"),
        ("s3.client.default.secret_key", "test"),
    ]);
    let node = |name: &str| {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        ks.save(&data.join("keystore.json")).unwrap();
        data
    };
    let clients = super::s3::client_toml();
    let state = format!("state_store = \"s3://{bucket}/deploy/state\"\n{clients}");
    let a = Server::start_with(&node("a"), Some(&format!("heartbeat_secs = 1\n{state}"))).await;
    a.create_index("logs", 1).await;
    a.bulk("logs", &docs("l", 60)).await;
    let expected = a.all_docs("logs").await;
    let s3 = |base: &str| json!({"bucket": bucket, "base_path": base});
    assert_eq!(put(&a, "prod", "s3", s3("p/prod")).await.status, 200);
    a.create_snapshot("prod", "s1", "logs").await;

    assert_refused(
        &put(&a, "x", "s3", s3("p")).await,
        "contains repository [prod]",
    );
    assert_refused(
        &put(&a, "x", "s3", json!({"bucket": bucket})).await,
        "contains",
    );
    assert_refused(
        &put(&a, "x", "s3", s3("/p/prod/")).await,
        "contains repository [prod]",
    );
    assert_refused(
        &put(&a, "x", "s3", s3("p/prod/sub")).await,
        "lies inside repository [prod]",
    );
    assert_refused(
        &put(&a, "x", "s3", s3("deploy")).await,
        "contains the state store",
    );
    assert_refused(
        &put(&a, "x", "s3", s3("deploy/state/r")).await,
        "lies inside the state store",
    );
    assert_eq!(put(&a, "prod2", "s3", s3("p/prod2")).await.status, 200);

    // Another deployment (its own state) registers the bucket root: its
    // cleanup leaves prod, prod2 and the first deployment's state alone.
    let store = snapvault::storage::Store::open(
        snapvault::storage::Backend::S3(snapvault::storage::S3Config {
            bucket: bucket.clone(),
            root: String::new(),
            region: "us-east-1".into(),
            endpoint: Some(super::s3::endpoint()),
            access_key: String::from("test").into(),
            secret_key: String::from("test").into(),
            virtual_host: false,
            server_side_encryption: false,
            storage_class: None,
            canned_acl: None,
        }),
        &snapvault::storage::Limits::default(),
    )
    .unwrap();
    let listing = |store: snapvault::storage::Store| async move {
        let mut v: Vec<_> = store
            .list("/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.path, o.size))
            .filter(|(p, _)| p.starts_with("p/"))
            .collect();
        v.sort();
        v
    };
    let before = listing(store.clone()).await;
    assert!(before.len() > 5, "{before:?}");
    let state_before: Vec<String> = store
        .list("deploy/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert!(!state_before.is_empty());
    let b = Server::start_with(&node("b"), Some(&format!("heartbeat_secs = 1\n{clients}"))).await;
    assert_eq!(
        put(&b, "wide", "s3", json!({"bucket": bucket}))
            .await
            .status,
        200
    );
    let cleaned = b.ok("POST", "/_snapshot/wide/_cleanup", None).await;
    assert_eq!(cleaned["results"]["deleted_blobs"], 0, "{cleaned}");
    assert_eq!(listing(store.clone()).await, before);
    for path in &state_before {
        assert!(
            store.exists(path).await.unwrap(),
            "{path} of the state store survives"
        );
    }
    a.ok("DELETE", "/logs", None).await;
    a.restore("prod", "s1", json!({})).await;
    assert_eq!(a.all_docs("logs").await, expected);
    a.stop().await;
    b.stop().await;
}
