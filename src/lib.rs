//! # snapvault
//!
//! An HTTP service that speaks Elasticsearch's `_snapshot` API and keeps
//! every snapshot client-side encrypted in object storage.
//!
//! Layers, with dependencies pointing one way:
//! - [`api`]: axum handlers, Elasticsearch wire models and error bodies,
//!   the OpenAPI document. Parse, validate, call one service method, render.
//! - [`service`]: the operations (snapshot, restore, delete, clone, cleanup,
//!   repository registration) and what runs concurrently.
//! - [`repository`]: the on-storage format (generations, manifests, chunks);
//!   [`state`]: the persisted deployment state; [`indices`]: the data store
//!   that snapshots protect.
//! - [`crypto`]: envelope encryption (HKDF-derived KEKs, AES-256-GCM-SIV);
//!   [`kms`]: master keys held by Vault/OpenBao transit or AWS KMS, which
//!   wrap random KEKs (only the wrapped form is stored).
//! - [`storage`]: OpenDAL operators, layers, and atomic create-if-absent.
//! - [`config`] and [`clients`]: the operator's configuration, including
//!   where each named cloud client connects (never a repository setting).
//! - [`es`]: Elasticsearch's value grammar in requests (wildcards, name
//!   expressions, name rules, `filter_path`, date math, time values, byte
//!   sizes, booleans), matched in linear time with bounded input: a leaf
//!   that every layer may use.
//! - [`security`]: users, roles and API keys (in the state store),
//!   authentication of every request and the route → privilege table.
//! - [`server`]: the accept loop (connection cap, request-head timeout,
//!   graceful shutdown, the optional TLS handshake) shared by the binary
//!   and the tests; [`tls`]: the listener's certificate, key and client
//!   authorities, read from PEM files and swapped in on a change;
//!   [`json_depth`]: the one JSON nesting limit, checked at the edge, on
//!   every document written and on every stored source read.
//! - [`metrics`]: what snapvault counts about itself (HTTP requests, long
//!   operations, storage traffic) and reads at scrape time, as Prometheus
//!   text.
//!
//! Everything that must survive a restart is a persisted document updated
//! by create-if-absent of its next generation; memory holds caches only.

pub mod api;
pub mod audit;
pub mod clients;
pub mod config;
pub mod crypto;
pub mod es;
pub mod indices;
pub mod json_depth;
pub mod kms;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod repository;
pub mod security;
pub mod server;
pub mod service;
pub mod state;
pub mod storage;
pub mod tls;

pub use config::{Config, Overrides};
pub use service::Node;

/// The version reported by `GET /` (the Elasticsearch API level we follow).
pub const ES_COMPAT_VERSION: &str = "9.5.0";
