//! `snapvault users reset-password <name>`: sets a user's password in the
//! shared security document when it is lost, with the same
//! `--data-dir`/`--config` flags as `serve`. Running replicas see the new
//! password within a heartbeat. Only the built-in `elastic` can be reset
//! here (other users' passwords are changed through the API by a user
//! with `manage_security`).
//!
//! The new password is random and printed once, or read from standard
//! input with `--from-stdin` (a trailing newline is dropped); it is held in
//! memory that is wiped on drop and never logged.

use std::io::Read;

use clap::Subcommand;
use snapvault::config::ConfigError;
use snapvault::security::{SecurityError, ELASTIC};
use snapvault::{Config, Overrides};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum UsersAction {
    /// Set a new password for the built-in superuser `elastic`: random
    /// (printed once), or read from standard input.
    ResetPassword {
        username: String,
        #[arg(long)]
        from_stdin: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum UsersCommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Start(#[source] snapvault::service::StartError),
    #[error("{0}")]
    Security(#[from] SecurityError),
    #[error("only the built-in user [elastic] can be reset here; change [{username}]'s password with POST /_security/user/{username}/_password")]
    NotReserved { username: String },
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
}

pub fn run(o: Overrides, action: UsersAction) -> Result<(), UsersCommandError> {
    let UsersAction::ResetPassword {
        username,
        from_stdin,
    } = action;
    if username != ELASTIC {
        return Err(UsersCommandError::NotReserved { username });
    }
    let config = Config::load(&o)?;
    let (password, generated) = if from_stdin {
        let mut input = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(UsersCommandError::Stdin)?;
        let trimmed = input.trim_end_matches(['\r', '\n']);
        (Zeroizing::new(trimmed.to_string()), false)
    } else {
        (snapvault::security::random_password(), true)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(UsersCommandError::Stdin)?;
    runtime.block_on(async {
        let security = snapvault::service::open_security(&config)
            .await
            .map_err(UsersCommandError::Start)?;
        security.reset_elastic(password.clone()).await?;
        Ok::<_, UsersCommandError>(())
    })?;
    match generated {
        true => println!("New password for [elastic]: {}", password.as_str()),
        false => println!("The password of [elastic] was changed."),
    }
    Ok(())
}
