//! Runs: immutable files of fixed-size records, sorted by document key,
//! that say where the latest version of each document lives. A shard's
//! map ([`super::docmap`]) is a stack of them, newest last, merged as they
//! pile up; only a small index of each (the first key of every block of
//! [`BLOCK`] records) stays in memory.
//!
//! Runs live in the node's scratch directory as files removed as soon as
//! they are opened: the open handle is all that keeps one, so nothing is
//! left behind when the process stops, however it stops, and a run still
//! being read by a search outlives the merge that replaced it. They are
//! derived data, rebuilt from the segments at every start, and never
//! synced. All I/O here is blocking; callers run it off the async runtime.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::keys::DocKey;

/// Bytes of one record: key (16), version (8), offset (8), length (8),
/// segment ordinal (4), flags (4).
const RECORD: usize = 48;
/// Records per block: one block is read per probe.
const BLOCK: usize = 128;
/// Blocks read at a time by a lookup of many keys.
const SPAN: usize = 64;
/// Records read at a time when merging.
const MERGE_CHUNK: usize = 2048;

/// Where the version of a document with key `key` that a segment entry
/// holds lives, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rec {
    pub key: DocKey,
    pub version: u64,
    /// The segment's position in its shard's list of segments.
    pub segment: u32,
    pub offset: u64,
    pub len: u64,
    /// `false` for a deletion.
    pub live: bool,
}

impl Rec {
    fn encode(&self, out: &mut [u8]) {
        out[0..16].copy_from_slice(&self.key.0.to_le_bytes());
        out[16..24].copy_from_slice(&self.version.to_le_bytes());
        out[24..32].copy_from_slice(&self.offset.to_le_bytes());
        out[32..40].copy_from_slice(&self.len.to_le_bytes());
        out[40..44].copy_from_slice(&self.segment.to_le_bytes());
        out[44..48].copy_from_slice(&(self.live as u32).to_le_bytes());
    }

    fn decode(b: &[u8]) -> Rec {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Rec {
            key: DocKey(u128::from_le_bytes(b[0..16].try_into().expect("16 bytes"))),
            version: u64_at(16),
            offset: u64_at(24),
            len: u64_at(32),
            segment: u32::from_le_bytes(b[40..44].try_into().expect("4 bytes")),
            live: b[44] & 1 == 1,
        }
    }
}

/// One run: its file, its size and its in-memory block index.
pub(super) struct Run {
    file: File,
    count: usize,
    /// The first key of every block of [`BLOCK`] records.
    fences: Vec<DocKey>,
}

/// A file in `dir` that only its handle keeps (see the module documentation).
fn scratch_file(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".snapvault-run-{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Writes records, in key order, into a new run.
struct RunWriter {
    out: BufWriter<File>,
    count: usize,
    fences: Vec<DocKey>,
    last: Option<DocKey>,
}

impl RunWriter {
    fn new(dir: &Path) -> std::io::Result<RunWriter> {
        Ok(RunWriter {
            out: BufWriter::with_capacity(256 * 1024, scratch_file(dir)?),
            count: 0,
            fences: Vec::new(),
            last: None,
        })
    }

    fn push(&mut self, rec: &Rec) -> std::io::Result<()> {
        debug_assert!(self.last.is_none_or(|l| l < rec.key), "keys in order");
        self.last = Some(rec.key);
        if self.count % BLOCK == 0 {
            self.fences.push(rec.key);
        }
        let mut buf = [0u8; RECORD];
        rec.encode(&mut buf);
        self.out.write_all(&buf)?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> std::io::Result<Run> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Run {
            file,
            count: self.count,
            fences: self.fences,
        })
    }
}

impl Run {
    /// A run of `recs`, which must be sorted by key without duplicates.
    pub(super) fn write(dir: &Path, recs: &[Rec]) -> std::io::Result<Run> {
        let mut w = RunWriter::new(dir)?;
        for r in recs {
            w.push(r)?;
        }
        w.finish()
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Reads records `[first, first + n)`.
    fn read(&self, first: usize, n: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.resize(n * RECORD, 0);
        self.file.read_exact_at(buf, (first * RECORD) as u64)
    }

    /// Fills the empty slots of `out` whose keys this run holds. `keys`
    /// pairs each key with its slot and is sorted by key, so consecutive
    /// keys of one block cost one read; when there are many keys for the
    /// run's size (a segment's worth against a shard), blocks are read
    /// [`SPAN`] at a time, since nearly every block is needed anyway.
    pub(super) fn lookup(
        &self,
        keys: &[(DocKey, usize)],
        out: &mut [Option<Rec>],
    ) -> std::io::Result<()> {
        let span = if keys.len() * 8 >= self.fences.len() {
            SPAN
        } else {
            1
        };
        let mut buf = Vec::new();
        // Blocks [loaded.0, loaded.1) are in `buf`.
        let mut loaded = (0usize, 0usize);
        for &(key, slot) in keys {
            if out[slot].is_some() {
                continue;
            }
            let block = self.fences.partition_point(|f| *f <= key);
            if block == 0 {
                continue;
            }
            let block = block - 1;
            if !(loaded.0..loaded.1).contains(&block) {
                let end = (block + span).min(self.fences.len());
                let first = block * BLOCK;
                self.read(first, (end * BLOCK).min(self.count) - first, &mut buf)?;
                loaded = (block, end);
            }
            let from = (block - loaded.0) * BLOCK * RECORD;
            let to = (from + BLOCK * RECORD).min(buf.len());
            let recs = &buf[from..to];
            let (mut lo, mut hi) = (0usize, recs.len() / RECORD);
            while lo < hi {
                let mid = (lo + hi) / 2;
                let at = Rec::decode(&recs[mid * RECORD..(mid + 1) * RECORD]);
                match at.key.cmp(&key) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                    std::cmp::Ordering::Equal => {
                        out[slot] = Some(at);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// One run of `older` and `newer`, `newer`'s record winning where both
    /// hold a key. With `drop_deletions` (the result is a shard's oldest
    /// run, so nothing older can resurface), deletions are left out.
    pub(super) fn merge(
        dir: &Path,
        older: &Run,
        newer: &Run,
        drop_deletions: bool,
    ) -> std::io::Result<Run> {
        let mut w = RunWriter::new(dir)?;
        let (mut a, mut b) = (Cursor::new(older), Cursor::new(newer));
        let keep = |w: &mut RunWriter, r: Rec| {
            if r.live || !drop_deletions {
                w.push(&r)
            } else {
                Ok(())
            }
        };
        loop {
            match (a.peek()?, b.peek()?) {
                (None, None) => break,
                (Some(x), None) => {
                    keep(&mut w, x)?;
                    a.advance();
                }
                (None, Some(y)) => {
                    keep(&mut w, y)?;
                    b.advance();
                }
                (Some(x), Some(y)) => {
                    if x.key < y.key {
                        keep(&mut w, x)?;
                        a.advance();
                    } else {
                        if x.key == y.key {
                            a.advance();
                        }
                        keep(&mut w, y)?;
                        b.advance();
                    }
                }
            }
        }
        w.finish()
    }
}

/// Reads a run in order, [`MERGE_CHUNK`] records at a time.
struct Cursor<'a> {
    run: &'a Run,
    next: usize,
    buf: Vec<u8>,
    buf_first: usize,
}

impl<'a> Cursor<'a> {
    fn new(run: &'a Run) -> Cursor<'a> {
        Cursor {
            run,
            next: 0,
            buf: Vec::new(),
            buf_first: 0,
        }
    }

    fn peek(&mut self) -> std::io::Result<Option<Rec>> {
        if self.next >= self.run.count {
            return Ok(None);
        }
        let in_buf = self.buf.len() / RECORD;
        if self.next >= self.buf_first + in_buf || self.buf.is_empty() {
            let n = MERGE_CHUNK.min(self.run.count - self.next);
            self.run.read(self.next, n, &mut self.buf)?;
            self.buf_first = self.next;
        }
        let i = self.next - self.buf_first;
        Ok(Some(Rec::decode(&self.buf[i * RECORD..(i + 1) * RECORD])))
    }

    fn advance(&mut self) {
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: u128, version: u64, live: bool) -> Rec {
        Rec {
            key: DocKey(key),
            version,
            segment: version as u32,
            offset: key as u64 * 10,
            len: 7,
            live,
        }
    }

    fn all(run: &Run, keys: &[u128]) -> Vec<Option<Rec>> {
        let mut sorted: Vec<(DocKey, usize)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (DocKey(*k), i))
            .collect();
        sorted.sort();
        let mut out = vec![None; keys.len()];
        run.lookup(&sorted, &mut out).unwrap();
        out
    }

    #[test]
    fn every_key_of_a_run_is_found_in_every_block_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Rec> = (0..3000u128).map(|k| rec(k * 2 + 1, 1, true)).collect();
        let run = Run::write(dir.path(), &recs).unwrap();
        assert_eq!(run.len(), 3000);
        // Many keys: blocks read a span at a time.
        let keys: Vec<u128> = (0..6002u128).collect();
        let found = all(&run, &keys);
        for (k, f) in keys.iter().zip(&found) {
            assert_eq!(f.is_some(), k % 2 == 1 && *k < 6000, "key {k}");
        }
        assert_eq!(found[7], Some(rec(7, 1, true)));
        // A few keys: one block each, the last one partly filled.
        let few = all(&run, &[0, 7, 2561, 5999, 6001]);
        assert_eq!(
            few,
            vec![
                None,
                Some(rec(7, 1, true)),
                Some(rec(2561, 1, true)),
                Some(rec(5999, 1, true)),
                None
            ]
        );
        // The file is already gone from the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_merge_keeps_the_newer_record_and_drops_deletions_only_at_the_bottom() {
        let dir = tempfile::tempdir().unwrap();
        let older: Vec<Rec> = (0..3000u128).map(|k| rec(k, 1, true)).collect();
        let newer: Vec<Rec> = (2990..3010u128).map(|k| rec(k, 2, k % 2 == 0)).collect();
        let (o, n) = (
            Run::write(dir.path(), &older).unwrap(),
            Run::write(dir.path(), &newer).unwrap(),
        );
        let kept = Run::merge(dir.path(), &o, &n, false).unwrap();
        assert_eq!(kept.len(), 3010);
        let found = all(&kept, &[5, 2991, 2992, 3009]);
        assert_eq!(found[0], Some(rec(5, 1, true)));
        assert_eq!(found[1], Some(rec(2991, 2, false)));
        assert_eq!(found[2], Some(rec(2992, 2, true)));
        assert_eq!(found[3], Some(rec(3009, 2, false)));
        let bottom = Run::merge(dir.path(), &o, &n, true).unwrap();
        assert_eq!(bottom.len(), 3010 - 10);
        assert_eq!(all(&bottom, &[2991])[0], None);
    }
}
