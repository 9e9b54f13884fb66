//! The `snapvault` binary: the command line, then `serve` (config,
//! tracing, bind, serve, graceful shutdown). The other commands
//! (`keystore …`, `users …`, `certs …`, `healthcheck`, and the HTTP
//! client's `snapshot …`, `repo …`, `rotate-key …`) live in [`cli`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cli::keystore::KeystoreAction;
use snapvault::config::ConfigError;
use snapvault::{Config, Node, Overrides};

mod cli;

#[derive(Parser)]
#[command(
    name = "snapvault",
    version,
    about = "Elasticsearch-compatible snapshot service with client-side encryption"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SNAPVAULT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (indices, state, keystore, default path.repo).
    #[arg(long, global = true, env = "SNAPVAULT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Address to listen on (`127.0.0.1:0` picks a free port).
        #[arg(long, env = "SNAPVAULT_LISTEN")]
        listen: Option<SocketAddr>,
        /// Serve with `[security] enabled = false` on a non-loopback
        /// address: anyone who reaches it can do anything.
        #[arg(long)]
        insecure_allow_anonymous: bool,
    },
    /// Print the OpenAPI document (regenerates `openapi/openapi.json`).
    Openapi,
    /// Exit 0 when the service at ADDR answers `GET /_health` with 200 (for
    /// container health checks, without curl in the image).
    Healthcheck {
        #[arg(long, default_value = "127.0.0.1:9200")]
        addr: SocketAddr,
        /// Speak TLS (the listener has `[http.tls]` on); the certificate is
        /// not checked.
        #[arg(long)]
        tls: bool,
    },
    /// Reset a lost password of the built-in superuser `elastic`.
    Users {
        #[command(subcommand)]
        action: cli::users::UsersAction,
    },
    /// Manage the master keys of the keystore.
    Keystore {
        #[command(subcommand)]
        action: KeystoreAction,
    },
    /// Make TLS certificates for `[http.tls]`.
    Certs {
        #[command(subcommand)]
        action: cli::certs::CertsAction,
    },
    /// Snapshots on a running server: create and restore (waiting, with
    /// progress bars), list, status, delete.
    Snapshot(cli::client::SnapshotCommand),
    /// Repositories on a running server: list, get, create, delete,
    /// verify, cleanup, pause, resume.
    Repo(cli::client::RepoCommand),
    /// Rotate a repository's master key on a running server, waiting with
    /// a progress bar; `rotate-key status <repo>` shows the keyring.
    RotateKey(cli::client::RotateKeyCommand),
}

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    let mut overrides = Overrides {
        config_file: args.config,
        data_dir: args.data_dir,
        listen: None,
        ..Default::default()
    };
    let result: Result<(), Failure> = match args.command {
        Command::Serve {
            listen,
            insecure_allow_anonymous,
        } => {
            overrides.listen = listen;
            overrides.insecure_allow_anonymous = insecure_allow_anonymous;
            // The environment only, as Elasticsearch's images take it: a
            // flag would show the password to anyone who lists processes.
            overrides.bootstrap_password = std::env::var("ELASTIC_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(|p| snapvault::config::Secret(zeroize::Zeroizing::new(p)));
            serve(overrides).map_err(Failure::from)
        }
        Command::Users { action } => cli::users::run(overrides, action).map_err(Failure::from),
        Command::Keystore { action } => {
            cli::keystore::run(overrides, action).map_err(Failure::from)
        }
        Command::Certs { action } => cli::certs::run(overrides, action).map_err(Failure::from),
        Command::Openapi => {
            println!("{}", snapvault::api::openapi_json());
            Ok(())
        }
        Command::Healthcheck { addr, tls } => {
            cli::healthcheck::run(addr, tls).map_err(Failure::from)
        }
        // The client's failures have exit codes of their own (usage 2,
        // refusal 1, unreachable 3, Ctrl-C 130).
        Command::Snapshot(c) => return cli::client::run(cli::client::Command::Snapshot(c)),
        Command::Repo(c) => return cli::client::run(cli::client::Command::Repo(c)),
        Command::RotateKey(c) => return cli::client::run(cli::client::Command::RotateKey(c)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapvault: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Why the binary exits with a failure; `main` prints it after `snapvault: `.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Keystore(#[from] cli::keystore::KeystoreCommandError),
    #[error(transparent)]
    Users(#[from] cli::users::UsersCommandError),
    #[error(transparent)]
    Healthcheck(#[from] cli::healthcheck::HealthcheckError),
    #[error(transparent)]
    Certs(#[from] cli::certs::CertsCommandError),
}

/// Why the service could not start (a running service stops cleanly).
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Opening the data directory, keystore or stores failed.
    #[error("{0}")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] snapvault::tls::TlsError),
}

/// Config, tracing, then the node on its own runtime.
fn serve(o: Overrides) -> Result<(), ServeError> {
    snapvault::memory::tune_allocator();
    snapvault::logging::init();
    let config = Config::load(&o)?;
    // 8 MiB worker stacks instead of 2: the operations' futures (rotation
    // and re-encryption takeover, restore) nest deeply, and a debug build
    // overflowed the default once in CI. Only touched pages cost memory.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(run(config))
}

/// Starts the node, binds, serves until a shutdown signal, then waits for
/// running operations.
async fn run(config: Config) -> Result<(), ServeError> {
    let (node, created) = Node::start(config.clone())
        .await
        .map_err(|e| ServeError::Start(e.into()))?;
    if created {
        tracing::warn!(
            keystore = %config.keystore.display(),
            "created a new keystore with a random master key [default]. BACK IT UP NOW: losing the keystore means losing every backup encrypted with it"
        );
    }
    if let Some(password) = node.take_generated_password() {
        // The one time the password exists outside its hash: on stdout for
        // the operator, and never in the log.
        println!("snapvault: the built-in superuser is [elastic] with password [{}]; it is shown only now (change it with POST /_security/user/elastic/_password, or reset it with `snapvault users reset-password elastic`)", password.as_str());
        tracing::warn!("SECURITY: first start of this deployment created the superuser [elastic] with a random password, printed once on standard output (not in this log). Store it now: it is not shown again");
    }
    if !config.security.enabled {
        tracing::warn!(listen = %config.listen, "SECURITY IS DISABLED: every request is served without authentication, as a superuser");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let tls = match &config.http.tls {
        Some(settings) => {
            let tls = snapvault::tls::ReloadableTls::load(settings)?;
            tls.watch_files();
            reload_on_sighup(tls.clone());
            Some(tls)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, node = %config.node_name, %scheme, "snapvault listening");
    println!("snapvault listening on {scheme}://{addr}");
    node.cluster().set_http_address(addr);
    let app = snapvault::api::app(node.clone());
    let limits = snapvault::server::ConnectionLimits::from_config(&config.http);
    snapvault::server::serve(listener, app, limits, tls, shutdown_signal()).await;
    tracing::info!("HTTP server stopped; waiting for running operations");
    node.shutdown(Duration::from_secs(60)).await;
    Ok(())
}
/// `SIGHUP` reloads the TLS certificate and key (only when TLS is on;
/// otherwise the signal keeps its default, ending the process).
fn reload_on_sighup(tls: std::sync::Arc<snapvault::tls::ReloadableTls>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!(
                "cannot listen for SIGHUP; TLS files are still reloaded when they change"
            );
            return;
        };
        while hup.recv().await.is_some() {
            tls.reload_and_log(true, "SIGHUP").await;
        }
    });
    #[cfg(not(unix))]
    drop(tls);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
