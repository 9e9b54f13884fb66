//! `_verify_integrity` finds damage in the repository's own files and
//! names what it affects; `_cluster/health` and `_capabilities` answer as
//! Elasticsearch does.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::harness::{docs, files_under, Server};

/// The chunk files of a repository directory, relative to it.
fn chunks(repo: &Path) -> BTreeSet<String> {
    files_under(repo)
        .into_iter()
        .filter_map(|(p, _)| {
            let rel = p.strip_prefix(repo).unwrap().to_string_lossy().into_owned();
            rel.starts_with("chunks/").then_some(rel)
        })
        .collect()
}

/// Distinct, poorly compressible documents so each index has its own chunks.
fn payload(prefix: &str, n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| {
            let seed = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ prefix.len() as u64;
            let text: String = (0..60)
                .map(|k| format!("{:016x}", seed.wrapping_mul(k + 7).rotate_left(k as u32)))
                .collect();
            (
                format!("{prefix}-{i}"),
                json!({"prefix": prefix, "payload": text}),
            )
        })
        .collect()
}

async fn verify(s: &Server, repo: &str, query: &str) -> Value {
    let r = s
        .call(
            "POST",
            &format!("/_snapshot/{repo}/_verify_integrity{query}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn anomalies(v: &Value) -> Vec<&Value> {
    v["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("anomaly").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_repository_passes_with_counts_that_match_its_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("logs", 2).await;
    s.create_index("web", 1).await;
    s.bulk("logs", &docs("l", 50)).await;
    s.bulk("web", &docs("w", 20)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "one", "logs").await;
    s.create_snapshot("repo", "two", "logs,web").await;
    s.bulk("web", &docs("w2", 20)).await;
    s.create_snapshot("repo", "three", "web").await;

    for query in [
        "",
        "?verify_blob_contents=true&blob_thread_pool_concurrency=2",
    ] {
        let v = verify(&s, "repo", query).await;
        let results = &v["results"];
        assert_eq!(results["result"], "pass", "{v}");
        assert_eq!(results["total_anomalies"], 0, "{v}");
        let status = &results["status"];
        assert_eq!(status["repository"]["name"], "repo");
        assert_eq!(
            status["snapshots"],
            json!({"verified": 3, "total": 3}),
            "{v}"
        );
        assert_eq!(status["indices"], json!({"verified": 2, "total": 2}), "{v}");
        assert_eq!(
            status["index_snapshots"],
            json!({"verified": 4, "total": 4}),
            "{v}"
        );
        assert!(status["blobs"]["verified"].as_u64().unwrap() >= 3, "{v}");
        assert_eq!(
            results["final_repository_generation"],
            status["repository"]["generation"]
        );
        let log = v["log"].as_array().unwrap();
        let snapshots: BTreeSet<&str> = log
            .iter()
            .filter(|e| e["snapshot"].get("state").is_some())
            .map(|e| e["snapshot"]["snapshot"].as_str().unwrap())
            .collect();
        assert_eq!(snapshots, BTreeSet::from(["one", "two", "three"]));
        let restorability: Vec<(&str, &Value)> = log
            .iter()
            .filter_map(|e| {
                Some((
                    e["index"]["name"].as_str()?,
                    e.get("snapshot_restorability")?,
                ))
            })
            .collect();
        assert_eq!(restorability.len(), 2, "{v}");
        for (index, r) in restorability {
            assert_eq!(
                r,
                &json!({"total_snapshot_count": 2, "restorable_snapshot_count": 2}),
                "{index}"
            );
        }
        assert!(log
            .iter()
            .all(|e| e["timestamp_in_millis"].as_i64().unwrap() > 0));
    }
    let with_bytes = verify(&s, "repo", "?verify_blob_contents=true").await;
    assert!(
        with_bytes["results"]["status"]["blobs"]["verified_size_in_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Reading goes on while the repository is paused.
    s.ok("POST", "/_snapshot/repo/_pause", None).await;
    assert_eq!(verify(&s, "repo", "").await["results"]["result"], "pass");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_chunk_and_a_corrupted_one_are_named_with_the_snapshot_and_index_they_break() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("alpha", 1).await;
    s.create_index("beta", 1).await;
    s.bulk("alpha", &payload("alpha", 300)).await;
    s.bulk("beta", &payload("beta-index", 300)).await;
    s.put_fs_repository("repo", "repo").await;
    let repo = s.repo_dir("repo");
    s.create_snapshot("repo", "snap-alpha", "alpha").await;
    let alpha_chunks = chunks(&repo);
    s.create_snapshot("repo", "snap-beta", "beta").await;
    let beta_chunks: Vec<String> = chunks(&repo).difference(&alpha_chunks).cloned().collect();
    let deleted = alpha_chunks.iter().next().unwrap().clone();
    let corrupted = beta_chunks.first().unwrap().clone();
    std::fs::remove_file(repo.join(&deleted)).unwrap();
    let mut bytes = std::fs::read(repo.join(&corrupted)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(repo.join(&corrupted), bytes).unwrap();

    let v = verify(&s, "repo", "?verify_blob_contents=true").await;
    assert_eq!(v["results"]["result"], "fail", "{v}");
    let found = anomalies(&v);
    assert_eq!(
        v["results"]["total_anomalies"].as_u64().unwrap(),
        found.len() as u64
    );
    let about = |blob: &str| {
        found
            .iter()
            .find(|a| a["blob_name"] == blob)
            .unwrap_or_else(|| panic!("no finding names {blob}: {v}"))
    };
    let missing = about(&deleted);
    assert!(
        missing["anomaly"].as_str().unwrap().contains("missing"),
        "{missing}"
    );
    assert_eq!(missing["snapshot"]["snapshot"], "snap-alpha");
    assert_eq!(missing["index"]["name"], "alpha");
    assert_eq!(missing["shard_id"], 0);
    assert!(missing["physical_file_name"].is_string());
    let altered = about(&corrupted);
    assert!(
        altered["anomaly"].as_str().unwrap().contains("decrypt"),
        "{altered}"
    );
    assert_eq!(altered["snapshot"]["snapshot"], "snap-beta");
    assert_eq!(altered["index"]["name"], "beta");
    assert!(altered["blob_length_in_bytes"].as_u64().unwrap() > 0);
    let restorable = |index: &str| {
        v["log"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["index"]["name"] == index && e.get("snapshot_restorability").is_some())
            .map(|e| e["snapshot_restorability"]["restorable_snapshot_count"].clone())
    };
    assert_eq!(restorable("alpha"), Some(json!(0)));
    assert_eq!(restorable("beta"), Some(json!(0)));

    // As stored only: the missing chunk shows, the altered bytes do not.
    let stored = verify(&s, "repo", "").await;
    let found = anomalies(&stored);
    assert!(
        found.iter().any(|a| a["blob_name"] == deleted.as_str()),
        "{stored}"
    );
    assert!(
        !found.iter().any(|a| a["blob_name"] == corrupted.as_str()),
        "{stored}"
    );

    // A missing manifest is named too.
    let manifests: Vec<String> = files_under(&repo.join("indices"))
        .into_iter()
        .map(|(p, _)| {
            p.strip_prefix(&repo)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| p.contains("/manifest-"))
        .collect();
    std::fs::remove_file(repo.join(&manifests[0])).unwrap();
    let v = verify(&s, "repo", "").await;
    let manifest = anomalies(&v)
        .into_iter()
        .find(|a| a["blob_name"] == manifests[0].as_str())
        .unwrap_or_else(|| panic!("{v}"));
    assert!(manifest["anomaly"]
        .as_str()
        .unwrap()
        .contains("shard manifest missing"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_chunk_of_an_uncompressed_repository_has_the_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("plain", 1).await;
    s.bulk("plain", &payload("plain", 100)).await;
    s.ok(
        "PUT",
        "/_snapshot/raw",
        Some(json!({"type": "fs", "settings": {"location": "raw", "compress": false}})),
    )
    .await;
    s.create_snapshot("raw", "snap", "plain").await;
    let repo = s.repo_dir("raw");
    let chunk = chunks(&repo).into_iter().next().unwrap();
    let bytes = std::fs::read(repo.join(&chunk)).unwrap();
    std::fs::write(repo.join(&chunk), &bytes[..bytes.len() - 10]).unwrap();
    let v = verify(&s, "raw", "").await;
    let found = anomalies(&v);
    let short = found
        .iter()
        .find(|a| a["blob_name"] == chunk.as_str())
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        short["anomaly"].as_str().unwrap().contains("wrong length"),
        "{short}"
    );
    assert_eq!(short["blob_length_in_bytes"], (bytes.len() - 10) as u64);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verification_is_streamed_and_bad_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("l", 10)).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "one", "logs").await;

    let mut r = s
        .client
        .post(format!("{}/_snapshot/repo/_verify_integrity", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("transfer-encoding").unwrap(),
        "chunked",
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("content-length").is_none());
    let first = r.chunk().await.unwrap().unwrap();
    assert!(
        !String::from_utf8_lossy(&first).contains("results"),
        "the opening comes before the end: {first:?}"
    );
    let mut body = first.to_vec();
    while let Some(c) = r.chunk().await.unwrap() {
        body.extend_from_slice(&c);
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["results"]["result"], "pass", "{v}");

    for bad in [
        "meta_thread_pool_concurrency=-1",
        "blob_thread_pool_concurrency=many",
        "index_verification_concurrency=1000000",
        "verify_blob_contents=maybe",
        "max_bytes_per_sec=0",
        "max_bytes_per_sec=fast",
        "max_failed_shard_snapshots=1.5",
        "no_such_parameter=1",
    ] {
        let r = s
            .call(
                "POST",
                &format!("/_snapshot/repo/_verify_integrity?{bad}"),
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.error_type().ends_with("_exception"), "{bad}");
    }
    let missing = s
        .call("POST", "/_snapshot/nope/_verify_integrity", None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "repository_missing_exception");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_health_is_green_with_indices_and_a_wait_that_cannot_end_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("logs", 2).await;
    s.create_index("web", 1).await;
    let h = s.ok("GET", "/_cluster/health", None).await;
    assert_eq!(h["status"], "green", "{h}");
    assert_eq!(h["timed_out"], false);
    assert_eq!(h["number_of_nodes"], 1);
    assert_eq!(h["number_of_data_nodes"], 1);
    assert_eq!(h["active_primary_shards"], 3);
    assert_eq!(h["active_shards"], 3);
    assert_eq!(h["initializing_shards"], 0);
    assert_eq!(h["unassigned_shards"], 0);
    assert_eq!(h["active_shards_percent_as_number"], 100.0);
    assert_eq!(h["cluster_name"], s.node.config().cluster_name.as_str());
    assert!(h.get("indices").is_none());

    let ready = s
        .ok(
            "GET",
            "/_cluster/health?wait_for_status=green&timeout=30s",
            None,
        )
        .await;
    assert_eq!(ready["timed_out"], false);

    let r = s
        .call("GET", "/_cluster/health?wait_for_nodes=5&timeout=1s", None)
        .await;
    assert_eq!(r.status, 408, "{}", r.text);
    assert_eq!(r.body["timed_out"], true);
    assert_eq!(r.body["status"], "green");

    let per_index = s.ok("GET", "/_cluster/health?level=indices", None).await;
    assert_eq!(
        per_index["indices"]["logs"]["number_of_shards"], 2,
        "{per_index}"
    );
    assert_eq!(per_index["indices"]["web"]["status"], "green");
    let shards = s
        .ok("GET", "/_cluster/health/logs?level=shards", None)
        .await;
    assert_eq!(shards["active_shards"], 2);
    assert_eq!(
        shards["indices"]["logs"]["shards"]["1"]["primary_active"],
        true
    );
    assert!(shards["indices"].get("web").is_none());

    // A missing index is red and waited for, as in Elasticsearch.
    let missing = s
        .call("GET", "/_cluster/health/nope?timeout=1s", None)
        .await;
    assert_eq!(missing.status, 408, "{}", missing.text);
    assert_eq!(missing.body["status"], "red");
    let at_once = s
        .call("GET", "/_cluster/health/nope?timeout=0s", None)
        .await;
    assert_eq!(at_once.body["status"], "red");

    for bad in [
        "wait_for_status=purple",
        "level=everything",
        "wait_for_nodes=lots",
        "wait_for_active_shards=some",
        "wait_for_events=whenever",
        "expand_wildcards=sideways",
        "timeout=soon",
        "nonsense=1",
    ] {
        let r = s
            .call("GET", &format!("/_cluster/health?{bad}"), None)
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_answer_from_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ask = |q: &str| format!("/_capabilities?{q}");
    let yes = s
        .ok("GET", &ask("method=POST&path=/_snapshot/{repository}/_verify_integrity&parameters=verify_blob_contents,max_bytes_per_sec"), None)
        .await;
    assert_eq!(yes["supported"], true, "{yes}");
    assert_eq!(yes["_nodes"]["total"], 1);
    let concrete = s
        .ok(
            "GET",
            &ask("method=GET&path=/_cluster/health/logs&parameters=wait_for_status,level"),
            None,
        )
        .await;
    assert_eq!(concrete["supported"], true, "{concrete}");
    for no in [
        "method=GET&path=/_cluster/no_such_api",
        "method=DELETE&path=/_cluster/health",
        "method=GET&path=/_cluster/health&parameters=no_such_parameter",
        "method=GET&path=/_cluster/health&capabilities=some_feature",
    ] {
        let v = s.ok("GET", &ask(no), None).await;
        assert_eq!(v["supported"], false, "{no}: {v}");
    }
    let bad = s.call("GET", &ask("method=FETCH&path=/"), None).await;
    assert_eq!(bad.status, 400);
    s.stop().await;
}
