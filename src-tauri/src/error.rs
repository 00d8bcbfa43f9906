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
        let mut message = e.to_string();
        if let Some(h) = hint(&e) {
            message.push_str(". ");
            message.push_str(h);
        }
        ApiError::new(e.code(), message)
    }
}

/// What a person in the app can do about an engine error, in the app's terms.
fn hint(e: &shoebox_core::Error) -> Option<&'static str> {
    use shoebox_core::Error as E;
    Some(match e {
        E::NotDownloaded { .. } => {
            "Connect to the internet and search again, or put a downloaded model folder in Settings"
        }
        E::DeviceUnavailable { .. } => "Choose the CPU (or auto) as the device in Settings",
        E::NotALibraryFolder(_) => "The library's folders are listed under Folders",
        E::NotInLibrary(_) => "Add its folder under Folders; it is searchable once indexed",
        E::EmptyLibrary => "Add a photo folder under Folders to start",
        E::PartlyApplied { .. } => "Undo puts back the files already sorted",
        _ => return None,
    })
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}
