//! Object storage behind one small type, [`Store`].
//!
//! This is the only module that imports OpenDAL. It builds an operator for a
//! backend, stacks the resilience layers once, and adds the one primitive the
//! rest of the system builds its consistency on: **create-if-absent**
//! ([`Store::write_if_absent`]). It knows nothing about encryption or formats.
//!
//! OpenDAL's `fs` service is not safe for create-if-absent under concurrency
//! when it writes through a temporary directory (measured, see
//! `shared/design/FORMAT.md`), and writes in place otherwise, so a reader could
//! see half a file. For `fs` we therefore write a temporary file, fsync it and
//! `link(2)` it to the final name, which fails atomically if the name exists.

pub mod generations;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use opendal::layers::{ConcurrentLimitLayer, LoggingLayer, RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use zeroize::Zeroizing;

/// What can go wrong when talking to storage. Messages name the object, never
/// its content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object [{0}] not found")]
    NotFound(String),
    #[error("object [{0}] already exists")]
    AlreadyExists(String),
    #[error("storage failure on [{path}]: {message}")]
    Backend { path: String, message: String },
}

impl StorageError {
    fn from_opendal(path: &str, err: opendal::Error) -> Self {
        match err.kind() {
            ErrorKind::NotFound => StorageError::NotFound(path.to_string()),
            ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => {
                StorageError::AlreadyExists(path.to_string())
            }
            kind => {
                // The service's answer (status, headers, body) may be
                // anyone's words (a misconfigured endpoint, a proxy) and
                // names internals: it goes to the log under an id, and the
                // error carries only the kind and that id.
                let id = uuid::Uuid::new_v4();
                tracing::warn!(error_id = %id, object = %path, error = %err, "storage request failed");
                StorageError::Backend {
                    path: path.to_string(),
                    message: format!("{kind} (see the server log for error id [{id}])"),
                }
            }
        }
    }

    fn from_io(path: &str, err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(path.to_string()),
            std::io::ErrorKind::AlreadyExists => StorageError::AlreadyExists(path.to_string()),
            _ => StorageError::Backend {
                path: path.to_string(),
                message: err.to_string(),
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Where a store keeps its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A directory on the local filesystem.
    Fs(PathBuf),
    /// Process memory, shared by every store opened with the same name (so a
    /// repository re-registered under the same name finds its data again).
    Memory(String),
    /// An S3 bucket (or an S3-compatible service at `endpoint`).
    S3(S3Config),
    /// An Azure Blob Storage container.
    Azure(AzureConfig),
    /// A Google Cloud Storage bucket (or an emulator at `endpoint`).
    Gcs(GcsConfig),
}

/// Where and how to reach a GCS bucket. Prints without its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct GcsConfig {
    pub bucket: String,
    pub root: String,
    pub endpoint: Option<String>,
    /// A service account's JSON key; `None` sends unsigned requests, which
    /// only emulators and public buckets accept.
    pub credentials_json: Option<Zeroizing<String>>,
    /// The service ignores `ifGenerationMatch`, so create-if-absent is done
    /// here (a check then a write, serialised in this process). Safe only
    /// when this process is the repository's sole writer at any moment,
    /// which the service layer guarantees across replicas.
    pub emulate_create_if_absent: bool,
}

impl std::fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("endpoint", &self.endpoint)
            .field(
                "credentials_json",
                &self.credentials_json.as_ref().map(|_| "[redacted]"),
            )
            .field("emulate_create_if_absent", &self.emulate_create_if_absent)
            .finish()
    }
}

/// Where and how to reach an Azure Blob container. Prints without its key.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureConfig {
    pub container: String,
    pub root: String,
    /// `https://<account>.blob.core.windows.net`, or an emulator's URL.
    pub endpoint: String,
    pub account: String,
    pub key: Zeroizing<String>,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("container", &self.container)
            .field("root", &self.root)
            .field("endpoint", &self.endpoint)
            .field("account", &self.account)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Where and how to reach an S3 bucket. Prints without its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Prefix of every object, like Elasticsearch's `base_path`.
    pub root: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key: Zeroizing<String>,
    pub secret_key: Zeroizing<String>,
    /// Virtual-host style requests (`bucket.host`) instead of path style.
    pub virtual_host: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &"[redacted]")
            .field("secret_key", &"[redacted]")
            .finish()
    }
}

const OCTET_STREAM: &str = "application/octet-stream";

/// Limits for the layers stacked on every operator.
#[derive(Debug, Clone)]
pub struct Limits {
    pub retries: usize,
    /// First retry delay; it doubles (with jitter) up to 20 s, like the
    /// AWS SDK's standard retry mode.
    pub retry_min_delay: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            retries: 4,
            retry_min_delay: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
            concurrency: 64,
        }
    }
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Path relative to the store root, without a leading slash.
    pub path: String,
    pub size: u64,
}

/// A handle to one storage location. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    op: Operator,
    backend: Backend,
    /// Serialise create-if-absent where the service cannot (memory stores,
    /// and GCS services that ignore generation preconditions).
    write_locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

fn memory_registry() -> &'static Mutex<HashMap<String, Store>> {
    static REG: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Store {
    /// Builds a store and stacks the layers, innermost first: a concurrency
    /// limit next to the service (so retries do not multiply connections), a
    /// timeout per attempt, retries with jitter around that, and logging
    /// outermost so each logical operation is logged once.
    pub fn open(backend: Backend, limits: &Limits) -> Result<Store> {
        if let Backend::Memory(name) = &backend {
            if let Some(existing) = memory_registry().lock().expect("registry lock").get(name) {
                return Ok(existing.clone());
            }
        }
        let op = match &backend {
            Backend::Fs(root) => {
                std::fs::create_dir_all(root)
                    .map_err(|e| StorageError::from_io(&root.display().to_string(), e))?;
                let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
                Operator::new(builder)
            }
            Backend::Memory(_) => Operator::new(opendal::services::Memory::default()),
            Backend::Azure(c) => {
                install_http();
                let b = opendal::services::Azblob::default()
                    .container(&c.container)
                    .root(&format!("/{}", c.root.trim_matches('/')))
                    .endpoint(&c.endpoint)
                    .account_name(&c.account)
                    .account_key(&c.key);
                Operator::new(b)
            }
            Backend::Gcs(c) => {
                install_http();
                use base64::Engine;
                // No metadata server, no ambient configuration: credentials
                // come only from the keystore.
                let mut b = opendal::services::Gcs::default()
                    .bucket(&c.bucket)
                    .root(&format!("/{}", c.root.trim_matches('/')))
                    .disable_vm_metadata()
                    .disable_config_load();
                if let Some(e) = &c.endpoint {
                    b = b.endpoint(e);
                }
                b = match &c.credentials_json {
                    Some(json) => b.credential(
                        &base64::engine::general_purpose::STANDARD.encode(json.as_bytes()),
                    ),
                    None => b.skip_signature(),
                };
                Operator::new(b)
            }
            Backend::S3(c) => {
                install_http();
                // Credentials come only from the configuration: no profile
                // files, no instance metadata service.
                let mut b = opendal::services::S3::default()
                    .bucket(&c.bucket)
                    .root(&format!("/{}", c.root.trim_matches('/')))
                    .region(&c.region)
                    .access_key_id(&c.access_key)
                    .secret_access_key(&c.secret_key)
                    .disable_config_load()
                    .disable_ec2_metadata();
                if let Some(e) = &c.endpoint {
                    b = b.endpoint(e);
                }
                if c.virtual_host {
                    b = b.enable_virtual_host_style();
                }
                Operator::new(b)
            }
        }
        .map_err(|e| StorageError::from_opendal("/", e))?
        .layer(ConcurrentLimitLayer::new(limits.concurrency))
        .layer(TimeoutLayer::new().with_timeout(limits.timeout))
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(limits.retry_min_delay)
                .with_max_delay(std::time::Duration::from_secs(20))
                .with_max_times(limits.retries),
        )
        .layer(LoggingLayer::default());
        let store = Store {
            op,
            backend: backend.clone(),
            write_locks: Arc::new((0..32).map(|_| tokio::sync::Mutex::new(())).collect()),
        };
        if let Backend::Memory(name) = backend {
            memory_registry()
                .lock()
                .expect("registry lock")
                .insert(name, store.clone());
        }
        Ok(store)
    }

    /// Create-if-absent for stores where this process is the only writer:
    /// a check then a write, under one of a few locks picked by name.
    async fn check_then_write(&self, path: &str, data: Bytes) -> Result<()> {
        let stripe = path
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
            % self.write_locks.len();
        let _guard = self.write_locks[stripe].lock().await;
        if self.exists(path).await? {
            return Err(StorageError::AlreadyExists(path.to_string()));
        }
        self.write(path, data).await
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Reads a whole object. Callers keep objects small (chunks are bounded).
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        let buf = self
            .op
            .read(path)
            .await
            .map_err(|e| StorageError::from_opendal(path, e))?;
        Ok(buf.to_bytes())
    }

    /// Reads `len` bytes at `offset`.
    pub async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let buf = self
            .op
            .read_with(path)
            .range(offset..offset + len)
            .await
            .map_err(|e| StorageError::from_opendal(path, e))?;
        Ok(buf.to_bytes())
    }

    /// Reads an object, or `None` when it does not exist.
    pub async fn read_opt(&self, path: &str) -> Result<Option<Bytes>> {
        match self.read(path).await {
            Ok(b) => Ok(Some(b)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes (or overwrites) an object, atomically: a reader sees the old
    /// or the new content, never a mix, even with several writers (on `fs`
    /// through a temporary file and `rename(2)`, since OpenDAL's in-place
    /// write lets concurrent writers interleave).
    pub async fn write(&self, path: &str, data: Bytes) -> Result<()> {
        match &self.backend {
            Backend::Fs(root) => {
                let target = root.join(path);
                blocking_fs(path, move || replace_file(&target, &data)).await
            }
            // Object stores replace whole objects atomically.
            Backend::Memory(_) | Backend::S3(_) | Backend::Azure(_) => {
                self.op
                    .write(path, data)
                    .await
                    .map_err(|e| StorageError::from_opendal(path, e))?;
                Ok(())
            }
            // An explicit content type: some GCS emulators refuse writes
            // without one.
            Backend::Gcs(_) => {
                self.op
                    .write_with(path, data)
                    .content_type(OCTET_STREAM)
                    .await
                    .map_err(|e| StorageError::from_opendal(path, e))?;
                Ok(())
            }
        }
    }

    /// Writes an object only if no object has that name; returns
    /// [`StorageError::AlreadyExists`] otherwise. Atomic against concurrent
    /// writers, and a reader sees either nothing or the whole object.
    pub async fn write_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        match &self.backend {
            Backend::Fs(root) => {
                let target = root.join(path);
                blocking_fs(path, move || link_new(&target, &data)).await
            }
            Backend::Memory(_) => self.check_then_write(path, data).await,
            Backend::Gcs(c) if c.emulate_create_if_absent => {
                self.check_then_write(path, data).await
            }
            // `ifGenerationMatch=0` (GCS) or `If-None-Match: *` (S3, Azure):
            // the service refuses when the name exists.
            Backend::Gcs(_) | Backend::S3(_) | Backend::Azure(_) => {
                let mut write = self.op.write_with(path, data.clone()).if_not_exists(true);
                if matches!(self.backend, Backend::Gcs(_)) {
                    write = write.content_type(OCTET_STREAM);
                }
                match write.await.map_err(|e| StorageError::from_opendal(path, e)) {
                    // A retried request can meet the object its own first
                    // attempt created, whose answer was lost: the same
                    // bytes (every sealed object has a random nonce) mean
                    // the create was ours.
                    Err(StorageError::AlreadyExists(p)) => match self.read_opt(path).await {
                        Ok(Some(found)) if found == data => Ok(()),
                        _ => Err(StorageError::AlreadyExists(p)),
                    },
                    other => other.map(|_| ()),
                }
            }
        }
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.op
            .exists(path)
            .await
            .map_err(|e| StorageError::from_opendal(path, e))
    }

    /// Size of an object, or `None` when it does not exist.
    pub async fn size(&self, path: &str) -> Result<Option<u64>> {
        match self.op.stat(path).await {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::from_opendal(path, e)),
        }
    }

    /// Lists every object under `prefix` (a directory path ending in `/`),
    /// recursively. A missing prefix lists nothing.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        Ok(self
            .list_entries(prefix, true)
            .await?
            .into_iter()
            .filter(|e| !e.path.ends_with('/'))
            .collect())
    }

    /// Lists what lies directly under `prefix`: objects, and directories
    /// (paths ending in `/`, size 0) without descending into them.
    pub async fn list_shallow(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.list_entries(prefix, false).await
    }

    async fn list_entries(&self, prefix: &str, recursive: bool) -> Result<Vec<Listed>> {
        let entries = match self.op.list_with(prefix).recursive(recursive).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::from_opendal(prefix, e)),
        };
        let own = prefix.trim_start_matches('/');
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.path().trim_start_matches('/').to_string();
            if path.contains(".tmp-") || path.is_empty() || path == own {
                continue;
            }
            if entry.metadata().is_dir() {
                if !recursive {
                    let path = if path.ends_with('/') {
                        path
                    } else {
                        format!("{path}/")
                    };
                    out.push(Listed { path, size: 0 });
                }
                continue;
            }
            let size = if entry.metadata().content_length() > 0 {
                entry.metadata().content_length()
            } else {
                self.size(&path).await?.unwrap_or(0)
            };
            out.push(Listed { path, size });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes an object; deleting a missing object succeeds, including
    /// one that another deleter removes at the same moment (OpenDAL's `fs`
    /// checks, then removes, and reports the loser of that race NotFound).
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.op.delete(path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(StorageError::from_opendal(path, e)),
            _ => Ok(()),
        }
    }

    /// Deletes everything under a directory prefix.
    pub async fn delete_all(&self, prefix: &str) -> Result<()> {
        for obj in self.list(prefix).await? {
            self.delete(&obj.path).await?;
        }
        if let Backend::Fs(root) = &self.backend {
            let _ = std::fs::remove_dir_all(root.join(prefix));
        }
        Ok(())
    }
}

/// Installs OpenDAL's HTTP transport once, for the cloud services.
fn install_http() {
    static HTTP: std::sync::Once = std::sync::Once::new();
    HTTP.call_once(opendal::install_default);
}

/// Runs blocking filesystem work for the object `path` off the async runtime.
async fn blocking_fs(
    path: &str,
    work: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Backend {
            path: path.to_string(),
            message: e.to_string(),
        })?
        .map_err(|e| StorageError::from_io(path, e))
}

/// Writes a fresh temporary file beside `target` and fsyncs it; returns
/// its path.
fn write_temp(target: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("object path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces `target` atomically with `data` (temporary file, then rename).
fn replace_file(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(target, data)?;
    std::fs::rename(&tmp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes `data` to a fresh temporary file beside `target`, fsyncs it, then
/// hard-links it to `target`; `link(2)` fails with `EEXIST` if the name is
/// taken, which makes the create atomic and all-or-nothing.
fn link_new(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(target, data)?;
    let result = std::fs::hard_link(&tmp, target);
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn racing_deletes_of_the_same_objects_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
        for round in 0..20 {
            let paths: Vec<String> = (0..50).map(|i| format!("r{round}/k/{i}")).collect();
            for p in &paths {
                store.write(p, Bytes::from_static(b"x")).await.unwrap();
            }
            let deleters: Vec<_> = (0..4)
                .map(|_| {
                    let (s, ps) = (store.clone(), paths.clone());
                    tokio::spawn(async move {
                        for p in ps {
                            s.delete(&p).await?;
                        }
                        Ok::<_, StorageError>(())
                    })
                })
                .collect();
            for d in deleters {
                d.await.unwrap().unwrap();
            }
        }
    }

    #[tokio::test]
    async fn fs_create_if_absent_has_one_winner_per_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
        for round in 0..20 {
            let path = format!("race/index-{round}");
            let mut tasks = Vec::new();
            for writer in 0..8 {
                let (s, p) = (store.clone(), path.clone());
                tasks.push(tokio::spawn(async move {
                    s.write_if_absent(&p, Bytes::from(format!("writer-{writer}")))
                        .await
                        .is_ok()
                }));
            }
            let mut winners = 0;
            for t in tasks {
                winners += t.await.unwrap() as usize;
            }
            assert_eq!(winners, 1, "round {round}");
            let content = store.read(&path).await.unwrap();
            assert!(content.starts_with(b"writer-"));
        }
        assert!(store.list("race/").await.unwrap().len() == 20);
    }

    #[tokio::test]
    async fn fs_overwrites_by_many_writers_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap();
        let mut tasks = Vec::new();
        for writer in 0..16usize {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..20 {
                    let body = format!("{writer}-{round}-").repeat(writer * 50 + 1);
                    s.write("hint", Bytes::from(body)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let last = String::from_utf8(store.read("hint").await.unwrap().to_vec()).unwrap();
        let unit = &last[..last.find('-').unwrap() + 1];
        let writer: usize = unit.trim_end_matches('-').parse().unwrap();
        let piece = &last[..last[unit.len()..].find('-').unwrap() + unit.len() + 1];
        assert_eq!(
            last,
            piece.repeat(writer * 50 + 1),
            "one writer's whole content"
        );
        assert_eq!(
            store.list("").await.unwrap().len(),
            1,
            "no temporary files left"
        );
    }

    #[tokio::test]
    async fn memory_stores_with_one_name_share_data() {
        let a = Store::open(Backend::Memory("shared-test".into()), &Limits::default()).unwrap();
        a.write("x", Bytes::from_static(b"1")).await.unwrap();
        let b = Store::open(Backend::Memory("shared-test".into()), &Limits::default()).unwrap();
        assert_eq!(b.read("x").await.unwrap(), Bytes::from_static(b"1"));
        assert!(matches!(
            b.write_if_absent("x", Bytes::new()).await,
            Err(StorageError::AlreadyExists(_))
        ));
        assert!(b.read_opt("missing").await.unwrap().is_none());
    }
}
