//! The `snapvault` binary: `serve`, and `keystore list|add|remove`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use snapvault::crypto::keystore::valid_key_name;
use snapvault::crypto::{Keystore, MasterKey};
use snapvault::{Config, Node, Overrides};

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
    },
    /// Print the OpenAPI document (regenerates `openapi/openapi.json`).
    Openapi,
    /// Exit 0 when the service at ADDR answers `GET /_health` with 200 (for
    /// container health checks, without curl in the image).
    Healthcheck {
        #[arg(long, default_value = "127.0.0.1:9200")]
        addr: SocketAddr,
    },
    /// Manage the master keys of the keystore.
    Keystore {
        #[command(subcommand)]
        action: KeystoreAction,
    },
}

#[derive(Subcommand)]
enum KeystoreAction {
    /// List key names (never their secrets).
    List,
    /// Add a key: random, or 64 hex characters read from standard input.
    Add {
        id: String,
        #[arg(long)]
        from_stdin: bool,
    },
    /// Remove a key or a secure setting.
    Remove { id: String },
    /// Set a secure setting (such as `s3.client.default.secret_key`) to the
    /// value read from standard input.
    Set { name: String },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        config_file: cli.config,
        data_dir: cli.data_dir,
        listen: None,
    };
    let result = match cli.command {
        Command::Serve { listen } => {
            overrides.listen = listen;
            serve(overrides)
        }
        Command::Keystore { action } => keystore(overrides, action),
        Command::Openapi => {
            println!("{}", snapvault::api::openapi_json());
            Ok(())
        }
        Command::Healthcheck { addr } => healthcheck(addr),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapvault: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn keystore(o: Overrides, action: KeystoreAction) -> Result<(), String> {
    let path = Config::keystore_path(&o)?;
    // A keystore is born as the server makes it at first start, with a
    // random key `default` (what repositories use unless they name
    // `key_id`), so adding a setting or another key first never leaves a
    // data directory whose keystore lacks it.
    let adds_default = matches!(&action, KeystoreAction::Add { id, .. } if id == "default");
    let writes = matches!(
        action,
        KeystoreAction::Add { .. } | KeystoreAction::Set { .. }
    );
    if !path.exists() && writes && !adds_default {
        Keystore::create_if_missing(&path).map_err(|e| e.to_string())?;
        println!(
            "created keystore {} with a random master key [default]; back it up: losing it means losing every backup encrypted with it",
            path.display()
        );
    }
    let mut ks = Keystore::load(&path).map_err(|e| e.to_string())?;
    match action {
        KeystoreAction::List => {
            for name in ks.names() {
                println!("{name}");
            }
            for name in ks.setting_names() {
                println!("{name} (setting)");
            }
            return Ok(());
        }
        KeystoreAction::Add { id, from_stdin } => {
            if !valid_key_name(&id) {
                return Err(format!(
                    "invalid key name [{id}]: use 1 to 64 of [a-z0-9_-]"
                ));
            }
            if ks.get(&id).is_some() {
                return Err(format!(
                    "the keystore already holds a key named [{id}]; remove it first"
                ));
            }
            if !from_stdin && piped_input()? {
                return Err(format!(
                    "standard input holds data, but without --from-stdin [{id}] would be a new random key; pass --from-stdin to import the key from standard input"
                ));
            }
            let key = if from_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| e.to_string())?;
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or("standard input must hold exactly 64 hex characters")?;
                MasterKey::from_bytes(&id, bytes)
            } else {
                MasterKey::generate(&id)
            };
            ks.insert(key);
        }
        KeystoreAction::Set { name } => {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !valid {
                return Err(format!("invalid setting name [{name}]: use [a-z0-9._-], such as s3.client.default.secret_key"));
            }
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| e.to_string())?;
            let value = value.trim_end_matches(['\n', '\r']).to_string();
            if value.is_empty() {
                return Err("standard input held no value".into());
            }
            ks.set_setting(&name, value);
        }
        KeystoreAction::Remove { id } => {
            if !ks.remove(&id) {
                return Err(format!("the keystore holds no key named [{id}]"));
            }
        }
    }
    ks.save(&path).map_err(|e| e.to_string())?;
    println!(
        "keystore {} updated; running nodes pick it up with POST /_nodes/reload_secure_settings",
        path.display()
    );
    Ok(())
}

/// True when standard input is not a terminal and holds something: an
/// operator piping a key into `keystore add` without `--from-stdin` must
/// not end up with a random key they believe is theirs.
fn piped_input() -> Result<bool, String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(false);
    }
    let mut text = String::new();
    stdin
        .lock()
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(!text.trim().is_empty())
}

fn healthcheck(addr: SocketAddr) -> Result<(), String> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /_health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "unhealthy: {}",
            answer.lines().next().unwrap_or("no answer")
        ))
    }
}

fn serve(o: Overrides) -> Result<(), String> {
    snapvault::logging::init();
    let config = Config::load(&o)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let (node, created) = Node::start(config.clone()).await.map_err(|e| e.to_string())?;
        if created {
            tracing::warn!(
                keystore = %config.keystore.display(),
                "created a new keystore with a random master key [default]. BACK IT UP NOW: losing the keystore means losing every backup encrypted with it"
            );
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, node = %config.node_name, "snapvault listening");
        println!("snapvault listening on http://{addr}");
        let app = snapvault::api::app(node.clone());
        let limits = snapvault::server::ConnectionLimits::from_config(&config.http);
        snapvault::server::serve(listener, app, limits, shutdown_signal()).await;
        tracing::info!("HTTP server stopped; waiting for running operations");
        node.shutdown(Duration::from_secs(60)).await;
        Ok(())
    })
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
