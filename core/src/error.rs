//! Errors of the core. Each variant says whether state was changed.

use thiserror::Error;

/// A configuration constraint was broken. Nothing was changed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("invalid config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The name of the offending field, as written in `Config`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

/// An error from a [`crate::Node`] command. The node's state is unchanged.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Error {
    /// The configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A node name is empty or longer than [`crate::MAX_NAME_LEN`] bytes.
    #[error("invalid node name: {0}")]
    InvalidName(String),
    /// The node has left the cluster and accepts no further commands.
    #[error("node has left the cluster")]
    Left,
    /// `join` was called with no seed address.
    #[error("join needs at least one seed address")]
    NoSeeds,
}
