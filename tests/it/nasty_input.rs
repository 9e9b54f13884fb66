//! The nasty-input list of issue 10, where `hostile_input.rs` and
//! `hostile_more.rs` did not have it yet: 10⁵-deep JSON bodies on many
//! routes, 10 000-character names of every kind, NUL and invalid UTF-8 in
//! paths, query strings and bodies, numbers past every integer type,
//! `filter_path` and wildcard abuse, date math abuse in snapshot names, and
//! hostile `_security` bodies. Each answers a clear Elasticsearch error
//! (4xx, `error.type`, `status`) within a generous deadline, on a server of
//! its own 2-worker runtime, and leaves indices, documents, repositories,
//! snapshots, users, roles and API keys as they were.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{basic, Resp, Server, TEST_PASSWORD};
use super::hostile_input::{within, Isolated};

/// For requests that hash a password or parse megabytes in a debug build:
/// generous, so only a hang or a runaway fails it.
const SLOW: Duration = Duration::from_secs(20);

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(SLOW, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {SLOW:?}"))
}

/// Percent-encodes everything but unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(
            |b| match b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                true => (b as char).to_string(),
                false => format!("%{b:02X}"),
            },
        )
        .collect()
}

/// Asserts a 400 Elasticsearch error of type `kind` and a short answer.
fn refused(r: &Resp, what: &str, kind: &str) {
    assert_eq!(
        r.status,
        400,
        "{what}: {}",
        &r.text[..r.text.len().min(400)]
    );
    assert_eq!(r.error_type(), kind, "{what}: {}", r.reason());
    // A refused 10 000-byte name is quoted in the reason and its root
    // cause, no more.
    assert!(
        r.text.len() < 48 * 1024,
        "{what}: a {}-byte answer",
        r.text.len()
    );
}

/// Everything a request could have changed: indices with their document
/// counts, repositories, snapshots, users, roles and API keys.
async fn everything(s: &Server) -> Value {
    let keys = |v: Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let indices = s
        .ok(
            "GET",
            "/_cat/indices?format=json&h=index,docs.count&s=index",
            None,
        )
        .await;
    let repos = keys(s.ok("GET", "/_snapshot/_all", None).await);
    let snaps: Vec<Value> = s.ok("GET", "/_snapshot/repo/_all", None).await["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["snapshot"].clone())
        .collect();
    let users = keys(s.ok("GET", "/_security/user", None).await);
    let roles = keys(s.ok("GET", "/_security/role", None).await);
    let api_keys = s.ok("GET", "/_security/api_key", None).await["api_keys"]
        .as_array()
        .unwrap()
        .len();
    json!({"indices": indices, "repositories": repos, "snapshots": snaps, "users": users, "roles": roles, "api_keys": api_keys})
}

/// A server holding an index `idx` with one document, a repository
/// `repo` with a snapshot `snap`, and a user `alice`.
async fn seeded(dir: &std::path::Path) -> Isolated {
    let s = Isolated::start(dir).await;
    s.create_index("idx", 1).await;
    s.ok("PUT", "/idx/_doc/1", Some(json!({"a": 1}))).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "idx").await;
    s.ok(
        "PUT",
        "/_security/user/alice",
        Some(json!({"password": "alice-password", "roles": ["viewer"]})),
    )
    .await;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn json_nested_a_hundred_thousand_deep_is_refused_on_every_route_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;
    let n = 100_000;
    let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let objects = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let routes = [
        ("PUT", "/idx/_doc/2"),
        ("POST", "/idx/_doc"),
        ("PUT", "/idx2"),
        ("POST", "/idx/_search"),
        ("POST", "/idx/_count"),
        ("PUT", "/_snapshot/repo2"),
        ("PUT", "/_snapshot/repo/snap2?wait_for_completion=true"),
        ("PUT", "/_snapshot/repo/snap/_clone/snap3"),
        (
            "POST",
            "/_snapshot/repo/snap/_restore?wait_for_completion=true",
        ),
        ("POST", "/_snapshot/repo/_rotate_key"),
        ("POST", "/_snapshot/repo/_pause"),
        ("PUT", "/_security/user/bob"),
        ("PUT", "/_security/role/r"),
        ("POST", "/_security/api_key"),
        ("POST", "/_security/user/alice/_password"),
        ("POST", "/_security/user/_has_privileges"),
        ("DELETE", "/_security/api_key"),
    ];
    for (method, path) in routes {
        for (shape, body) in [("arrays", &arrays), ("objects", &objects)] {
            let what = format!("{method} {path} with {shape}");
            let r = within(
                &what,
                s.raw(method, path, "application/json", body.clone().into_bytes()),
            )
            .await;
            refused(&r, &what, "x_content_parse_exception");
            assert!(
                r.reason().contains("nesting depth"),
                "{what}: {}",
                r.reason()
            );
        }
    }
    // A `_bulk` line as deep: the whole request is refused.
    let nd = format!(
        "{}\n{objects}\n",
        json!({"index": {"_index": "idx", "_id": "3"}})
    );
    let r = within(
        "deep bulk",
        s.raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes()),
    )
    .await;
    refused(&r, "deep bulk", "x_content_parse_exception");
    assert_eq!(everything(&s).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_character_names_of_every_kind_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;
    let long = "a".repeat(10_000);
    let cases: [(&str, String, Option<Value>, &str); 9] = [
        (
            "PUT",
            format!("/_snapshot/{long}"),
            Some(json!({"type": "fs", "settings": {"location": "x"}})),
            "repository_exception",
        ),
        (
            "PUT",
            format!("/_snapshot/repo/{long}?wait_for_completion=true"),
            Some(json!({"indices": "idx"})),
            "invalid_snapshot_name_exception",
        ),
        (
            "PUT",
            format!("/_snapshot/repo/snap/_clone/{long}"),
            Some(json!({"indices": "idx"})),
            "invalid_snapshot_name_exception",
        ),
        (
            "PUT",
            format!("/{long}"),
            None,
            "invalid_index_name_exception",
        ),
        (
            "PUT",
            format!("/{long}/_doc/1"),
            Some(json!({"a": 1})),
            "invalid_index_name_exception",
        ),
        (
            "PUT",
            format!("/idx/_doc/{long}"),
            Some(json!({"a": 1})),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            format!("/_security/user/{long}"),
            Some(json!({"password": "secret-1", "roles": []})),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            format!("/_security/role/{long}"),
            Some(json!({"cluster": ["monitor"]})),
            "action_request_validation_exception",
        ),
        (
            "POST",
            "/_security/api_key".into(),
            Some(json!({"name": long})),
            "action_request_validation_exception",
        ),
    ];
    for (method, path, body, kind) in cases {
        let what = format!("{method} {}", &path[..path.len().min(40)]);
        let r = within(&what, s.call(method, &path, body)).await;
        refused(&r, &what, kind);
    }
    // Looking one up is refused (a name expression that long) or, for
    // users and roles, finds nothing, as in Elasticsearch.
    for path in [
        format!("/_snapshot/{long}"),
        format!("/_snapshot/repo/{long}"),
        format!("/{long}/_count"),
        format!("/_cat/indices/{long}"),
        format!("/_cat/snapshots/{long}"),
        format!("/_snapshot/repo/{long}/_restore"),
    ] {
        let method = if path.ends_with("_restore") {
            "POST"
        } else {
            "GET"
        };
        let r = within(&path[..40], s.call(method, &path, None)).await;
        assert!(
            (400..500).contains(&r.status),
            "{}: {}",
            &path[..40],
            r.text
        );
        r.error_type();
    }
    for path in [
        format!("/_security/user/{long}"),
        format!("/_security/role/{long}"),
    ] {
        let r = within(&path[..40], s.call("GET", &path, None)).await;
        assert_eq!((r.status, &r.body), (404, &json!({})), "{}", r.text);
    }
    assert_eq!(everything(&s).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_and_invalid_utf8_in_paths_queries_and_bodies_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;

    // Invalid UTF-8 in a path: before the fix, a plain-text 400 from the
    // path extractor ("Invalid URL: Invalid UTF-8 in `index`").
    for (method, path) in [
        ("PUT", "/idx%FF"),
        ("GET", "/idx%FF/_count"),
        ("PUT", "/idx%C3%28/_doc/1"),
        ("PUT", "/idx/_doc/%FF%FE"),
        ("PUT", "/_snapshot/re%FFpo"),
        ("PUT", "/_snapshot/repo/sn%ED%A0%80ap"),
        ("GET", "/_snapshot/repo/snap%80"),
        ("PUT", "/_security/user/b%FFob"),
        ("PUT", "/_security/role/r%FF"),
        ("DELETE", "/_security/user/alice%FF"),
    ] {
        let what = format!("{method} {path}");
        let body = (method == "PUT").then(
            || json!({"type": "fs", "settings": {"location": "x"}, "password": "secret-1", "a": 1}),
        );
        let r = within(&what, s.call(method, path, body)).await;
        refused(&r, &what, "illegal_argument_exception");
        assert!(r.reason().contains("UTF-8"), "{what}: {}", r.reason());
    }

    // NUL in a path: each name's own rule refuses it.
    for (method, path, body, kind) in [
        (
            "PUT",
            "/_snapshot/re%00po",
            json!({"type": "fs", "settings": {"location": "x"}}),
            "repository_exception",
        ),
        (
            "PUT",
            "/_snapshot/repo/sn%00ap?wait_for_completion=true",
            json!({"indices": "idx"}),
            "invalid_snapshot_name_exception",
        ),
        ("PUT", "/id%00x", json!({}), "invalid_index_name_exception"),
        (
            "PUT",
            "/idx/_doc/a%00b",
            json!({"a": 1}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/user/b%00ob",
            json!({"password": "secret-1", "roles": []}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/role/r%00",
            json!({"cluster": []}),
            "action_request_validation_exception",
        ),
    ] {
        let what = format!("{method} {path}");
        let r = within(&what, s.call(method, path, Some(body))).await;
        refused(&r, &what, kind);
        assert!(!r.text.contains('\0'), "{what}: a raw NUL in {}", r.text);
    }

    // NUL and invalid UTF-8 in query strings of parameters with a grammar.
    // (Elasticsearch's time values fail as `parse_exception`.)
    for (path, kind) in [
        (
            "/_snapshot/repo/s1?wait_for_completion=%00",
            "illegal_argument_exception",
        ),
        (
            "/_snapshot/repo/s1?wait_for_completion=%FF",
            "illegal_argument_exception",
        ),
        ("/_snapshot/repo/s1?master_timeout=%FF", "parse_exception"),
        ("/_snapshot/repo/s1?master_timeout=1%00s", "parse_exception"),
    ] {
        let r = within(path, s.call("PUT", path, Some(json!({"indices": "idx"})))).await;
        refused(&r, path, kind);
    }
    for path in [
        "/idx/_search?size=%00",
        "/idx/_search?from=%FF",
        "/_snapshot/repo/_all?offset=%FF",
        "/_cat/indices?h=%00",
    ] {
        let r = within(path, s.call("GET", path, None)).await;
        refused(&r, path, "illegal_argument_exception");
    }

    // Invalid UTF-8 and raw NUL in JSON bodies; NUL escaped in a name-like
    // value.
    for (method, path) in [
        ("PUT", "/idx/_doc/2"),
        ("PUT", "/_snapshot/repo2"),
        ("PUT", "/_snapshot/repo/s2?wait_for_completion=true"),
        ("PUT", "/_security/user/bob"),
        ("PUT", "/_security/role/r"),
        ("POST", "/_security/api_key"),
    ] {
        for body in [
            // In the first key, so no field check comes first.
            &b"{\"\xff\xfe\":1}"[..],
            &b"{\"a\x00b\":1}"[..],
        ] {
            let what = format!("{method} {path} {body:?}");
            let r = within(
                &what,
                s.raw(method, path, "application/json", body.to_vec()),
            )
            .await;
            refused(&r, &what, "parse_exception");
        }
    }
    let nd = b"{\"index\":{\"_index\":\"idx\",\"_id\":\"9\"}}\n{\"a\":\"\xff\"}\n".to_vec();
    let r = within(
        "bulk with invalid UTF-8",
        s.raw("POST", "/_bulk", "application/x-ndjson", nd),
    )
    .await;
    assert!((200..500).contains(&r.status), "{}", r.text);
    if r.status == 200 {
        assert_eq!(r.body["errors"], true, "{}", r.text);
    } else {
        r.error_type();
    }
    let r = s
        .call(
            "PUT",
            "/_snapshot/repo2",
            Some(json!({"type": "fs", "settings": {"location": "a\u{0}b"}})),
        )
        .await;
    refused(&r, "a NUL in a setting", "repository_exception");
    let r = s
        .call(
            "POST",
            "/_security/api_key",
            Some(json!({"name": "k\u{0}"})),
        )
        .await;
    refused(
        &r,
        "a NUL in a key name",
        "action_request_validation_exception",
    );
    assert_eq!(everything(&s).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn numbers_past_every_integer_type_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;
    let huge = [
        "1e400",
        "18446744073709551616",
        "99999999999999999999999",
        "-1",
        "-9223372036854775809",
        "1.5",
    ];
    for n in huge {
        for path in [
            format!("/idx/_search?size={n}"),
            format!("/idx/_search?from={n}"),
            format!("/_snapshot/repo/_all?offset={n}"),
        ] {
            let r = within(&path, s.call("GET", &path, None)).await;
            refused(&r, &path, "illegal_argument_exception");
        }
        let path = format!("/_snapshot/repo/_analyze?max_blob_size={n}");
        let r = within(&path, s.call("POST", &path, None)).await;
        refused(&r, &path, "illegal_argument_exception");
        let path = format!("/_snapshot/repo/_analyze?blob_count={n}");
        let r = within(&path, s.call("POST", &path, None)).await;
        refused(&r, &path, "illegal_argument_exception");
        if n != "-1" {
            // -1 is Elasticsearch's "no limit" for get snapshots' size.
            let path = format!("/_snapshot/repo/_all?size={n}");
            let r = within(&path, s.call("GET", &path, None)).await;
            refused(&r, &path, "illegal_argument_exception");
        }
    }
    // In bodies: a number past f64 is malformed JSON; past the integer
    // types, or negative, a typed refusal.
    for (path, body, kind) in [
        ("/idx/_search", "{\"size\": 1e400}", "parse_exception"),
        (
            "/idx/_search",
            "{\"size\": 18446744073709551616}",
            "x_content_parse_exception",
        ),
        (
            "/idx/_search",
            "{\"from\": -1}",
            "x_content_parse_exception",
        ),
        (
            "/idx/_search",
            "{\"size\": -9223372036854775809}",
            "x_content_parse_exception",
        ),
        (
            "/idx/_count",
            "{\"query\": {\"match_all\": {\"boost\": 1e400}}}",
            "parse_exception",
        ),
    ] {
        let r = within(body, s.raw("POST", path, "application/json", body.into())).await;
        refused(&r, body, kind);
    }
    for shards in [
        "1e400",
        "18446744073709551616",
        "-1",
        "0",
        "100000000",
        "\"99999999999999999999\"",
    ] {
        let body = format!("{{\"settings\": {{\"number_of_shards\": {shards}}}}}");
        let r = within(
            &body,
            s.raw(
                "PUT",
                "/idx3",
                "application/json",
                body.clone().into_bytes(),
            ),
        )
        .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(
            ["illegal_argument_exception", "parse_exception"].contains(&r.error_type().as_str()),
            "{body}: {}",
            r.text
        );
    }
    // The largest from and size that parse page past the end, no overflow.
    let r = s
        .call(
            "POST",
            "/idx/_search",
            Some(json!({"from": i64::MAX, "size": i64::MAX})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["hits"]["hits"], json!([]));
    assert_eq!(everything(&s).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_path_and_wildcard_abuse_answers_quickly_with_a_refusal_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;
    for filter in [
        format!("{}x", "**.".repeat(3000)),
        vec!["**"; 3000].join(","),
        format!("{}x", "**.".repeat(1000)),
        vec!["**"; 1000].join(","),
        vec!["-**"; 200].join(","),
    ] {
        for path in ["/_snapshot/repo/_all", "/idx/_doc/1", "/_security/user"] {
            let p = format!("{path}?filter_path={filter}");
            let r = within(&p[..60], s.call("GET", &p, None)).await;
            refused(&r, &p[..60], "illegal_argument_exception");
        }
    }
    // Patterns within the bounds that backtracking matchers choke on:
    // linear here, and they select nothing.
    let star_a = format!("{}b", "*a".repeat(1500));
    for (path, empty) in [
        (
            format!("/_snapshot/repo/{star_a}?ignore_unavailable=true"),
            json!({"snapshots": [], "total": 0, "remaining": 0}),
        ),
        (format!("/{star_a}/_count"), json!(0)),
        (format!("/_security/user/{star_a}"), json!({})),
        (format!("/_security/role/{star_a}"), json!({})),
        (
            format!("/_security/api_key?name={star_a}"),
            json!({"api_keys": []}),
        ),
    ] {
        let r = within(&path[..40], s.call("GET", &path, None)).await;
        assert!(
            r.status == 200 || r.status == 404,
            "{}: {}",
            &path[..40],
            r.text
        );
        let got = if path.ends_with("_count") {
            r.body["count"].clone()
        } else {
            r.body.clone()
        };
        assert_eq!(got, empty, "{}", &path[..40]);
    }
    // Past the expression bound: refused.
    let r = within(
        "a 5000-byte pattern",
        s.call("GET", &format!("/_snapshot/{}", "*a".repeat(2500)), None),
    )
    .await;
    refused(&r, "a 5000-byte pattern", "illegal_argument_exception");
    assert_eq!(everything(&s).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn date_math_abuse_in_snapshot_names_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;
    let cases = [
        (
            "<x-{now/d{yyyy.MM.dd|+99:00}}>".to_string(),
            "parse_exception",
        ),
        (
            "<x-{now/d{yyyy.MM.dd|Europe/Paris}}>".to_string(),
            "parse_exception",
        ),
        ("<x-{{{{now}}}}>".to_string(), "parse_exception"),
        ("<x-{now{yyyy{MM{dd}}}}>".to_string(), "parse_exception"),
        (
            format!("<x-{{now{{{}}}}}>", "yyyy".repeat(2500)),
            "illegal_argument_exception",
        ),
        (
            format!("<{}>", "{now}".repeat(1000)),
            "illegal_argument_exception",
        ),
        (
            format!("<x-{{now{}}}>", "+999y".repeat(20)),
            "parse_exception",
        ),
        (
            format!("<x-{{now/d{{{}}}}}>", "yyyy|".repeat(800)),
            "parse_exception",
        ),
    ];
    for (name, kind) in cases {
        let path = format!("/_snapshot/repo/{}?wait_for_completion=true", enc(&name));
        let r = within(
            &name[..name.len().min(40)],
            s.call("PUT", &path, Some(json!({"indices": "idx"}))),
        )
        .await;
        refused(&r, &name[..name.len().min(60)], kind);
    }
    assert_eq!(everything(&s).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_security_bodies_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let before = everything(&s).await;
    let many: Vec<String> = (0..100_000).map(|i| format!("role-{i}")).collect();
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "PUT",
            "/_security/user/bob",
            json!({"password": "secret-1", "roles": many}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/user/bob",
            json!({"password": "secret-1", "roles": [], "metadata": {"blob": "x".repeat(1 << 20)}}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/role/r",
            json!({"indices": [{"names": many, "privileges": ["read"]}]}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/role/r",
            json!({"cluster": ["monitor", "nope"]}),
            "illegal_argument_exception",
        ),
        (
            "PUT",
            "/_security/role/r",
            json!({"indices": [{"names": ["*"], "privileges": ["read", "telepathy"]}]}),
            "illegal_argument_exception",
        ),
        (
            "PUT",
            "/_security/role/r",
            json!({"cluster": ["*"]}),
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/_security/api_key",
            json!({"name": "k", "role_descriptors": many.iter().take(5000).map(|n| (n.clone(), json!({"cluster": ["monitor"]}))).collect::<serde_json::Map<_, _>>()}),
            "action_request_validation_exception",
        ),
        (
            "POST",
            "/_security/api_key",
            json!({"name": "k", "role_descriptors": {"r": {"cluster": ["nope"]}}}),
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/_security/api_key",
            json!({"name": "k", "expiration": "99999999999999999999d"}),
            "parse_exception",
        ),
        (
            "POST",
            "/_security/api_key",
            json!({"name": "k", "expiration": "-1d"}),
            "parse_exception",
        ),
        (
            "PUT",
            "/_security/user/bob",
            json!({"password": "p".repeat(10_000), "roles": []}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/user/bob",
            json!({"password": "p".repeat(10 << 20), "roles": []}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/user/alice/_password",
            json!({"password": "p".repeat(10 << 20)}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/user/elastic/_password",
            json!({"password": "p".repeat(10 << 20)}),
            "action_request_validation_exception",
        ),
        (
            "PUT",
            "/_security/user/_password",
            json!({"password": "p".repeat(1025)}),
            "action_request_validation_exception",
        ),
    ];
    for (method, path, body, kind) in cases {
        let what = format!("{method} {path} {:.80}", body.to_string());
        let r = bounded(&what, s.call(method, path, Some(body))).await;
        refused(&r, &what, kind);
    }
    // Five 10 MB passwords at once: each refused before any hashing, and
    // the node still signs people in meanwhile.
    let huge = json!({"password": "p".repeat(10 << 20), "roles": []});
    let paths: Vec<String> = (0..5).map(|i| format!("/_security/user/u{i}")).collect();
    let alice_api = s.as_caller(Some(&basic("alice", "alice-password")));
    let (answers, alice) = bounded("five 10 MB passwords", async {
        tokio::join!(
            futures::future::join_all(paths.iter().map(|p| s.call("PUT", p, Some(huge.clone())))),
            alice_api.call("GET", "/_security/_authenticate", None)
        )
    })
    .await;
    for r in answers {
        refused(
            &r,
            "a 10 MB password",
            "action_request_validation_exception",
        );
    }
    assert_eq!(alice.status, 200, "{}", alice.text);
    assert_eq!(everything(&s).await, before);
    // Every password still works; 1024 characters is still a password.
    s.as_caller(Some(&basic("elastic", TEST_PASSWORD)))
        .ok("GET", "/_security/_authenticate", None)
        .await;
    let at_limit = "p".repeat(1024);
    s.ok(
        "PUT",
        "/_security/user/carol",
        Some(json!({"password": at_limit, "roles": []})),
    )
    .await;
    s.as_caller(Some(&basic("carol", &at_limit)))
        .ok("GET", "/_security/_authenticate", None)
        .await;
}
