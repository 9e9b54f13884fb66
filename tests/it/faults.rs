//! Fault injection between snapvault and its object store: a proxy
//! (`tests/clients/faulty_proxy.py`) in front of the S3 emulator answers a
//! fraction of requests with 503 before forwarding, a fraction with 500
//! after the change was made (the client cannot know it landed), and delays
//! the rest. Operations must retry and succeed, or fail with a clear error;
//! the repository must stay consistent either way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{docs, keystore_with, Server};

/// The proxy process; killed when dropped.
struct FaultyProxy {
    url: String,
    child: std::process::Child,
}

impl FaultyProxy {
    async fn start(upstream: &str, dir: &std::path::Path) -> FaultyProxy {
        let python = std::env::var("SNAPVAULT_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let port_file = dir.join("proxy.port");
        let child = std::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/clients/faulty_proxy.py"
            ))
            .arg(upstream)
            .arg(&port_file)
            .spawn()
            .expect("python runs the fault-injecting proxy");
        let started = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "proxy never started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        FaultyProxy {
            url: format!("http://127.0.0.1:{}", port.trim()),
            child,
        }
    }

    async fn faults(&self, settings: Value) -> Value {
        reqwest::Client::new()
            .put(format!("{}/__faults", self.url))
            .json(&settings)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn counts(&self) -> Value {
        let v: Value = reqwest::get(format!("{}/__faults", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["counts"].clone()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_faults_are_retried_and_leave_the_repository_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = super::s3::endpoint();
    let bucket = super::s3::bucket().await;
    let proxy = FaultyProxy::start(&upstream, dir.path()).await;
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let ks = keystore_with(&[
        ("s3.client.default.access_key", "test"),
        ("s3.client.default.secret_key", "test"),
    ]);
    ks.save(&data.join("keystore.json")).unwrap();
    let s = Server::start_with(
        &data,
        // A generation commit fails an attempt 60% of the time here (503 or
        // a lost answer): 20 retries make exhausting them a 1-in-40,000
        // event per commit.
        Some(&format!(
            "storage_retries = 20\nstorage_retry_min_delay_ms = 20\n[s3.client.default]\nendpoint = \"{}\"\npath_style_access = true\n",
            proxy.url
        )),
    )
    .await;
    s.create_index("logs", 2).await;
    s.bulk("logs", &docs("l", 300)).await;
    let settings = json!({"bucket": bucket, "base_path": "faulty"});
    s.ok(
        "PUT",
        "/_snapshot/faulty",
        Some(json!({"type": "s3", "settings": settings})),
    )
    .await;

    // 20% refused, 5% lost after the change (half of the generation
    // commits), up to 30 ms of delay.
    proxy
        .faults(
            json!({"error_rate": 0.2, "ambiguous_rate": 0.05, "max_delay_ms": 30,
            "commit_path": "/index-", "commit_ambiguous_rate": 0.5, "seed": 11}),
        )
        .await;
    let mut expected: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    // At least eight snapshot commits, and more until one has met a lost
    // answer: with 40% of commit attempts answered 500 after landing, one
    // commit escapes it 60% of the time, so eight all escaping (1.7%) was a
    // flake; twenty all escaping is a 1-in-27,000 event.
    for round in 0..20 {
        let name = format!("snap-{round}");
        let docs_now = s.all_docs("logs").await;
        let r = s
            .call(
                "PUT",
                &format!("/_snapshot/faulty/{name}?wait_for_completion=true"),
                Some(json!({"indices": "logs"})),
            )
            .await;
        outcomes.push((name.clone(), r.status));
        if r.status == 200 {
            assert_eq!(r.body["snapshot"]["state"], "SUCCESS", "{}", r.text);
            expected.insert(name, docs_now);
        } else {
            // A failure must be a clear Elasticsearch error, never a hang.
            r.error_type();
        }
        s.bulk("logs", &docs(&format!("r{round}"), 40)).await;
        let met = proxy.counts().await["ambiguous_commits"].as_u64().unwrap() > 0;
        if round >= 7 && met {
            break;
        }
    }
    let deleted = s.call("DELETE", "/_snapshot/faulty/snap-0", None).await;
    if deleted.status == 200 {
        expected.remove("snap-0");
    } else {
        deleted.error_type();
    }
    let cleanup = s.call("POST", "/_snapshot/faulty/_cleanup", None).await;
    if cleanup.status != 200 {
        cleanup.error_type();
    }
    let restored = s
        .call(
            "POST",
            "/_snapshot/faulty/snap-1/_restore?wait_for_completion=true",
            Some(json!({"rename_pattern": "logs", "rename_replacement": "during-faults"})),
        )
        .await;
    if restored.status == 200 && expected.contains_key("snap-1") {
        assert_eq!(s.all_docs("during-faults").await, expected["snap-1"]);
    }
    let counts = proxy.counts().await;
    assert!(counts["errors"].as_u64().unwrap() > 20, "{counts}");
    assert!(counts["ambiguous"].as_u64().unwrap() > 5, "{counts}");
    assert!(
        counts["ambiguous_commits"].as_u64().unwrap() > 0,
        "{counts}"
    );
    // With retries this generous every operation got through.
    assert!(
        outcomes.iter().all(|(_, status)| *status == 200),
        "{outcomes:?}"
    );

    // Faults off: the repository is consistent. Every snapshot it lists
    // succeeded and restores identical; cleanup then finds nothing more.
    proxy.faults(json!({})).await;
    let listing = s.ok("GET", "/_snapshot/faulty/_all", None).await;
    let listed: Vec<String> = listing["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["snapshot"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>());
    s.ok("POST", "/_snapshot/faulty/_cleanup", None).await;
    let again = s.ok("POST", "/_snapshot/faulty/_cleanup", None).await;
    assert_eq!(again["results"]["deleted_blobs"], 0, "{again}");
    for (name, docs) in &expected {
        let target = format!("check-{name}");
        s.restore(
            "faulty",
            name,
            json!({"rename_pattern": "logs", "rename_replacement": target}),
        )
        .await;
        assert_eq!(&s.all_docs(&target).await, docs, "{name}");
    }
    s.stop().await;
}
