//! Object storage behind one small type, [`Store`].
//!
//! This is the only module that imports OpenDAL. It builds an operator for a
//! backend, stacks the resilience layers once, and adds the one primitive the
//! rest of the system builds its consistency on: **create-if-absent**
//! ([`Store::write_if_absent`]). It knows nothing about encryption or formats.
//!
//! Its parts, by what each does:
//! - `backend`: where a store keeps its objects ([`Backend`] and the cloud
//!   settings, which print without their credentials);
//! - `operator`: one OpenDAL builder per service and the layers, stacked
//!   once in a commented order ([`Limits`]);
//! - `store`: the [`Store`] API (read, write, list, delete);
//! - `conditional`: create-if-absent on every backend, with the read-back
//!   that recognises a retried request's own object;
//! - `fs`: atomic writes on a local directory (temporary file, fsync, then
//!   `rename(2)` or `link(2)`), which OpenDAL's `fs` service does not give;
//! - `metrics`: the traffic counters of every location (bytes and objects
//!   read and written, errors, retries), an OpenDAL layer plus the `fs`
//!   writes that bypass OpenDAL;
//! - `error`: [`StorageError`], and the mapping from OpenDAL's errors that
//!   logs a service's answer under an error id instead of carrying it.

mod backend;
mod conditional;
mod error;
mod fs;
pub mod generations;
mod metrics;
mod operator;
mod store;

pub use backend::{AzureConfig, Backend, GcsConfig, S3Config};
pub use error::{Result, StorageError};
pub use metrics::{traffic, Location, TrafficSnapshot};
pub use operator::Limits;
pub use store::{Listed, PieceWriter, Store};
