//! `POST /_snapshot/{repository}/_analyze`: a clean bill on storage that
//! behaves, the contended register catching a service that ignores
//! conditional writes, and bounded, validated parameters.

use std::time::Duration;

use serde_json::json;
use snapvault::service::analyze::AnalyzeRequest;
use snapvault::service::storage_check::analyze;

use super::harness::{files_under, Server};

#[tokio::test(flavor = "multi_thread")]
async fn analysis_of_a_sound_repository_reports_throughput_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    let before = files_under(&s.repo_dir("repo"));
    let r = s
        .ok(
            "POST",
            "/_snapshot/repo/_analyze?blob_count=30&max_blob_size=64kb&max_total_data_size=1mb&concurrency=4&register_operation_count=25&rare_action_probability=0.3&seed=42&detailed=true&timeout=60s",
            None,
        )
        .await;
    assert_eq!(r["issues_detected"], json!([]), "{r}");
    assert_eq!(r["repository"], "repo");
    assert_eq!(r["blob_count"], 30);
    assert_eq!(r["seed"], 42);
    assert_eq!(r["max_blob_size"], "64kb");
    assert_eq!(r["max_blob_size_bytes"], 65536);
    let w = &r["summary"]["write"];
    let rd = &r["summary"]["read"];
    assert!(w["count"].as_u64().unwrap() >= 30, "{r}");
    assert!(rd["count"].as_u64().unwrap() >= 60, "{r}");
    assert!(w["total_size_bytes"].as_u64().unwrap() <= 1 << 20, "{w}");
    assert!(w["throughput_bytes_per_sec"].as_u64().unwrap() > 0);
    assert!(rd["throughput_bytes_per_sec"].as_u64().unwrap() > 0);
    assert_eq!(r["summary"]["register"]["operation_count"], 25);
    assert_eq!(r["summary"]["register"]["emulated"], false);
    let details = r["details"].as_array().unwrap();
    assert_eq!(details.len(), 30);
    assert!(details.iter().any(|b| b["overwritten"] == true), "{r}");
    // The same seed plans the same blobs.
    let again = s
        .ok(
            "POST",
            "/_snapshot/repo/_analyze?blob_count=30&max_blob_size=64kb&max_total_data_size=1mb&rare_action_probability=0.3&seed=42&detailed=true",
            None,
        )
        .await;
    let sizes = |v: &serde_json::Value| -> Vec<u64> {
        v["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["size_bytes"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(sizes(&again), sizes(&r));
    assert_eq!(
        files_under(&s.repo_dir("repo")),
        before,
        "analysis left files"
    );

    for bad in [
        "blob_count=0",
        "blob_count=1000001",
        "max_blob_size=2gb",
        "max_blob_size=ten",
        "rare_action_probability=2",
        "timeout=soon",
        "concurrency=100000",
        "concurrency=100&max_blob_size=100mb",
        "detailed=maybe",
        "unknown=1",
    ] {
        let r = s
            .call("POST", &format!("/_snapshot/repo/_analyze?{bad}"), None)
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        r.error_type();
    }
    let missing = s.call("POST", "/_snapshot/nope/_analyze", None).await;
    assert_eq!(missing.error_type(), "repository_missing_exception");
    s.ok("POST", "/_snapshot/repo/_pause", None).await;
    let paused = s.call("POST", "/_snapshot/repo/_analyze", None).await;
    assert_eq!(paused.error_type(), "repository_paused_exception");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contended_register_catches_a_service_without_conditional_writes() {
    // The GCS emulator accepts a second create of one name.
    let bucket = super::gcs::bucket().await;
    let store = super::gcs::gcs_store(&bucket, "analysis", false);
    let req = AnalyzeRequest {
        blob_count: 4,
        concurrency: 16,
        max_blob_size: 1024,
        max_total_data_size: 1 << 20,
        register_operation_count: 200,
        rare_action_probability: 0.0,
        seed: 1,
        timeout: Duration::from_secs(120),
        detailed: false,
    };
    let out = analyze(&store, "run/", &req, false).await.unwrap();
    assert!(
        out.issues.iter().any(
            |i| i.contains("acknowledged to two writers") || i.contains("increments were lost")
        ),
        "{:?}",
        out.issues
    );
}
