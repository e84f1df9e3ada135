//! The simulator's setup error: what can stop a run before it starts.

use crate::net;

/// Why a simulation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario is malformed or inconsistent.
    #[error("scenario: {0}")]
    Scenario(String),
    /// The protocol configuration is invalid.
    #[error(transparent)]
    Config(#[from] rumour_core::ConfigError),
    /// A network spec is invalid.
    #[error(transparent)]
    Net(#[from] net::NetError),
}
