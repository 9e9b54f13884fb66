//! TLS on the listener with certificates made at test time (rcgen): HTTPS
//! end to end, plain HTTP to the TLS port, client certificates, reloads on
//! a file change and on SIGHUP, `snapvault certs self-signed` and the
//! health probe over TLS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::{basic, Api, Proc, Server, TEST_PASSWORD};

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, signed by a [`Ca`].
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// A server certificate (for 127.0.0.1 and localhost) or a client one.
fn leaf(ca: &Ca, common_name: &str, server: bool) -> Leaf {
    let names = if server {
        vec!["127.0.0.1".to_string(), "localhost".to_string()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// Writes `text` to `path` through a rename, as a deployment tool would.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes the server's chain (leaf, then CA) and key under `dir`.
fn write_server_files(dir: &Path, ca: &Ca, server: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    replace_file(&cert, &format!("{}{}", server.cert_pem, ca.pem));
    replace_file(&key, &server.key_pem);
    (cert, key)
}

fn tls_table(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[http.tls]\nenabled = true\ncertificate = \"{}\"\nkey = \"{}\"\n{extra}",
        cert.display(),
        key.display()
    )
}

/// A client that trusts only `ca_pem`, presents `identity` (if any), and
/// signs in as `elastic` (or as nobody).
fn https_api(base: &str, ca_pem: &str, identity: Option<&Leaf>, signed_in: bool) -> Api {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .tls_info(true)
        .connect_timeout(Duration::from_secs(30));
    if let Some(id) = identity {
        let pem = format!("{}{}", id.cert_pem, id.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    let authorization = basic("elastic", TEST_PASSWORD);
    Api::with_builder(
        base.to_string(),
        signed_in.then_some(authorization.as_str()),
        builder,
    )
}

/// `GET /` over `api`: the status and the certificate the server showed,
/// or the error (a refused handshake).
async fn get_root(api: &Api) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let r = api.client.get(format!("{}/", api.base)).send().await?;
    let served = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("an HTTPS answer carries the server's certificate")
        .to_vec();
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok((status, served))
}

/// Polls new connections until the server shows `der` (generous bound).
async fn wait_for_certificate(base: &str, ca_pem: &str, der: &[u8]) {
    let started = Instant::now();
    loop {
        if let Ok((200, served)) = get_root(&https_api(base, ca_pem, None, true)).await {
            if served == der {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "new connections never got the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn https_serves_the_api_end_to_end_and_still_asks_for_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("test CA");
    let server = leaf(&authority, "snapvault test server", true);
    let (cert, key) = write_server_files(dir.path(), &authority, &server);
    let s = Server::start_with(&dir.path().join("data"), Some(&tls_table(&cert, &key, ""))).await;
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    // 1. Signed in: the whole flow, over HTTPS, with the configured certificate.
    let api = https_api(&s.base, &authority.pem, None, true);
    let (status, served) = get_root(&api).await.unwrap();
    assert_eq!((status, served), (200, server.der.clone()));
    api.create_index("logs", 1).await;
    api.bulk("logs", &super::harness::docs("d", 20)).await;
    api.put_fs_repository("backup", "backup").await;
    api.create_snapshot("backup", "snap-1", "logs").await;
    api.ok("DELETE", "/logs", None).await;
    api.restore("backup", "snap-1", json!({"indices": "logs"}))
        .await;
    assert_eq!(api.all_docs("logs").await.len(), 20);
    // 2. TLS does not replace credentials.
    let anonymous = https_api(&s.base, &authority.pem, None, false);
    assert_eq!(anonymous.call("GET", "/_snapshot", None).await.status, 401);
    // 3. A client that does not trust the CA refuses the server.
    let stranger = https_api(&s.base, &ca("another CA").pem, None, true);
    assert!(get_root(&stranger).await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_refused_cleanly_and_https_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("test CA");
    let (cert, key) = write_server_files(dir.path(), &authority, &leaf(&authority, "s", true));
    // Two slots: a leak by any refused connection below would starve HTTPS.
    let config = format!(
        "http_max_connections = 2\nhttp_header_timeout_secs = 2\n{}",
        tls_table(&cert, &key, "")
    );
    let s = Server::start_with(&dir.path().join("data"), Some(&config)).await;
    let addr = s.base.trim_start_matches("https://").to_string();
    // 1. Plain HTTP gets a 400 that says to use https://, then a close.
    let plain = Api::new(format!("http://{addr}"));
    for _ in 0..5 {
        let r = plain
            .client
            .get(format!("http://{addr}/_snapshot"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert!(r.text().await.unwrap().contains("https://"));
    }
    // 2. Bytes that are neither TLS nor HTTP: closed without an answer.
    let mut garbage = TcpStream::connect(&addr).await.unwrap();
    garbage.write_all(&[0x00, 0x01, 0x02, 0xff]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), garbage.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that is not TLS");
    assert!(read.is_err() || answer.is_empty(), "{answer:?}");
    // 3. A client that connects and says nothing is closed at the
    //    handshake timeout (the head timeout), freeing its slot.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf))
        .await
        .expect("a silent client is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // 4. HTTPS is served as before.
    let api = https_api(&s.base, &authority.pem, None, true);
    assert_eq!(get_root(&api).await.unwrap().0, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_client_certificate_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (authority, other) = (ca("test CA"), ca("other CA"));
    let (cert, key) = write_server_files(dir.path(), &authority, &leaf(&authority, "s", true));
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, &authority.pem).unwrap();
    let (ours, theirs) = (leaf(&authority, "client", false), leaf(&other, "c", false));
    for mode in ["required", "optional"] {
        let extra = format!(
            "certificate_authorities = [\"{}\"]\nclient_authentication = \"{mode}\"\n",
            ca_file.display()
        );
        let data = dir.path().join(format!("data-{mode}"));
        let s = Server::start_with(&data, Some(&tls_table(&cert, &key, &extra))).await;
        let with = |id: Option<&Leaf>, signed_in| https_api(&s.base, &authority.pem, id, signed_in);
        // A certificate from the configured CA: served, and credentials
        // are still needed.
        assert_eq!(get_root(&with(Some(&ours), true)).await.unwrap().0, 200);
        let anonymous = with(Some(&ours), false);
        assert_eq!(anonymous.call("GET", "/_snapshot", None).await.status, 401);
        // A certificate from another CA: refused in both modes.
        assert!(
            get_root(&with(Some(&theirs), true)).await.is_err(),
            "{mode}"
        );
        // No certificate: refused when required, served when optional.
        let none = get_root(&with(None, true)).await;
        match mode {
            "required" => assert!(none.is_err(), "no certificate was served"),
            _ => assert_eq!(none.unwrap().0, 200),
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn replaced_certificate_files_reach_new_connections_while_open_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("test CA");
    let first = leaf(&authority, "first", true);
    let (cert, key) = write_server_files(dir.path(), &authority, &first);
    let config = format!(
        "http_header_timeout_secs = 120\n{}",
        tls_table(&cert, &key, "reload_interval_secs = 1\n")
    );
    let s = Server::start_with(&dir.path().join("data"), Some(&config)).await;
    // 1. A keep-alive connection opened with the first certificate.
    let open = https_api(&s.base, &authority.pem, None, true);
    assert_eq!(get_root(&open).await.unwrap(), (200, first.der.clone()));
    // 2. Half a replacement (a key that is not a key): the first stays.
    replace_file(&key, "-----BEGIN PRIVATE KEY-----\nnot yet\n");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = get_root(&https_api(&s.base, &authority.pem, None, true)).await;
    assert_eq!(fresh.unwrap(), (200, first.der.clone()));
    // 3. The whole replacement: new connections get the second.
    let second = leaf(&authority, "second", true);
    write_server_files(dir.path(), &authority, &second);
    wait_for_certificate(&s.base, &authority.pem, &second.der).await;
    // 4. The connection opened before still runs on the first.
    assert_eq!(get_root(&open).await.unwrap(), (200, first.der.clone()));
    s.stop().await;
}

#[tokio::test]
async fn sighup_makes_the_binary_reload_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("test CA");
    let first = leaf(&authority, "first", true);
    let (cert, key) = write_server_files(dir.path(), &authority, &first);
    // Polling is an hour apart: only the signal can reload in this test.
    let data = dir.path().join("data");
    let config = tls_table(&cert, &key, "reload_interval_secs = 3600\n");
    let p = Proc::spawn(&data, &config).await;
    assert!(p.base.starts_with("https://"), "{}", p.base);
    let api = https_api(&p.base, &authority.pem, None, true);
    assert_eq!(get_root(&api).await.unwrap(), (200, first.der.clone()));
    let second = leaf(&authority, "second", true);
    write_server_files(dir.path(), &authority, &second);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &p.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for_certificate(&p.base, &authority.pem, &second.der).await;
    // The reload is logged; the key never is.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("TLS configuration reloaded"), "{log}");
    let key_body = second.key_pem.lines().nth(1).unwrap();
    assert!(!log.contains(key_body), "the key reached the log");
    p.kill();
}

#[tokio::test]
async fn certs_self_signed_writes_a_pair_that_loads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
            .args(["certs", "self-signed", "--out"])
            .arg(&out)
            .args(["--name", "localhost", "--name", "127.0.0.1"])
            .output()
            .unwrap()
    };
    let made = run();
    assert!(made.status.success(), "{made:?}");
    let printed = String::from_utf8(made.stdout).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key_pem = std::fs::read_to_string(out.join("key.pem")).unwrap();
    assert!(!printed.contains(key_pem.lines().nth(1).unwrap()));
    // The printed table is the config, as is.
    let table: String = printed
        .lines()
        .skip_while(|l| *l != "[http.tls]")
        .take_while(|l| !l.starts_with("clients must"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(table.contains("enabled = true"), "{printed}");
    let s = Server::start_with(&dir.path().join("data"), Some(&table)).await;
    let cert_pem = std::fs::read_to_string(out.join("cert.pem")).unwrap();
    let api = https_api(&s.base, &cert_pem, None, true);
    assert_eq!(get_root(&api).await.unwrap().0, 200);
    // The container's health probe, with --tls; without it, the 400.
    //    (On a blocking thread: the server runs on this test's runtime.)
    let addr = s.base.trim_start_matches("https://").to_string();
    let probe = |tls: bool| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"));
            c.args(["healthcheck", "--addr", &addr]);
            if tls {
                c.arg("--tls");
            }
            c.output().unwrap()
        })
    };
    let healthy = probe(true).await.unwrap();
    assert!(healthy.status.success(), "{healthy:?}");
    let plain = probe(false).await.unwrap();
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("400"),
        "{plain:?}"
    );
    // A second run does not overwrite the pair.
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    s.stop().await;
}
