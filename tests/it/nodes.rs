//! Live nodes of a deployment sharing one state store.

use super::harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn nodes_sharing_a_state_store_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = format!("heartbeat_secs = 1\nstate_dir = \"{}\"\n", state.display());
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = Server::start_with(&a_dir, Some(&config)).await;
    let b = Server::start_with(&b_dir, Some(&config)).await;
    let started = std::time::Instant::now();
    let nodes = loop {
        let n = a.ok("GET", "/_nodes", None).await;
        if n["_nodes"]["total"] == 2 {
            break n;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "both nodes never listed: {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(nodes["nodes"].get(a.node.cluster().node_id()).is_some());
    assert!(nodes["nodes"].get(b.node.cluster().node_id()).is_some());
    assert_eq!(
        nodes["nodes"][&a.node.cluster().node_id()]["master_keys"],
        serde_json::json!(["default"])
    );
    let cat = b.call("GET", "/_cat/nodes?v&h=id,master", None).await.text;
    assert!(
        cat.contains(&format!("{} *", b.node.cluster().node_id())),
        "{cat}"
    );
    assert!(
        cat.contains(&format!("{} -", a.node.cluster().node_id())),
        "{cat}"
    );
    // A stopped node drops out once its heartbeat is older than the window.
    b.stop().await;
    let started = std::time::Instant::now();
    loop {
        let n = a.ok("GET", "/_nodes", None).await;
        if n["_nodes"]["total"] == 1 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "stopped node still listed: {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    a.stop().await;
}

/// The load balancer's health check follows the shared state store.
#[tokio::test(flavor = "multi_thread")]
async fn health_check_fails_while_the_state_store_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = format!("state_dir = \"{}\"\n", state.display());
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start_with(&data, Some(&config)).await;
    let ok = s.call("GET", "/_health", None).await;
    assert_eq!(
        (ok.status, ok.body["status"].as_str()),
        (200, Some("green"))
    );
    let aside = dir.path().join("state-aside");
    std::fs::rename(&state, &aside).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();
    let bad = s.call("GET", "/_health", None).await;
    assert_eq!(bad.status, 503, "{}", bad.text);
    assert_eq!(bad.body["status"], "red");
    assert!(bad.body["reason"].as_str().unwrap().contains("state store"));
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&aside, &state).unwrap();
    assert_eq!(s.call("GET", "/_health", None).await.status, 200);
    s.stop().await;
}
