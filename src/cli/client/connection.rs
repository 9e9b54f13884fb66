//! Where the client connects and as whom: the common options (`--url`,
//! `--user`, `--api-key`, `--ca-cert`, `--json`), the credentials they
//! resolve to, and the one HTTP client every command sends through.
//!
//! Secrets stay out of sight: a password is read from the environment,
//! standard input or a prompt without echo, never from an argument that
//! `ps` would show; credentials written into `--url` are taken out of it
//! before the URL is ever printed; the `Authorization` header is marked
//! sensitive; and no message below formats a credential.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use base64::Engine;
use clap::Args;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;
use zeroize::Zeroizing;

use super::error::ClientError;

/// Options every client command takes (before or after the subcommand).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection and output")]
pub struct CommonOptions {
    /// The server. Credentials written in it
    /// (`http://user:password@host:9200`) are used, and never printed.
    #[arg(
        long,
        global = true,
        env = "SNAPVAULT_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:9200"
    )]
    pub url: String,
    /// Sign in as this user (env SNAPVAULT_USER); the password comes from
    /// SNAPVAULT_PASSWORD, --password-stdin or a prompt without echo.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, global = true)]
    pub password_stdin: bool,
    /// Sign in with an API key: the `encoded` value the key's creation
    /// answered, or `id:api_key`. Prefer the environment (SNAPVAULT_API_KEY):
    /// an argument is visible to every user of the machine in `ps`.
    #[arg(long, global = true)]
    pub api_key: Option<String>,
    /// PEM file of the CA (or certificates) to trust for an `https` URL,
    /// instead of the system's roots.
    #[arg(long, global = true, env = "SNAPVAULT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Print the server's JSON answer instead of lines and tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Who the requests come from.
enum Credentials {
    Anonymous,
    Basic {
        user: String,
        password: Zeroizing<String>,
    },
    ApiKey(Zeroizing<String>),
}

impl Credentials {
    /// The `Authorization` header, marked sensitive; `Ok(None)` for
    /// anonymous requests. An API key that cannot be a header value is a
    /// usage error rather than a request sent without credentials.
    fn header(&self) -> Result<Option<HeaderValue>, ClientError> {
        let value = match self {
            Credentials::Anonymous => return Ok(None),
            Credentials::Basic { user, password } => {
                let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                let encoded = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
                );
                Zeroizing::new(format!("Basic {}", encoded.as_str()))
            }
            // `id:key` as the create answer's `id` and `api_key`; anything
            // else is taken as the `encoded` form already.
            Credentials::ApiKey(key) if key.contains(':') => Zeroizing::new(format!(
                "ApiKey {}",
                base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
            )),
            Credentials::ApiKey(key) => Zeroizing::new(format!("ApiKey {}", key.as_str())),
        };
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            ClientError::Usage("the API key holds characters an HTTP header cannot carry".into())
        })?;
        header.set_sensitive(true);
        Ok(Some(header))
    }
}

/// Looks up an environment variable (a parameter, so tests need not
/// touch the process's environment).
type Env<'a> = &'a dyn Fn(&str) -> Option<Zeroizing<String>>;

/// Reads an environment variable, empty meaning unset.
fn process_env(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Zeroizing::new)
}

/// Flags first, then the environment, then credentials in the URL; two
/// kinds given at the same level are refused rather than one picked.
fn resolve(o: &CommonOptions, url: &mut Url, env: Env) -> Result<Credentials, ClientError> {
    let in_url = (!url.username().is_empty()).then(|| {
        let decode = |s: &str| Zeroizing::new(percent_decode(s).unwrap_or_else(|| s.to_string()));
        (decode(url.username()), url.password().map(decode))
    });
    // Never kept where a message could print it.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let basic = |user: String, password: Option<Zeroizing<String>>| {
        Ok(Credentials::Basic {
            password: match password {
                Some(p) => p,
                None => password_for(&user, o.password_stdin, env)?,
            },
            user,
        })
    };
    match (&o.user, &o.api_key) {
        (Some(_), Some(_)) => {
            return Err(ClientError::Usage(
                "give --user or --api-key, not both".into(),
            ))
        }
        (Some(user), None) => return basic(user.clone(), None),
        (None, Some(key)) => {
            eprintln!("snapvault: warning: --api-key on the command line is visible to other users in `ps`; set SNAPVAULT_API_KEY instead");
            return Ok(Credentials::ApiKey(Zeroizing::new(key.clone())));
        }
        (None, None) => {}
    }
    match (env("SNAPVAULT_USER"), env("SNAPVAULT_API_KEY")) {
        (Some(_), Some(_)) => Err(ClientError::Usage(
            "both SNAPVAULT_USER and SNAPVAULT_API_KEY are set; unset one, or choose with --user or --api-key".into(),
        )),
        (Some(user), None) => basic(user.to_string(), None),
        (None, Some(key)) => Ok(Credentials::ApiKey(key)),
        (None, None) => match in_url {
            Some((user, password)) => basic(user.to_string(), password),
            None if o.password_stdin => Err(ClientError::Usage(
                "--password-stdin needs a user: --user or SNAPVAULT_USER".into(),
            )),
            None => Ok(Credentials::Anonymous),
        },
    }
}

/// The password of `user`: standard input when asked, else
/// SNAPVAULT_PASSWORD, else a prompt on the terminal without echo.
fn password_for(user: &str, from_stdin: bool, env: Env) -> Result<Zeroizing<String>, ClientError> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            ClientError::Usage(format!("cannot read the password from standard input: {e}"))
        })?;
        let password = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        if password.is_empty() {
            return Err(ClientError::Usage(
                "--password-stdin: standard input holds no password".into(),
            ));
        }
        return Ok(password);
    }
    if let Some(password) = env("SNAPVAULT_PASSWORD") {
        return Ok(password);
    }
    let term = console::Term::stderr();
    if !term.is_term() || !std::io::stdin().is_terminal() {
        return Err(ClientError::Usage(format!(
            "no password for [{user}]: set SNAPVAULT_PASSWORD, pipe it with --password-stdin, or run in a terminal to be asked"
        )));
    }
    term.write_str(&format!("Password for [{user}]: "))
        .and_then(|_| term.read_secure_line())
        .map(Zeroizing::new)
        .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))
}

/// `%XX` escapes of a URL's user or password; `None` when they do not
/// decode to UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The HTTP client of one command.
pub struct Connection {
    base: Url,
    http: reqwest::Client,
    authorization: Option<HeaderValue>,
    pub json: bool,
}

impl Connection {
    /// Checks the URL and CA file and resolves the credentials (which may
    /// prompt); call it before the runtime starts.
    pub fn open(o: &CommonOptions) -> Result<Connection, ClientError> {
        let mut base = Url::parse(&o.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                ClientError::Usage("--url must be an http:// or https:// URL with a host".into())
            })?;
        let credentials = resolve(o, &mut base, &process_env)?;
        base.set_query(None);
        base.set_fragment(None);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("snapvault-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(path) = &o.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Usage(format!("cannot read --ca-cert {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    ClientError::Usage(format!(
                        "--ca-cert {} holds no PEM certificate",
                        path.display()
                    ))
                })?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| ClientError::Unreachable {
            url: base.to_string(),
            reason: chain(e),
        })?;
        Ok(Connection {
            authorization: credentials.header()?,
            base,
            http,
            json: o.json,
        })
    }

    /// The URL of `segments` (each escaped as one path segment, so a name
    /// holding `/` or `?` stays one name) under the base URL.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One request; a 2xx answer's JSON body (`null` when empty), or the
    /// refusal the server answered.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = self.url(segments, query);
        let mut request = self.http.request(method, url.clone());
        if let Some(a) = &self.authorization {
            request = request.header(AUTHORIZATION, a.clone());
        }
        if let Some(b) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.to_string(),
            reason: chain(e),
        };
        let answer = request.send().await.map_err(unreachable)?;
        let status = answer.status();
        let bytes = answer.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(ClientError::from_answer(status.as_u16(), &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer {
            url: format!("{} {}", url.path(), status),
            reason: format!("not JSON ({e})"),
        })
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        self.send(Method::GET, segments, query, None).await
    }
}

/// An HTTP error and its causes on one line (reqwest's own message says
/// only "error sending request"; the cause says why). Without the URL,
/// which the caller names.
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts: Vec<String> = vec![];
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> CommonOptions {
        CommonOptions {
            url: url.into(),
            user: None,
            password_stdin: false,
            api_key: None,
            ca_cert: None,
            json: false,
        }
    }

    #[test]
    fn credentials_in_the_url_are_used_and_taken_out_of_it() {
        let mut url = Url::parse("http://elastic:p%40ss@127.0.0.1:9200/").unwrap();
        let c = resolve(&options(url.as_str()), &mut url, &|_| None).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9200/");
        let Credentials::Basic { user, password } = &c else {
            panic!("basic credentials");
        };
        assert_eq!((user.as_str(), password.as_str()), ("elastic", "p@ss"));
        assert!(c.header().unwrap().unwrap().is_sensitive());
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_url_and_two_kinds_at_one_level_are_refused() {
        let env = |name: &str| match name {
            "SNAPVAULT_API_KEY" => Some(Zeroizing::new("id:key".to_string())),
            "SNAPVAULT_PASSWORD" => Some(Zeroizing::new("from-env".to_string())),
            _ => None,
        };
        let mut url = Url::parse("http://u:p@h:9200/").unwrap();
        let mut o = options(url.as_str());
        assert!(matches!(
            resolve(&o, &mut url.clone(), &env),
            Ok(Credentials::ApiKey(_))
        ));
        o.user = Some("alice".into());
        let Ok(Credentials::Basic { user, password }) = resolve(&o, &mut url, &env) else {
            panic!("--user wins over SNAPVAULT_API_KEY");
        };
        assert_eq!((user.as_str(), password.as_str()), ("alice", "from-env"));
        o.api_key = Some("k".into());
        assert!(matches!(
            resolve(&o, &mut url, &env),
            Err(ClientError::Usage(_))
        ));
        let both =
            |name: &str| (name != "SNAPVAULT_PASSWORD").then(|| Zeroizing::new("x".to_string()));
        let o = options("http://h:9200/");
        assert!(matches!(
            resolve(&o, &mut url, &both),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn an_api_key_given_as_id_and_key_is_encoded_as_elasticsearch_encodes_it() {
        let key = Credentials::ApiKey(Zeroizing::new(
            "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw".into(),
        ));
        let header = key.header().unwrap().unwrap();
        assert_eq!(
            header.to_str().unwrap(),
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        let encoded = Credentials::ApiKey(Zeroizing::new("abc==".into()));
        assert_eq!(
            encoded.header().unwrap().unwrap().to_str().unwrap(),
            "ApiKey abc=="
        );
        let broken = Credentials::ApiKey(Zeroizing::new("line\nbreak".into()));
        assert!(matches!(broken.header(), Err(ClientError::Usage(_))));
    }

    #[test]
    fn names_are_escaped_as_one_path_segment_under_the_base_path() {
        let c = Connection {
            base: Url::parse("https://proxy.example/es/").unwrap(),
            http: reqwest::Client::new(),
            authorization: None,
            json: false,
        };
        let url = c.url(
            &["_snapshot", "r", "<snap-{now/d}>"],
            &[("wait_for_completion", "true")],
        );
        assert_eq!(
            url.as_str(),
            "https://proxy.example/es/_snapshot/r/%3Csnap-%7Bnow%2Fd%7D%3E?wait_for_completion=true"
        );
    }

    #[test]
    fn percent_escapes_decode_and_broken_ones_are_refused() {
        assert_eq!(percent_decode("a%3Ab%25").as_deref(), Some("a:b%"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%zz"), None);
    }
}
