//! Typed helpers: start a real server on 127.0.0.1:0 over a data
//! directory (through `snapvault::server::serve`, the binary's own accept
//! loop and limits), talk HTTP to it, restart it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use snapvault::{Config, Node, Overrides};
use tokio::sync::oneshot;

/// HTTP to one server: the typed helpers every test uses, shared by the
/// in-process [`Server`] and the [`Proc`] process (both deref to it).
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

pub struct Server {
    api: Api,
    pub data_dir: PathBuf,
    pub node: Arc<Node>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Asserts the Elasticsearch error shape and returns the error type.
    pub fn error_type(&self) -> String {
        let e = &self.body["error"];
        assert_eq!(
            e["root_cause"][0]["type"], e["type"],
            "root_cause mirrors the error: {}",
            self.text
        );
        assert!(
            e["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "error has a reason: {}",
            self.text
        );
        assert_eq!(
            self.body["status"].as_u64(),
            Some(self.status as u64),
            "status in body: {}",
            self.text
        );
        e["type"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts a 2xx answer and returns its body.
    pub fn expect_ok(self, method: &str, path: &str) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "{method} {path} -> {} {}",
            self.status,
            self.text
        );
        self.body
    }

    pub fn reason(&self) -> String {
        self.body["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// `elastic`'s password in every test deployment (set on first start, as
/// `ELASTIC_PASSWORD` does for the binary).
pub const TEST_PASSWORD: &str = "test-password-5f2a9c";

/// `Authorization` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Api {
    /// A client signed in as `elastic`, as every test is unless it says
    /// otherwise.
    pub fn new(base: String) -> Api {
        Api::with_authorization(base, Some(&basic("elastic", TEST_PASSWORD)))
    }

    /// A client sending `authorization` (or nothing) with every request.
    pub fn with_authorization(base: String, authorization: Option<&str>) -> Api {
        Api::with_builder(base, authorization, reqwest::Client::builder())
    }

    /// [`Api::with_authorization`] from a client builder that already
    /// holds other settings (TLS roots, a client certificate).
    pub fn with_builder(
        base: String,
        authorization: Option<&str>,
        builder: reqwest::ClientBuilder,
    ) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(a) = authorization {
            headers.insert(reqwest::header::AUTHORIZATION, a.parse().unwrap());
        }
        Api {
            base,
            client: builder
                .timeout(Duration::from_secs(120))
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    /// The same server, as another caller.
    pub fn as_caller(&self, authorization: Option<&str>) -> Api {
        Api::with_authorization(self.base.clone(), authorization)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        request(&self.client, &self.base, method, path, body).await
    }

    pub async fn raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self
            .client
            .request(m, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body, text }
    }

    /// Asserts a 2xx answer and returns its body.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body).await.expect_ok(method, path)
    }

    pub async fn create_index(&self, name: &str, shards: u32) {
        self.ok(
            "PUT",
            &format!("/{name}"),
            Some(json!({"settings": {"number_of_shards": shards}})),
        )
        .await;
    }

    /// Bulk-loads `docs` (id, source) into `index`.
    pub async fn bulk(&self, index: &str, docs: &[(String, Value)]) {
        let mut nd = String::new();
        for (id, src) in docs {
            nd.push_str(&json!({"index": {"_index": index, "_id": id}}).to_string());
            nd.push('\n');
            nd.push_str(&src.to_string());
            nd.push('\n');
        }
        let r = self
            .raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["errors"], false, "{}", r.text);
    }

    pub async fn put_fs_repository(&self, name: &str, location: &str) {
        self.ok(
            "PUT",
            &format!("/_snapshot/{name}"),
            Some(json!({"type": "fs", "settings": {"location": location}})),
        )
        .await;
    }

    pub async fn create_snapshot(&self, repo: &str, snap: &str, indices: &str) -> Value {
        let body = self
            .ok(
                "PUT",
                &format!("/_snapshot/{repo}/{snap}?wait_for_completion=true"),
                Some(json!({"indices": indices})),
            )
            .await;
        assert_eq!(body["snapshot"]["state"], "SUCCESS", "{body}");
        body
    }

    pub async fn restore(&self, repo: &str, snap: &str, body: Value) -> Value {
        self.ok(
            "POST",
            &format!("/_snapshot/{repo}/{snap}/_restore?wait_for_completion=true"),
            Some(body),
        )
        .await
    }

    /// Every document of an index, by id.
    pub async fn all_docs(&self, index: &str) -> std::collections::BTreeMap<String, Value> {
        let r = self
            .ok(
                "POST",
                &format!("/{index}/_search"),
                Some(json!({"size": 100000, "query": {"match_all": {}}})),
            )
            .await;
        r["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["_id"].as_str().unwrap().to_string(), h["_source"].clone()))
            .collect()
    }
}

impl std::ops::Deref for Server {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl std::ops::Deref for Proc {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Server {
    pub async fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, None).await
    }

    /// Starts a server; `config_toml` is written as its config file.
    pub async fn start_with(data_dir: &Path, config_toml: Option<&str>) -> Server {
        let config_file = config_toml.map(|text| {
            let p = data_dir.with_extension("toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        let o = Overrides {
            config_file,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(data_dir.to_path_buf()),
            ..Default::default()
        };
        let mut config = Config::load(&o).unwrap();
        config.security.bootstrap_password = Some(snapvault::config::Secret(
            zeroize::Zeroizing::new(TEST_PASSWORD.to_string()),
        ));
        let (node, _) = Node::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        node.cluster().set_http_address(addr);
        let (tx, rx) = oneshot::channel::<()>();
        let app = snapvault::api::app(node.clone());
        let limits = snapvault::server::ConnectionLimits::from_config(&node.config().http);
        let tls = node.config().http.tls.as_ref().map(|settings| {
            let tls = snapvault::tls::ReloadableTls::load(settings).unwrap();
            tls.watch_files();
            tls
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(snapvault::server::serve(
            listener,
            app,
            limits,
            tls,
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            api: Api::new(format!("{scheme}://{addr}")),
            data_dir: data_dir.to_path_buf(),
            node,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server the way SIGTERM does: stop accepting, let requests
    /// and operations finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        self.node.shutdown(Duration::from_secs(30)).await;
    }

    pub async fn restart(self) -> Server {
        let dir = self.data_dir.clone();
        self.stop().await;
        Server::start(&dir).await
    }

    pub fn repo_dir(&self, location: &str) -> PathBuf {
        self.data_dir.join("repos").join(location)
    }
}

/// `n` documents with ids `prefix-i` and a recognisable body.
pub fn docs(prefix: &str, n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| (format!("{prefix}-{i}"), json!({"n": i, "title": format!("document {prefix} number {i}"), "tags": ["a", "b"]})))
        .collect()
}

/// All files under a directory, with sizes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// A real `snapvault serve` process, for tests that kill it.
pub struct Proc {
    api: Api,
    child: std::process::Child,
    /// What the process printed on standard output before it listened.
    pub printed: Vec<String>,
}

impl Proc {
    /// Starts the binary on 127.0.0.1:0 over `data_dir` with `config_toml`;
    /// its log goes to `<data_dir>.log`.
    pub async fn spawn(data_dir: &Path, config_toml: &str) -> Proc {
        Self::spawn_with_env(data_dir, config_toml, &[]).await
    }

    /// [`Proc::spawn`] with extra environment variables (`RUST_LOG`, say).
    pub async fn spawn_with_env(data_dir: &Path, config_toml: &str, env: &[(&str, &str)]) -> Proc {
        use std::io::BufRead;
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, config_toml).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_snapvault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(&config)
            .env("ELASTIC_PASSWORD", TEST_PASSWORD)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (base, printed) = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let mut printed = Vec::new();
            loop {
                let line = lines.next().expect("server printed its address").unwrap();
                if let Some(addr) = line.strip_prefix("snapvault listening on ") {
                    return (addr.trim().to_string(), printed);
                }
                printed.push(line);
            }
        })
        .await
        .unwrap();
        Proc {
            api: Api::new(base),
            child,
            printed,
        }
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keystore with a fresh master key `default` and the secure `settings`
/// (storage credentials) a test needs.
pub fn keystore_with(settings: &[(&str, &str)]) -> snapvault::crypto::Keystore {
    let mut ks = snapvault::crypto::Keystore::default();
    ks.insert(snapvault::crypto::MasterKey::generate("default"));
    for (name, value) in settings {
        ks.set_setting(name, value.to_string());
    }
    ks
}

/// Adds a random master key named `name` to the keystore of `data_dir`.
pub fn add_key(data_dir: &Path, name: &str) {
    let path = data_dir.join("keystore.json");
    let mut ks = snapvault::crypto::Keystore::load(&path).unwrap();
    ks.insert(snapvault::crypto::MasterKey::generate(name));
    ks.save(&path).unwrap();
}

/// Removes master key `name` from the keystore of `data_dir`.
pub fn remove_key(data_dir: &Path, name: &str) {
    let path = data_dir.join("keystore.json");
    let mut ks = snapvault::crypto::Keystore::load(&path).unwrap();
    assert!(ks.remove(name));
    ks.save(&path).unwrap();
}

/// Polls `GET /_snapshot/{repo}/_rotate_key` until `pred` holds.
pub async fn wait_rotation(
    base: &str,
    repo: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let client = Api::new(base.to_string()).client;
    let started = std::time::Instant::now();
    loop {
        let v: Value = client
            .get(format!("{base}/_snapshot/{repo}/_rotate_key"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if pred(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One JSON request; every answer must carry the product header that the
/// official clients check.
async fn request(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(m, format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()
            .get("x-elastic-product")
            .map(|v| v.to_str().unwrap()),
        Some("Elasticsearch")
    );
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, body, text }
}
