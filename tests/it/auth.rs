//! Security on by default: every route of the OpenAPI document refuses an
//! anonymous caller and a wrong password (401) and a user without the
//! route's privilege (403), and admits one holding it; API keys expire, are
//! invalidated and never exceed their owner; replicas share users and keys;
//! the password is printed once and can be reset; secrets never reach a
//! log, an audit line or a response.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snapvault::security::actions::{need, Need};
use snapvault::security::privileges::{cluster_granting, index_granting};

use super::harness::{basic, Api, Proc, Server, TEST_PASSWORD};

/// A concrete path for a route template.
fn concrete(template: &str) -> String {
    template
        .replace("{repository}", "r")
        .replace("{target_snapshot}", "t")
        .replace("{snapshot}", "s")
        .replace("{index}", "idx")
        .replace("{id}", "1")
        .replace("{username}", "someone")
        .replace("{name}", "some-role")
}

/// Every (method, template) of the served OpenAPI document.
async fn routes(api: &Api) -> Vec<(String, String)> {
    let doc = api.ok("GET", "/_openapi.json", None).await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "head"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

async fn add_user(api: &Api, name: &str, role: Option<Value>) {
    let roles = match role {
        Some(descriptor) => {
            let r = api
                .call(
                    "PUT",
                    &format!("/_security/role/{name}-role"),
                    Some(descriptor),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            vec![format!("{name}-role")]
        }
        None => vec![],
    };
    let r = api
        .call(
            "PUT",
            &format!("/_security/user/{name}"),
            Some(json!({"password": format!("{name}-password"), "roles": roles})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn as_user(api: &Api, name: &str) -> Api {
    api.as_caller(Some(&basic(name, &format!("{name}-password"))))
}

/// The body a route is called with: `{}` where one is taken.
fn body_for(method: &str) -> Option<Value> {
    matches!(method, "PUT" | "POST").then(|| json!({}))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_anonymous_wrong_and_unprivileged_callers_and_admits_holders() {
    let dir = tempfile::tempdir().unwrap();
    // Many wrong passwords in a row from one address: no slowing down here.
    let s = Server::start_with(
        dir.path(),
        Some("[security]\nfree_failed_attempts = 100000\n"),
    )
    .await;
    let routes = routes(&s).await;
    assert!(routes.len() > 60, "{routes:?}");
    let missing: Vec<_> = routes
        .iter()
        .filter(|(m, p)| need(m, p).is_none() && !(m == "HEAD" && need("GET", p).is_some()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a privilege entry: {missing:?}"
    );

    add_user(&s, "nobody", None).await;
    let anonymous = s.as_caller(None);
    let wrong = s.as_caller(Some(&basic("elastic", "not-the-password")));
    let nobody = as_user(&s, "nobody");
    let mut holders = std::collections::BTreeMap::<String, Api>::new();
    for (method, template) in &routes {
        let path = concrete(template);
        let want = need(method, template)
            .or_else(|| need("GET", template))
            .unwrap();
        let what = format!("{method} {template}");
        // 1. Anonymous: 401, but for a load balancer's probes.
        let r = anonymous.call(method, &path, body_for(method)).await;
        if want == Need::Open {
            assert!(
                r.status < 400 || r.status == 503,
                "{what} anonymous: {}",
                r.status
            );
        } else {
            assert_eq!(r.status, 401, "{what} anonymous: {}", r.text);
            if method != "HEAD" {
                assert_eq!(r.error_type(), "security_exception", "{what}");
            }
        }
        // 2. A wrong password: always 401.
        let r = wrong.call(method, &path, body_for(method)).await;
        assert_eq!(r.status, 401, "{what} wrong password: {}", r.text);
        // 3. A user without privileges: 403 where a privilege is needed.
        let r = nobody.call(method, &path, body_for(method)).await;
        match want {
            Need::Cluster(action) | Need::Index(action) => {
                assert_eq!(r.status, 403, "{what} without privilege: {}", r.text);
                if method != "HEAD" {
                    assert!(
                        r.reason().contains(&format!(
                            "action [{action}] is unauthorized for user [nobody]"
                        )),
                        "{what}: {}",
                        r.text
                    );
                }
            }
            _ => assert!(
                r.status != 401 && r.status != 403
                    || template.starts_with("/_security/user/{username}/_password"),
                "{what} as an authenticated user: {}",
                r.text
            ),
        }
        // 4. A user holding the narrowest privilege that grants it: never
        //    refused (the route may still answer 404 or 400 for the
        //    made-up names).
        let (key, role) = match want {
            Need::Cluster(action) => {
                let p = cluster_granting(action)[0];
                (format!("c-{p}"), json!({"cluster": [p]}))
            }
            Need::Index(action) => {
                let p = index_granting(action)[0];
                (
                    format!("i-{p}"),
                    json!({"indices": [{"names": ["idx"], "privileges": [p]}]}),
                )
            }
            _ => continue,
        };
        let user = key.replace('_', "-");
        if !holders.contains_key(&key) {
            add_user(&s, &user, Some(role)).await;
            holders.insert(key.clone(), as_user(&s, &user));
        }
        let r = holders[&key].call(method, &path, body_for(method)).await;
        assert!(
            r.status != 401 && r.status != 403,
            "{what} as {user}: {} {}",
            r.status,
            r.text
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_in_roles_and_index_patterns_grant_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("r", "r").await;
    for (name, role) in [("snap", "snapshot_user"), ("view", "viewer")] {
        s.ok(
            "PUT",
            &format!("/_security/user/{name}"),
            Some(json!({"password": format!("{name}-password"), "roles": [role]})),
        )
        .await;
    }
    let snap = as_user(&s, "snap");
    let view = as_user(&s, "view");
    let r = snap
        .call(
            "PUT",
            "/_snapshot/r/one?wait_for_completion=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        snap.call("DELETE", "/_snapshot/r/one", None).await.status,
        403
    );
    assert_eq!(
        view.call("GET", "/_snapshot/r/_all", None).await.status,
        200
    );
    assert_eq!(
        view.call("PUT", "/_snapshot/r/two", Some(json!({})))
            .await
            .status,
        403
    );
    // manage does not rotate keys or pause: those are their own privileges.
    s.ok(
        "PUT",
        "/_security/role/ops",
        Some(json!({"cluster": ["manage"]})),
    )
    .await;
    s.ok(
        "PUT",
        "/_security/user/ops",
        Some(json!({"password": "ops-password", "roles": ["ops"]})),
    )
    .await;
    let ops = as_user(&s, "ops");
    assert_eq!(
        ops.call("POST", "/_snapshot/r/_cleanup", None).await.status,
        200
    );
    let r = ops
        .call("POST", "/_snapshot/r/_pause", Some(json!({"reason": "x"})))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.reason().contains("[manage_pause,all]"), "{}", r.text);
    let r = ops
        .call(
            "POST",
            "/_snapshot/r/_rotate_key",
            Some(json!({"key_id": "default"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(ops.call("GET", "/_security/user", None).await.status, 403);
    // Index patterns, and bulk items judged one by one.
    s.ok(
        "PUT",
        "/_security/role/logs-writer",
        Some(json!({"indices": [{"names": ["logs-*"], "privileges": ["write", "create_index"]}]})),
    )
    .await;
    s.ok(
        "PUT",
        "/_security/user/writer",
        Some(json!({"password": "writer-password", "roles": ["logs-writer"]})),
    )
    .await;
    let writer = as_user(&s, "writer");
    assert_eq!(
        writer
            .call("PUT", "/logs-1/_doc/a", Some(json!({"x": 1})))
            .await
            .status,
        201
    );
    assert_eq!(
        writer
            .call("PUT", "/metrics/_doc/a", Some(json!({"x": 1})))
            .await
            .status,
        403
    );
    let body = "{\"index\":{\"_index\":\"logs-2\",\"_id\":\"1\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"secret\",\"_id\":\"1\"}}\n{\"a\":1}\n";
    let r = writer
        .raw(
            "POST",
            "/_bulk",
            "application/x-ndjson",
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["errors"], true, "{}", r.text);
    assert_eq!(r.body["items"][0]["index"]["status"], 201, "{}", r.text);
    assert_eq!(r.body["items"][1]["index"]["status"], 403, "{}", r.text);
    assert_eq!(
        r.body["items"][1]["index"]["error"]["type"],
        "security_exception"
    );
    let r = writer
        .raw(
            "POST",
            "/logs-3/_bulk",
            "application/x-ndjson",
            body.replace("logs-2", "logs-3").into_bytes(),
        )
        .await;
    assert_eq!(
        r.body["items"][1]["index"]["status"], 403,
        "an explicit _index is judged too: {}",
        r.text
    );
    assert_eq!(
        s.call("HEAD", "/secret", None).await.status,
        404,
        "nothing was written to the refused index"
    );
    // run_as is not implemented: refused, never served as the caller.
    let r = s
        .client
        .get(format!("{}/_snapshot", s.base))
        .header("es-security-runas-user", "writer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 501);
    // A user changes their own password, not another's.
    let r = writer
        .call(
            "POST",
            "/_security/user/writer/_password",
            Some(json!({"password": "new-writer-password"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        writer
            .call("GET", "/_security/_authenticate", None)
            .await
            .status,
        401
    );
    let writer = s.as_caller(Some(&basic("writer", "new-writer-password")));
    let r = writer
        .call(
            "POST",
            "/_security/user/snap/_password",
            Some(json!({"password": "stolen-password"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_expire_are_invalidated_and_never_exceed_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("r", "r").await;
    s.ok(
        "PUT",
        "/_security/role/own-keys",
        Some(json!({"cluster": ["manage_own_api_key"]})),
    )
    .await;
    s.ok(
        "PUT",
        "/_security/user/backup",
        Some(json!({"password": "backup-password", "roles": ["snapshot_user", "own-keys"]})),
    )
    .await;
    s.ok(
        "PUT",
        "/_security/user/plain",
        Some(json!({"password": "plain-password", "roles": ["snapshot_user"]})),
    )
    .await;
    let r = as_user(&s, "plain")
        .call("POST", "/_security/api_key", Some(json!({"name": "mine"})))
        .await;
    assert_eq!(r.status, 403, "keys need manage_own_api_key: {}", r.text);
    let owner = as_user(&s, "backup");
    let key_api = |encoded: &str| s.as_caller(Some(&format!("ApiKey {encoded}")));
    // 1. A key asking for everything gets no more than its owner.
    let wide = owner
        .ok(
            "POST",
            "/_security/api_key",
            Some(json!({"name": "wide", "role_descriptors": {"all": {"cluster": ["all"]}}})),
        )
        .await;
    let wide_api = key_api(wide["encoded"].as_str().unwrap());
    let r = wide_api
        .call(
            "PUT",
            "/_snapshot/r/by-key?wait_for_completion=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        wide_api
            .call("DELETE", "/_snapshot/r/by-key", None)
            .await
            .status,
        403
    );
    // 2. A narrowed key of the superuser may read but not create.
    let narrow = s
        .ok("POST", "/_security/api_key", Some(json!({"name": "reader", "role_descriptors": {"r": {"cluster": ["monitor_snapshot"]}}})))
        .await;
    let narrow_api = key_api(narrow["encoded"].as_str().unwrap());
    assert_eq!(
        narrow_api
            .call("GET", "/_snapshot/r/_all", None)
            .await
            .status,
        200
    );
    let r = narrow_api
        .call("PUT", "/_snapshot/r/nope", Some(json!({})))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.reason().contains("API key id ["), "{}", r.text);
    // 3. Expiry.
    let short = s
        .ok(
            "POST",
            "/_security/api_key",
            Some(json!({"name": "short", "expiration": "1s"})),
        )
        .await;
    assert!(short["expiration"].as_i64().is_some(), "{short}");
    let short_api = key_api(short["encoded"].as_str().unwrap());
    assert_eq!(short_api.call("GET", "/_snapshot", None).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(short_api.call("GET", "/_snapshot", None).await.status, 401);
    // 4. Listing: the owner sees their own keys only, the superuser all.
    let own = owner.ok("GET", "/_security/api_key", None).await;
    let names: Vec<_> = own["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("wide")], "{own}");
    assert!(!own.to_string().contains("hash"), "{own}");
    let all = s.ok("GET", "/_security/api_key", None).await;
    assert_eq!(all["api_keys"].as_array().unwrap().len(), 3, "{all}");
    // 5. Invalidation, then a second invalidation names it as previous.
    let id = narrow["id"].as_str().unwrap();
    let r = s
        .ok("DELETE", "/_security/api_key", Some(json!({"ids": [id]})))
        .await;
    assert_eq!(r["invalidated_api_keys"], json!([id]), "{r}");
    assert_eq!(narrow_api.call("GET", "/_snapshot", None).await.status, 401);
    let r = s
        .ok("DELETE", "/_security/api_key", Some(json!({"ids": [id]})))
        .await;
    assert_eq!(r["previously_invalidated_api_keys"], json!([id]), "{r}");
    // 6. A key cannot be used to mint wider keys, nor a bad key id to sign in.
    let r = wide_api
        .call(
            "POST",
            "/_security/api_key",
            Some(json!({"name": "derived"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        key_api("bm90LWEta2V5")
            .call("GET", "/_snapshot", None)
            .await
            .status,
        401
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_users_and_keys_and_see_an_invalidation_within_a_heartbeat() {
    let root = tempfile::tempdir().unwrap();
    let config = format!(
        "heartbeat_secs = 1\nstate_dir = \"{}\"\n",
        root.path().join("state").display()
    );
    let a_dir = root.path().join("a");
    let b_dir = root.path().join("b");
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = Server::start_with(&a_dir, Some(&config)).await;
    let b = Server::start_with(&b_dir, Some(&config)).await;
    // A user made on a is known to b at its next request.
    a.ok(
        "PUT",
        "/_security/user/shared",
        Some(json!({"password": "shared-password", "roles": ["viewer"]})),
    )
    .await;
    let r = as_user(&b, "shared")
        .call("GET", "/_security/_authenticate", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // So is a key.
    let key = a
        .ok(
            "POST",
            "/_security/api_key",
            Some(json!({"name": "shared-key"})),
        )
        .await;
    let on_b = b.as_caller(Some(&format!(
        "ApiKey {}",
        key["encoded"].as_str().unwrap()
    )));
    assert_eq!(on_b.call("GET", "/_snapshot", None).await.status, 200);
    // An invalidation on a reaches b within a heartbeat or two.
    a.ok(
        "DELETE",
        "/_security/api_key",
        Some(json!({"ids": [key["id"]]})),
    )
    .await;
    let started = Instant::now();
    loop {
        let status = on_b.call("GET", "/_snapshot", None).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "b still accepts the invalidated key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn security_cannot_be_disabled_on_a_public_address_without_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("open.toml");
    std::fs::write(&config, "[security]\nenabled = false\n").unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "0.0.0.0:0"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = run(&[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure-allow-anonymous"), "{err}");
    // With the flag it starts, and says so in its log.
    let mut child = run(&["--insecure-allow-anonymous"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "it runs");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("SECURITY IS DISABLED"));
    // On loopback, disabled security answers anonymous callers.
    let s = Server::start_with(
        &dir.path().join("loopback"),
        Some("[security]\nenabled = false\n"),
    )
    .await;
    assert_eq!(
        s.as_caller(None)
            .call("GET", "/_snapshot", None)
            .await
            .status,
        200
    );
    s.stop().await;
}

/// Every file under `dir` (logs, audit log, state and data stores).
fn everything_under(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for (path, _) in super::harness::files_under(dir) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_password_is_printed_once_can_be_reset_and_no_secret_reaches_a_log() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let config = "heartbeat_secs = 1\n".to_string();
    // 1. No ELASTIC_PASSWORD: a random one, printed once on stdout.
    let p = Proc::spawn_with_env(
        &data,
        &config,
        &[("ELASTIC_PASSWORD", ""), ("RUST_LOG", "debug")],
    )
    .await;
    let line = p
        .printed
        .iter()
        .find(|l| l.contains("password ["))
        .expect("the password is printed");
    let password = line
        .split("password [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .to_string();
    assert!(password.len() >= 20, "{line}");
    let elastic = p.as_caller(Some(&basic("elastic", &password)));
    assert_eq!(
        elastic
            .call("GET", "/_security/_authenticate", None)
            .await
            .status,
        200
    );
    assert_eq!(
        p.call("GET", "/_security/_authenticate", None).await.status,
        401,
        "the test password is not it"
    );
    // Secrets pass through requests: a user's password, a key's secret,
    // wrong guesses.
    elastic
        .ok(
            "PUT",
            "/_security/user/u1",
            Some(json!({"password": "u1-secret-pw-9137", "roles": []})),
        )
        .await;
    let key = elastic
        .ok("POST", "/_security/api_key", Some(json!({"name": "k"})))
        .await;
    let key_secret = key["api_key"].as_str().unwrap().to_string();
    p.as_caller(Some(&basic("elastic", "guess-secret-4711")))
        .call("GET", "/", None)
        .await;
    p.as_caller(Some(&format!(
        "ApiKey {}",
        key["encoded"].as_str().unwrap()
    )))
    .call("GET", "/_snapshot", None)
    .await;
    // 2. A restart prints nothing: the password exists only as a hash.
    drop(p);
    let p = Proc::spawn_with_env(&data, &config, &[("ELASTIC_PASSWORD", "")]).await;
    assert!(
        !p.printed.iter().any(|l| l.contains("password [")),
        "{:?}",
        p.printed
    );
    let elastic = p.as_caller(Some(&basic("elastic", &password)));
    assert_eq!(
        elastic
            .call("GET", "/_security/_authenticate", None)
            .await
            .status,
        200
    );
    // 3. Reset while it runs; the running node takes it within a heartbeat.
    let reset = std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(data.with_extension("toml"))
        .args(["users", "reset-password", "elastic", "--from-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    reset
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"reset-secret-pw-2231\n")
        .unwrap();
    let out = reset.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = p.as_caller(Some(&basic("elastic", "reset-secret-pw-2231")));
    let started = Instant::now();
    while fresh
        .call("GET", "/_security/_authenticate", None)
        .await
        .status
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the reset password is not taken"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        elastic
            .call("GET", "/_security/_authenticate", None)
            .await
            .status,
        401
    );
    drop(p);
    // 4. No secret anywhere: logs, audit log, stores, keystore aside.
    let mut all = everything_under(root.path());
    all.push_str(&String::from_utf8_lossy(&out.stdout));
    assert!(
        all.contains("authentication_failed"),
        "the audit log has the failures"
    );
    for secret in [
        password.as_str(),
        "u1-secret-pw-9137",
        &key_secret,
        "guess-secret-4711",
        "reset-secret-pw-2231",
        TEST_PASSWORD,
    ] {
        assert!(
            !all.contains(secret),
            "a secret was written to disk or printed: {secret}"
        );
    }
}
