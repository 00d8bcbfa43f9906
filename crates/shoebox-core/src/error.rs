//! The engine's error type: every failure a caller (CLI, desktop app) may show to a person.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Each variant carries enough context to be shown as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("catalog schema: {0}")]
    Migration(String),
    #[error("{0}")]
    SchemaTooNew(String),
    #[error("model: {0}")]
    Model(String),
    #[error("model unavailable: {0}")]
    ModelUnavailable(String),
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("index: {0}")]
    Index(String),
    #[error("{0}")]
    Invalid(String),
    #[error("library is busy: {0}")]
    Locked(String),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// A stable machine-readable code for the UI layer (`{code, message}`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Db(_) | Error::Migration(_) => "catalog",
            Error::SchemaTooNew(_) => "schema_too_new",
            Error::Model(_) | Error::Candle(_) => "model",
            Error::ModelUnavailable(_) => "model_unavailable",
            Error::Decode { .. } => "decode",
            Error::Index(_) => "index",
            Error::Invalid(_) => "invalid",
            Error::Locked(_) => "locked",
            Error::Interrupted => "interrupted",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
