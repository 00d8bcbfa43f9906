//! Errors as the UI sees them: `{code, message}`, mapped from the engine's errors (`Error::code()`)
//! plus the few the app layer adds (`not_allowed`, `not_found`, `busy`, `invalid`).

use serde::Serialize;

/// An error a command returns to the webview.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// Result of an app operation.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl From<shoebox_core::Error> for ApiError {
    fn from(e: shoebox_core::Error) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}
