//! [`Store`]: one storage location, and everything the rest of snapvault
//! does with objects (read, write, list, delete) on whichever backend.
//!
//! Paths are relative to the store's root, without a leading slash.
//! Create-if-absent lives in [`super::conditional`], atomic `fs` writes in
//! [`super::fs`]; this file must not know about formats or encryption.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use opendal::{ErrorKind, Operator};

use super::backend::Backend;
use super::error::{Result, StorageError};
use super::operator::{self, Limits};

/// Some GCS emulators refuse writes without an explicit content type.
pub(super) const OCTET_STREAM: &str = "application/octet-stream";

/// How many locks serialise create-if-absent where the service cannot.
const WRITE_LOCK_STRIPES: usize = 32;

/// An object being written piece by piece ([`Store::piece_writer`]).
pub struct PieceWriter {
    store: Store,
    path: String,
    sink: Sink,
    /// Bytes pushed so far (counted as written when the object is in place).
    written: usize,
}

enum Sink {
    /// `None` only while a piece is being written off the runtime.
    File(Option<super::fs::PieceFile>),
    Gather(Vec<u8>),
}

impl PieceWriter {
    /// Appends a piece.
    pub async fn push(&mut self, piece: Vec<u8>) -> Result<()> {
        self.written += piece.len();
        match &mut self.sink {
            Sink::Gather(buf) => {
                buf.extend_from_slice(&piece);
                Ok(())
            }
            Sink::File(slot) => {
                let mut file = slot.take().ok_or_else(|| {
                    StorageError::from_io(
                        &self.path,
                        std::io::Error::other("an earlier piece failed"),
                    )
                })?;
                let (file, written) = tokio::task::spawn_blocking(move || {
                    let r = file.push(&piece);
                    (file, r)
                })
                .await
                .map_err(|source| StorageError::Worker {
                    path: self.path.clone(),
                    source,
                })?;
                written.map_err(|e| StorageError::from_io(&self.path, e))?;
                *slot = Some(file);
                Ok(())
            }
        }
    }

    /// Puts the object in place: readers see all of it or what was there.
    pub async fn finish(self) -> Result<()> {
        match self.sink {
            Sink::Gather(buf) => self.store.write(&self.path, Bytes::from(buf)).await,
            Sink::File(file) => {
                let file = file.ok_or_else(|| {
                    StorageError::from_io(
                        &self.path,
                        std::io::Error::other("an earlier piece failed"),
                    )
                })?;
                let write = super::fs::blocking(&self.path, move || file.finish());
                super::metrics::counted_fs_write(&self.store.backend, self.written, write).await
            }
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
    pub(super) op: Operator,
    pub(super) backend: Backend,
    /// Serialise create-if-absent where the service cannot (memory stores,
    /// and GCS services that ignore generation preconditions).
    pub(super) write_locks: Arc<Vec<tokio::sync::Mutex<()>>>,
    /// The highest floor of each generation chain seen by this process.
    pub(super) floors: Arc<Mutex<HashMap<String, u64>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Memory stores by name, so that every store opened with one name shares
/// its objects for the life of the process.
fn memory_registry() -> &'static Mutex<HashMap<String, Store>> {
    static REG: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Store {
    /// Builds a store: 1. a memory store already opened under this name is
    /// returned as it is; 2. an `fs` root is created; 3. the service's
    /// operator gets the layers of [`operator::layered`].
    pub fn open(backend: Backend, limits: &Limits) -> Result<Store> {
        if let Backend::Memory(name) = &backend {
            if let Some(existing) = memory_registry().lock().expect("registry lock").get(name) {
                return Ok(existing.clone());
            }
        }
        if let Backend::Fs(root) = &backend {
            std::fs::create_dir_all(root)
                .map_err(|e| StorageError::from_io(&root.display().to_string(), e))?;
        }
        let op = operator::service(&backend).map_err(|e| StorageError::from_opendal("/", e))?;
        let store = Store {
            op: operator::layered(op, limits, &backend),
            backend: backend.clone(),
            floors: Default::default(),
            write_locks: Arc::new(
                (0..WRITE_LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
        };
        if let Backend::Memory(name) = backend {
            memory_registry()
                .lock()
                .expect("registry lock")
                .insert(name, store.clone());
        }
        Ok(store)
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
        let written = match &self.backend {
            Backend::Fs(root) => {
                let (target, len) = (root.join(path), data.len());
                let write =
                    super::fs::blocking(path, move || super::fs::replace_file(&target, &data));
                return super::metrics::counted_fs_write(&self.backend, len, write).await;
            }
            // Object stores replace whole objects atomically.
            Backend::Memory(_) | Backend::S3(_) | Backend::Azure(_) => {
                self.op.write(path, data).await
            }
            Backend::Gcs(_) => {
                self.op
                    .write_with(path, data)
                    .content_type(OCTET_STREAM)
                    .await
            }
        };
        written.map_err(|e| StorageError::from_opendal(path, e))?;
        Ok(())
    }

    /// Starts an object written piece by piece, without waiting for the
    /// disk where that is a choice (`fs`: no fsync; a later
    /// [`Store::persist`] makes many such objects durable together before
    /// anything refers to them): on `fs` each piece goes to a temporary
    /// file as it comes (no buffer of the whole object), elsewhere the
    /// pieces are gathered and written at [`PieceWriter::finish`], durable
    /// when it returns.
    pub async fn piece_writer(&self, path: &str) -> Result<PieceWriter> {
        let sink = match &self.backend {
            Backend::Fs(root) => {
                let target = root.join(path);
                let file =
                    tokio::task::spawn_blocking(move || super::fs::PieceFile::create(target))
                        .await
                        .map_err(|source| StorageError::Worker {
                            path: path.to_string(),
                            source,
                        })?
                        .map_err(|e| StorageError::from_io(path, e))?;
                Sink::File(Some(file))
            }
            _ => Sink::Gather(Vec::new()),
        };
        Ok(PieceWriter {
            store: self.clone(),
            path: path.to_string(),
            sink,
            written: 0,
        })
    }

    /// Makes every object under `prefix` durable (`fs`: fsync of each file
    /// and directory, several at once); nothing to do on object stores.
    pub async fn persist(&self, prefix: &str) -> Result<()> {
        match &self.backend {
            Backend::Fs(root) => {
                let dir = root.join(prefix.trim_end_matches('/'));
                super::fs::blocking(prefix, move || super::fs::sync_tree(&dir, 8)).await
            }
            _ => Ok(()),
        }
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.op
            .exists(path)
            .await
            .map_err(|e| StorageError::from_opendal(path, e))
    }

    /// Records `listed` as a floor of chain `dir` and returns the highest
    /// this process has seen for it.
    pub(super) fn highest_floor(&self, dir: &str, listed: u64) -> u64 {
        let mut floors = self.floors.lock().expect("floors");
        let seen = floors.entry(dir.to_string()).or_insert(0);
        *seen = (*seen).max(listed);
        *seen
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

    /// The names (paths, sorted) of the objects directly under `prefix`, a
    /// directory path ending in `/`, as one snapshot: an object that exists
    /// before the listing and outlives it is in it, whatever else is added
    /// or removed meanwhile. On `fs` this is one `readdir` (see
    /// [`super::fs::names`]); the object stores answer a listing from one
    /// index. OpenDAL's memory service stats each name after its scan and
    /// drops the ones removed meanwhile, so the same holds there only for
    /// objects that outlive the listing; what the generation chains need
    /// beyond that on memory, the per-process floor gives them.
    pub async fn list_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = match &self.backend {
            Backend::Fs(root) => {
                let dir = root.join(prefix);
                let names = tokio::task::spawn_blocking(move || super::fs::names(&dir))
                    .await
                    .map_err(|source| StorageError::Worker {
                        path: prefix.to_string(),
                        source,
                    })?
                    .map_err(|e| StorageError::from_io(prefix, e))?;
                names.into_iter().map(|n| format!("{prefix}{n}")).collect()
            }
            _ => self
                .list_entries(prefix, false)
                .await?
                .into_iter()
                .filter(|e| !e.path.ends_with('/'))
                .map(|e| e.path)
                .collect::<Vec<_>>(),
        };
        names.sort();
        Ok(names)
    }

    /// Lists what lies directly under `prefix`: objects, and directories
    /// (paths ending in `/`, size 0) without descending into them.
    pub async fn list_shallow(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.list_entries(prefix, false).await
    }

    /// The entries under `prefix`, sorted by path, without the prefix
    /// itself and without temporary files; directories only when shallow.
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
            if path.contains(super::fs::TEMP_PREFIX) || path.is_empty() || path == own {
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
            let size = match entry.metadata().content_length() {
                0 => self.size(&path).await?.unwrap_or(0),
                listed => listed,
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// An object that exists before a listing begins and is not removed
    /// until it ends is in the listing, whatever else is added and removed
    /// meanwhile: the guarantee a generation chain's floor relies on (an
    /// object added or removed during the listing may or may not be in it:
    /// POSIX leaves that unspecified for `readdir`, and on `fs` a listing
    /// racing one addition and one removal was seen to hold neither).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_listing_holds_every_object_that_outlives_it_while_others_churn() {
        let dir = tempfile::tempdir().unwrap();
        let stores = [
            Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap(),
            Store::open(
                Backend::Memory(format!("outlives-{}", uuid::Uuid::new_v4())),
                &Limits::default(),
            )
            .unwrap(),
        ];
        for (which, store) in stores.into_iter().enumerate() {
            store
                .write("f/keep", Bytes::from_static(b"k"))
                .await
                .unwrap();
            store.write("f/0", Bytes::from_static(b"x")).await.unwrap();
            let writer = {
                let s = store.clone();
                tokio::spawn(async move {
                    for i in 1..3000u32 {
                        s.write(&format!("f/{i}"), Bytes::from_static(b"x"))
                            .await
                            .unwrap();
                        s.delete(&format!("f/{}", i - 1)).await.unwrap();
                    }
                })
            };
            let (mut lists, mut missed) = (0, 0);
            while !writer.is_finished() {
                lists += 1;
                let listed = store.list("f/").await.unwrap();
                missed += !listed.iter().any(|o| o.path == "f/keep") as u32;
            }
            writer.await.unwrap();
            assert_eq!(
                missed, 0,
                "store {which}: {missed} of {lists} listings missed it"
            );
        }
    }
}
