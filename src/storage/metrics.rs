//! Storage traffic, counted per location: bytes and objects read and
//! written, deletes, errors and retries, for whoever renders them (the
//! Prometheus exposition, `_nodes/stats`).
//!
//! Counted where the traffic passes: [`CountingLayer`], the outermost of
//! the OpenDAL layers (so a logical operation counts once, after its
//! retries), the retry layer's notification for each retry, and
//! [`counted_fs_write`] for the `fs` writes that bypass OpenDAL (see
//! [`super::fs`]). A location's counters are shared by every store opened
//! on it, for the life of the process: a repository re-registered, or
//! reopened after a settings change, keeps counting on the same numbers.
//!
//! This module knows locations, not repositories: which repository lives
//! at a location is the service layer's knowledge, joined at scrape time.
//! It must stay cheap: a few relaxed atomics per operation, and a lock
//! only for the rare error or retry.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use opendal::raw::*;
use opendal::{Buffer, BytesRange, Capability, Metadata, OperationContext};

use super::backend::Backend;
use super::error::StorageError;

/// Where a store keeps its objects, as a key: the backend's kind (`fs`,
/// `memory`, `s3`, `gcs`, `azure`) and its place (a directory, a memory
/// store's name, or endpoint, bucket and prefix). Never a credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub backend: &'static str,
    place: String,
}

impl Location {
    pub fn of(backend: &Backend) -> Location {
        let (kind, place) = match backend {
            Backend::Fs(root) => ("fs", root.display().to_string()),
            Backend::Memory(name) => ("memory", name.clone()),
            Backend::S3(c) => {
                let endpoint = c.endpoint.as_deref().unwrap_or_default();
                ("s3", format!("{endpoint}|{}|{}", c.bucket, c.root))
            }
            Backend::Gcs(c) => {
                let endpoint = c.endpoint.as_deref().unwrap_or_default();
                ("gcs", format!("{endpoint}|{}|{}", c.bucket, c.root))
            }
            Backend::Azure(c) => (
                "azure",
                format!("{}|{}|{}", c.endpoint, c.container, c.root),
            ),
        };
        Location {
            backend: kind,
            place,
        }
    }
}

/// One location's counters.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    reads: AtomicU64,
    read_bytes: AtomicU64,
    writes: AtomicU64,
    written_bytes: AtomicU64,
    write_nanos: AtomicU64,
    deletes: AtomicU64,
    /// Failed operations by (operation, OpenDAL error kind).
    errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Retries by operation.
    retries: Mutex<BTreeMap<&'static str, u64>>,
}

/// A location's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Read requests that succeeded: OpenDAL reads an object in one or
    /// more (on `fs`, a whole object takes two), so this counts requests,
    /// not objects.
    pub reads: u64,
    pub read_bytes: u64,
    /// Objects written whole (a create refused because the name exists
    /// counts as an error, not a write).
    pub writes: u64,
    pub written_bytes: u64,
    /// Time spent writing objects, from opening the write to its close.
    pub write_millis: u64,
    pub deletes: u64,
    /// (operation, error kind, count).
    pub errors: Vec<(&'static str, &'static str, u64)>,
    /// (operation, count).
    pub retries: Vec<(&'static str, u64)>,
}

impl Traffic {
    fn read(&self, bytes: usize) {
        self.read_bytes.fetch_add(bytes as u64, Relaxed);
    }

    fn written(&self, bytes: u64, started: Instant) {
        self.writes.fetch_add(1, Relaxed);
        self.written_bytes.fetch_add(bytes, Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.write_nanos.fetch_add(nanos, Relaxed);
    }

    fn error(&self, op: Operation, kind: &'static str) {
        *self
            .errors
            .lock()
            .expect("error counters")
            .entry((op.into_static(), kind))
            .or_default() += 1;
    }

    fn failed<T>(&self, op: Operation, r: opendal::Result<T>) -> opendal::Result<T> {
        if let Err(e) = &r {
            self.error(op, e.kind().into_static());
        }
        r
    }

    pub(super) fn retried(&self, op: Operation) {
        *self
            .retries
            .lock()
            .expect("retry counters")
            .entry(op.into_static())
            .or_default() += 1;
    }

    fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            reads: self.reads.load(Relaxed),
            read_bytes: self.read_bytes.load(Relaxed),
            writes: self.writes.load(Relaxed),
            written_bytes: self.written_bytes.load(Relaxed),
            write_millis: self.write_nanos.load(Relaxed) / 1_000_000,
            deletes: self.deletes.load(Relaxed),
            errors: self
                .errors
                .lock()
                .expect("error counters")
                .iter()
                .map(|(&(op, kind), &n)| (op, kind, n))
                .collect(),
            retries: self
                .retries
                .lock()
                .expect("retry counters")
                .iter()
                .map(|(&op, &n)| (op, n))
                .collect(),
        }
    }
}

/// Every location's counters in this process.
fn registry() -> &'static Mutex<HashMap<Location, Arc<Traffic>>> {
    static REG: OnceLock<Mutex<HashMap<Location, Arc<Traffic>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// The counters of `backend`'s location, created on first use.
pub(super) fn traffic_of(backend: &Backend) -> Arc<Traffic> {
    registry()
        .lock()
        .expect("traffic registry")
        .entry(Location::of(backend))
        .or_default()
        .clone()
}

/// Every location this process has opened a store on, with its counters.
pub fn traffic() -> Vec<(Location, TrafficSnapshot)> {
    let mut all: Vec<_> = registry()
        .lock()
        .expect("traffic registry")
        .iter()
        .map(|(l, t)| (l.clone(), t.snapshot()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Counts an `fs` write done outside OpenDAL (`bytes` long) once it ends.
pub(super) async fn counted_fs_write(
    backend: &Backend,
    bytes: usize,
    write: impl Future<Output = super::Result<()>>,
) -> super::Result<()> {
    let (traffic, started) = (traffic_of(backend), Instant::now());
    let result = write.await;
    match &result {
        Ok(()) => traffic.written(bytes as u64, started),
        Err(StorageError::AlreadyExists(_)) => traffic.error(Operation::Write, "AlreadyExists"),
        Err(_) => traffic.error(Operation::Write, "Unexpected"),
    }
    result
}

/// The OpenDAL layer that counts a location's traffic.
#[derive(Debug, Clone)]
pub(super) struct CountingLayer {
    pub(super) traffic: Arc<Traffic>,
}

impl Layer for CountingLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(CountingService {
            inner,
            traffic: self.traffic.clone(),
        })
    }
}

#[derive(Debug)]
struct CountingService {
    inner: Servicer,
    traffic: Arc<Traffic>,
}

/// A reader, writer, lister or deleter of a counted service.
struct Counted<T> {
    inner: T,
    traffic: Arc<Traffic>,
    /// Bytes written so far, and since when (writers only).
    bytes: u64,
    started: Instant,
}

impl<T> Counted<T> {
    fn new(inner: T, traffic: &Arc<Traffic>) -> Counted<T> {
        Counted {
            inner,
            traffic: traffic.clone(),
            bytes: 0,
            started: Instant::now(),
        }
    }
}

impl Service for CountingService {
    type Reader = Counted<oio::Reader>;
    type Writer = Counted<oio::Writer>;
    type Lister = Counted<oio::Lister>;
    type Deleter = Counted<oio::Deleter>;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> opendal::Result<RpCreateDir> {
        let r = self.inner.create_dir(ctx, path, args).await;
        self.traffic.failed(Operation::CreateDir, r)
    }

    async fn stat(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpStat,
    ) -> opendal::Result<RpStat> {
        let r = self.inner.stat(ctx, path, args).await;
        self.traffic.failed(Operation::Stat, r)
    }

    fn read(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRead,
    ) -> opendal::Result<Self::Reader> {
        let r = self.inner.read(ctx, path, args);
        Ok(Counted::new(
            self.traffic.failed(Operation::Read, r)?,
            &self.traffic,
        ))
    }

    fn write(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpWrite,
    ) -> opendal::Result<Self::Writer> {
        let r = self.inner.write(ctx, path, args);
        Ok(Counted::new(
            self.traffic.failed(Operation::Write, r)?,
            &self.traffic,
        ))
    }

    fn delete(&self, ctx: &OperationContext) -> opendal::Result<Self::Deleter> {
        let r = self.inner.delete(ctx);
        Ok(Counted::new(
            self.traffic.failed(Operation::Delete, r)?,
            &self.traffic,
        ))
    }

    fn list(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpList,
    ) -> opendal::Result<Self::Lister> {
        let r = self.inner.list(ctx, path, args);
        Ok(Counted::new(
            self.traffic.failed(Operation::List, r)?,
            &self.traffic,
        ))
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> opendal::Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(
        &self,
        ctx: &OperationContext,
        to: &str,
        args: OpCompose,
    ) -> opendal::Result<Self::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> opendal::Result<RpRename> {
        let r = self.inner.rename(ctx, from, to, args).await;
        self.traffic.failed(Operation::Rename, r)
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> opendal::Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> opendal::Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

impl<R: oio::Read> oio::Read for Counted<R> {
    async fn open(
        &self,
        range: BytesRange,
    ) -> opendal::Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let r = self.inner.open(range).await;
        let (rp, stream) = self.traffic.failed(Operation::Read, r)?;
        self.traffic.reads.fetch_add(1, Relaxed);
        let stream = Counted::new(stream, &self.traffic);
        Ok((rp, Box::new(stream) as Box<dyn oio::ReadStreamDyn>))
    }

    async fn read(&self, range: BytesRange) -> opendal::Result<(RpRead, Buffer)> {
        let r = self.inner.read(range).await;
        let (rp, buf) = self.traffic.failed(Operation::Read, r)?;
        self.traffic.reads.fetch_add(1, Relaxed);
        self.traffic.read(buf.len());
        Ok((rp, buf))
    }
}

impl oio::ReadStream for Counted<Box<dyn oio::ReadStreamDyn>> {
    async fn read(&mut self) -> opendal::Result<Buffer> {
        let r = self.inner.read_dyn().await;
        let buf = self.traffic.failed(Operation::Read, r)?;
        self.traffic.read(buf.len());
        Ok(buf)
    }
}

impl<W: oio::Write> oio::Write for Counted<W> {
    async fn write(&mut self, bs: Buffer) -> opendal::Result<()> {
        let len = bs.len() as u64;
        let r = self.inner.write(bs).await;
        self.traffic.failed(Operation::Write, r)?;
        self.bytes += len;
        Ok(())
    }

    async fn copy_from(
        &mut self,
        path: &str,
        args: OpRead,
        range: BytesRange,
    ) -> opendal::Result<()> {
        let r = self.inner.copy_from(path, args, range).await;
        self.traffic.failed(Operation::Write, r)
    }

    async fn close(&mut self) -> opendal::Result<Metadata> {
        let r = self.inner.close().await;
        let meta = self.traffic.failed(Operation::Write, r)?;
        self.traffic.written(self.bytes, self.started);
        Ok(meta)
    }

    async fn abort(&mut self) -> opendal::Result<()> {
        self.inner.abort().await
    }
}

impl<L: oio::List> oio::List for Counted<L> {
    async fn next(&mut self) -> opendal::Result<Option<oio::Entry>> {
        let r = self.inner.next().await;
        self.traffic.failed(Operation::List, r)
    }
}

impl<D: oio::Delete> oio::Delete for Counted<D> {
    async fn delete(&mut self, path: &str, args: OpDelete) -> opendal::Result<()> {
        let r = self.inner.delete(path, args).await;
        self.traffic.failed(Operation::Delete, r)?;
        self.traffic.deletes.fetch_add(1, Relaxed);
        Ok(())
    }

    async fn close(&mut self) -> opendal::Result<()> {
        let r = self.inner.close().await;
        self.traffic.failed(Operation::Delete, r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Backend, Limits, Store};
    use super::*;
    use bytes::Bytes;

    fn counters(backend: &Backend) -> TrafficSnapshot {
        traffic_of(backend).snapshot()
    }

    #[tokio::test]
    async fn a_stores_reads_writes_deletes_and_errors_are_counted_on_its_location() {
        for backend in [
            Backend::Memory(format!("counted-{}", uuid::Uuid::new_v4())),
            Backend::Fs(tempfile::tempdir().unwrap().keep()),
        ] {
            let store = Store::open(backend.clone(), &Limits::default()).unwrap();
            store
                .write("a", Bytes::from_static(b"12345"))
                .await
                .unwrap();
            store
                .write_if_absent("b", Bytes::from_static(b"678"))
                .await
                .unwrap();
            assert!(store.write_if_absent("b", Bytes::new()).await.is_err());
            assert_eq!(store.read("a").await.unwrap().len(), 5);
            assert!(store.read_opt("missing").await.unwrap().is_none());
            store.delete("a").await.unwrap();
            let c = counters(&backend);
            assert_eq!((c.writes, c.written_bytes), (2, 8), "{backend:?}: {c:?}");
            assert_eq!(c.read_bytes, 5, "{backend:?}: {c:?}");
            assert!((1..=2).contains(&c.reads), "{backend:?}: {c:?}");
            assert_eq!(c.deletes, 1, "{backend:?}: {c:?}");
            assert!(
                c.errors.contains(&("read", "NotFound", 1)),
                "{backend:?}: {c:?}"
            );
            // The refused create: `link(2)` on fs, the check on memory.
            if matches!(backend, Backend::Fs(_)) {
                assert!(c.errors.contains(&("write", "AlreadyExists", 1)), "{c:?}");
            }
            let listed = traffic();
            assert!(listed
                .iter()
                .any(|(l, t)| *l == Location::of(&backend) && *t == c));
        }
    }

    #[test]
    fn locations_never_hold_credentials() {
        let shown = format!(
            "{:?}",
            Location::of(&Backend::Azure(super::super::AzureConfig {
                container: "ctr".into(),
                root: "base".into(),
                endpoint: "http://127.0.0.1:10000/acct".into(),
                account: "acct".into(),
                key: zeroize::Zeroizing::new("SECRET-KEY".into()),
            }))
        );
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("ctr") && shown.contains("azure"), "{shown}");
    }
}
