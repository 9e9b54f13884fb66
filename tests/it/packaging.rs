//! The checked-in OpenAPI document and the Dockerfile stay true.

use super::harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn checked_in_openapi_matches_the_served_document() {
    let generated = snapvault::api::openapi_json();
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert!(
        generated.trim() == checked_in.trim(),
        "openapi/openapi.json is stale: regenerate it with `cargo run -q -- openapi > openapi/openapi.json`"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let served = s
        .client
        .get(format!("{}/_openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served.trim(), generated.trim());
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    for path in [
        "/_snapshot/{repository}/{snapshot}",
        "/_snapshot/{repository}/{snapshot}/_restore",
        "/_snapshot/{repository}/_cleanup",
        "/_bulk",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    s.stop().await;
}

#[test]
fn dockerfile_uses_flags_and_paths_that_exist() {
    let docker =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(docker.contains("target/release/snapvault"));
    assert!(docker.contains("EXPOSE 9200"));
    assert!(docker.contains("USER snapvault"));
    assert!(docker.contains("VOLUME [\"/data\"]"));
    for copied in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "config",
        "config/snapvault.toml",
    ] {
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(copied)
                .exists(),
            "{copied} exists"
        );
    }
    let bin = env!("CARGO_BIN_EXE_snapvault");
    let help = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let serve = help(&["serve", "--help"]);
    for flag in ["--listen", "--data-dir", "--config"] {
        assert!(serve.contains(flag), "serve has {flag}");
    }
    assert!(help(&["healthcheck", "--help"]).contains("--addr"));
    // The health check really fails when nothing listens.
    let out = std::process::Command::new(bin)
        .args(["healthcheck", "--addr", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_command_succeeds_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let bin = env!("CARGO_BIN_EXE_snapvault");
    let out = tokio::process::Command::new(bin)
        .args(["healthcheck", "--addr", &addr])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop().await;
}

#[test]
fn keystore_commands_never_print_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_snapvault");
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut cmd = std::process::Command::new(bin);
        cmd.args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let secret = "ab".repeat(32);
    // A keystore is born with a random `default`, as at the server's first
    // start, so a data directory never lacks the key repositories use.
    let (ok, first) = run(&["keystore", "add", "prod"], None);
    assert!(
        ok && first.contains("random master key [default]"),
        "{first}"
    );
    assert!(
        run(
            &["keystore", "add", "imported", "--from-stdin"],
            Some(&secret)
        )
        .0
    );
    let (ok, listed) = run(&["keystore", "list"], None);
    assert!(ok);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        vec!["default", "imported", "prod"]
    );
    assert!(!listed.contains(&secret));
    // A key piped in without --from-stdin is refused, not replaced by a
    // random one the operator would believe is theirs.
    let (ok, msg) = run(&["keystore", "add", "piped"], Some(&secret));
    assert!(!ok && msg.contains("--from-stdin"), "{msg}");
    let (ok, msg) = run(&["keystore", "add", "Bad Name"], None);
    assert!(!ok && msg.contains("invalid key name"));
    let (ok, msg) = run(&["keystore", "add", "short", "--from-stdin"], Some("abcd"));
    assert!(!ok && msg.contains("64 hex"));
    assert!(
        run(
            &["keystore", "set", "s3.client.default.secret_key"],
            Some("very-secret-value\n")
        )
        .0
    );
    let (_, listed) = run(&["keystore", "list"], None);
    assert!(
        listed.contains("s3.client.default.secret_key (setting)"),
        "{listed}"
    );
    assert!(!listed.contains("very-secret-value"));
    assert!(
        run(
            &["keystore", "remove", "s3.client.default.secret_key"],
            None
        )
        .0
    );
    assert!(run(&["keystore", "remove", "prod"], None).0);
    assert_eq!(
        run(&["keystore", "list"], None).1.trim(),
        "default\nimported"
    );
}

#[test]
fn importing_the_default_key_into_an_empty_data_directory_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cd".repeat(32);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
        .args(["keystore", "add", "default", "--from-stdin", "--data-dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(secret.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ks = snapvault::crypto::Keystore::load(&dir.path().join("keystore.json")).unwrap();
    assert_eq!(ks.names(), vec!["default"]);
    let same = snapvault::crypto::MasterKey::from_bytes("default", [0xcd; 32]);
    assert_eq!(
        ks.get("default").unwrap().fingerprint(),
        same.fingerprint(),
        "the imported key, not a random one"
    );
}
