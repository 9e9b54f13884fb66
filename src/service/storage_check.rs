//! The storage check `_analyze` runs (see [`super::analyze`] for the
//! steps): planned from the request's seed, then five phases against a
//! raw store, every anomaly collected as an issue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rand::{Rng, RngCore, SeedableRng};

use super::analyze::{AnalyzeOutcome, AnalyzeRequest, BlobReport, OpSummary};
use crate::storage::{StorageError, Store};

struct Plan {
    sizes: Vec<u64>,
    rare: Vec<bool>,
    seeds: Vec<u64>,
}

/// Blob sizes, rare actions and content seeds, from the request's seed.
fn plan(req: &AnalyzeRequest) -> Plan {
    let mut rng = rand::rngs::StdRng::seed_from_u64(req.seed);
    let mut budget = req.max_total_data_size;
    let mut p = Plan {
        sizes: Vec::new(),
        rare: Vec::new(),
        seeds: Vec::new(),
    };
    for i in 0..req.blob_count {
        let rare = rng.gen_bool(req.rare_action_probability.clamp(0.0, 1.0));
        // An overwritten blob is written twice; both count to the limit,
        // and every later blob keeps room for two bytes.
        let copies = if rare { 2 } else { 1 };
        let reserved = (req.blob_count - i - 1) * 2;
        let size = rng
            .gen_range(1..=req.max_blob_size.max(1))
            .min(budget.saturating_sub(reserved) / copies)
            .max(1);
        budget = budget.saturating_sub(size * copies);
        p.sizes.push(size);
        p.rare.push(rare);
        p.seeds.push(rng.next_u64());
    }
    p
}

fn content(seed: u64, size: u64) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; size as usize];
    rng.fill_bytes(&mut buf);
    Bytes::from(buf)
}

/// Runs the analysis on `store` under `dir` (which it leaves behind:
/// callers delete it). Public so that a test can point it at a raw service.
pub async fn analyze(
    store: &Store,
    dir: &str,
    req: &AnalyzeRequest,
    emulated: bool,
) -> std::result::Result<AnalyzeOutcome, StorageError> {
    let p = plan(req);
    let mut out = AnalyzeOutcome {
        request: req.clone(),
        blob_path: dir.to_string(),
        write: OpSummary::default(),
        read: OpSummary::default(),
        write_wall: Duration::ZERO,
        read_wall: Duration::ZERO,
        write_phase_bytes: 0,
        listing_elapsed: Duration::ZERO,
        delete_elapsed: Duration::ZERO,
        register_elapsed: Duration::ZERO,
        register_retries: 0,
        register_emulated: emulated,
        blobs: Vec::new(),
        issues: Vec::new(),
    };
    let write_elapsed = write_phase(store, dir, req, &p, &mut out).await?;
    read_phase(store, dir, req, &p, &write_elapsed, &mut out).await?;
    listing_phase(store, dir, &mut out).await?;
    // 4. The contended register.
    let started = Instant::now();
    let (retries, issues) = register(store, dir, req).await?;
    out.register_elapsed = started.elapsed();
    out.register_retries = retries;
    out.issues.extend(issues);
    // 5. Delete, then nothing may be listed.
    let started = Instant::now();
    store.delete_all(dir).await?;
    out.delete_elapsed = started.elapsed();
    let left = store.list(dir).await?;
    if !left.is_empty() {
        out.issues.push(format!(
            "{} objects were still listed after deleting [{dir}]",
            left.len()
        ));
    }
    Ok(out)
}

/// Phase 1: writes every blob, `concurrency` at a time, half by
/// create-if-absent; returns each write's time.
async fn write_phase(
    store: &Store,
    dir: &str,
    req: &AnalyzeRequest,
    p: &Plan,
    out: &mut AnalyzeOutcome,
) -> std::result::Result<Vec<Duration>, StorageError> {
    let started = Instant::now();
    let writes = (0..p.sizes.len()).map(|i| {
        let name = format!("{dir}blob-{i}");
        let data = content(p.seeds[i], p.sizes[i]);
        async move {
            let started = Instant::now();
            if i % 2 == 0 {
                store.write_if_absent(&name, data).await?;
            } else {
                store.write(&name, data).await?;
            }
            Ok::<_, StorageError>(started.elapsed())
        }
    });
    let mut write_elapsed = Vec::new();
    let mut done = futures::stream::iter(writes).buffered(req.concurrency.max(1));
    while let Some(t) = done.next().await {
        write_elapsed.push(t?);
    }
    out.write_wall = started.elapsed();
    out.write_phase_bytes = p.sizes.iter().sum();
    Ok(write_elapsed)
}

/// Phase 2: reads every blob back, `concurrency` at a time (see [`blob_task`]).
async fn read_phase(
    store: &Store,
    dir: &str,
    req: &AnalyzeRequest,
    p: &Plan,
    write_elapsed: &[Duration],
    out: &mut AnalyzeOutcome,
) -> std::result::Result<(), StorageError> {
    let started = Instant::now();
    let jobs = (0..p.sizes.len()).map(|i| {
        let (size, rare, seed) = (p.sizes[i], p.rare[i], p.seeds[i]);
        let name = format!("{dir}blob-{i}");
        let elapsed = write_elapsed[i];
        async move { blob_task(store, name, size, rare, seed, elapsed).await }
    });
    let mut results = futures::stream::iter(jobs).buffer_unordered(req.concurrency.max(1));
    while let Some(r) = results.next().await {
        let r = r?;
        out.write.count += r.writes;
        out.write.bytes += r.written;
        out.write.elapsed += r.write_elapsed;
        out.read.count += r.reads;
        out.read.bytes += r.read_bytes;
        out.read.elapsed += r.read_elapsed;
        out.read.total_wait += r.read_elapsed;
        out.read.max_wait = out.read.max_wait.max(r.max_read);
        out.issues.extend(r.issues);
        out.blobs.push(r.report);
    }
    out.read_wall = started.elapsed();
    out.blobs.sort_by_key(|b| b.name.clone());
    Ok(())
}

/// Phase 3: the listing holds every blob with its final size.
async fn listing_phase(
    store: &Store,
    dir: &str,
    out: &mut AnalyzeOutcome,
) -> std::result::Result<(), StorageError> {
    let started = Instant::now();
    let listed = store.list(&format!("{dir}blob-")).await?;
    out.listing_elapsed = started.elapsed();
    if listed.len() != out.blobs.len() {
        out.issues.push(format!(
            "listing found {} blobs where {} were written",
            listed.len(),
            out.blobs.len()
        ));
    }
    for b in &out.blobs {
        match listed.iter().find(|l| l.path == b.name) {
            Some(l) if l.size == b.size => {}
            Some(l) => out.issues.push(format!(
                "listing reports [{}] with {} bytes, {} were written",
                b.name, l.size, b.size
            )),
            None => out.issues.push(format!("listing misses [{}]", b.name)),
        }
    }
    Ok(())
}

struct BlobResult {
    writes: u64,
    written: u64,
    write_elapsed: Duration,
    reads: u64,
    read_bytes: u64,
    read_elapsed: Duration,
    max_read: Duration,
    issues: Vec<String>,
    report: BlobReport,
}

/// Reads one written blob back (whole and by a range) and, when `rare`,
/// overwrites it while reading it.
async fn blob_task(
    store: &Store,
    name: String,
    size: u64,
    rare: bool,
    seed: u64,
    write_elapsed: Duration,
) -> std::result::Result<BlobResult, StorageError> {
    let data = content(seed, size);
    let mut r = BlobResult {
        writes: 1,
        written: size,
        write_elapsed,
        reads: 0,
        read_bytes: 0,
        read_elapsed: Duration::ZERO,
        max_read: Duration::ZERO,
        issues: Vec::new(),
        report: BlobReport {
            name: name.clone(),
            size,
            write_elapsed,
            overwritten: false,
            reads: 0,
        },
    };
    let timed_read = |range: Option<(u64, u64)>| {
        let name = name.clone();
        async move {
            let started = Instant::now();
            let got = match range {
                None => store.read(&name).await,
                Some((o, l)) => store.read_range(&name, o, l).await,
            };
            (got, started.elapsed())
        }
    };
    // Whole, then a range.
    let (whole, t) = timed_read(None).await;
    r.note_read(t);
    let whole = whole?;
    r.read_bytes += whole.len() as u64;
    if whole != data {
        r.issues.push(format!(
            "[{name}] read back {} bytes that differ from the {size} written",
            whole.len()
        ));
    }
    let offset = seed % size;
    let len = (size - offset).min(1 + seed % 65_536);
    let (part, t) = timed_read(Some((offset, len))).await;
    r.note_read(t);
    let part = part?;
    r.read_bytes += part.len() as u64;
    if part[..] != data[offset as usize..(offset + len) as usize] {
        r.issues.push(format!(
            "[{name}] range {offset}+{len} read back wrong bytes"
        ));
    }
    if rare {
        overwrite_while_reading(store, &name, size, seed, &data, &mut r).await?;
    }
    r.report.reads = r.reads;
    Ok(r)
}

/// Overwrites blob `name` while reading it: each read sees one version,
/// whole, and the read after sees the new one.
async fn overwrite_while_reading(
    store: &Store,
    name: &str,
    size: u64,
    seed: u64,
    data: &Bytes,
    r: &mut BlobResult,
) -> std::result::Result<(), StorageError> {
    let timed_read = || async move {
        let started = Instant::now();
        (store.read(name).await, started.elapsed())
    };
    let next = content(seed.wrapping_add(1), size);
    let started = Instant::now();
    let (written, (during, t)) = tokio::join!(store.write(name, next.clone()), timed_read());
    r.write_elapsed += started.elapsed();
    written?;
    r.writes += 1;
    r.written += size;
    r.report.overwritten = true;
    r.note_read(t);
    let during = during?;
    r.read_bytes += during.len() as u64;
    if during != *data && during != next {
        r.issues.push(format!(
            "[{name}] read during an overwrite returned a mix or a torn copy ({} bytes)",
            during.len()
        ));
    }
    let (after, t) = timed_read().await;
    r.note_read(t);
    if after? != next {
        r.issues.push(format!(
            "[{name}] read after an overwrite returned stale or wrong bytes"
        ));
    }
    r.report.size = size;
    Ok(())
}

impl BlobResult {
    fn note_read(&mut self, t: Duration) {
        self.reads += 1;
        self.read_elapsed += t;
        self.max_read = self.max_read.max(t);
    }
}

/// The contended register; returns the lost races and the anomalies.
async fn register(
    store: &Store,
    dir: &str,
    req: &AnalyzeRequest,
) -> std::result::Result<(u64, Vec<String>), StorageError> {
    let target = req.register_operation_count;
    let acked = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let path = |n: u64| format!("{dir}register/{n:012}");
    let workers = (0..req.concurrency.clamp(1, 16)).map(|w| {
        let (acked, retries) = (acked.clone(), retries.clone());
        async move {
            let mut issues = Vec::new();
            let mut guess = 0u64;
            while acked.load(Ordering::SeqCst) < target {
                // Find the current value by probing upwards from a guess.
                while store.exists(&path(guess + 1)).await? {
                    guess += 1;
                }
                let token = format!("w{w}-{}", uuid::Uuid::new_v4().simple());
                match store
                    .write_if_absent(&path(guess + 1), Bytes::from(token.clone()))
                    .await
                {
                    Ok(()) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                        let back = store.read(&path(guess + 1)).await?;
                        if back != token.as_bytes() {
                            issues.push(format!(
                                "register value {} was acknowledged to two writers: a create-if-absent overwrote an existing object",
                                guess + 1
                            ));
                        }
                        guess += 1;
                    }
                    Err(StorageError::AlreadyExists(_)) => {
                        retries.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, StorageError>(issues)
        }
    });
    let mut issues = Vec::new();
    for r in futures::future::join_all(workers).await {
        issues.extend(r?);
    }
    let acked = acked.load(Ordering::SeqCst);
    let stored = store.list(&format!("{dir}register/")).await?.len() as u64;
    if stored != acked {
        issues.push(format!(
            "the register acknowledged {acked} increments but holds {stored} values: increments were lost"
        ));
    }
    Ok((retries.load(Ordering::SeqCst), issues))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(seed: u64) -> AnalyzeRequest {
        AnalyzeRequest {
            blob_count: 50,
            concurrency: 4,
            max_blob_size: 1000,
            max_total_data_size: 20_000,
            register_operation_count: 10,
            rare_action_probability: 0.2,
            seed,
            timeout: Duration::from_secs(30),
            detailed: false,
        }
    }

    #[test]
    fn plans_are_seeded_and_bounded() {
        let (a, b) = (plan(&req(7)), plan(&req(7)));
        assert_eq!(a.sizes, b.sizes);
        assert_eq!(a.rare, b.rare);
        assert_ne!(plan(&req(8)).sizes, a.sizes);
        assert!(a.sizes.iter().all(|s| *s <= 1000));
        let written: u64 = a
            .sizes
            .iter()
            .zip(&a.rare)
            .map(|(s, r)| if *r { 2 * s } else { *s })
            .sum();
        assert!(written <= 20_000, "{written}");
        assert!(a.rare.iter().any(|r| *r));
    }
}
