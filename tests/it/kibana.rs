//! A replay of the Elasticsearch calls Kibana makes to attach and to run
//! its Snapshot and Restore app (read from Kibana's sources: core's
//! version and scripting checks, the licensing plugin, the app's routes),
//! sent as Kibana's client sends them (its headers, `compatible-with` 8
//! and 9, percent-encoded lists) and checked for the fields Kibana reads:
//! where Kibana would throw on a missing field, the test fails.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{basic, docs, Server, TEST_PASSWORD};

struct Kibana {
    base: String,
    client: reqwest::Client,
}

impl Kibana {
    fn new(base: &str, major: u8) -> Kibana {
        let mut h = reqwest::header::HeaderMap::new();
        let auth = basic("elastic", TEST_PASSWORD);
        h.insert("authorization", auth.parse().unwrap());
        h.insert("x-elastic-product-origin", "kibana".parse().unwrap());
        h.insert(
            "user-agent",
            format!("Kibana/{major}.19.0").parse().unwrap(),
        );
        h.insert(
            "accept",
            format!("application/vnd.elasticsearch+json; compatible-with={major},text/plain")
                .parse()
                .unwrap(),
        );
        Kibana {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .default_headers(h)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>, major: u8) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req
                .header(
                    "content-type",
                    format!("application/vnd.elasticsearch+json; compatible-with={major}"),
                )
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        // The client's product check: every answer, errors included.
        assert_eq!(
            r.headers()
                .get("x-elastic-product")
                .map(|v| v.to_str().unwrap()),
            Some("Elasticsearch"),
            "{method} {path}"
        );
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Kibana's rule (`esVersionCompatibleWithKibana`): the same major with a
/// minor at least Kibana's, or the next major.
fn kibana_accepts(es: &str, kibana: (u64, u64)) -> bool {
    let parts: Vec<u64> = es.split('.').filter_map(|p| p.parse().ok()).collect();
    let [major, minor, _patch] = parts[..] else {
        return false;
    };
    major == kibana.0 + 1 || (major == kibana.0 && minor >= kibana.1)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{} is not a string in {v}", path.join(".")))
}

async fn replay(s: &Server, major: u8) {
    let k = Kibana::new(&s.base, major);
    let ok = |r: (u16, Value), what: &str| {
        assert!((200..300).contains(&r.0), "{what}: {} {}", r.0, r.1);
        r.1
    };
    let repo = format!("kib{major}");

    // 1. Core: cluster info, the version poll (both forms), scripting and allocation checks.
    let root = ok(k.send("GET", "/", None, major).await, "GET /");
    let version = str_at(&root, &["version", "number"]).to_string();
    assert_eq!(root["version"]["build_flavor"], "default");
    assert!(root["cluster_uuid"].is_string());
    for kibana in [(8, 19), (9, 0), (9, 5)] {
        assert!(
            kibana_accepts(&version, kibana),
            "Kibana {kibana:?} refuses {version}"
        );
    }
    for path in [
        "/_nodes?filter_path=nodes.*.version%2Cnodes.*.http.publish_address%2Cnodes.*.ip",
        "/_nodes/_all/_none?filter_path=nodes.*.version%2Cnodes.*.http.publish_address%2Cnodes.*.ip",
    ] {
        let nodes = ok(k.send("GET", path, None, major).await, path);
        let all = nodes["nodes"].as_object().unwrap();
        assert!(!all.is_empty(), "{nodes}");
        for n in all.values() {
            assert_eq!(n["version"], version.as_str(), "{nodes}");
            assert!(n["ip"].is_string(), "{nodes}");
            assert!(n["http"]["publish_address"].is_string() || path.contains("_none"), "{nodes}");
            assert_eq!(n.as_object().unwrap().len(), if path.contains("_none") { 2 } else { 3 }, "filter_path applied: {nodes}");
        }
    }
    let settings = ok(
        k.send(
            "GET",
            "/_cluster/settings?include_defaults=true&flat_settings=true",
            None,
            major,
        )
        .await,
        "scripting check",
    );
    for scope in ["persistent", "transient", "defaults"] {
        assert!(settings[scope].is_object(), "{settings}");
        assert!(settings[scope].get("script.allowed_types").is_none());
        assert!(settings[scope]
            .get("cluster.routing.allocation.enable")
            .is_none());
    }

    // 2. Licensing: a basic, active licence, with security on as the node is.
    let xpack = ok(k.send("GET", "/_xpack", None, major).await, "GET /_xpack");
    assert_eq!(xpack["license"]["type"], "basic");
    assert_eq!(xpack["license"]["status"], "active");
    assert!(xpack["license"]["uid"].is_string() && xpack["license"]["mode"].is_string());
    assert_eq!(
        xpack["features"]["security"],
        json!({"available": true, "enabled": true})
    );
    let license = ok(
        k.send("GET", "/_license", None, major).await,
        "GET /_license",
    );
    assert_eq!(license["license"]["status"], "active");

    // 3. The app's privilege check (security is on).
    let privileges = ok(
        k.send(
            "POST",
            "/_security/user/_has_privileges",
            Some(json!({"cluster": ["cluster:admin/snapshot", "cluster:admin/repository", "cluster:admin/settings/update", "cluster:monitor/settings/get", "manage_slm", "cluster:monitor/state"]})),
            major,
        )
        .await,
        "_has_privileges",
    );
    assert_eq!(privileges["has_all_requested"], true, "{privileges}");
    assert_eq!(privileges["cluster"].as_object().unwrap().len(), 6);
    let mine = ok(
        k.send("GET", "/_security/user/_privileges", None, major)
            .await,
        "_privileges",
    );
    assert!(
        mine["indices"].as_array().unwrap().iter().any(|i| {
            i["privileges"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "all" || p == "monitor")
        }),
        "{mine}"
    );

    // 4. Repositories: managed-repository lookups, types, create with the
    // form's settings, read back, count, verify, clean up.
    for filter in ["*.*managed_repository", "*.*managed_policies"] {
        let v = ok(
            k.send("GET", &format!("/_cluster/settings?filter_path={filter}&flat_settings=true&include_defaults=true"), None, major).await,
            filter,
        );
        assert!(v.is_object(), "{v}");
    }
    let types = ok(
        k.send("GET", "/_nodes/_all/plugins", None, major).await,
        "plugins",
    );
    let plugins: Vec<String> = types["nodes"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|n| {
            n["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
        })
        .collect();
    for t in ["repository-s3", "repository-azure", "repository-gcs"] {
        assert!(plugins.contains(&t.to_string()), "{types}");
    }
    assert!(!plugins.contains(&"repository-hdfs".to_string()));
    let (status, _) = k
        .send("GET", &format!("/_snapshot/{repo}"), None, major)
        .await;
    assert_eq!(
        status, 404,
        "a missing repository is a 404 (Kibana's existence check)"
    );
    ok(
        k.send(
            "PUT",
            &format!("/_snapshot/{repo}?verify=false"),
            Some(json!({"type": "fs", "settings": {"location": repo, "compress": true, "chunk_size": "1g", "max_snapshot_bytes_per_sec": "40mb", "max_restore_bytes_per_sec": "40mb", "readonly": false}})),
            major,
        )
        .await,
        "create repository",
    );
    let all = ok(
        k.send("GET", "/_snapshot/_all", None, major).await,
        "repositories",
    );
    assert_eq!(all[&repo]["type"], "fs");
    assert_eq!(all[&repo]["settings"]["compress"], "true");
    let one = ok(
        k.send("GET", &format!("/_snapshot/{repo}"), None, major)
            .await,
        "repository",
    );
    assert!(one[&repo]["settings"].is_object());
    let count = ok(
        k.send("GET", &format!("/_snapshot/{repo}/_all"), None, major)
            .await,
        "count",
    );
    assert!(count["snapshots"].is_array());
    ok(
        k.send("POST", &format!("/_snapshot/{repo}/_verify"), None, major)
            .await,
        "verify",
    );
    let cleanup = ok(
        k.send("POST", &format!("/_snapshot/{repo}/_cleanup"), None, major)
            .await,
        "cleanup",
    );
    assert!(cleanup["results"]["deleted_bytes"].is_number());
    let (status, err) = k
        .send("POST", "/_snapshot/nope/_cleanup", None, major)
        .await;
    assert_eq!((status, err["status"].as_u64()), (404, Some(404)), "{err}");

    // 5. SLM: the create route's existence check, create, list, run.
    ok(k.send("GET", "/_slm/policy", None, major).await, "policies");
    let policy = format!("daily{major}");
    let (status, _) = k
        .send("GET", &format!("/_slm/policy/{policy}"), None, major)
        .await;
    assert_eq!(status, 404);
    ok(
        k.send(
            "PUT",
            &format!("/_slm/policy/{policy}"),
            Some(json!({"name": "<daily-snap-{now/d}>", "schedule": "0 30 1 * * ?", "repository": repo, "config": {"indices": ["library"], "ignore_unavailable": false, "include_global_state": false, "partial": false, "feature_states": []}, "retention": {"expire_after": "30d", "min_count": 1, "max_count": 10}})),
            major,
        )
        .await,
        "create policy",
    );
    let listed = ok(
        k.send("GET", "/_slm/policy?human=true", None, major).await,
        "policies human",
    );
    let p = &listed[&policy];
    assert_eq!(p["policy"]["repository"], repo.as_str());
    for f in ["modified_date", "next_execution"] {
        assert!(p[f].is_string(), "{f}: {p}");
    }
    assert!(p["stats"]["snapshots_taken"].is_number());
    let run = ok(
        k.send(
            "PUT",
            &format!("/_slm/policy/{policy}/_execute"),
            None,
            major,
        )
        .await,
        "run policy",
    );
    let snapshot = run["snapshot_name"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let p = ok(
            k.send(
                "GET",
                &format!("/_slm/policy/{policy}?human=true"),
                None,
                major,
            )
            .await,
            "policy",
        );
        if let Some(done) = p[&policy].get("last_success") {
            assert_eq!(done["snapshot_name"], snapshot.as_str());
            assert!(done["time_string"].is_string(), "{p}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resolved = ok(
        k.send("GET", "/_resolve/index/*?expand_wildcards=all", None, major)
            .await,
        "resolve",
    );
    assert!(resolved["data_streams"].is_array());
    let idx = resolved["indices"].as_array().unwrap();
    assert!(
        idx.iter()
            .any(|i| i["name"] == "library" && i["attributes"].is_array()),
        "{resolved}"
    );
    let features = ok(k.send("GET", "/_features", None, major).await, "features");
    assert_eq!(features["features"], json!([]));
    let retention = ok(
        k.send(
            "GET",
            "/_cluster/settings?filter_path=**.slm.retention*&include_defaults=true",
            None,
            major,
        )
        .await,
        "retention settings",
    );
    assert_eq!(
        retention["defaults"]["slm"]["retention_schedule"], "0 30 1 * * ?",
        "{retention}"
    );
    ok(
        k.send(
            "PUT",
            "/_cluster/settings",
            Some(json!({"persistent": {"slm": {"retention_schedule": "0 30 2 * * ?"}}})),
            major,
        )
        .await,
        "put retention schedule",
    );
    ok(
        k.send("POST", "/_slm/_execute_retention", None, major)
            .await,
        "retention",
    );
    assert!(
        ok(k.send("GET", "/_slm/status", None, major).await, "status")["operation_mode"]
            .is_string()
    );

    // 6. Snapshots: the list as the app pages it, one snapshot's details.
    let list = ok(
        k.send(
            "GET",
            "/_snapshot/_all/_all?ignore_unavailable=true&slm_policy_filter=*%2C_none&order=asc&sort=start_time&size=20&offset=0",
            None,
            major,
        )
        .await,
        "snapshot list",
    );
    assert!(list["total"].is_number(), "{list}");
    let entry = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["snapshot"] == snapshot.as_str())
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    for f in [
        "snapshot",
        "uuid",
        "repository",
        "version",
        "state",
        "start_time",
        "end_time",
    ] {
        assert!(entry[f].is_string(), "{f}: {entry}");
    }
    for f in [
        "version_id",
        "start_time_in_millis",
        "end_time_in_millis",
        "duration_in_millis",
    ] {
        assert!(entry[f].is_number(), "{f}: {entry}");
    }
    for f in ["indices", "data_streams", "failures", "feature_states"] {
        assert!(entry[f].is_array(), "{f}: {entry}");
    }
    assert!(entry["shards"]["total"].is_number() && entry["include_global_state"].is_boolean());
    assert_eq!(entry["metadata"]["policy"], policy.as_str());

    // 7. Restore under a new name, and the restores list from `_recovery`.
    ok(
        k.send(
            "POST",
            &format!("/_snapshot/{repo}/{snapshot}/_restore"),
            Some(json!({"indices": "library", "rename_pattern": "library", "rename_replacement": format!("restored{major}"), "include_global_state": false, "partial": false, "ignore_unavailable": false, "include_aliases": true})),
            major,
        )
        .await,
        "restore",
    );
    let started = Instant::now();
    loop {
        let rec = ok(
            k.send("GET", "/_recovery?human=true", None, major).await,
            "recovery",
        );
        let shards = rec[format!("restored{major}")]["shards"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let snapshot_shards: Vec<&Value> =
            shards.iter().filter(|s| s["type"] == "SNAPSHOT").collect();
        for s in &snapshot_shards {
            for path in [
                &["source", "repository"][..],
                &["source", "snapshot"],
                &["source", "version"],
                &["target", "host"],
                &["target", "name"],
            ] {
                str_at(s, path);
            }
            for f in ["total_in_bytes", "recovered_in_bytes"] {
                assert!(s["index"]["size"][f].is_number(), "{s}");
            }
            for f in ["total", "recovered"] {
                assert!(s["index"]["files"][f].is_number(), "{s}");
            }
            assert!(
                s["index"]["size"]["percent"].is_string()
                    && s["index"]["files"]["percent"].is_string(),
                "{s}"
            );
            assert!(
                s["id"].is_number() && s["primary"].is_boolean() && s["stage"].is_string(),
                "{s}"
            );
        }
        if !snapshot_shards.is_empty()
            && snapshot_shards
                .iter()
                .all(|s| s["stop_time_in_millis"].is_number())
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{rec}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 8. The default repository (Kibana 9.5).
    ok(
        k.send(
            "PUT",
            "/_cluster/settings",
            Some(json!({"persistent": {"repositories": {"default_repository": repo}}})),
            major,
        )
        .await,
        "set default repository",
    );
    let d = ok(
        k.send(
            "GET",
            "/_cluster/settings?filter_path=persistent.repositories.default_repository",
            None,
            major,
        )
        .await,
        "default repository",
    );
    assert_eq!(
        d["persistent"]["repositories"]["default_repository"],
        repo.as_str()
    );

    // 9. Clean-up as the app does it.
    ok(
        k.send("DELETE", &format!("/_slm/policy/{policy}"), None, major)
            .await,
        "delete policy",
    );
    ok(
        k.send(
            "DELETE",
            &format!("/_snapshot/{repo}/{snapshot}"),
            None,
            major,
        )
        .await,
        "delete snapshot",
    );
    ok(
        k.send("DELETE", &format!("/_snapshot/{repo}"), None, major)
            .await,
        "delete repository",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kibana_8_and_9_attach_and_run_their_snapshot_and_restore_calls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("library", 1).await;
    s.bulk("library", &docs("b", 30)).await;
    replay(&s, 9).await;
    replay(&s, 8).await;
    s.stop().await;
}
