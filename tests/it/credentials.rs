//! The deployment's storage credentials go only where the operator's
//! configuration says, an upstream service's answer never reaches a
//! client, and no log line at any level holds a secret.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::{keystore_with, Proc, Resp, Server};

/// A loopback HTTP server that answers every request with `answer` and
/// counts connections and requests carrying an `Authorization` header.
struct Trap {
    url: String,
    connections: Arc<AtomicUsize>,
    signed: Arc<AtomicUsize>,
}

impl Trap {
    async fn start(answer: &'static str) -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let signed = Arc::new(AtomicUsize::new(0));
        let (c, s) = (connections.clone(), signed.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut seen = Vec::new();
                    // One request head (bodies are small or absent here).
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tokio::time::timeout(
                            std::time::Duration::from_secs(5),
                            sock.read(&mut buf),
                        )
                        .await
                        {
                            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    if String::from_utf8_lossy(&seen)
                        .to_ascii_lowercase()
                        .contains("\r\nauthorization:")
                    {
                        s.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Trap {
            url,
            connections,
            signed,
        }
    }
}

/// Registers repository `evil` of `kind` with `settings`, asserting the
/// 400 `repository_exception` it must get; returns the answer.
async fn refused_registration(s: &Server, kind: &str, settings: serde_json::Value) -> Resp {
    let r = s
        .call(
            "PUT",
            "/_snapshot/evil?verify=false",
            Some(json!({"type": kind, "settings": settings.clone()})),
        )
        .await;
    assert_eq!(r.status, 400, "{kind} {settings}: {}", r.text);
    assert_eq!(r.error_type(), "repository_exception");
    r
}

const DENIED: &str = "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\nx-amz-request-id: UPSTREAM-HEADER-VALUE\r\nconnection: close\r\ncontent-length: 118\r\n\r\n<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>UPSTREAM-SECRET-BODY-0123456789</Message></Error>    ";

fn node_with_s3_credentials(root: &std::path::Path) -> std::path::PathBuf {
    let data = root.join("node");
    std::fs::create_dir_all(&data).unwrap();
    keystore_with(&[
        ("s3.client.default.access_key", "AKIASNAPVAULTTEST"),
        ("s3.client.default.secret_key", "s3cr3t-never-sent-anywhere"),
        ("azure.client.default.account", "acct"),
        ("azure.client.default.key", "c2VjcmV0LWF6dXJlLWtleQ=="),
    ])
    .save(&data.join("keystore.json"))
    .unwrap();
    data
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_cannot_point_the_deployments_credentials_at_another_endpoint() {
    let trap = Trap::start(DENIED).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&node_with_s3_credentials(dir.path()), None).await;
    let cases = [
        (
            "s3",
            json!({"bucket": "b", "endpoint": trap.url}),
            "s3.client.<client>.endpoint",
        ),
        (
            "s3",
            json!({"bucket": "b", "endpoint": trap.url, "path_style_access": true}),
            "s3.client.<client>.",
        ),
        (
            "s3",
            json!({"bucket": "b", "region": "x.evil.example#"}),
            "s3.client.<client>.region",
        ),
        (
            "s3",
            json!({"bucket": "b", "protocol": "http"}),
            "s3.client.<client>.protocol",
        ),
        (
            "s3",
            json!({"bucket": "b", "proxy.host": "127.0.0.1"}),
            "s3.client.<client>.proxy.host",
        ),
        (
            "azure",
            json!({"container": "c", "endpoint": trap.url}),
            "azure.client.<client>.endpoint",
        ),
        (
            "gcs",
            json!({"bucket": "b", "endpoint": trap.url}),
            "gcs.client.<client>.endpoint",
        ),
    ];
    for (kind, settings, pointer) in cases {
        let r = refused_registration(&s, kind, settings).await;
        assert!(r.reason().contains(pointer), "{}", r.text);
        assert!(r.reason().contains("node's configuration"), "{}", r.text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        trap.connections.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );
    assert_eq!(s.call("GET", "/_snapshot/evil", None).await.status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_or_container_name_cannot_redirect_signed_requests() {
    let trap = Trap::start(DENIED).await;
    let port = trap.url.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Virtual-host style: the bucket name becomes part of the host name.
    let config = "[s3.client.default]\nendpoint = \"http://127.0.0.1:9\"\n[gcs.client.default]\nendpoint = \"http://127.0.0.1:9\"\n[azure.client.default]\nendpoint = \"http://127.0.0.1:9/acct\"\n";
    let s = Server::start_with(&node_with_s3_credentials(dir.path()), Some(config)).await;
    let cases = [
        (
            "s3",
            json!({"bucket": format!("2130706433:{port}/")}),
            "invalid bucket name",
        ),
        (
            "s3",
            json!({"bucket": format!("localhost:{port}/")}),
            "invalid bucket name",
        ),
        (
            "s3",
            json!({"bucket": format!("[::ffff:7f00:1]:{port}/")}),
            "invalid bucket name",
        ),
        (
            "s3",
            json!({"bucket": "evil.example.com/x"}),
            "invalid bucket name",
        ),
        ("s3", json!({"bucket": "127.0.0.1"}), "invalid bucket name"),
        (
            "s3",
            json!({"bucket": "fine-bucket", "base_path": "q/../p"}),
            "invalid base_path",
        ),
        (
            "gcs",
            json!({"bucket": format!("localhost:{port}/")}),
            "invalid bucket name",
        ),
        (
            "azure",
            json!({"container": "c/../x"}),
            "invalid container name",
        ),
    ];
    for (kind, settings, words) in cases {
        let r = refused_registration(&s, kind, settings).await;
        assert!(r.reason().contains(words), "{}", r.text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        trap.connections.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_failures_carry_an_error_id_and_never_echo_the_upstream_answer() {
    let trap = Trap::start(DENIED).await;
    let dir = tempfile::tempdir().unwrap();
    let data = node_with_s3_credentials(dir.path());
    // The operator points a client at a service that refuses everything.
    let config = format!(
        "storage_retries = 0\n[s3.client.default]\nendpoint = \"{}\"\npath_style_access = true\n[azure.client.default]\nendpoint = \"{}/acct\"\n",
        trap.url, trap.url
    );
    let s = Server::start_with(&data, Some(&config)).await;
    for (kind, settings) in [
        ("s3", json!({"bucket": "bkt", "base_path": "x"})),
        ("azure", json!({"container": "ctr"})),
    ] {
        let r = s
            .call(
                "PUT",
                "/_snapshot/denied",
                Some(json!({"type": kind, "settings": settings})),
            )
            .await;
        assert!(r.status >= 400, "{}", r.text);
        r.error_type();
        // The error id is ours and random hex, which can spell "403": it is
        // taken out before the body is searched for the upstream's words.
        let (mut scanned, mut rest) = (String::new(), r.text.as_str());
        while let Some((before, from_id)) = rest.split_once("error id [") {
            let (id, after) = from_id.split_once(']').expect("a closed error id");
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{}", r.text);
            scanned.push_str(before);
            rest = after;
        }
        scanned.push_str(rest);
        for leaked in [
            "UPSTREAM-SECRET-BODY",
            "UPSTREAM-HEADER-VALUE",
            "AccessDenied",
            "403",
            "x-amz",
            "127.0.0.1",
        ] {
            assert!(!scanned.contains(leaked), "{leaked} echoed: {}", r.text);
        }
        assert!(r.reason().contains("error id ["), "{}", r.text);
    }
    assert!(
        trap.signed.load(Ordering::SeqCst) > 0,
        "the configured endpoint was used"
    );
    s.stop().await;
}

/// Every secret of the keystore, as it could appear in a log line.
fn secrets(data: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("keystore.json")).unwrap();
    let ks: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = vec![
        super::azure::KEY.to_string(),
        "s3cr3t-trace-test-value".to_string(),
    ];
    // Master keys as stored (hex), whatever the keystore's layout.
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s)
                if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                out.push(s.clone())
            }
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&ks, &mut out);
    assert!(out.len() >= 3, "the keystore holds a master key: {text}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_log_at_trace_level_over_an_s3_and_an_azure_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "heartbeat_secs = 1\n{}{}",
        super::s3::client_toml(),
        super::azure::client_toml()
    );
    for kind in ["s3", "azure"] {
        let data = dir.path().join(kind);
        std::fs::create_dir_all(&data).unwrap();
        keystore_with(&[
            ("s3.client.default.access_key", "AKIASNAPVAULTTRACE"),
            ("s3.client.default.secret_key", "s3cr3t-trace-test-value"),
            ("azure.client.default.account", super::azure::ACCOUNT),
            ("azure.client.default.key", super::azure::KEY),
        ])
        .save(&data.join("keystore.json"))
        .unwrap();
        let mut secrets = secrets(&data);
        let p = Proc::spawn_with_env(&data, &config, &[("RUST_LOG", "trace")]).await;
        let (settings, store) = if kind == "s3" {
            let bucket = super::s3::bucket().await;
            (
                json!({"bucket": bucket, "base_path": "traced"}),
                super::s3::s3_store(&bucket, ""),
            )
        } else {
            let container = super::azure::container().await;
            (
                json!({"container": container, "base_path": "traced"}),
                super::azure::azure_store(&container, ""),
            )
        };
        p.ok(
            "PUT",
            "/_snapshot/traced",
            Some(json!({"type": kind, "settings": settings})),
        )
        .await;
        // Every operation. The storage analysis is left out: the trace log
        // slows the server enough that moto's create-if-absent (check then
        // act under load) once let two of its register writers win.
        super::backends::operations(&p, &data, "traced", "traced", store).await;
        // The scenario rotates to a new master key: that one too.
        secrets.extend(self::secrets(&data));
        p.kill();
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
        let traced = log.lines().filter(|l| l.contains("TRACE")).count();
        assert!(
            traced > 200,
            "{kind}: the log is at trace level ({traced} lines)"
        );
        let service = if kind == "s3" { "s3" } else { "azblob" };
        assert!(log.contains(service), "{kind}: the service was logged");
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{kind}: a secret is in the log"
            );
        }
    }
}
