//! What snapvault counts about itself, and its Prometheus exposition.
//!
//! Three kinds of numbers, by where they are known:
//! - counted as they happen, for the life of the process: HTTP requests
//!   ([`http`], one set per router, so per node), long operations
//!   ([`operations`], ended by their guard) and storage traffic (in
//!   [`crate::storage`], per location: the only module that sees OpenDAL);
//! - read at scrape time from the state the services already keep: key
//!   rotation and re-encryption progress, SLM counters ([`scrape`]); they
//!   are the deployment's, the same on every node;
//! - joined at scrape time: which repository (or the state or data store)
//!   lives at each storage location.
//!
//! [`exposition`] turns them into Prometheus' text format (0.0.4) through
//! `prometheus-client`. Label values are bounded sets (route templates,
//! operation kinds, repository names), never raw paths or user input
//! outside a registered name. Nothing here holds a secret: locations print
//! without credentials, and no label carries one.

pub mod exposition;
pub mod http;
pub mod operations;
pub mod scrape;
