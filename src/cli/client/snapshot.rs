//! `snapvault snapshot create|list|status|restore|delete`.
//!
//! Waiting, two ways, each chosen for what the server shows:
//! - create polls `GET /_snapshot/{repo}/{snap}/_status` until the
//!   snapshot has left `STARTED`, then reads its final record: every
//!   replica sees a snapshot's state, and no request is held open for the
//!   whole snapshot (so the server's `request_timeout_secs` never ends the
//!   wait);
//! - restore holds one `wait_for_completion=true` request, whose answer is
//!   the only place a restore's outcome is told (a failed restore leaves
//!   no trace in `_recovery`), and polls `GET /_recovery` beside it for
//!   the bar.

use std::collections::BTreeSet;
use std::time::Instant;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::connection::Connection;
use super::error::ClientError;
use super::progress::{bytes_of, Interrupt, Progress, POLL};
use super::render::{millis, print_json, table, text};

#[derive(Subcommand, Debug)]
pub enum SnapshotAction {
    /// Take a snapshot, and wait for it with a progress bar.
    Create {
        /// The repository.
        repository: String,
        /// The snapshot's name.
        snapshot: String,
        /// Indices, comma-separated, wildcards allowed (default: every index).
        #[arg(long)]
        indices: Option<String>,
        /// Return once the server has accepted the snapshot.
        #[arg(long)]
        no_wait: bool,
        /// Keep what succeeded when shards fail (the snapshot ends PARTIAL).
        #[arg(long)]
        partial: bool,
        /// Leave out named indices that do not exist instead of refusing.
        #[arg(long)]
        ignore_unavailable: bool,
        /// User metadata, a JSON object.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
    /// List a repository's snapshots.
    List {
        /// The repository.
        repository: String,
    },
    /// Show a snapshot's shards, files and sizes (live while it runs).
    Status {
        /// The repository.
        repository: String,
        /// The snapshot's name.
        snapshot: String,
    },
    /// Restore a snapshot, and wait for it with a progress bar.
    Restore {
        /// The repository.
        repository: String,
        /// The snapshot's name.
        snapshot: String,
        /// Indices of the snapshot to restore, comma-separated (default: all).
        #[arg(long)]
        indices: Option<String>,
        /// A regular expression over the index names (with --rename-replacement).
        #[arg(long, requires = "rename_replacement")]
        rename_pattern: Option<String>,
        /// The new names: `restored_$1` refers to the pattern's groups.
        #[arg(long, requires = "rename_pattern")]
        rename_replacement: Option<String>,
        /// Return once the server has accepted the restore.
        #[arg(long)]
        no_wait: bool,
        /// Restore indices whose shards the snapshot lacks, partially.
        #[arg(long)]
        partial: bool,
        /// Leave out named indices the snapshot lacks instead of refusing.
        #[arg(long)]
        ignore_unavailable: bool,
    },
    /// Delete a snapshot.
    Delete {
        /// The repository.
        repository: String,
        /// The snapshot's name.
        snapshot: String,
    },
}

pub async fn run(c: &Connection, action: SnapshotAction) -> Result<(), ClientError> {
    match action {
        SnapshotAction::Create {
            repository,
            snapshot,
            indices,
            no_wait,
            partial,
            ignore_unavailable,
            metadata,
        } => {
            let mut body = json!({"partial": partial, "ignore_unavailable": ignore_unavailable});
            if let Some(i) = indices {
                body["indices"] = json!(i);
            }
            if let Some(m) = metadata {
                body["metadata"] = serde_json::from_str::<Value>(&m)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| ClientError::Usage("--metadata must be a JSON object".into()))?;
            }
            create(c, &repository, &snapshot, &body, no_wait).await
        }
        SnapshotAction::List { repository } => list(c, &repository).await,
        SnapshotAction::Status {
            repository,
            snapshot,
        } => status(c, &repository, &snapshot).await,
        SnapshotAction::Restore {
            repository,
            snapshot,
            indices,
            rename_pattern,
            rename_replacement,
            no_wait,
            partial,
            ignore_unavailable,
        } => {
            let mut body = json!({"partial": partial, "ignore_unavailable": ignore_unavailable});
            if let Some(i) = indices {
                body["indices"] = json!(i);
            }
            if let (Some(p), Some(r)) = (rename_pattern, rename_replacement) {
                body["rename_pattern"] = json!(p);
                body["rename_replacement"] = json!(r);
            }
            restore(c, &repository, &snapshot, &body, no_wait).await
        }
        SnapshotAction::Delete {
            repository,
            snapshot,
        } => {
            let answer = c
                .send(
                    Method::DELETE,
                    &["_snapshot", &repository, &snapshot],
                    &[],
                    None,
                )
                .await?;
            match c.json {
                true => print_json(&answer),
                false => println!("deleted snapshot [{repository}:{snapshot}]"),
            }
            Ok(())
        }
    }
}

/// Ctrl-C before the server answered the request that starts `what`.
fn interrupted_before(what: &str, follow: &str) -> ClientError {
    ClientError::Interrupted(format!(
        "interrupted before the server answered; {what} may have started: {follow}"
    ))
}

/// Ctrl-C while waiting for `what`, which the server keeps running.
fn stopped_waiting(what: &str, follow: &str) -> ClientError {
    ClientError::Interrupted(format!(
        "stopped waiting (Ctrl-C); {what} goes on on the server: {follow}"
    ))
}

async fn create(
    c: &Connection,
    repo: &str,
    snap: &str,
    body: &Value,
    no_wait: bool,
) -> Result<(), ClientError> {
    let interrupt = &mut Interrupt::listen();
    let what = format!("snapshot [{repo}:{snap}]");
    let follow = format!("snapvault snapshot status {repo} {snap}");
    let path = ["_snapshot", repo, snap];
    let accepted = interrupt
        .or(c.send(Method::PUT, &path, &[], Some(body)))
        .await
        .ok_or_else(|| interrupted_before(&what, &follow))??;
    if no_wait {
        match c.json {
            true => print_json(&accepted),
            false => println!("{what} started; follow it with: {follow}"),
        }
        return Ok(());
    }
    let mut progress = Progress::new(format!("snapshot {repo}:{snap}"));
    let status_path = ["_snapshot", repo, snap, "_status"];
    loop {
        let answer = interrupt
            .or(c.get(&status_path, &[]))
            .await
            .ok_or_else(|| stopped_waiting(&what, &follow))??;
        let s = &answer["snapshots"][0];
        show_snapshot_progress(&mut progress, s);
        if !matches!(s["state"].as_str(), Some("STARTED" | "IN_PROGRESS")) {
            break;
        }
        interrupt
            .or(tokio::time::sleep(POLL))
            .await
            .ok_or_else(|| stopped_waiting(&what, &follow))?;
    }
    progress.finish();
    let answer = c.get(&path, &[]).await?;
    let info = &answer["snapshots"][0];
    let state = info["state"].as_str().unwrap_or("UNKNOWN");
    if c.json {
        print_json(&json!({ "snapshot": info }));
    }
    let shards = &info["shards"];
    let summary = format!(
        "{what} {state} in {}: {} indices, {}/{} shards",
        millis(info["duration_in_millis"].as_i64().unwrap_or(0)),
        info["indices"].as_array().map_or(0, Vec::len),
        shards["successful"].as_u64().unwrap_or(0),
        shards["total"].as_u64().unwrap_or(0),
    );
    if state == "SUCCESS" {
        if !c.json {
            println!("{summary}");
        }
        return Ok(());
    }
    let mut why = vec![summary];
    if let Some(reason) = info["reason"].as_str() {
        why.push(format!("reason: {reason}"));
    }
    for f in info["failures"].as_array().into_iter().flatten() {
        why.push(format!(
            "shard [{}][{}]: {}",
            text(&f["index"]),
            text(&f["shard_id"]),
            text(&f["reason"])
        ));
    }
    Err(ClientError::Failed(why.join("\n  ")))
}

/// Bytes uploaded of those the snapshot must upload (`processed` is
/// absent once it equals `incremental`), files and shards.
fn show_snapshot_progress(progress: &mut Progress, s: &Value) {
    let stats = &s["stats"];
    let total = stats["incremental"]["size_in_bytes"].as_u64().unwrap_or(0);
    let total_files = stats["incremental"]["file_count"].as_u64().unwrap_or(0);
    let done = stats["processed"]["size_in_bytes"]
        .as_u64()
        .unwrap_or(total);
    let files = stats["processed"]["file_count"]
        .as_u64()
        .unwrap_or(total_files);
    let shards = &s["shards_stats"];
    progress.set(
        done,
        total,
        format!(
            "{} ({files}/{total_files} files), {}/{} shards",
            bytes_of(done, total),
            shards["done"].as_u64().unwrap_or(0),
            shards["total"].as_u64().unwrap_or(0),
        ),
    );
}

async fn list(c: &Connection, repo: &str) -> Result<(), ClientError> {
    let answer = c.get(&["_snapshot", repo, "_all"], &[]).await?;
    if c.json {
        print_json(&answer);
        return Ok(());
    }
    let snapshots = answer["snapshots"].as_array().cloned().unwrap_or_default();
    if snapshots.is_empty() {
        println!("no snapshots in [{repo}]");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| {
            vec![
                text(&s["snapshot"]),
                text(&s["state"]),
                text(&s["start_time"]),
                s["duration_in_millis"]
                    .as_i64()
                    .map(millis)
                    .unwrap_or_else(|| "-".into()),
                s["indices"]
                    .as_array()
                    .map_or("-".into(), |i| i.len().to_string()),
                format!(
                    "{}/{}",
                    s["shards"]["successful"].as_u64().unwrap_or(0),
                    s["shards"]["total"].as_u64().unwrap_or(0)
                ),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "snapshot",
                "state",
                "start_time",
                "duration",
                "indices",
                "shards"
            ],
            &rows
        )
    );
    Ok(())
}

async fn status(c: &Connection, repo: &str, snap: &str) -> Result<(), ClientError> {
    let answer = c.get(&["_snapshot", repo, snap, "_status"], &[]).await?;
    if c.json {
        print_json(&answer);
        return Ok(());
    }
    for s in answer["snapshots"].as_array().into_iter().flatten() {
        let stats = &s["stats"];
        let shards = &s["shards_stats"];
        println!(
            "snapshot [{}:{}] {}",
            text(&s["repository"]),
            text(&s["snapshot"]),
            text(&s["state"])
        );
        println!(
            "  shards: {} done, {} failed, {} total",
            shards["done"], shards["failed"], shards["total"]
        );
        println!(
            "  files: {} uploaded ({} of {} incremental), {} in total ({})",
            stats["processed"]["file_count"]
                .as_u64()
                .unwrap_or(stats["incremental"]["file_count"].as_u64().unwrap_or(0)),
            indicatif::HumanBytes(
                stats["processed"]["size_in_bytes"]
                    .as_u64()
                    .unwrap_or(stats["incremental"]["size_in_bytes"].as_u64().unwrap_or(0))
            ),
            indicatif::HumanBytes(stats["incremental"]["size_in_bytes"].as_u64().unwrap_or(0)),
            stats["total"]["file_count"],
            indicatif::HumanBytes(stats["total"]["size_in_bytes"].as_u64().unwrap_or(0)),
        );
        println!(
            "  time: {}",
            millis(stats["time_in_millis"].as_i64().unwrap_or(0))
        );
        let rows: Vec<Vec<String>> = s["indices"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, i)| {
                vec![
                    format!("  {name}"),
                    format!(
                        "{}/{}",
                        i["shards_stats"]["done"], i["shards_stats"]["total"]
                    ),
                    i["stats"]["total"]["file_count"].to_string(),
                    indicatif::HumanBytes(
                        i["stats"]["total"]["size_in_bytes"].as_u64().unwrap_or(0),
                    )
                    .to_string(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!("{}", table(&["  index", "shards", "files", "size"], &rows));
        }
    }
    Ok(())
}

async fn restore(
    c: &Connection,
    repo: &str,
    snap: &str,
    body: &Value,
    no_wait: bool,
) -> Result<(), ClientError> {
    let interrupt = &mut Interrupt::listen();
    let what = format!("the restore of [{repo}:{snap}]");
    let follow = "GET /_recovery (or /_cat/recovery?v) shows its progress".to_string();
    let path = ["_snapshot", repo, snap, "_restore"];
    if no_wait {
        let accepted = interrupt
            .or(c.send(Method::POST, &path, &[], Some(body)))
            .await
            .ok_or_else(|| interrupted_before(&what, &follow))??;
        match c.json {
            true => print_json(&accepted),
            false => println!("{what} started; {follow}"),
        }
        return Ok(());
    }
    // Recoveries of earlier restores of the same snapshot are not ours.
    let earlier = c
        .get(&["_recovery"], &[])
        .await
        .map(|r| ours(&r, repo, snap, &BTreeSet::new()).uuids)
        .unwrap_or_default();
    let started = Instant::now();
    let mut request = std::pin::pin!(c.send(
        Method::POST,
        &path,
        &[("wait_for_completion", "true")],
        Some(body)
    ));
    let mut progress = Progress::new(format!("restore {repo}:{snap}"));
    let mut tick = tokio::time::interval(POLL);
    let answer = loop {
        let step = interrupt
            .or(async {
                tokio::select! {
                    answer = request.as_mut() => Some(answer),
                    _ = tick.tick() => {
                        if let Ok(r) = c.get(&["_recovery"], &[]).await {
                            ours(&r, repo, snap, &earlier).show(&mut progress);
                        }
                        None
                    }
                }
            })
            .await
            .ok_or_else(|| stopped_waiting(&what, &follow))?;
        if let Some(answer) = step {
            break answer;
        }
    };
    progress.finish();
    let answer = answer.map_err(|e| match e {
        ClientError::Refused { status: 408, .. } => ClientError::Failed(format!(
            "the server ended the waiting request after its request_timeout_secs; {what} goes on there: {follow}"
        )),
        other => other,
    })?;
    if c.json {
        print_json(&answer);
        return Ok(());
    }
    let info = &answer["snapshot"];
    let indices: Vec<String> = info["indices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    println!(
        "restored snapshot [{repo}:{snap}] in {}: {} ({}/{} shards)",
        millis(started.elapsed().as_millis() as i64),
        if indices.is_empty() {
            "no indices".into()
        } else {
            indices.join(", ")
        },
        info["shards"]["successful"].as_u64().unwrap_or(0),
        info["shards"]["total"].as_u64().unwrap_or(0),
    );
    Ok(())
}

/// This restore's shards in a `_recovery` answer: those restored from
/// `repo:snap` by a restore (its `restoreUUID`) not in `earlier`.
#[derive(Default)]
struct Restoring {
    uuids: BTreeSet<String>,
    indices: usize,
    shards: u64,
    shards_done: u64,
    files: u64,
    files_done: u64,
    bytes: u64,
    bytes_done: u64,
}

fn ours(recovery: &Value, repo: &str, snap: &str, earlier: &BTreeSet<String>) -> Restoring {
    let mut r = Restoring::default();
    for index in recovery.as_object().into_iter().flatten().map(|(_, i)| i) {
        let mut counted = false;
        for shard in index["shards"].as_array().into_iter().flatten() {
            let source = &shard["source"];
            let uuid = source["restoreUUID"].as_str().unwrap_or("");
            if source["repository"] != repo || source["snapshot"] != snap || earlier.contains(uuid)
            {
                continue;
            }
            r.uuids.insert(uuid.to_string());
            counted = true;
            r.shards += 1;
            r.shards_done += u64::from(shard["stage"] == "DONE");
            r.files += shard["index"]["files"]["total"].as_u64().unwrap_or(0);
            r.files_done += shard["index"]["files"]["recovered"].as_u64().unwrap_or(0);
            r.bytes += shard["index"]["size"]["total_in_bytes"]
                .as_u64()
                .unwrap_or(0);
            r.bytes_done += shard["index"]["size"]["recovered_in_bytes"]
                .as_u64()
                .unwrap_or(0);
        }
        r.indices += usize::from(counted);
    }
    r
}

impl Restoring {
    fn show(&self, progress: &mut Progress) {
        progress.set(
            self.bytes_done,
            self.bytes,
            format!(
                "{} ({}/{} files), {}/{} shards of {} indices",
                bytes_of(self.bytes_done, self.bytes),
                self.files_done,
                self.files,
                self.shards_done,
                self.shards,
                self.indices
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_counts_only_its_own_shards_in_recovery() {
        let shard = |repo: &str, snap: &str, uuid: &str, stage: &str, done: u64| {
            json!({"stage": stage, "source": {"repository": repo, "snapshot": snap, "restoreUUID": uuid},
                   "index": {"files": {"total": 4, "recovered": done / 10}, "size": {"total_in_bytes": 100, "recovered_in_bytes": done}}})
        };
        let recovery = json!({
            "restored_a": {"shards": [shard("r", "s", "new", "INDEX", 40), shard("r", "s", "new", "DONE", 100)]},
            "a": {"shards": [shard("r", "s", "old", "DONE", 100)]},
            "other": {"shards": [shard("r", "t", "x", "INDEX", 10)]},
        });
        let earlier = BTreeSet::from(["old".to_string()]);
        let r = ours(&recovery, "r", "s", &earlier);
        assert_eq!(r.uuids, BTreeSet::from(["new".to_string()]));
        assert_eq!((r.indices, r.shards, r.shards_done), (1, 2, 1));
        assert_eq!(
            (r.bytes_done, r.bytes, r.files_done, r.files),
            (140, 200, 14, 8)
        );
    }
}
