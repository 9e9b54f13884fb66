//! Elasticsearch's value grammar, as requests carry it, in one place:
//! `*` wildcards ([`glob`]), name expressions (`logs-*,-logs-old`,
//! [`expression`]), what a valid index, document, repository or snapshot
//! name is ([`names`]), `filter_path` ([`filter_path`]), date math in names
//! ([`date_math`]), time values ([`time`]), byte sizes ([`size`]), setting
//! booleans ([`boolean`]), and the characters no name, id or setting value
//! may hold and how reasons show them ([`chars`]).
//!
//! This module owns how much work one request may cause: every matcher
//! here is linear in its input, every input is bounded (the limits are
//! constants next to their grammar), and every failure is a typed error,
//! never a panic. It knows nothing about HTTP, storage or the service; each
//! caller maps an [`Error`] (or a [`names::NameError`] reason) to the
//! Elasticsearch error its API answers.

pub mod boolean;
pub mod chars;
pub mod date_math;
pub mod expression;
pub mod filter_path;
pub mod glob;
pub mod names;
pub mod schedule;
pub mod size;
pub mod time;

pub use chars::{
    check_setting_value, escaped_char, is_format_char, is_unsafe_char, shown, unsafe_kind,
    MAX_SETTING_VALUE_BYTES,
};
pub use expression::{check_expression, MAX_EXPRESSION_BYTES, MAX_EXPRESSION_PARTS};

/// Why a request's value cannot be used. Each caller maps it to the
/// Elasticsearch error its API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Past one of the bounds; Elasticsearch's `illegal_argument`.
    #[error("{what} is too large: {found} > {limit} {unit}")]
    TooLarge {
        what: &'static str,
        found: usize,
        limit: usize,
        unit: &'static str,
    },
    /// A date math name Elasticsearch cannot resolve: its `parse_exception`.
    #[error("invalid dynamic name expression [{expression}]. {reason}")]
    DateMath {
        expression: String,
        reason: date_math::Reason,
    },
    /// A repository setting value past [`MAX_SETTING_VALUE_BYTES`].
    #[error("invalid value for setting [{}]: {len} bytes > {MAX_SETTING_VALUE_BYTES} bytes", shown(.setting))]
    SettingTooLong { setting: String, len: usize },
    /// A repository setting value holding an [unsafe](is_unsafe_char)
    /// character; the value is shown escaped.
    #[error("invalid value for setting [{}]: [{}] must not contain {} (found [{}])", shown(.setting), shown(.value), unsafe_kind(*.found), escaped_char(*.found))]
    SettingUnsafeChar {
        setting: String,
        value: String,
        found: char,
    },
    /// A boolean setting that is neither `true` nor `false`.
    #[error("Failed to parse value [{value}] as only [true] or [false] are allowed for setting [{setting}]")]
    NotABoolean { setting: String, value: String },
}
