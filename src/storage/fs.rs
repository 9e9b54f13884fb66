//! Atomic writes on a local directory, which OpenDAL's `fs` service does
//! not give: it writes in place (a reader could see half a file, and
//! concurrent writers interleave), and its create-if-absent through a
//! temporary directory is not safe under concurrency (measured, see
//! `shared/design/FORMAT.md`).
//!
//! So every write goes to a fresh temporary file beside the target, is
//! fsynced, then is renamed over the target (replace) or hard-linked to it
//! (create-if-absent: `link(2)` fails atomically when the name exists).
//! Temporary names start with `.tmp-`, which listings skip.

use std::path::{Path, PathBuf};

use super::error::{Result, StorageError};

/// The prefix of temporary files; listings never show such a name.
pub(super) const TEMP_PREFIX: &str = ".tmp-";

/// Runs blocking filesystem work for the object `path` off the async runtime.
pub(super) async fn blocking(
    path: &str,
    work: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| StorageError::Worker {
            path: path.to_string(),
            source,
        })?
        .map_err(|e| StorageError::from_io(path, e))
}

/// The names of the regular files directly in `dir` (none when it is
/// missing), read by one pass of `readdir` and nothing else. OpenDAL's
/// `fs` lister stats every entry after reading the directory, across await
/// points, and drops an entry removed before its stat: a listing taken
/// while names are added and removed can then hold none of them. Names
/// alone are what `readdir` returned, an object that outlived the listing
/// is among them, and temporary files are left out.
pub(super) fn names(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // `file_type` comes from the directory entry itself on Linux.
        if !name.starts_with(TEMP_PREFIX) && entry.file_type()?.is_file() {
            out.push(name);
        }
    }
    Ok(out)
}

/// Creates a fresh, empty temporary file beside `target` (and the
/// directories it needs); returns it and its path.
fn create_temp(target: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("object path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    Ok((file, tmp))
}

/// Writes a fresh temporary file beside `target` and fsyncs it; returns
/// its path.
fn write_temp(target: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let (mut f, tmp) = create_temp(target)?;
    match f.write_all(data).and_then(|()| f.sync_all()) {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces `target` atomically with `data` (temporary file, then rename).
pub(super) fn replace_file(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(target, data)?;
    std::fs::rename(&tmp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A file written piece by piece into a temporary file beside `target`,
/// renamed over it by [`PieceFile::finish`] without an fsync (readers see
/// the old or the new file, but a power loss may leave it empty until
/// [`sync_tree`] has run over it); dropped unfinished, the temporary file
/// is removed.
pub(super) struct PieceFile {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    target: PathBuf,
}

impl PieceFile {
    pub(super) fn create(target: PathBuf) -> std::io::Result<PieceFile> {
        let (file, tmp) = create_temp(&target)?;
        Ok(PieceFile {
            file: Some(file),
            tmp,
            target,
        })
    }

    pub(super) fn push(&mut self, piece: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file already finished"))?
            .write_all(piece)
    }

    pub(super) fn finish(mut self) -> std::io::Result<()> {
        drop(self.file.take());
        std::fs::rename(&self.tmp, &self.target)
    }
}

impl Drop for PieceFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes every file and directory under `dir` durable: the files are
/// fsynced by `workers` threads at once (the disk orders the writes; the
/// waits overlap), then the directories, deepest first, so each new name
/// is on disk once its parent's fsync returns.
pub(super) fn sync_tree(dir: &Path, workers: usize) -> std::io::Result<()> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        let entries = match std::fs::read_dir(&dirs[i]) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                i += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
        i += 1;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let sync_one = |path: &Path| std::fs::File::open(path)?.sync_all();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.clamp(1, files.len().max(1)))
            .map(|_| {
                scope.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = files.get(k) else {
                        return Ok::<(), std::io::Error>(());
                    };
                    sync_one(path)?;
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("an fsync worker panicked"))
    })?;
    for d in dirs.iter().rev() {
        match sync_one(d) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Writes `data` to a fresh temporary file beside `target`, fsyncs it, then
/// hard-links it to `target`; `link(2)` fails with `EEXIST` if the name is
/// taken, which makes the create atomic and all-or-nothing.
pub(super) fn link_new(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp(target, data)?;
    let result = std::fs::hard_link(&tmp, target);
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{Backend, Limits, StorageError, Store};

    fn fs_store(dir: &tempfile::TempDir) -> Store {
        Store::open(Backend::Fs(dir.path().to_path_buf()), &Limits::default()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn racing_deletes_of_the_same_objects_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
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
    async fn piece_writes_replace_atomically_and_persist_walks_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
        for shard in 0..3 {
            for file in 0..5 {
                let path = format!("indices/u/{shard}/seg-{file}");
                for content in ["old".to_string(), format!("{shard}-{file}")] {
                    let mut w = store.piece_writer(&path).await.unwrap();
                    w.push(content.into_bytes()).await.unwrap();
                    w.finish().await.unwrap();
                }
            }
        }
        store.persist("indices/u/").await.unwrap();
        // A prefix with nothing under it is durable already.
        store.persist("indices/none/").await.unwrap();
        assert_eq!(
            store.read("indices/u/2/seg-4").await.unwrap(),
            Bytes::from("2-4")
        );
        let names = super::names(&dir.path().join("indices/u/1")).unwrap();
        assert_eq!(names.len(), 5, "no temporary file is left: {names:?}");
    }

    #[tokio::test]
    async fn fs_create_if_absent_has_one_winner_per_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
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
        let store = fs_store(&dir);
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
}
