//! `snapvault certs self-signed`: a certificate and key for a first try of
//! `[http.tls]`, written as `cert.pem` and `key.pem` (mode 0600). The
//! certificate is its own authority, so clients must be told to trust it
//! (`curl --cacert cert.pem`); for production use certificates from your
//! CA. The key is written once and never printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Datelike;
use clap::Subcommand;
use snapvault::config::ConfigError;
use snapvault::Overrides;

#[derive(Subcommand)]
pub enum CertsAction {
    /// Write a self-signed certificate and its key for `[http.tls]`.
    SelfSigned {
        /// Directory for cert.pem and key.pem (created if missing).
        /// Default: <data_dir>/tls.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A DNS name or IP address the certificate is for; repeat for
        /// several. Default: localhost, 127.0.0.1 and ::1.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace cert.pem and key.pem if they exist.
        #[arg(long)]
        force: bool,
    },
}

/// Why no certificate was written.
#[derive(Debug, thiserror::Error)]
pub enum CertsCommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --name [{name}]: give a DNS name or an IP address")]
    Name { name: String },
    #[error("--days must be between 1 and 36500")]
    Days,
    #[error("cannot make the certificate: {0}")]
    Generate(#[source] rcgen::Error),
}

type Result<T> = std::result::Result<T, CertsCommandError>;

const DEFAULT_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

pub fn run(o: Overrides, action: CertsAction) -> Result<()> {
    let CertsAction::SelfSigned {
        out,
        names,
        days,
        force,
    } = action;
    let out = match out {
        Some(out) => out,
        None => snapvault::Config::data_dir(&o)?.join("tls"),
    };
    let names = if names.is_empty() {
        DEFAULT_NAMES.iter().map(|n| n.to_string()).collect()
    } else {
        names
    };
    self_signed(&out, &names, days, force)
}

/// Checks the names and days, makes the key and certificate, writes them
/// (the key readable by its owner only) and prints what to configure.
fn self_signed(out: &Path, names: &[String], days: u32, force: bool) -> Result<()> {
    if !(1..=36_500).contains(&days) {
        return Err(CertsCommandError::Days);
    }
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(CertsCommandError::Generate)?;
    for name in names {
        let san = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => {
                let invalid = || CertsCommandError::Name { name: name.clone() };
                rustls::pki_types::DnsName::try_from(name.as_str()).map_err(|_| invalid())?;
                rcgen::SanType::DnsName(name.clone().try_into().map_err(|_| invalid())?)
            }
        };
        params.subject_alt_names.push(san);
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "snapvault self-signed");
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = chrono::Utc::now().date_naive();
    let until = today + chrono::Days::new(u64::from(days));
    params.not_before = ymd(today - chrono::Days::new(1));
    params.not_after = ymd(until);
    let key = rcgen::KeyPair::generate().map_err(CertsCommandError::Generate)?;
    let cert = params
        .self_signed(&key)
        .map_err(CertsCommandError::Generate)?;
    std::fs::create_dir_all(out).map_err(|source| CertsCommandError::CreateDir {
        path: out.to_path_buf(),
        source,
    })?;
    let out = out
        .canonicalize()
        .map_err(|source| CertsCommandError::CreateDir {
            path: out.to_path_buf(),
            source,
        })?;
    let (cert_path, key_path) = (out.join("cert.pem"), out.join("key.pem"));
    for path in [&cert_path, &key_path] {
        if path.exists() && !force {
            return Err(CertsCommandError::Exists { path: path.clone() });
        }
    }
    write(
        &key_path,
        zeroize::Zeroizing::new(key.serialize_pem()).as_bytes(),
        0o600,
    )?;
    write(&cert_path, cert.pem().as_bytes(), 0o644)?;
    println!(
        "wrote {} (self-signed, for {}; valid until {until})",
        cert_path.display(),
        names.join(", ")
    );
    println!("wrote {} (its private key, mode 0600)", key_path.display());
    println!("to serve HTTPS with them, put this table in the config file (after every top-level option):");
    println!("[http.tls]");
    println!("enabled = true");
    println!("certificate = {}", toml_string(&cert_path));
    println!("key = {}", toml_string(&key_path));
    println!(
        "clients must trust the certificate itself, for example: curl --cacert {} https://{}:9200/",
        cert_path.display(),
        url_host(&names[0])
    );
    Ok(())
}

/// Writes `bytes` to a new file of mode `mode` (on Unix), replacing one.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let failed = |source| CertsCommandError::Write {
        path: path.to_path_buf(),
        source,
    };
    // A file left by an earlier run may have a wider mode, which opening it
    // would keep: remove it first.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// A TOML basic string holding `path`.
fn toml_string(path: &Path) -> String {
    let escaped = path
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// `name` as the host of a URL (IPv6 literals in brackets).
fn url_host(name: &str) -> String {
    match name.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{name}]"),
        Err(_) => name.to_string(),
    }
}
