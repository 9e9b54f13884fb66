//! Hostile input: requests built to make the server burn CPU or memory
//! (deep `filter_path`, backtracking wildcards), to make it panic (date
//! math), or to smuggle control characters into names. Each answers quickly
//! with an Elasticsearch error or the right result, creates nothing, and
//! leaves the server serving.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{Resp, Server};

pub(super) const DEADLINE: Duration = Duration::from_secs(1);

/// A server on its own runtime with two workers, like a small production
/// node. A handler that burns CPU stalls that runtime only, never the
/// test's, so the test's own deadlines still fire and the test fails
/// instead of hanging.
pub(super) struct Isolated {
    server: Option<Server>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Isolated {
    pub(super) async fn start(dir: &Path) -> Isolated {
        let dir: PathBuf = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(Server::start(&dir));
            Isolated {
                server: Some(server),
                runtime: Some(runtime),
            }
        })
        .await
        .unwrap()
    }
}

impl std::ops::Deref for Isolated {
    type Target = Server;
    fn deref(&self) -> &Server {
        self.server.as_ref().unwrap()
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(rt) = self.runtime.take() {
            // Never waits: a worker stuck in a runaway handler stays stuck.
            rt.shutdown_background();
        }
    }
}

/// Runs `f`, failing the test if it takes longer than [`DEADLINE`].
pub(super) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {DEADLINE:?}"));
    let took = started.elapsed();
    assert!(took <= DEADLINE, "{what}: answered after {took:?}");
    out
}

/// Percent-encodes everything but unreserved characters, for path segments.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `{"k": {"k": ... {"k": leaf}}}`, `depth` objects deep.
fn nested(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, _| json!({ "k": inner }))
}

fn assert_no_control(r: &Resp) {
    assert_clean(r, char::is_control);
}

/// Index names, repository names and snapshot names the server holds.
async fn inventory(s: &Server, repo: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let indices = s.ok("GET", "/_cat/indices?format=json", None).await;
    let mut indices: Vec<String> = indices
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_str().unwrap().to_string())
        .collect();
    indices.sort();
    let repos = s.ok("GET", "/_snapshot/_all", None).await;
    let repos: Vec<String> = repos.as_object().unwrap().keys().cloned().collect();
    let snaps = s.ok("GET", &format!("/_snapshot/{repo}/_all"), None).await;
    let snaps: Vec<String> = snaps["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["snapshot"].as_str().unwrap().to_string())
        .collect();
    (indices, repos, snaps)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deep_filter_path_answers_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    let doc = nested(40, json!({"leaf": 1, "other": 2}));
    s.ok("PUT", "/deep/_doc/1", Some(doc)).await;

    let twelve = "**.".repeat(12);
    let r = within(
        "12 ** that select nothing",
        s.call(
            "GET",
            &format!("/deep/_doc/1?filter_path={twelve}zzz"),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({}));

    let r = within(
        "12 ** that select a deep leaf",
        s.call(
            "GET",
            &format!("/deep/_doc/1?filter_path=_source.{twelve}leaf"),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"_source": nested(40, json!({"leaf": 1}))}));
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_path_follows_elasticsearch_and_refuses_oversized_filters() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    s.ok(
        "PUT",
        "/notes/_doc/x",
        Some(json!({"a": 1, "b": {"c": 2, "d": 3}, "dotted.key": 4})),
    )
    .await;
    let server: &Server = &s;
    let get = |f: &str| {
        let path = format!("/notes/_doc/x?filter_path={}", enc(f));
        async move { server.call("GET", &path, None).await }
    };
    let r = get("_source.b.*,-_source.b.d").await;
    assert_eq!(r.body, json!({"_source": {"b": {"c": 2}}}), "{}", r.text);
    let r = get("-_source,-_seq_no,-_primary_term,-_version").await;
    assert_eq!(
        r.body,
        json!({"_index": "notes", "_id": "x", "found": true}),
        "{}",
        r.text
    );
    let r = get(r"_source.dotted\.key").await;
    assert_eq!(r.body, json!({"_source": {"dotted.key": 4}}), "{}", r.text);
    // `**` stands for one level or more, as in Elasticsearch.
    let r = get("**.c").await;
    assert_eq!(r.body, json!({"_source": {"b": {"c": 2}}}), "{}", r.text);

    // A large answer (filtered on the blocking pool) filters the same.
    let blob = "x".repeat(200 * 1024);
    s.ok(
        "PUT",
        "/notes/_doc/big",
        Some(json!({"blob": blob, "keep": 1})),
    )
    .await;
    let r = s
        .call("GET", "/notes/_doc/big?filter_path=_source.keep", None)
        .await;
    assert_eq!(r.body, json!({"_source": {"keep": 1}}), "{}", r.text);

    let long = format!("{}x", "a.".repeat(2100));
    let r = get(&long).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_type(), "illegal_argument_exception");
    let many = vec!["a"; 300].join(",");
    let r = get(&many).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_type(), "illegal_argument_exception");
}

#[tokio::test(flavor = "multi_thread")]
async fn backtracking_wildcards_answer_within_a_second_and_do_not_stall_other_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    let a100 = "a".repeat(100);
    let a200 = "a".repeat(200);
    s.put_fs_repository(&a100, "r100").await;
    s.put_fs_repository(&a200, "r200").await;
    s.put_fs_repository("repo", "repo").await;
    s.create_index(&a200, 1).await;
    s.create_index("idx", 1).await;
    s.create_snapshot("repo", &a200, "idx").await;

    let hostile = "*a*a*a*a*a*a*b";
    let paths = [
        format!("/_snapshot/{hostile}"),
        format!("/_snapshot/repo/{hostile}?ignore_unavailable=true"),
        format!("/_cat/indices/{hostile}"),
        format!("/{hostile}/_count"),
    ];
    for path in &paths {
        let r = within(path, s.call("GET", path, None)).await;
        assert!(r.status < 500, "{path}: {} {}", r.status, r.text);
    }
    // The same patterns still select what they should.
    let listed = s.ok("GET", "/_snapshot/repo/*a*a*a*a*a*a", None).await;
    assert_eq!(listed["snapshots"][0]["snapshot"], a200.as_str());
    let text = s
        .call("GET", "/_cat/indices/a*a*a*a*a*a?h=index", None)
        .await
        .text;
    assert_eq!(text.trim(), a200);

    // Three at once leave the node free to answer `GET /` meanwhile.
    let hostile_calls =
        futures::future::join_all(paths[..3].iter().map(|p| s.call("GET", p, None)));
    let root = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        within(
            "GET / during three hostile requests",
            s.call("GET", "/", None),
        )
        .await
    };
    let (answers, root) = within("three hostile requests and GET /", async {
        tokio::join!(hostile_calls, root)
    })
    .await;
    assert_eq!(root.status, 200, "{}", root.text);
    for r in answers {
        assert!(r.status < 500, "{} {}", r.status, r.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn name_expressions_past_the_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    s.create_index("idx", 1).await;
    let many_parts = vec!["idx"; 1100].join(",");
    let long = format!("{}*", "a".repeat(5000));
    for path in [
        format!("/_cat/indices/{many_parts}"),
        format!("/{long}/_count"),
        format!("/_snapshot/{long}"),
        format!("/_snapshot/{many_parts}/_all"),
    ] {
        let r = within(&path[..40], s.call("GET", &path, None)).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.error_type(), "illegal_argument_exception");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_date_math_answers_a_parse_exception_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    s.create_index("idx", 1).await;
    s.put_fs_repository("repo", "repo").await;
    for name in [
        "<x-{now+9999999999999d}>",
        "<x-{now-9223372036854775807s}>",
        "<x-{now+99999999y}>",
        "<x-{now-3000000M}>",
        "<x-{now+2147483647w}>",
        "<x-{now{%}}>",
        "<x-{now{%n}}>",
        "<x-{now/d{yyyy%Y}}>",
        "<x-{now{yyyy\n}}>",
        "<x-{now{EEEE}}>",
        "<x-{now{yyyy}>",
        "<x-{now}}>",
        "<x-{now+}>",
        "<x-{now/}>",
        "<x-{later}>",
    ] {
        let path = format!("/_snapshot/repo/{}?wait_for_completion=true", enc(name));
        let r = within(name, s.call("PUT", &path, Some(json!({"indices": "idx"})))).await;
        assert_eq!(r.status, 400, "{name:?}: {}", r.text);
        assert_eq!(r.error_type(), "parse_exception", "{name:?}");
        assert_no_control(&r);
    }
    assert_eq!(
        s.ok("GET", "/", None).await["tagline"],
        "You Know, for Search"
    );
    let (_, _, snaps) = inventory(&s, "repo").await;
    assert!(snaps.is_empty(), "{snaps:?}");
    // Valid date math still works.
    let ok = s
        .create_snapshot("repo", &enc("<nightly-{now/d{yyyy.MM.dd}}>"), "idx")
        .await;
    assert!(ok["snapshot"]["snapshot"]
        .as_str()
        .unwrap()
        .starts_with("nightly-2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_in_names_and_ids_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Isolated::start(dir.path()).await;
    s.create_index("idx", 1).await;
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "idx").await;
    let before = inventory(&s, "repo").await;

    for c in ['\0', '\n', '\r', '\u{1b}'] {
        assert_refused_everywhere(&s, &format!("bad{c}name"), char::is_control).await;
    }

    let long_id = "i".repeat(513);
    let r = s
        .call(
            "PUT",
            &format!("/idx/_doc/{long_id}"),
            Some(json!({"a": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_type(), "action_request_validation_exception");
    assert!(r
        .reason()
        .contains("is too long, must be no longer than 512 bytes but was: 513"));
    s.ok(
        "PUT",
        &format!("/idx/_doc/{}", "i".repeat(512)),
        Some(json!({"a": 1})),
    )
    .await;

    assert_eq!(inventory(&s, "repo").await, before);
    assert_eq!(s.ok("GET", "/idx/_count", None).await["count"], 1);
}

/// Every way a name or an id enters the server, each given `bad`: each
/// must refuse it with Elasticsearch's error, and no answer may show a
/// character for which `unsafe_char` holds without escaping it.
pub(super) async fn assert_refused_everywhere(
    s: &Server,
    bad: &str,
    unsafe_char: fn(char) -> bool,
) {
    let r = s
        .call(
            "PUT",
            &format!("/_snapshot/{}", enc(bad)),
            Some(json!({"type": "fs", "settings": {"location": "elsewhere"}})),
        )
        .await;
    assert_eq!(r.status, 400, "repository {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "repository_exception");
    assert_clean(&r, unsafe_char);

    let r = s
        .call(
            "PUT",
            &format!("/_snapshot/repo/{}?wait_for_completion=true", enc(bad)),
            Some(json!({"indices": "idx"})),
        )
        .await;
    assert_eq!(r.status, 400, "snapshot {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "invalid_snapshot_name_exception");
    assert_clean(&r, unsafe_char);

    let r = s
        .call(
            "PUT",
            &format!("/_snapshot/repo/snap/_clone/{}", enc(bad)),
            Some(json!({"indices": "idx"})),
        )
        .await;
    assert_eq!(r.status, 400, "clone {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "invalid_snapshot_name_exception");

    let r = s.call("PUT", &format!("/{}", enc(bad)), None).await;
    assert_eq!(r.status, 400, "index {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "invalid_index_name_exception");
    assert_clean(&r, unsafe_char);

    let r = s
        .call(
            "PUT",
            &format!("/{}/_doc/1", enc(bad)),
            Some(json!({"a": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "auto-created index {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "invalid_index_name_exception");

    for verb in ["index", "create"] {
        let nd = format!(
            "{}\n{}\n",
            json!({verb: {"_index": bad, "_id": "1"}}),
            json!({"a": 1})
        );
        let r = s
            .raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
            .await;
        assert_eq!(r.status, 200, "bulk {verb} {bad:?}: {}", r.text);
        assert_eq!(r.body["errors"], true, "{}", r.text);
        let item = &r.body["items"][0][verb];
        assert_eq!(
            item["error"]["type"], "invalid_index_name_exception",
            "{}",
            r.text
        );
        assert!(!item["error"]["reason"]
            .as_str()
            .unwrap()
            .chars()
            .any(char::is_control));
    }

    let r = s
        .call(
            "PUT",
            &format!("/idx/_doc/{}", enc(bad)),
            Some(json!({"a": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "id {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "action_request_validation_exception");
    assert_clean(&r, unsafe_char);

    let nd = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"index": {"_index": "idx", "_id": "fine"}}),
        json!({"a": 1}),
        json!({"index": {"_index": "idx", "_id": bad}}),
        json!({"a": 1})
    );
    let r = s
        .raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
        .await;
    assert_eq!(r.status, 400, "bulk id {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "action_request_validation_exception");

    let r = s
        .call(
            "POST",
            "/_snapshot/repo/snap/_restore?wait_for_completion=true",
            Some(json!({"indices": "idx", "rename_pattern": "idx", "rename_replacement": bad})),
        )
        .await;
    assert_eq!(r.status, 400, "restore rename {bad:?}: {}", r.text);
    assert_eq!(r.error_type(), "invalid_index_name_exception");
    assert_clean(&r, unsafe_char);
}

/// No raw character for which `unsafe_char` holds, in the body or reason.
pub(super) fn assert_clean(r: &Resp, unsafe_char: fn(char) -> bool) {
    assert!(
        !r.text.chars().any(unsafe_char) && !r.reason().chars().any(unsafe_char),
        "raw unsafe characters in the answer: {:?}",
        r.text
    );
}
