//! Master keys held by key management services, against the real thing:
//! OpenBao's dev server with the transit engine (`SNAPVAULT_TEST_VAULT_*`)
//! and moto's AWS KMS API (on `SNAPVAULT_TEST_S3_ENDPOINT`), both started
//! by `tests/emulators.sh`. A missing emulator fails these tests.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{docs, keystore_with, remove_key, Proc, Server};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with `bash tests/run.sh`, which starts OpenBao and moto")
    })
}

fn vault_addr() -> String {
    env("SNAPVAULT_TEST_VAULT_ADDR")
}

fn vault_root() -> String {
    env("SNAPVAULT_TEST_VAULT_TOKEN")
}

/// A request to OpenBao as root (the operator, not snapvault).
async fn vault(method: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/v1/{path}", vault_addr()),
        )
        .header("x-vault-token", vault_root())
        .json(&body)
        .send()
        .await
        .expect("OpenBao answers");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// A fresh transit key; returns its name.
async fn transit_key() -> String {
    let name = format!("snap-{}", uuid::Uuid::new_v4().simple());
    vault("POST", &format!("transit/keys/{name}"), json!({})).await;
    name
}

/// A fresh key in moto's KMS; returns its id.
async fn aws_key() -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/", env("SNAPVAULT_TEST_S3_ENDPOINT")))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "TrentService.CreateKey")
        // moto routes by the service named in the credential scope.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body("{}")
        .send()
        .await
        .expect("moto answers");
    let v: Value = r.json().await.unwrap();
    v["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap_or_else(|| panic!("CreateKey: {v}"))
        .to_string()
}

fn vault_table(name: &str, address: &str, key: &str) -> String {
    format!("[master_keys.{name}]\nservice = \"vault\"\naddress = \"{address}\"\nkey = \"{key}\"\n")
}

fn aws_table(name: &str, key: &str) -> String {
    format!(
        "[master_keys.{name}]\nservice = \"aws-kms\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nkey = \"{key}\"\n",
        env("SNAPVAULT_TEST_S3_ENDPOINT")
    )
}

/// A data directory whose keystore has `default` and these secrets.
fn data_dir(root: &Path, name: &str, secrets: &[(&str, &str)]) -> std::path::PathBuf {
    let data = root.join(name);
    std::fs::create_dir_all(&data).unwrap();
    keystore_with(secrets)
        .save(&data.join("keystore.json"))
        .unwrap();
    data
}

async fn rotate(s: &Server, repo: &str, key: &str) -> Value {
    let r = s
        .call(
            "POST",
            &format!("/_snapshot/{repo}/_rotate_key?wait_for_completion=true"),
            Some(json!({"key_id": key})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active_key"], key, "{}", r.text);
    assert_eq!(r.body["rotation"]["phase"], "completed", "{}", r.text);
    r.body
}

/// The keyring's active entry, as this node cached it.
async fn active(s: &Server, repo: &str) -> snapvault::repository::model::KeyRef {
    let open = s.node.repositories().open(repo).await.unwrap();
    open.repo.keyring().await.unwrap().1.active
}

/// Fifty more documents, then snapshot `s<n>`; returns its name and the
/// documents it holds.
async fn snapshot(s: &Server, n: usize) -> (String, std::collections::BTreeMap<String, Value>) {
    let name = format!("s{n}");
    s.bulk("a", &docs(&format!("d{n}"), 50)).await;
    s.create_snapshot("repo", &name, "a").await;
    (name, s.all_docs("a").await)
}

async fn health(s: &Server) -> Value {
    s.call("GET", "/_health", None).await.body
}

/// A node whose config names a fresh transit key (`vault`) and a fresh key
/// of moto's KMS (`aws`), credentials for both in its keystore, with index
/// `a` and `fs` repository `repo`; returns it, its data directory, the
/// transit key's name and the config (to start it again).
async fn vault_and_aws_node(root: &Path) -> (Server, std::path::PathBuf, String, String) {
    let (transit, aws) = (transit_key().await, aws_key().await);
    let config = format!(
        "{}{}",
        vault_table("vault", &vault_addr(), &transit),
        aws_table("aws", &aws)
    );
    let data = data_dir(
        root,
        "node",
        &[
            ("kms.vault.token", &vault_root()),
            ("kms.aws.access_key", "test"),
            ("kms.aws.secret_key", "test"),
        ],
    );
    let s = Server::start_with(&data, Some(&config)).await;
    s.create_index("a", 2).await;
    s.put_fs_repository("repo", "repo").await;
    (s, data, transit, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_from_keystore_to_vault_to_a_new_vault_version_to_aws_kms_then_the_keystore_key_goes_and_everything_restores(
) {
    let root = tempfile::tempdir().unwrap();
    let (s, data, transit, config) = vault_and_aws_node(root.path()).await;
    let mut expected = Vec::new();
    expected.push(snapshot(&s, 1).await);

    // keystore -> Vault transit.
    rotate(&s, "repo", "vault").await;
    let k = active(&s, "repo").await;
    let w = k.kms.clone().expect("a KMS entry");
    assert_eq!(
        (w.service.as_str(), w.key.as_str(), w.version),
        ("vault", transit.as_str(), Some(1))
    );
    assert!(w.wrapped.starts_with("vault:v1:"), "{}", w.wrapped);
    let keyring_text: String = super::harness::files_under(&s.repo_dir("repo").join("keys"))
        .iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("keyring")
        })
        .map(|(p, _)| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        !keyring_text.contains(&vault_root()),
        "no token in the keyring"
    );
    expected.push(snapshot(&s, 2).await);

    // A new version of the same transit key: the same key id rotates again.
    vault("POST", &format!("transit/keys/{transit}/rotate"), json!({})).await;
    let again = rotate(&s, "repo", "vault").await;
    assert_eq!(again["changed"], true, "{again}");
    let k2 = active(&s, "repo").await;
    assert_eq!(k2.kms.as_ref().unwrap().version, Some(2));
    assert_ne!(k2.fingerprint, k.fingerprint, "a fresh KEK");
    let same = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key?wait_for_completion=true",
            Some(json!({"key_id": "vault"})),
        )
        .await;
    assert_eq!(
        same.body["changed"], false,
        "same key, same version: {}",
        same.text
    );
    // Version 1 can no longer decrypt anything: nothing needs it.
    vault(
        "POST",
        &format!("transit/keys/{transit}/config"),
        json!({"min_decryption_version": 2}),
    )
    .await;
    expected.push(snapshot(&s, 3).await);

    // Vault -> AWS KMS (moto).
    rotate(&s, "repo", "aws").await;
    let k3 = active(&s, "repo").await;
    assert_eq!(k3.kms.as_ref().unwrap().service, "aws-kms");
    expected.push(snapshot(&s, 4).await);
    s.stop().await;

    // The keystore's master key is gone; the restarted node reads every
    // snapshot through AWS KMS alone.
    remove_key(&data, "default");
    let s = Server::start_with(&data, Some(&config)).await;
    let state = s.ok("GET", "/_snapshot/repo/_rotate_key", None).await;
    assert_eq!(state["needed_keys"], json!(["aws"]), "{state}");
    for (name, docs) in &expected {
        s.restore(
            "repo",
            name,
            json!({"rename_pattern": "(.+)", "rename_replacement": format!("r-{name}-$1")}),
        )
        .await;
        assert_eq!(&s.all_docs(&format!("r-{name}-a")).await, docs, "{name}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_credentials_sign_in_and_a_repository_can_be_created_under_a_vault_key() {
    let root = tempfile::tempdir().unwrap();
    let transit = transit_key().await;
    let (role_id, secret_id) = (
        env("SNAPVAULT_TEST_VAULT_ROLE_ID"),
        env("SNAPVAULT_TEST_VAULT_SECRET_ID"),
    );
    let data = data_dir(
        root.path(),
        "node",
        &[
            ("kms.bao.role_id", &role_id),
            ("kms.bao.secret_id", &secret_id),
        ],
    );
    let config = vault_table("bao", &vault_addr(), &transit);
    let s = Server::start_with(&data, Some(&config)).await;
    s.create_index("a", 1).await;
    s.bulk("a", &docs("a", 30)).await;
    let r = s
        .call(
            "PUT",
            "/_snapshot/repo",
            Some(json!({"type": "fs", "settings": {"location": "repo", "key_id": "bao"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(active(&s, "repo").await.kms.unwrap().key, transit);
    s.create_snapshot("repo", "s1", "a").await;
    let expected = s.all_docs("a").await;
    s.stop().await;
    remove_key(&data, "default");
    let s = Server::start_with(&data, Some(&config)).await;
    s.ok("DELETE", "/a", None).await;
    s.restore("repo", "s1", json!({})).await;
    assert_eq!(s.all_docs("a").await, expected);
    // The probe signed in too.
    let h = wait_health(&s, |h| h["master_keys"]["bao"]["reachable"] == true).await;
    assert_eq!(h["status"], "green", "{h}");
    s.stop().await;
}

/// A TCP forwarder in front of OpenBao that can be switched off (every
/// connection cut, new ones closed at once) and on again.
struct Switch {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Switch {
    async fn to(target: String) -> Switch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                conns2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Switch { port, up, conns }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn wait_health(s: &Server, pred: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let h = health(s).await;
        if pred(&h) {
            return h;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_kms_gives_a_clear_error_cached_keys_keep_reads_working_and_it_recovers() {
    let root = tempfile::tempdir().unwrap();
    let (first, second) = (transit_key().await, transit_key().await);
    let switch = Switch::to(vault_addr().trim_start_matches("http://").to_string()).await;
    let via = format!("http://127.0.0.1:{}", switch.port);
    let token = vault_root();
    let data = data_dir(
        root.path(),
        "node",
        &[("kms.one.token", &token), ("kms.two.token", &token)],
    );
    let config = format!(
        "heartbeat_secs = 1\nkms_retries = 2\nkms_timeout_secs = 2\nkms_cache_secs = 600\n{}{}",
        vault_table("one", &via, &first),
        vault_table("two", &via, &second)
    );
    let s = Server::start_with(&data, Some(&config)).await;
    s.create_index("a", 1).await;
    s.bulk("a", &docs("a", 40)).await;
    s.put_fs_repository("repo", "repo").await;
    rotate(&s, "repo", "one").await;
    s.create_snapshot("repo", "s1", "a").await;
    let expected = s.all_docs("a").await;
    wait_health(&s, |h| {
        h["status"] == "green" && h["master_keys"]["one"]["reachable"] == true
    })
    .await;

    switch.down();
    // Reads go on with the cached key-encryption key, even from a
    // repository handle opened anew (a reload drops the open ones and
    // their data keys).
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    s.ok("DELETE", "/a", None).await;
    s.restore("repo", "s1", json!({})).await;
    assert_eq!(s.all_docs("a").await, expected);
    // What needs the service fails clearly: the key, the service, no token.
    let started = Instant::now();
    let r = s
        .call(
            "POST",
            "/_snapshot/repo/_rotate_key?wait_for_completion=true",
            Some(json!({"key_id": "two"})),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by retries and timeouts"
    );
    assert_eq!(r.error_type(), "repository_exception", "{}", r.text);
    let reason = r.reason();
    assert!(reason.contains("master key [two]"), "{reason}");
    assert!(reason.contains(&format!("vault at [{via}]")), "{reason}");
    assert!(
        reason.contains("could not be reached (3 attempts)"),
        "{reason}"
    );
    assert!(!r.text.contains(&token), "{}", r.text);
    let h = wait_health(&s, |h| h["master_keys"]["two"]["reachable"] == false).await;
    assert_eq!(h["status"], "yellow", "{h}");
    assert!(
        h["reason"].as_str().unwrap().contains("master key ["),
        "{h}"
    );
    assert!(!h.to_string().contains(&token));
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap_or_default();
    assert!(!log.contains(&token));

    // Back: the rotation goes through and health is green again.
    switch.up();
    wait_health(&s, |h| h["status"] == "green").await;
    rotate(&s, "repo", "two").await;
    s.create_snapshot("repo", "s2", "a").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_cannot_reach_the_new_kms_key_blocks_the_rotation() {
    let root = tempfile::tempdir().unwrap();
    let transit = transit_key().await;
    let repos = root.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let shared = format!(
        "heartbeat_secs = 1\nstate_dir = \"{}\"\ndata_store = \"{}\"\npath_repo = [\"{}\"]\n",
        root.path().join("state").display(),
        root.path().join("data").display(),
        repos.display()
    );
    let good = format!("{shared}{}", vault_table("vault", &vault_addr(), &transit));
    // The second replica's token is not valid: it cannot use the key.
    let ks = keystore_with(&[("kms.vault.token", &vault_root())]);
    let (d0, d1) = (root.path().join("r0"), root.path().join("r1"));
    for d in [&d0, &d1] {
        std::fs::create_dir_all(d).unwrap();
    }
    ks.save(&d0.join("keystore.json")).unwrap();
    let mut bad = ks.clone();
    bad.set_setting("kms.vault.token", "not-a-token".into());
    bad.save(&d1.join("keystore.json")).unwrap();
    // The most verbose log must not hold a token either.
    let trace = [("RUST_LOG", "trace")];
    let p0 = Proc::spawn_with_env(&d0, &good, &trace).await;
    let p1 = Proc::spawn_with_env(&d1, &good, &trace).await;
    p0.put_fs_repository("repo", "repo").await;
    let started = Instant::now();
    let r = loop {
        let v = p0.ok("GET", "/_nodes", None).await;
        if v["_nodes"]["total"] == 2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            break p0
                .call(
                    "POST",
                    "/_snapshot/repo/_rotate_key",
                    Some(json!({"key_id": "vault"})),
                )
                .await;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.reason()
            .contains("cannot use master key [vault] held by vault"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("not-a-token"));
    let h = p1.ok("GET", "/_health", None).await;
    assert_eq!(h["master_keys"]["vault"]["reachable"], false, "{h}");
    assert!(
        h["master_keys"]["vault"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 403"),
        "{h}"
    );
    assert!(!h.to_string().contains("not-a-token"));
    // The replica fixed and reloaded: the rotation may start.
    ks.save(&d1.join("keystore.json")).unwrap();
    p1.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let started = Instant::now();
    loop {
        let r = p0
            .call(
                "POST",
                "/_snapshot/repo/_rotate_key",
                Some(json!({"key_id": "vault"})),
            )
            .await;
        if r.status == 202 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop((p0, p1));
    let logs = std::fs::read_to_string(d0.with_extension("log")).unwrap()
        + &std::fs::read_to_string(d1.with_extension("log")).unwrap();
    assert!(logs.contains("TRACE"), "a trace log");
    assert!(!logs.contains(&vault_root()), "the token is in a log");
    assert!(!logs.contains("not-a-token"), "the token is in a log");
}

/// Runs the binary with `config` over a fresh data directory whose keystore
/// holds `secrets`; it must refuse to start. Returns what it said.
fn refused_start(root: &Path, name: &str, config: &str, secrets: &[(&str, &str)]) -> String {
    let data = data_dir(root, name, secrets);
    let file = data.with_extension("toml");
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&file)
        .env("ELASTIC_PASSWORD", "changeme-123")
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_kms_configuration_refuses_to_start_with_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let said = refused_start(
        root.path(),
        "unknown",
        "[master_keys.x]\nservice = \"gcp-kms\"\nkey = \"k\"\n",
        &[],
    );
    assert!(
        said.contains("[master_keys.x]: unknown service [gcp-kms]"),
        "{said}"
    );
    let said = refused_start(
        root.path(),
        "nocreds",
        &vault_table("prod", "http://127.0.0.1:1", "k"),
        &[],
    );
    assert!(
        said.contains("master key [prod] is held by vault at [http://127.0.0.1:1]"),
        "{said}"
    );
    assert!(
        said.contains("set kms.prod.token, or kms.prod.role_id and kms.prod.secret_id"),
        "{said}"
    );
    let said = refused_start(
        root.path(),
        "half-approle",
        &vault_table("prod", "http://127.0.0.1:1", "k"),
        &[("kms.prod.role_id", "r-1")],
    );
    assert!(said.contains("kms.prod.secret_id"), "{said}");
    let said = refused_start(
        root.path(),
        "twice",
        &vault_table("default", "http://127.0.0.1:1", "k"),
        &[("kms.default.token", "SECRET-TOKEN-1")],
    );
    assert!(said.contains("also holds a master key [default]"), "{said}");
    assert!(!said.contains("SECRET-TOKEN-1"), "{said}");
}

/// `mode: reencrypt` to KMS-held keys: keystore → Vault → AWS KMS, each
/// time every object sealed again under fresh data keys (read from the
/// headers), then the keystore key removed and every snapshot restores.
#[tokio::test(flavor = "multi_thread")]
async fn reencryption_to_vault_then_to_aws_kms_leaves_nothing_under_an_old_data_key() {
    use super::reencrypt::header_keys;
    use std::collections::BTreeSet;
    let root = tempfile::tempdir().unwrap();
    let (s, data, _, _) = vault_and_aws_node(root.path()).await;
    let mut expected = vec![snapshot(&s, 1).await];
    for key in ["vault", "aws"] {
        let before: BTreeSet<String> = header_keys(&s.repo_dir("repo")).into_values().collect();
        let r = s
            .call(
                "POST",
                "/_snapshot/repo/_rotate_key?wait_for_completion=true",
                Some(json!({"key_id": key, "mode": "reencrypt"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["active_key"], key, "{}", r.text);
        assert_eq!(r.body["rotation"]["phase"], "completed", "{}", r.text);
        assert_eq!(r.body["rotation"]["mode"], "reencrypt", "{}", r.text);
        for (path, k) in header_keys(&s.repo_dir("repo")) {
            assert!(!before.contains(&k), "{path} still under {k} after {key}");
        }
        assert_eq!(
            active(&s, "repo").await.kms.unwrap().service,
            if key == "vault" { "vault" } else { "aws-kms" }
        );
        expected.push(snapshot(&s, expected.len() + 1).await);
    }
    remove_key(&data, "default");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    for (name, docs) in expected {
        s.ok("DELETE", "/a", None).await;
        s.restore("repo", &name, json!({})).await;
        assert_eq!(s.all_docs("a").await, docs, "{name}");
    }
    s.stop().await;
}
