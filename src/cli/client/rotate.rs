//! `snapvault rotate-key <repo> [--key NAME] [--mode rewrap|reencrypt]`
//! and `rotate-key status <repo>`: `POST` and `GET
//! /_snapshot/{repo}/_rotate_key` (README, "Key rotation"). Waiting polls
//! the keyring's rotation record, which every replica reads, until its
//! phase is `completed` or `failed`; the rotation itself runs in the
//! background on the server whether anyone waits or not.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Value};

use super::connection::{CommonOptions, Connection};
use super::error::ClientError;
use super::progress::{bytes_of, percent, Interrupt, Progress, POLL};
use super::render::{millis, print_json, text};

#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true)]
pub struct RotateKeyCommand {
    #[command(flatten)]
    pub options: CommonOptions,
    #[command(subcommand)]
    pub status: Option<RotateKeyStatus>,
    #[command(flatten)]
    pub start: RotateArgs,
}

#[derive(Subcommand, Debug)]
pub enum RotateKeyStatus {
    /// Show the active and needed keys and the last rotation's progress.
    Status {
        /// The repository.
        repository: String,
    },
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The repository whose master key to rotate.
    #[arg(required = true)]
    pub repository: Option<String>,
    /// The master key to rotate to; it must be in every node's keystore
    /// (default: the active key, which with `--mode reencrypt` seals every
    /// object again under fresh data keys).
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// `rewrap` the data keys under the new master key, or `reencrypt`
    /// every object under fresh data keys too.
    #[arg(long, value_enum, default_value_t = Mode::Rewrap)]
    pub mode: Mode,
    /// `reencrypt` only: the whole deployment's budget, a number or a
    /// size such as `40mb`.
    #[arg(long, value_name = "RATE")]
    pub max_bytes_per_sec: Option<String>,
    /// Return once the server has started the rotation.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Rewrap,
    Reencrypt,
}

pub async fn run(c: &Connection, command: RotateKeyCommand) -> Result<(), ClientError> {
    if let Some(RotateKeyStatus::Status { repository }) = command.status {
        let a = &command.start;
        if a.key.is_some() || a.no_wait || a.max_bytes_per_sec.is_some() {
            return Err(ClientError::Usage(
                "`rotate-key status` takes no --key, --no-wait or --max-bytes-per-sec".into(),
            ));
        }
        let state = c
            .get(&["_snapshot", &repository, "_rotate_key"], &[])
            .await?;
        match c.json {
            true => print_json(&state),
            false => print_state(&repository, &state),
        }
        return Ok(());
    }
    let args = command.start;
    let repo = args.repository.unwrap_or_default();
    let path = ["_snapshot", repo.as_str(), "_rotate_key"];
    let key = match args.key {
        Some(k) => k,
        None => text(&c.get(&path, &[]).await?["active_key"]),
    };
    let mut body = json!({
        "key_id": key,
        "mode": match args.mode { Mode::Rewrap => "rewrap", Mode::Reencrypt => "reencrypt" },
    });
    if let Some(rate) = args.max_bytes_per_sec {
        body["max_bytes_per_sec"] = json!(rate);
    }
    let interrupt = &mut Interrupt::listen();
    let follow = format!("snapvault rotate-key status {repo}");
    let what = format!("the rotation of [{repo}] to master key [{key}]");
    let started = interrupt
        .or(c.send(Method::POST, &path, &[], Some(&body)))
        .await
        .ok_or_else(|| {
            ClientError::Interrupted(format!(
                "interrupted before the server answered; {what} may have started: {follow}"
            ))
        })??;
    let rotation = &started["rotation"];
    let running = rotation.is_object() && rotation["finish_time_in_millis"].is_null();
    if args.no_wait || !running {
        match (c.json, started["message"].as_str()) {
            (true, _) => print_json(&started),
            (false, Some(message)) => println!("{message}"),
            (false, None) => println!("{what} started; follow it with: {follow}"),
        }
        return Ok(());
    }
    let id = rotation["id"].clone();
    let mut progress = Progress::new(format!("rotate-key {repo}"));
    let state = loop {
        let stopped = || {
            ClientError::Interrupted(format!(
                "stopped waiting (Ctrl-C); {what} goes on on the server: {follow}"
            ))
        };
        let state = interrupt
            .or(c.get(&path, &[]))
            .await
            .ok_or_else(stopped)??;
        let r = &state["rotation"];
        if r["id"] != id || !r["finish_time_in_millis"].is_null() {
            break state;
        }
        show_rotation_progress(&mut progress, r);
        interrupt
            .or(tokio::time::sleep(POLL))
            .await
            .ok_or_else(stopped)?;
    };
    progress.finish();
    if c.json {
        print_json(&state);
    }
    let r = &state["rotation"];
    if r["id"] != id {
        return Err(ClientError::Failed(format!(
            "{what} was replaced by another rotation meanwhile: {follow}"
        )));
    }
    let summary = rotation_line(r);
    match r["phase"].as_str() {
        Some("completed") => {
            if !c.json {
                println!("{summary}; needed keys: {}", keys(&state["needed_keys"]));
            }
            Ok(())
        }
        _ => {
            let failures: Vec<String> = r["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            Err(ClientError::Failed(format!(
                "{summary}\n  failures: {}",
                failures.join("\n  ")
            )))
        }
    }
}

/// Data keys rewrapped while rewrapping, bytes sealed again while
/// re-encrypting; the destroying step has no count of its own.
fn show_rotation_progress(progress: &mut Progress, r: &Value) {
    let phase = r["phase"].as_str().unwrap_or("");
    let re = &r["reencryption"];
    match phase {
        "reencrypting" => {
            let (done, total) = (
                re["bytes_done"].as_u64().unwrap_or(0),
                re["bytes_total"].as_u64().unwrap_or(0),
            );
            progress.set(
                done,
                total,
                format!(
                    "re-encrypting: {}, {} of {} objects",
                    bytes_of(done, total),
                    re["objects_done"],
                    re["objects_total"]
                ),
            );
        }
        "destroying_old_keys" => progress.set(1, 1, "destroying the old data keys".into()),
        _ => {
            let (done, total) = (
                r["done"].as_u64().unwrap_or(0),
                r["total"].as_u64().unwrap_or(0),
            );
            progress.set(done, total, format!("{phase}: {done}/{total} data keys"));
        }
    }
}

/// `rotation [id] rewrap [default] -> [k2] completed: 12/12 data keys (100%) in 1.2s`.
fn rotation_line(r: &Value) -> String {
    let (done, total) = (
        r["done"].as_u64().unwrap_or(0),
        r["total"].as_u64().unwrap_or(0),
    );
    let from = keys(&r["from_keys"]);
    let mut line = format!(
        "rotation [{}] {} {}-> [{}] {}: {done}/{total} data keys ({}) in {}",
        text(&r["id"]),
        text(&r["mode"]),
        if from.is_empty() {
            String::new()
        } else {
            format!("[{from}] ")
        },
        text(&r["to_key"]),
        text(&r["phase"]),
        match r["percent"].as_f64() {
            Some(p) => format!("{p:.0}%"),
            None => percent(done, total),
        },
        millis(r["duration_in_millis"].as_i64().unwrap_or(0)),
    );
    let re = &r["reencryption"];
    if re.is_object() {
        line.push_str(&format!(
            ", {} objects re-encrypted ({}), {} skipped",
            re["objects_done"],
            indicatif::HumanBytes(re["bytes_done"].as_u64().unwrap_or(0)),
            re["objects_skipped"]
        ));
    }
    line
}

fn keys(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_state(repo: &str, state: &Value) {
    println!(
        "repository [{repo}]: active key [{}], needed keys [{}]",
        text(&state["active_key"]),
        keys(&state["needed_keys"])
    );
    if let Some(wrapped) = state["wrapped_keys"].as_object() {
        let counts: Vec<String> = wrapped.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  wrapped data keys: {}", counts.join(", "));
    }
    let r = &state["rotation"];
    if r.is_object() {
        println!("  {}", rotation_line(r));
        for f in r["failures"].as_array().into_iter().flatten() {
            println!("  failure: {}", text(f));
        }
    } else {
        println!("  no rotation yet");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        command: RotateKeyCommand,
    }

    #[test]
    fn status_is_a_subcommand_even_after_common_options_and_a_repository_is_required_otherwise() {
        let parsed =
            Line::try_parse_from(["rotate-key", "--url", "http://h:1", "status", "r"]).unwrap();
        assert!(matches!(
            parsed.command.status,
            Some(RotateKeyStatus::Status { ref repository }) if repository == "r"
        ));
        assert_eq!(parsed.command.options.url, "http://h:1");
        let start = Line::try_parse_from(["rotate-key", "r", "--key", "k2", "--mode", "reencrypt"])
            .unwrap();
        assert_eq!(start.command.start.repository.as_deref(), Some("r"));
        assert_eq!(start.command.start.mode, Mode::Reencrypt);
        assert!(Line::try_parse_from(["rotate-key", "--key", "k2"]).is_err());
    }

    #[test]
    fn a_rotation_reads_as_one_line_with_its_counts() {
        let r = json!({"id": "r1", "mode": "rewrap", "from_keys": ["default"], "to_key": "k2",
                       "phase": "completed", "done": 12, "total": 12, "percent": 100.0, "duration_in_millis": 1200});
        assert_eq!(
            rotation_line(&r),
            "rotation [r1] rewrap [default] -> [k2] completed: 12/12 data keys (100%) in 1.2s"
        );
        let same_key = json!({"id": "r2", "mode": "reencrypt", "from_keys": [], "to_key": "k2",
                              "phase": "completed", "done": 0, "total": 0, "percent": 100.0, "duration_in_millis": 3900,
                              "reencryption": {"objects_done": 13, "bytes_done": 2048, "objects_skipped": 0}});
        assert_eq!(
            rotation_line(&same_key),
            "rotation [r2] reencrypt -> [k2] completed: 0/0 data keys (100%) in 3.9s, 13 objects re-encrypted (2.00 KiB), 0 skipped"
        );
    }
}
