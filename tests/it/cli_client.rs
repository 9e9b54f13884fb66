//! The command-line client (`snapvault snapshot|repo|rotate-key`): the
//! real binary against a real server over loopback HTTP(S), signed in as
//! `elastic` through the environment, as an operator's shell would. Every
//! run's output is searched for the password.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{add_key, docs, Server, TEST_PASSWORD};

/// What one run of the binary left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns standard output.
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// The binary with `args`, against `url` as `elastic` (environment
/// only), with `extra` environment variables and `stdin`.
fn command(url: &str, args: &[&str], extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_snapvault"));
    cmd.args(args)
        .env_remove("SNAPVAULT_API_KEY")
        .env_remove("SNAPVAULT_CA_CERT")
        .env("SNAPVAULT_URL", url)
        .env("SNAPVAULT_USER", "elastic")
        .env("SNAPVAULT_PASSWORD", TEST_PASSWORD)
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs to the end; no output may hold the password (or `secret`).
async fn finish(cmd: &mut tokio::process::Command, secrets: &[&str]) -> Run {
    let out = cmd.output().await.unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in secrets.iter().chain(&[TEST_PASSWORD]) {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret was printed: {}\n{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

async fn cli(s: &Server, args: &[&str]) -> Run {
    finish(&mut command(&s.base, args, &[]), &[]).await
}

/// Polls `check` every 100 ms for at most 60 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_registers_snapshots_restores_rotates_pauses_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let s = Server::start(&data).await;
    s.create_index("books", 2).await;
    s.bulk("books", &docs("b", 120)).await;

    // 1. A repository, listed for people and for scripts.
    let out = cli(
        &s,
        &[
            "repo",
            "create",
            "vault",
            "--type",
            "fs",
            "--setting",
            "location=vault",
            "--setting",
            "compress=true",
        ],
    )
    .await;
    assert!(
        out.ok().contains("registered repository [vault] (fs)"),
        "{}",
        out.stdout
    );
    let listed = cli(&s, &["repo", "list"]).await;
    let line = listed
        .ok()
        .lines()
        .find(|l| l.starts_with("vault"))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(
        line.contains(" fs ") && line.contains("location=vault"),
        "{line}"
    );
    let listed = cli(&s, &["repo", "list", "--json"]).await.json();
    assert_eq!(listed["vault"]["type"], "fs", "{listed}");
    assert_eq!(listed["vault"]["settings"]["location"], "vault", "{listed}");

    // 2. A snapshot, waited for (no terminal here: a final line, no bar).
    let out = cli(
        &s,
        &[
            "snapshot",
            "create",
            "vault",
            "snap-1",
            "--indices",
            "books",
        ],
    )
    .await;
    assert!(
        out.ok().contains("snapshot [vault:snap-1] SUCCESS"),
        "{}",
        out.stdout
    );
    assert!(out.ok().contains("1 indices, 2/2 shards"), "{}", out.stdout);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "no terminal, no bar drawing: {:?}",
        out.stderr
    );
    let snap = s.ok("GET", "/_snapshot/vault/snap-1", None).await;
    assert_eq!(snap["snapshots"][0]["state"], "SUCCESS", "{snap}");

    let out = cli(&s, &["snapshot", "list", "vault"]).await;
    let header = out.ok().lines().next().unwrap().to_string();
    assert!(
        header.starts_with("snapshot") && header.contains("state"),
        "{header}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("snap-1") && l.contains("SUCCESS") && l.contains("2/2")),
        "{}",
        out.stdout
    );
    let listed = cli(&s, &["snapshot", "list", "vault", "--json"])
        .await
        .json();
    assert_eq!(listed["snapshots"][0]["snapshot"], "snap-1", "{listed}");
    assert_eq!(
        listed["snapshots"][0]["indices"],
        json!(["books"]),
        "{listed}"
    );

    let out = cli(&s, &["snapshot", "status", "vault", "snap-1"]).await;
    assert!(
        out.ok().contains("snapshot [vault:snap-1] SUCCESS"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("shards: 2 done, 0 failed, 2 total"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("books") && l.contains("2/2")),
        "{}",
        out.stdout
    );

    // 3. Restored next to the original, counted over HTTP.
    let out = cli(
        &s,
        &[
            "snapshot",
            "restore",
            "vault",
            "snap-1",
            "--indices",
            "books",
            "--rename-pattern",
            "(.+)",
            "--rename-replacement",
            "restored_$1",
        ],
    )
    .await;
    assert!(
        out.ok().contains("restored snapshot [vault:snap-1]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("restored_books (2/2 shards)"),
        "{}",
        out.stdout
    );
    let count = s.ok("GET", "/restored_books/_count", None).await;
    assert_eq!(count["count"], 120, "{count}");

    // 4. A key rotation, waited for.
    add_key(&data, "k2");
    s.ok("POST", "/_nodes/reload_secure_settings", None).await;
    let out = cli(&s, &["rotate-key", "vault", "--key", "k2"]).await;
    assert!(out.ok().contains("-> [k2] completed"), "{}", out.stdout);
    assert!(out.stdout.contains("needed keys: k2"), "{}", out.stdout);
    let keys = s.ok("GET", "/_snapshot/vault/_rotate_key", None).await;
    assert_eq!(keys["active_key"], "k2", "{keys}");
    assert_eq!(keys["needed_keys"], json!(["k2"]), "{keys}");
    let out = cli(&s, &["rotate-key", "status", "vault"]).await;
    assert!(
        out.ok().contains("active key [k2], needed keys [k2]"),
        "{}",
        out.stdout
    );
    let state = cli(&s, &["rotate-key", "status", "vault", "--json"])
        .await
        .json();
    assert_eq!(state["rotation"]["phase"], "completed", "{state}");

    // 5. Paused: a new snapshot is refused with the reason, exit 1.
    let out = cli(
        &s,
        &["repo", "pause", "vault", "--reason", "storage migration"],
    )
    .await;
    assert!(
        out.ok().contains("paused repository [vault] since"),
        "{}",
        out.stdout
    );
    let refused = cli(&s, &["snapshot", "create", "vault", "snap-2"]).await;
    assert_eq!(
        refused.code,
        Some(1),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stderr.contains("repository_paused_exception: "),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("storage migration"),
        "{}",
        refused.stderr
    );
    let out = cli(&s, &["repo", "get", "vault"]).await;
    assert!(
        out.ok().contains("(reason: storage migration)"),
        "{}",
        out.stdout
    );
    let out = cli(&s, &["repo", "resume", "vault"]).await;
    assert!(
        out.ok().contains("resumed repository [vault]"),
        "{}",
        out.stdout
    );
    let out = cli(
        &s,
        &[
            "snapshot",
            "create",
            "vault",
            "snap-2",
            "--indices",
            "books",
        ],
    )
    .await;
    assert!(
        out.ok().contains("snapshot [vault:snap-2] SUCCESS"),
        "{}",
        out.stdout
    );

    // 6. Deleted, verified, cleaned up.
    let out = cli(&s, &["snapshot", "delete", "vault", "snap-1"]).await;
    assert!(
        out.ok().contains("deleted snapshot [vault:snap-1]"),
        "{}",
        out.stdout
    );
    let gone = s.call("GET", "/_snapshot/vault/snap-1", None).await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let out = cli(&s, &["repo", "verify", "vault"]).await;
    assert!(
        out.ok()
            .contains("repository [vault] verified by 1 node(s)"),
        "{}",
        out.stdout
    );
    let out = cli(&s, &["repo", "cleanup", "vault"]).await;
    assert!(
        out.ok().contains("cleaned up repository [vault]"),
        "{}",
        out.stdout
    );
    let missing = cli(&s, &["snapshot", "status", "vault", "snap-1"]).await;
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("snapshot_missing_exception: "),
        "{}",
        missing.stderr
    );
    let out = cli(&s, &["repo", "delete", "vault"]).await;
    assert!(
        out.ok().contains("unregistered repository [vault]"),
        "{}",
        out.stdout
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_credentials_are_refused_and_no_secret_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let wrong = "not-the-password-81c3";
    let run = finish(
        &mut command(&s.base, &["repo", "list"], &[("SNAPVAULT_PASSWORD", wrong)]),
        &[wrong],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.starts_with("snapvault: security_exception: "),
        "{}",
        run.stderr
    );

    // The password on standard input instead of the environment.
    let mut cmd = command(&s.base, &["repo", "list", "--password-stdin"], &[]);
    cmd.env_remove("SNAPVAULT_PASSWORD").stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{TEST_PASSWORD}\n").as_bytes())
            .await
            .unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "no repositories");
    assert!(!stdout.contains(TEST_PASSWORD));

    // No password and no terminal to ask on: a usage error, before any request.
    let mut cmd = command(&s.base, &["repo", "list"], &[]);
    cmd.env_remove("SNAPVAULT_PASSWORD");
    let run = finish(&mut cmd, &[]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("no password for [elastic]"),
        "{}",
        run.stderr
    );

    // Credentials inside the URL are used and never echoed, even in errors.
    let base = s
        .base
        .replace("http://", &format!("http://elastic:{wrong}@"));
    let mut cmd = command(&base, &["repo", "list"], &[]);
    cmd.env_remove("SNAPVAULT_USER")
        .env_remove("SNAPVAULT_PASSWORD");
    let run = finish(&mut cmd, &[wrong]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("security_exception"), "{}", run.stderr);

    // An API key from the environment.
    let key = s
        .ok("POST", "/_security/api_key", Some(json!({"name": "cli", "role_descriptors": {"r": {"cluster": ["monitor_snapshot"]}}})))
        .await;
    let encoded = key["encoded"].as_str().unwrap().to_string();
    let secret = key["api_key"].as_str().unwrap().to_string();
    let mut cmd = command(
        &s.base,
        &["repo", "list", "--json"],
        &[("SNAPVAULT_API_KEY", &encoded)],
    );
    cmd.env_remove("SNAPVAULT_USER")
        .env_remove("SNAPVAULT_PASSWORD");
    let run = finish(&mut cmd, &[&encoded, &secret]).await;
    assert_eq!(run.json(), json!({}));
    // ... whose privileges the server enforces.
    let mut cmd = command(
        &s.base,
        &[
            "repo",
            "create",
            "r",
            "--type",
            "fs",
            "--setting",
            "location=r",
        ],
        &[("SNAPVAULT_API_KEY", &encoded)],
    );
    cmd.env_remove("SNAPVAULT_USER")
        .env_remove("SNAPVAULT_PASSWORD");
    let run = finish(&mut cmd, &[&encoded, &secret]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("security_exception: action [cluster:admin/repository/put] is unauthorized"),
        "{}",
        run.stderr
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_mistakes_exit_2_and_an_unreachable_server_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    for args in [
        &[
            "repo",
            "create",
            "r",
            "--type",
            "fs",
            "--setting",
            "location",
        ][..],
        &["snapshot", "restore", "r", "s", "--rename-pattern", "(.+)"],
        &["snapshot", "create", "r", "s", "--metadata", "[1]"],
        &["rotate-key", "r", "--mode", "shuffle"],
        &["snapshot", "list", "r", "--url", "ftp://127.0.0.1:9200"],
    ] {
        let run = cli(&s, args).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = finish(
        &mut command(&format!("http://{closed}"), &["repo", "list"], &[]),
        &[],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("snapvault: cannot reach http://{closed}/: ")),
        "{}",
        run.stderr
    );
    s.stop().await;
}

/// An index of `n` documents of about 1 KiB that do not compress.
async fn incompressible(s: &Server, index: &str, n: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let docs: Vec<(String, Value)> = (0..n)
        .map(|i| {
            let noise: String = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{:016x}", x)
                })
                .collect();
            (format!("d{i}"), json!({ "noise": noise }))
        })
        .collect();
    s.create_index(index, 1).await;
    s.bulk(index, &docs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_waiting_and_the_snapshot_finishes_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    incompressible(&s, "noise", 400).await;
    s.ok("PUT", "/_snapshot/slow", Some(json!({"type": "fs", "settings": {"location": "slow", "compress": false, "max_snapshot_bytes_per_sec": "100kb"}}))).await;

    let child = command(
        &s.base,
        &["snapshot", "create", "slow", "s1", "--indices", "noise"],
        &[],
    )
    .spawn()
    .unwrap();
    eventually("the snapshot to run", async || {
        let r = s.call("GET", "/_snapshot/slow/s1/_status", None).await;
        r.status == 200 && r.body["snapshots"][0]["state"] == "STARTED"
    })
    .await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        !stderr.contains(TEST_PASSWORD)
            && !String::from_utf8_lossy(&out.stdout).contains(TEST_PASSWORD)
    );
    // Almost always "stopped waiting (Ctrl-C); snapshot [slow:s1] goes on
    // on the server: ..."; "interrupted before the server answered" when
    // the signal beat the answer to the request that started it.
    assert!(
        stderr.contains("stopped waiting (Ctrl-C); snapshot [slow:s1] goes on on the server: snapvault snapshot status slow s1")
            || stderr.contains("interrupted before the server answered; snapshot [slow:s1] may have started: snapvault snapshot status slow s1"),
        "{stderr}"
    );

    eventually("the snapshot to finish without its waiter", async || {
        let r = s.ok("GET", "/_snapshot/slow/s1", None).await;
        r["snapshots"][0]["state"] == "SUCCESS"
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_private_ca_needs_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
        .args(["certs", "self-signed", "--out"])
        .arg(&tls)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let table = format!(
        "[http.tls]\nenabled = true\ncertificate = \"{}\"\nkey = \"{}\"\n",
        tls.join("cert.pem").display(),
        tls.join("key.pem").display()
    );
    let s = Server::start_with(&dir.path().join("data"), Some(&table)).await;
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let cert = tls.join("cert.pem");
    let cert = cert.to_str().unwrap();

    let out = cli(&s, &["repo", "list", "--ca-cert", cert]).await;
    assert_eq!(out.ok().trim(), "no repositories");
    let refused = cli(&s, &["repo", "list"]).await;
    assert_eq!(refused.code, Some(3), "{}", refused.stderr);
    assert!(refused.stderr.contains("certificate"), "{}", refused.stderr);
    let missing = cli(
        &s,
        &["repo", "list", "--ca-cert", &format!("{cert}.missing")],
    )
    .await;
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    s.stop().await;
}
