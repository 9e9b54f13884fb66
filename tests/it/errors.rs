//! Every error type the API promises, provoked by a request, with
//! Elasticsearch's body and status, and nothing changed by a bad request.

use serde_json::json;

use super::harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn every_error_type_has_elasticsearch_shape_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), Some("max_body_bytes = 4096\n")).await;
    s.create_index("idx", 1).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "idx").await;
    let state_before = s.ok("GET", "/_snapshot", None).await;

    let cases: Vec<(&str, &str, Option<serde_json::Value>, u16, &str)> = vec![
        (
            "GET",
            "/_snapshot/nope",
            None,
            404,
            "repository_missing_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"type": "fs", "settings": {"location": "../../etc"}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"type": "fs", "settings": {"location": "/etc"}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"type": "fs", "settings": {}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"type": "ftp", "settings": {"location": "x"}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"type": "fs", "settings": {"location": "x", "compres": true}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"type": "fs", "settings": {"location": "x", "chunk_size": "lots"}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/_bad",
            Some(json!({"type": "fs", "settings": {"location": "x"}})),
            400,
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/evil",
            Some(json!({"settings": {"location": "x"}})),
            400,
            "action_request_validation_exception",
        ),
        (
            "GET",
            "/_snapshot/repo/nope",
            None,
            404,
            "snapshot_missing_exception",
        ),
        (
            "DELETE",
            "/_snapshot/repo/nope",
            None,
            404,
            "snapshot_missing_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/nope/_restore",
            None,
            404,
            "snapshot_missing_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/UPPER",
            None,
            400,
            "invalid_snapshot_name_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/snap",
            None,
            400,
            "invalid_snapshot_name_exception",
        ),
        // Elasticsearch's DateMathExpressionResolver throws an
        // ElasticsearchParseException before the name rules apply.
        (
            "PUT",
            "/_snapshot/repo/%3Cbad-%7Bsoon%7D%3E",
            None,
            400,
            "parse_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/new",
            Some(json!({"indices": "missing-index"})),
            404,
            "index_not_found_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/snap/_restore",
            Some(json!({"index_settings": {"index.number_of_shards": 3}})),
            400,
            "snapshot_restore_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/snap/_restore",
            None,
            400,
            "snapshot_restore_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/snap/_restore",
            Some(json!({"rename_pattern": "(", "rename_replacement": "x"})),
            400,
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/snap/_restore",
            Some(json!({"rename_pattern": "idx", "rename_replacement": "BAD"})),
            400,
            "invalid_index_name_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/snap/_clone/copy",
            Some(json!({})),
            400,
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/snap/_clone/copy",
            Some(json!({"indices": "zzz"})),
            404,
            "index_not_found_exception",
        ),
        (
            "GET",
            "/_snapshot/repo/_all?bogus=1",
            None,
            400,
            "illegal_argument_exception",
        ),
        (
            "GET",
            "/_snapshot/repo/_all?verbose=maybe",
            None,
            400,
            "illegal_argument_exception",
        ),
        (
            "GET",
            "/_snapshot/repo/_all?sort=colour",
            None,
            400,
            "illegal_argument_exception",
        ),
        (
            "GET",
            "/_snapshot/repo/_all?size=-2",
            None,
            400,
            "action_request_validation_exception",
        ),
        (
            "GET",
            "/_snapshot/repo/_all?master_timeout=soon",
            None,
            400,
            "parse_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/new",
            Some(json!({"indices": "idx", "colour": "red"})),
            400,
            "x_content_parse_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/new",
            Some(json!({"indices": "idx", "partial": "yes"})),
            400,
            "x_content_parse_exception",
        ),
        (
            "PUT",
            "/idx",
            None,
            400,
            "resource_already_exists_exception",
        ),
        ("PUT", "/Upper", None, 400, "invalid_index_name_exception"),
        (
            "PUT",
            "/idx2",
            Some(json!({"settings": {"number_of_shards": 0}})),
            400,
            "illegal_argument_exception",
        ),
        (
            "GET",
            "/missing/_search",
            None,
            404,
            "index_not_found_exception",
        ),
        ("GET", "/idx/_doc", None, 405, "illegal_argument_exception"),
        (
            "GET",
            "/_no/such/route/here",
            None,
            400,
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/idx/_search",
            Some(json!({"query": {"match": {"a": "b"}}})),
            501,
            "not_implemented_exception",
        ),
        (
            "PUT",
            "/_snapshot/s3repo",
            Some(json!({"type": "s3", "settings": {"bucket": "bkt"}})),
            400,
            "repository_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "k2"})),
            400,
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({})),
            400,
            "action_request_validation_exception",
        ),
        (
            "POST",
            "/_snapshot/nope/_rotate_key",
            Some(json!({"key_id": "default"})),
            404,
            "repository_missing_exception",
        ),
        (
            "GET",
            "/_snapshot/nope/_rotate_key",
            None,
            404,
            "repository_missing_exception",
        ),
        (
            "POST",
            "/_snapshot/nope/_pause",
            None,
            404,
            "repository_missing_exception",
        ),
        (
            "GET",
            "/_slm/policy/nope",
            None,
            404,
            "resource_not_found_exception",
        ),
        (
            "POST",
            "/_slm/policy/nope/_execute",
            None,
            400,
            "illegal_argument_exception",
        ),
        // Found by schemathesis: both answered 501, a missing feature,
        // for what is the client's mistake.
        (
            "POST",
            "/idx/_search",
            Some(json!({"query": {"no_such_query": {}}})),
            400,
            "parsing_exception",
        ),
        (
            "POST",
            "/_snapshot/repo/_rotate_key",
            Some(json!({"key_id": "default", "mode": "sideways"})),
            400,
            "illegal_argument_exception",
        ),
    ];
    for (method, path, body, status, kind) in cases {
        let r = s.call(method, path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        assert_eq!(r.error_type(), kind, "{method} {path}: {}", r.text);
        if status == 501 {
            // A missing feature is no failure to look up in the log.
            assert!(!r.reason().contains("error id"), "{}", r.text);
        }
    }

    let malformed = s
        .raw(
            "PUT",
            "/_snapshot/repo/new",
            "application/json",
            b"{\"indices\": ".to_vec(),
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.error_type()),
        (400, "parse_exception".to_string())
    );
    let huge = s
        .raw(
            "PUT",
            "/_snapshot/repo/new",
            "application/json",
            vec![b' '; 10_000],
        )
        .await;
    assert_eq!(huge.status, 413, "{}", huge.text);
    assert_eq!(huge.error_type(), "content_too_long_exception");
    let bad_bulk = s
        .raw(
            "POST",
            "/_bulk",
            "application/x-ndjson",
            b"{not json}\n".to_vec(),
        )
        .await;
    assert_eq!(bad_bulk.status, 400);

    // Nothing above changed the registered repositories or created indices.
    assert_eq!(s.ok("GET", "/_snapshot", None).await, state_before);
    assert_eq!(s.ok("GET", "/_snapshot/repo/_all", None).await["total"], 1);
    assert_eq!(s.call("HEAD", "/idx2", None).await.status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("repo", "repo").await;
    let ok = s.ok("POST", "/_snapshot/repo/_verify", None).await;
    assert_eq!(ok["nodes"].as_object().unwrap().len(), 1);
    // Replace the repository directory's test area with a file: writes fail.
    let repo = s.repo_dir("repo");
    std::fs::remove_dir_all(&repo).unwrap();
    std::fs::write(&repo, b"not a directory").unwrap();
    let r = s.call("POST", "/_snapshot/repo/_verify", None).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.error_type(), "repository_verification_exception");
    s.stop().await;
}
