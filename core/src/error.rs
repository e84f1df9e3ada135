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
    /// A write named another node's namespace: only its owner writes it.
    #[error("namespace {0:?} belongs to another node; only its owner writes it")]
    NotOwner(String),
    /// A key (or event name) is empty.
    #[error("key must not be empty")]
    EmptyKey,
    /// A key (or event name) is longer than `max_key_len`.
    #[error("key is {len} bytes, over the limit of {max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value, payload or metadata is longer than `max_value_len`.
    #[error("value is {len} bytes, over the limit of {max}")]
    ValueTooLong {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A saved namespace handed to [`crate::Node::restore_namespace`] is
    /// not this node's, or not whole: a record not signed by its key,
    /// versions out of order or past the saved version, or a node that
    /// already wrote. Nothing was restored.
    #[error("the saved namespace cannot be restored: {0}")]
    BadSavedNamespace(String),
    /// [`crate::Node::forget`] named a member that is alive or suspect (or
    /// this node): only a dead or departed member can be forgotten.
    #[error(
        "{0:?} is a live member (or this node); only a dead or departed member can be forgotten"
    )]
    StillLive(String),
    /// The namespace already holds `max_keys_per_namespace` live keys.
    #[error("namespace is full ({max} keys)")]
    NamespaceFull {
        /// The limit.
        max: usize,
    },
}
