//! The HTTP edge against hostile input: JSON nested too deep (in requests
//! and already stored), slow clients and too many connections, bodies that
//! are not JSON, cross-site requests and foreign Host names.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::harness::{basic, Resp, Server, TEST_PASSWORD};

/// `depth` nested objects: `{"a":{"a":...{}...}}`.
fn nested(depth: usize) -> String {
    format!(
        "{}{{}}{}",
        "{\"a\":".repeat(depth - 1),
        "}".repeat(depth - 1)
    )
}

fn addr_of(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// One request written by hand on its own connection (`Connection:
/// close`), for headers reqwest would not send; the status and the raw
/// answer.
async fn raw_http(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = head.replace('\n', "\r\n").into_bytes();
    req.extend_from_slice(b"Connection: close\r\n");
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    stream.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn body_of(raw: &str) -> Value {
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

async fn send(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.client.request(m, format!("{}{path}", s.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, body, text }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_nested_past_the_limit_is_refused_and_nothing_is_stored_while_the_limit_itself_works()
{
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("deep", 1).await;

    // A bulk whose one source nests 100 000 levels: 400, nothing written.
    let poison = "[".repeat(100_000) + &"]".repeat(100_000);
    let nd = format!("{{\"index\":{{\"_index\":\"deep\",\"_id\":\"p\"}}}}\n{{\"a\":{poison}}}\n");
    let r = s
        .raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_type(), "x_content_parse_exception");
    assert!(r.reason().contains("nesting depth"), "{}", r.text);
    // Also into an index that does not exist yet: not even auto-created.
    let nd = format!("{{\"index\":{{\"_index\":\"fresh\"}}}}\n{}\n", nested(101));
    let r = s
        .raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (400, "x_content_parse_exception".into())
    );
    assert_eq!(s.call("HEAD", "/fresh", None).await.status, 404);

    // One level past the limit in a plain document body, and in a search.
    let r = s
        .raw(
            "PUT",
            "/deep/_doc/over",
            "application/json",
            nested(101).into_bytes(),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (400, "x_content_parse_exception".into())
    );
    let r = s
        .raw(
            "POST",
            "/deep/_search",
            "application/json",
            format!("{{\"query\":{}}}", nested(101)).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(s.ok("GET", "/deep/_count", None).await["count"], 0);

    // Exactly the limit: stored, read back, searched, bulk-loaded too.
    let at_limit: Value = serde_json::from_str(&nested(100)).unwrap();
    let r = s
        .raw(
            "PUT",
            "/deep/_doc/max",
            "application/json",
            nested(100).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let nd = format!(
        "{{\"index\":{{\"_index\":\"deep\",\"_id\":\"bulk-max\"}}}}\n{}\n",
        nested(100)
    );
    s.raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
        .await
        .expect_ok("POST", "/_bulk");
    let got = s.ok("GET", "/deep/_doc/max", None).await;
    assert_eq!(got["_source"], at_limit);
    let docs = s.all_docs("deep").await;
    assert_eq!(docs.len(), 2);
    assert_eq!(docs["bulk-max"], at_limit);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_document_already_stored_is_an_error_naming_index_and_id_also_after_snapshot_and_restore(
) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("poison", 1).await;
    s.bulk("poison", &[("good".to_string(), json!({"ok": true}))])
        .await;
    let uuid = s.ok("GET", "/poison", None).await["poison"]["settings"]["index"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    s.stop().await;

    // Written by an older version without the limit: a later segment of
    // the shard holding one document nested 100 000 levels.
    let shard = dir.path().join("data/indices").join(&uuid).join("0");
    assert!(shard.join("seg-000000000000.ndjson").exists());
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    std::fs::write(
        shard.join("seg-000000000001.ndjson"),
        format!("{{\"id\":\"bad\",\"version\":1,\"seq_no\":1,\"source\":{{\"a\":{deep}}}}}\n"),
    )
    .unwrap();

    let s = Server::start(dir.path()).await;
    let check = |r: Resp, index: &str| {
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.error_type(), "parse_exception");
        assert_eq!(r.body["error"]["index"], index, "{}", r.text);
        let reason = r.reason();
        assert!(
            reason.contains("[bad]") && reason.contains(&format!("[{index}]")),
            "{reason}"
        );
    };
    check(s.call("GET", "/poison/_doc/bad", None).await, "poison");
    check(s.call("GET", "/poison/_search", None).await, "poison");
    // The rest of the index and the node keep serving.
    assert_eq!(s.ok("GET", "/poison/_doc/good", None).await["found"], true);
    assert_eq!(s.ok("GET", "/poison/_count", None).await["count"], 2);
    s.ok("GET", "/", None).await;

    // A snapshot keeps the segment as it is; its restore answers the same.
    s.put_fs_repository("repo", "repo").await;
    s.create_snapshot("repo", "snap", "poison").await;
    s.restore(
        "repo",
        "snap",
        json!({"indices": "poison", "rename_pattern": "(.+)", "rename_replacement": "restored_$1"}),
    )
    .await;
    check(
        s.call("GET", "/restored_poison/_doc/bad", None).await,
        "restored_poison",
    );
    check(
        s.call("GET", "/restored_poison/_search", None).await,
        "restored_poison",
    );
    // Deleting the document is the way out.
    s.ok("DELETE", "/poison/_doc/bad", None).await;
    assert_eq!(s.all_docs("poison").await.len(), 1);
    s.stop().await;
}

/// Writes `first` on a new connection, then waits up to `ticks` times
/// 200 ms, writing the next byte of `trickle` (if any is left) after each
/// wait, and returns how long after `started` the server closed the
/// connection: `None` if it never did within the ticks. Bounded in bytes
/// and in time.
async fn slow_client(
    addr: String,
    first: Vec<u8>,
    trickle: Vec<u8>,
    ticks: usize,
    started: Instant,
) -> Option<Duration> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    if stream.write_all(&first).await.is_err() {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 4096];
    for tick in 0..ticks {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // An answer (408): keep reading until the close.
            Ok(Ok(_)) => continue,
            Err(_) => {}
        }
        if let Some(byte) = trickle.get(tick) {
            if stream.write_all(&[*byte]).await.is_err() {
                return Some(started.elapsed());
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_senders_are_cut_off_at_their_timeouts_and_connections_past_the_cap_wait_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        Some(
            "http_header_timeout_secs = 1\nhttp_body_timeout_secs = 1\nhttp_max_connections = 50\n",
        ),
    )
    .await;
    let addr = addr_of(&s);
    let started = Instant::now();
    // 1. 50 clients promise a 1000-byte body and send one byte of it:
    //    they hold every slot until the body timeout.
    // Signed in: credentials are checked before a byte of the body is read.
    let auth = basic("elastic", TEST_PASSWORD);
    let body_head = format!(
        "PUT /_snapshot/slow HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    let mut slow_bodies = Vec::new();
    for _ in 0..50 {
        slow_bodies.push(tokio::spawn(slow_client(
            addr.clone(),
            body_head.clone().into_bytes(),
            Vec::new(),
            100,
            started,
        )));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 2. Connection 51, a complete request: not served while they hold
    //    the slots.
    let fifty_first = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let r = raw_http(
                &addr,
                &format!("GET /_health HTTP/1.1\nHost: {addr}\n"),
                b"",
            )
            .await;
            (r.0, started.elapsed())
        })
    };
    // 3. 200 clients that send a request head one byte at a time, never
    //    finishing it; most wait in the backlog first.
    let mut slow_heads = Vec::new();
    for _ in 0..200 {
        slow_heads.push(tokio::spawn(slow_client(
            addr.clone(),
            format!("GET /_health HTTP/1.1\r\nHost: {addr}\r\n").into_bytes(),
            b"X-Slow: ".iter().copied().cycle().take(100).collect(),
            100,
            started,
        )));
    }

    for t in slow_bodies {
        let closed = t.await.unwrap().expect("a stalled body is cut off");
        assert!(
            closed >= Duration::from_millis(900) && closed < Duration::from_secs(8),
            "stalled body closed after {closed:?}"
        );
    }
    let (status, answered) = fifty_first.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        answered >= Duration::from_millis(900),
        "connection 51 was served at {answered:?}, while 50 others held every slot"
    );
    assert!(answered < Duration::from_secs(8), "{answered:?}");
    for t in slow_heads {
        let closed = t.await.unwrap().expect("a slow head is cut off");
        assert!(closed >= Duration::from_millis(900), "{closed:?}");
    }
    // Right after, a normal client is served at once.
    let quick = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), s.call("GET", "/", None))
        .await
        .expect("served within 3 s");
    assert_eq!(r.status, 200);
    assert!(quick.elapsed() < Duration::from_secs(3));
    // A client that connects and says nothing is closed at the header
    // timeout too.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("a silent connection is closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_must_be_json_or_ndjson_as_elasticsearch_requires() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("x", "x").await;

    // A state change with a text/plain body: Elasticsearch's 406.
    let r = send(
        &s,
        "POST",
        "/_snapshot/x/_cleanup",
        &[("content-type", "text/plain")],
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 406, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"error": "Content-Type header [text/plain] is not supported", "status": 406})
    );
    let r = send(
        &s,
        "PUT",
        "/_snapshot/r",
        &[("content-type", "text/plain;charset=UTF-8")],
        Some(r#"{"type":"fs","settings":{"location":"r"}}"#),
    )
    .await;
    assert_eq!(r.status, 406, "{}", r.text);
    assert_eq!(s.call("GET", "/_snapshot/r", None).await.status, 404);
    // A form, or no type at all.
    let r = send(
        &s,
        "PUT",
        "/_snapshot/r",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(r#"{"type":"fs","settings":{"location":"r"}}"#),
    )
    .await;
    assert_eq!(r.status, 406);
    let r = send(
        &s,
        "PUT",
        "/_snapshot/r",
        &[],
        Some(r#"{"type":"fs","settings":{"location":"r"}}"#),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            406,
            json!({"error": "Content-Type header is missing", "status": 406})
        )
    );
    assert_eq!(s.call("GET", "/_snapshot/r", None).await.status, 404);
    // A malformed type is refused on any request.
    let r = send(&s, "GET", "/", &[("content-type", "garbage")], None).await;
    assert_eq!(
        (r.status, r.error_type()),
        (400, "media_type_header_exception".into())
    );

    // JSON with a charset, and the official clients' versioned types.
    let r = send(
        &s,
        "PUT",
        "/_snapshot/r",
        &[("content-type", "application/json; charset=utf-8")],
        Some(r#"{"type":"fs","settings":{"location":"r"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        &s,
        "PUT",
        "/_snapshot/r2",
        &[
            (
                "content-type",
                "application/vnd.elasticsearch+json; compatible-with=8",
            ),
            (
                "accept",
                "application/vnd.elasticsearch+json; compatible-with=8",
            ),
        ],
        Some(r#"{"type":"fs","settings":{"location":"r2"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let nd = "{\"index\":{\"_index\":\"nd\",\"_id\":\"1\"}}\n{\"a\":1}\n";
    for ct in [
        "application/x-ndjson",
        "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
    ] {
        let r = send(&s, "POST", "/_bulk", &[("content-type", ct)], Some(nd)).await;
        assert_eq!(
            (r.status, r.body["errors"].clone()),
            (200, json!(false)),
            "{ct}: {}",
            r.text
        );
    }
    // Requests without a body need no type.
    let r = send(&s, "POST", "/_snapshot/x/_cleanup", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_origin_requests_are_refused_before_any_handler_unless_cors_allows_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.put_fs_repository("x", "x").await;
    let evil = [("origin", "http://evil.example")];
    // A "simple" request (no body, no preflight) from another site.
    let r = send(&s, "POST", "/_snapshot/x/_cleanup", &evil, None).await;
    assert_eq!(
        (r.status, r.error_type()),
        (403, "security_exception".into())
    );
    let r = send(&s, "DELETE", "/_snapshot/x", &evil, None).await;
    assert_eq!(r.status, 403);
    let r = send(
        &s,
        "PUT",
        "/_snapshot/y",
        &[
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ],
        Some(r#"{"type":"fs","settings":{"location":"y"}}"#),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(s.call("GET", "/_snapshot/x", None).await.status, 200);
    assert_eq!(s.call("GET", "/_snapshot/y", None).await.status, 404);
    let r = send(
        &s,
        "OPTIONS",
        "/_snapshot/y",
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    // The page served by the node itself (same origin) may call it.
    let own = s.base.clone();
    let r = send(
        &s,
        "POST",
        "/_snapshot/x/_cleanup",
        &[("origin", own.as_str())],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        Some("[http.cors]\nenabled = true\nallow_origin = [\"http://kibana.example\"]\n"),
    )
    .await;
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/_snapshot/y", s.base))
        .header("origin", "http://kibana.example")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://kibana.example");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("content-type"));
    let r = s
        .client
        .put(format!("{}/_snapshot/y", s.base))
        .header("origin", "http://kibana.example")
        .json(&json!({"type": "fs", "settings": {"location": "y"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://kibana.example"
    );
    assert_eq!(s.call("GET", "/_snapshot/y", None).await.status, 200);
    // Other origins are still refused, preflight or not.
    let r = send(&s, "DELETE", "/_snapshot/y", &evil, None).await;
    assert_eq!(r.status, 403);
    let r = send(
        &s,
        "OPTIONS",
        "/_snapshot/y",
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "DELETE"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(s.call("GET", "/_snapshot/y", None).await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_outside_the_allow_list_are_refused_and_a_loopback_node_answers_loopback_names_only()
{
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let addr = addr_of(&s);
    let port = addr.rsplit(':').next().unwrap().to_string();
    // Listening on loopback: a rebound name is refused, loopback names work.
    let (status, raw) = raw_http(
        &addr,
        &format!("GET /_health HTTP/1.1\nHost: evil.example:{port}\n"),
        b"",
    )
    .await;
    assert_eq!(status, 403, "{raw}");
    assert_eq!(body_of(&raw)["error"]["type"], "security_exception");
    let (status, raw) = raw_http(
        &addr,
        &format!("PUT /_snapshot/z HTTP/1.1\nHost: evil.example:{port}\nContent-Type: application/json\n"),
        br#"{"type":"fs","settings":{"location":"z"}}"#,
    )
    .await;
    assert_eq!(status, 403, "{raw}");
    assert_eq!(s.call("GET", "/_snapshot/z", None).await.status, 404);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".to_string(),
    ] {
        let (status, raw) = raw_http(
            &addr,
            &format!("GET /_health HTTP/1.1\nHost: {host}\n"),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{host}: {raw}");
    }
    s.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        Some("http_allowed_hosts = [\"snapvault.internal\"]\n"),
    )
    .await;
    let addr = addr_of(&s);
    let (status, _) = raw_http(
        &addr,
        "GET /_health HTTP/1.1\nHost: snapvault.internal:9200\n",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let (status, raw) = raw_http(
        &addr,
        &format!("GET /_health HTTP/1.1\nHost: {addr}\n"),
        b"",
    )
    .await;
    assert_eq!(status, 403, "{raw}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), Some("http_header_timeout_secs = 1\n")).await;
    let addr = addr_of(&s);
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(format!("GET /_health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // The answer arrives and the connection stays open for another request.
    let mut buf = vec![0u8; 64 * 1024];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then nothing: the server closes it after about the header timeout.
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection stayed open for 5 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed too early"
    );
    s.stop().await;
}
