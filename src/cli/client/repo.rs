//! `snapvault repo list|get|create|delete|verify|cleanup|pause|resume`:
//! one request each, to `/_snapshot/{repository}[/_verify|_cleanup|_pause|_resume]`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::connection::Connection;
use super::error::ClientError;
use super::render::{print_json, table, text};

#[derive(Subcommand, Debug)]
pub enum RepoAction {
    /// List the registered repositories.
    List,
    /// Show one repository's type, settings and pause.
    Get {
        /// The repository.
        name: String,
    },
    /// Register a repository (checked by the server unless --no-verify).
    Create {
        /// The repository's name.
        name: String,
        /// `fs`, `s3`, `azure`, `gcs` or `memory`.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// A repository setting, repeatable: `--setting location=my_backup`.
        #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = setting)]
        settings: Vec<(String, String)>,
        /// Skip the storage check at registration (`fs` and `memory` only).
        #[arg(long)]
        no_verify: bool,
    },
    /// Unregister a repository (its storage is left as it is).
    Delete {
        /// The repository.
        name: String,
    },
    /// Check that the storage behaves (writes, reads, lists, deletes).
    Verify {
        /// The repository.
        name: String,
    },
    /// Delete what no snapshot of the repository refers to.
    Cleanup {
        /// The repository.
        name: String,
    },
    /// Refuse new snapshots, restores, deletes, clones and cleanups.
    Pause {
        /// The repository.
        name: String,
        /// Why, shown in every refusal meanwhile.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Accept operations again after a pause.
    Resume {
        /// The repository.
        name: String,
    },
}

/// `KEY=VALUE`; a wrong one is a usage error (exit 2), as clap's own.
fn setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("[{s}] is not KEY=VALUE")),
    }
}

pub async fn run(c: &Connection, action: RepoAction) -> Result<(), ClientError> {
    match action {
        RepoAction::List => {
            let answer = c.get(&["_snapshot"], &[]).await?;
            match c.json {
                true => print_json(&answer),
                false => print_repositories(&answer),
            }
        }
        RepoAction::Get { name } => {
            let answer = c.get(&["_snapshot", &name], &[]).await?;
            match c.json {
                true => print_json(&answer),
                false => print_repositories(&answer),
            }
        }
        RepoAction::Create {
            name,
            kind,
            settings,
            no_verify,
        } => {
            let settings: Map<String, Value> =
                settings.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let body = json!({"type": kind, "settings": settings});
            let query: &[(&str, &str)] = if no_verify {
                &[("verify", "false")]
            } else {
                &[]
            };
            let answer = c
                .send(Method::PUT, &["_snapshot", &name], query, Some(&body))
                .await?;
            done(
                c,
                &answer,
                format!("registered repository [{name}] ({kind})"),
            );
        }
        RepoAction::Delete { name } => {
            let answer = c
                .send(Method::DELETE, &["_snapshot", &name], &[], None)
                .await?;
            done(c, &answer, format!("unregistered repository [{name}]"));
        }
        RepoAction::Verify { name } => {
            let answer = post(c, &name, "_verify", None).await?;
            let nodes: Vec<String> = answer["nodes"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, n)| text(&n["name"]))
                .collect();
            done(
                c,
                &answer,
                format!(
                    "repository [{name}] verified by {} node(s): {}",
                    nodes.len(),
                    nodes.join(", ")
                ),
            );
        }
        RepoAction::Cleanup { name } => {
            let answer = post(c, &name, "_cleanup", None).await?;
            let r = &answer["results"];
            done(
                c,
                &answer,
                format!(
                    "cleaned up repository [{name}]: deleted {} objects ({})",
                    r["deleted_blobs"],
                    indicatif::HumanBytes(r["deleted_bytes"].as_u64().unwrap_or(0))
                ),
            );
        }
        RepoAction::Pause { name, reason } => {
            let body = reason.map(|r| json!({ "reason": r })).unwrap_or(json!({}));
            let answer = post(c, &name, "_pause", Some(&body)).await?;
            let since = pause_text(&answer["paused"]);
            let line = match answer["changed"].as_bool() {
                Some(false) => format!("repository [{name}] was already paused {since}"),
                _ => format!("paused repository [{name}] {since}"),
            };
            done(c, &answer, line);
        }
        RepoAction::Resume { name } => {
            let answer = post(c, &name, "_resume", None).await?;
            let line = match answer["changed"].as_bool() {
                Some(false) => format!("repository [{name}] was not paused"),
                _ => format!("resumed repository [{name}]"),
            };
            done(c, &answer, line);
        }
    }
    Ok(())
}

async fn post(
    c: &Connection,
    name: &str,
    verb: &str,
    body: Option<&Value>,
) -> Result<Value, ClientError> {
    c.send(Method::POST, &["_snapshot", name, verb], &[], body)
        .await
}

/// The answer as JSON, or the line saying what happened.
fn done(c: &Connection, answer: &Value, line: String) {
    match c.json {
        true => print_json(answer),
        false => println!("{line}"),
    }
}

/// `since 2026-11-25T23:10:00.000Z (reason: storage migration)`.
fn pause_text(p: &Value) -> String {
    let mut s = format!("since {}", text(&p["since"]));
    if let Some(r) = p["reason"].as_str() {
        s.push_str(&format!(" (reason: {r})"));
    }
    s
}

fn print_repositories(answer: &Value) {
    let repos = answer.as_object().cloned().unwrap_or_default();
    if repos.is_empty() {
        println!("no repositories");
        return;
    }
    let rows: Vec<Vec<String>> = repos
        .iter()
        .map(|(name, r)| {
            let settings: Vec<String> = r["settings"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect();
            vec![
                name.clone(),
                text(&r["type"]),
                match &r["paused"] {
                    Value::Null => "no".into(),
                    p => pause_text(p),
                },
                settings.join(","),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["repository", "type", "paused", "settings"], &rows)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_is_key_equals_value_and_the_value_may_hold_equals_signs() {
        assert_eq!(
            setting("location=a=b"),
            Ok(("location".into(), "a=b".into()))
        );
        assert_eq!(setting("compress="), Ok(("compress".into(), "".into())));
        assert!(setting("location").is_err());
        assert!(setting("=x").is_err());
    }
}
