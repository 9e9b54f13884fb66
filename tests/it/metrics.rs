//! `GET /_prometheus/metrics` and `GET /_nodes/stats` over real HTTP: a
//! snapshot and a restore on `fs` move the counters they should, labels
//! are route templates, the `monitor` privilege guards both, and the
//! stats answer has Elasticsearch's shape.
//!
//! Operation and storage counters are the process's, shared by the other
//! tests' servers running alongside: checks on them are lower bounds, or
//! on labels (a repository name) that only this test uses. HTTP counters
//! are per server, so they are checked exactly.

use std::collections::BTreeMap;

use serde_json::json;

use super::harness::{basic, docs, Api, Server};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses an exposition, asserting its line format: `# HELP`/`# TYPE`
/// comments, and samples `name{label="value",...} number`.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix("# ") {
            assert!(c.starts_with("HELP ") || c.starts_with("TYPE "), "{line}");
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("number: {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head, BTreeMap::new()),
            Some((name, rest)) => (name, labels(rest.strip_suffix('}').expect("}"), line)),
        };
        assert!(
            name.starts_with("snapvault_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        out.push((name.to_string(), labels, value));
    }
    out
}

/// `key="value",...` with `\\`, `\"` and `\n` escapes.
fn labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next().expect("closing quote") {
                '"' => break,
                '\\' => value.push(match chars.next() {
                    Some('n') => '\n',
                    Some(c) => c,
                    None => panic!("{line}"),
                }),
                c => value.push(c),
            }
        }
        out.insert(key, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// The sum of `name`'s samples whose labels include `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(api: &Api) -> Vec<Sample> {
    let r = api
        .client
        .get(format!("{}/_prometheus/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&r.text().await.unwrap())
}

const REPO: &str = "metrics-fs";

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_and_a_restore_move_the_counters_and_the_labels_are_route_templates() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("logs", 2).await;
    s.bulk("logs", &docs("m", 300)).await;
    // Uncompressed, so that what is written is at least what is snapshotted.
    s.ok(
        "PUT",
        &format!("/_snapshot/{REPO}"),
        Some(json!({"type": "fs", "settings": {"location": "m", "compress": false}})),
    )
    .await;
    let before = scrape(&s).await;
    s.create_snapshot(REPO, "snap-1", "logs").await;
    let status = s
        .ok("GET", &format!("/_snapshot/{REPO}/snap-1/_status"), None)
        .await;
    let stats = &status["snapshots"][0]["stats"]["total"];
    let (size, files) = (
        stats["size_in_bytes"].as_f64().unwrap(),
        stats["file_count"].as_f64().unwrap(),
    );
    assert!(size > 0.0 && files > 0.0, "{status}");
    s.restore(
        REPO,
        "snap-1",
        json!({"indices": "logs", "rename_pattern": "logs", "rename_replacement": "restored"}),
    )
    .await;
    let after = scrape(&s).await;
    let delta =
        |name: &str, with: &[(&str, &str)]| sum(&after, name, with) - sum(&before, name, with);

    // Storage, on this test's repository only.
    let repo = [
        ("store", "repository"),
        ("repository", REPO),
        ("backend", "fs"),
    ];
    let written = delta("snapvault_storage_written_bytes_total", &repo);
    assert!(
        written >= size,
        "wrote {written} bytes of a {size}-byte snapshot"
    );
    assert!(delta("snapvault_storage_objects_written_total", &repo) >= files);
    let read = delta("snapvault_storage_read_bytes_total", &repo);
    assert!(
        read >= size,
        "read {read} bytes restoring a {size}-byte snapshot"
    );
    assert!(
        sum(
            &after,
            "snapvault_storage_written_bytes_total",
            &[("store", "state")]
        ) > 0.0,
        "the state store is counted too"
    );

    // Operations (every server in this process counts here: lower bounds).
    for kind in ["snapshot", "restore"] {
        let ok = delta(
            "snapvault_operations_total",
            &[("kind", kind), ("outcome", "success")],
        );
        assert!(ok >= 1.0, "{kind}: {ok} succeeded");
        let timed = delta(
            "snapvault_operation_duration_seconds_count",
            &[("kind", kind)],
        );
        assert!(timed >= 1.0, "{kind}: {timed}");
    }

    // HTTP, this server's own: exact, and by template.
    let http = |route: &str, method: &str| {
        let with = [("route", route), ("method", method), ("status", "200")];
        delta("snapvault_http_requests_total", &with)
    };
    assert_eq!(http("/_snapshot/{repository}/{snapshot}", "PUT"), 1.0);
    assert_eq!(
        http("/_snapshot/{repository}/{snapshot}/_restore", "POST"),
        1.0
    );
    assert_eq!(
        http("/_snapshot/{repository}/{snapshot}/_status", "GET"),
        1.0
    );
    assert!(
        after
            .iter()
            .all(|(_, l, _)| l.values().all(|v| !v.contains("snap-1"))),
        "a raw path became a label"
    );
    let timed = sum(
        &after,
        "snapvault_http_request_duration_seconds_count",
        &[
            ("route", "/_snapshot/{repository}/{snapshot}"),
            ("method", "PUT"),
        ],
    );
    assert_eq!(timed, 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_stats_have_elasticsearchs_shape_and_both_apis_need_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("d", 20)).await;
    s.put_fs_repository("stats-fs", "st").await;
    s.create_snapshot("stats-fs", "one", "logs").await;
    let me = s.node.cluster().node_id().to_string();

    let all = s.ok("GET", "/_nodes/stats", None).await;
    assert_eq!(
        all["_nodes"],
        json!({"total": 1, "successful": 1, "failed": 0}),
        "{all}"
    );
    assert!(all["cluster_name"].is_string(), "{all}");
    let n = &all["nodes"][&me];
    assert!(
        n["name"].is_string() && n["timestamp"].as_i64().unwrap() > 0,
        "{n}"
    );
    assert!(n["roles"].as_array().is_some_and(|r| !r.is_empty()), "{n}");
    let route = &n["http"]["routes"]["/_snapshot/{repository}/{snapshot}"];
    assert_eq!(route["requests"]["count"], 1, "{n}");
    assert_eq!(route["responses"]["count"], 1, "{n}");
    let times = route["responses"]["handling_time_histogram"]
        .as_array()
        .unwrap();
    let counted: u64 = times.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 1, "{route}");
    assert!(n["http"]["routes"].get("/_snapshot/stats-fs/one").is_none());
    let repo = &n["repositories"]["stats-fs"];
    assert!(repo["uploaded_blobs"].as_u64().unwrap() > 0, "{repo}");
    assert!(
        repo["uploaded_size_in_bytes"].as_u64().unwrap() > 0,
        "{repo}"
    );
    for field in ["shard_snapshots_started", "total_read_throttled_time_nanos"] {
        assert!(repo[field].is_u64(), "{field}: {repo}");
    }

    let http_only = s.ok("GET", "/_nodes/_local/stats/http", None).await;
    assert!(http_only["nodes"][&me]["http"].is_object(), "{http_only}");
    assert!(
        http_only["nodes"][&me].get("repositories").is_none(),
        "{http_only}"
    );
    let by_id = s
        .ok("GET", &format!("/_nodes/{me}/stats/repositories"), None)
        .await;
    assert!(
        by_id["nodes"][&me]["repositories"]["stats-fs"].is_object(),
        "{by_id}"
    );
    let none = s.ok("GET", "/_nodes/no-such-node/stats", None).await;
    assert_eq!(none["_nodes"]["total"], 0, "{none}");

    for metric in ["bogus", "http,bogus", "jvm"] {
        let r = s
            .call("GET", &format!("/_nodes/stats/{metric}"), None)
            .await;
        assert_eq!(r.status, 400, "{metric}: {}", r.text);
        assert_eq!(r.error_type(), "illegal_argument_exception");
    }
    let r = s.call("GET", "/_nodes/stats/bogus", None).await;
    assert_eq!(
        r.reason(),
        "request [/_nodes/stats/bogus] contains unrecognized metric: [bogus]"
    );

    // A caller without `monitor` is refused both; one with it is not.
    for (name, cluster) in [("plain", json!([])), ("watcher", json!(["monitor"]))] {
        s.ok(
            "PUT",
            &format!("/_security/role/{name}-role"),
            Some(json!({"cluster": cluster, "indices": [{"names": ["logs"], "privileges": ["read"]}]})),
        )
        .await;
        s.ok(
            "PUT",
            &format!("/_security/user/{name}"),
            Some(
                json!({"password": format!("{name}-password"), "roles": [format!("{name}-role")]}),
            ),
        )
        .await;
    }
    let plain = s.as_caller(Some(&basic("plain", "plain-password")));
    let watcher = s.as_caller(Some(&basic("watcher", "watcher-password")));
    for path in ["/_prometheus/metrics", "/_nodes/stats"] {
        let r = plain.call("GET", path, None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert_eq!(r.error_type(), "security_exception");
        let r = watcher.call("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    let refused = scrape(&s).await;
    let with = [("route", "/_prometheus/metrics"), ("status", "403")];
    assert_eq!(sum(&refused, "snapvault_http_requests_total", &with), 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_progress_and_slm_runs_are_read_at_scrape_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start(&data).await;
    s.create_index("logs", 1).await;
    s.bulk("logs", &docs("r", 20)).await;
    s.put_fs_repository("rot-fs", "rot").await;
    s.create_snapshot("rot-fs", "before", "logs").await;

    super::harness::add_key(&data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let started = s
        .call(
            "POST",
            "/_snapshot/rot-fs/_rotate_key",
            Some(json!({"key_id": "k2"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    super::harness::wait_rotation(&s.base, "rot-fs", "the rotation", |v| {
        v["rotation"]["phase"] == "completed"
    })
    .await;
    let after = scrape(&s).await;
    let repo = [("repository", "rot-fs")];
    let phase = |p: &str| {
        sum(
            &after,
            "snapvault_key_rotation_phase",
            &[("repository", "rot-fs"), ("phase", p)],
        )
    };
    assert_eq!(phase("completed"), 1.0);
    assert_eq!(phase("rewrapping"), 0.0);
    let keys = sum(&after, "snapvault_key_rotation_keys", &repo);
    assert!(keys >= 1.0, "{keys} keys");
    assert_eq!(sum(&after, "snapvault_key_rotation_keys_done", &repo), keys);

    s.ok(
        "PUT",
        "/_slm/policy/hourly",
        Some(json!({
            "schedule": "0 30 1 * * ?",
            "name": "<hourly-{now/d}>",
            "repository": "rot-fs",
            "config": {"indices": ["logs"]}
        })),
    )
    .await;
    s.ok("POST", "/_slm/policy/hourly/_execute", None).await;
    let started = std::time::Instant::now();
    let taken = [("policy", "hourly"), ("outcome", "taken")];
    loop {
        let now = scrape(&s).await;
        if sum(&now, "snapvault_slm_snapshots_total", &taken) == 1.0 {
            assert_eq!(sum(&now, "snapvault_scrape_errors", &[]), 0.0);
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the SLM run never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    s.stop().await;
}
