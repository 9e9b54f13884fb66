//! The binary's commands other than `serve`: `snapshot …`, `repo …` and
//! `rotate-key …`, a client of a running server over HTTP ([`client`]),
//! `keystore …`, which manages
//! the master keys and secure settings on disk, `users reset-password`,
//! for a lost `elastic` password, `certs self-signed`, a certificate for a
//! first try of TLS, and `healthcheck`, a probe
//! for container health checks. These modules belong to the binary, not to
//! the library: each reads the operator's input (arguments, standard
//! input) and prints for a terminal, and never prints a secret.

pub mod certs;
pub mod client;
pub mod healthcheck;
pub mod keystore;
pub mod users;
