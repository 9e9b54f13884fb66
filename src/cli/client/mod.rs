//! The command-line client: `snapvault snapshot …`, `snapvault repo …`
//! and `snapvault rotate-key …` drive a running server over its HTTP API
//! (the same requests as `curl`, with the same credentials and
//! privileges), never its data directory. Long operations are waited for
//! with progress bars fed by the status APIs; Ctrl-C stops the waiting,
//! not the operation (only those commands listen for it; the others end
//! on Ctrl-C as any program does).
//!
//! Output: lines and tables for people, the server's JSON with `--json`;
//! errors on standard error as the server's `type: reason`, with the exit
//! codes of [`error::exit`]. Secrets are never printed (see [`connection`]).

mod connection;
mod error;
mod progress;
mod render;
mod repo;
mod rotate;
mod snapshot;

use std::process::ExitCode;

use clap::Args;

pub use connection::CommonOptions;
pub use rotate::RotateKeyCommand;

use connection::Connection;
use error::ClientError;

#[derive(Args, Debug)]
pub struct SnapshotCommand {
    #[command(flatten)]
    pub options: CommonOptions,
    #[command(subcommand)]
    pub action: snapshot::SnapshotAction,
}

#[derive(Args, Debug)]
pub struct RepoCommand {
    #[command(flatten)]
    pub options: CommonOptions,
    #[command(subcommand)]
    pub action: repo::RepoAction,
}

/// One client command, as `main` parsed it.
pub enum Command {
    Snapshot(SnapshotCommand),
    Repo(RepoCommand),
    RotateKey(RotateKeyCommand),
}

/// Runs the command; prints its error after `snapvault: ` and exits with
/// the code its kind of failure has.
pub fn run(command: Command) -> ExitCode {
    match execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapvault: {e}");
            e.exit_code()
        }
    }
}

fn execute(command: Command) -> Result<(), ClientError> {
    let options = match &command {
        Command::Snapshot(c) => &c.options,
        Command::Repo(c) => &c.options,
        Command::RotateKey(c) => &c.options,
    };
    // Before the runtime: resolving credentials may prompt on the terminal.
    let connection = Connection::open(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        match command {
            Command::Snapshot(c) => snapshot::run(&connection, c.action).await,
            Command::Repo(c) => repo::run(&connection, c.action).await,
            Command::RotateKey(c) => rotate::run(&connection, c).await,
        }
    })
}
