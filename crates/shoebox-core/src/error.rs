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
    /// A model that is neither in the Hugging Face cache nor a local folder, and could not be fetched.
    #[error(
        "{reason}. Shoebox needs the model {id} once: it is fetched from the Hugging Face hub into \
         the Hugging Face cache ({}), or read from a local model folder holding {}",
        cache.display(), files.join(", ")
    )]
    NotDownloaded {
        id: String,
        reason: String,
        cache: PathBuf,
        files: Vec<String>,
    },
    /// A compute device this build or machine does not have.
    #[error("the {device} device is not available: {reason}")]
    DeviceUnavailable {
        device: &'static str,
        reason: String,
    },
    /// A setting or option value that is not one of the known ones.
    #[error("unknown {what} {value:?} (expected {expected})")]
    UnknownValue {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    /// No library folder was given and the platform has no data folder to put one in.
    #[error("no library folder: this system has no data folder to keep one in")]
    NoLibraryFolder,
    /// A folder to add that does not exist or is not a folder.
    #[error("{} is not a folder (it does not exist, or is a file)", .0.display())]
    NotAFolder(PathBuf),
    /// A folder to remove that is not one of the library's.
    #[error("{} is not a folder of this library", .0.display())]
    NotALibraryFolder(PathBuf),
    /// A file that should be a photo of the library and is not (yet).
    #[error("{} is not a photo of this library", .0.display())]
    NotInLibrary(PathBuf),
    /// A search with neither a query nor an example image.
    #[error("nothing to search for: give a query or an example image")]
    NothingToSearch,
    /// Caption-text ranking asked for with image terms.
    #[error("ranking by captions needs a text query without images; rank by CLIP for images")]
    TextRankingNeedsText,
    /// Keyword ranking asked for with image terms.
    #[error("ranking by keywords needs a text query without images")]
    KeywordRankingNeedsText,
    /// The OCR engine (Tesseract) cannot start or read: not built in, language data missing.
    #[error("OCR: {0}")]
    Ocr(String),
    /// A search of a library that has no photos yet.
    #[error("the library has no photos yet: add a folder and index it first")]
    EmptyLibrary,
    /// Sorting stopped after `done` files; the journal undoes them.
    #[error("stopped after {done} files: {source} (the journal {} can undo them)", journal.display())]
    PartlyApplied {
        done: usize,
        journal: PathBuf,
        source: Box<Error>,
    },
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
            Error::PartlyApplied { .. } => "partly_applied",
            Error::NotDownloaded { .. } => "model_unavailable",
            Error::DeviceUnavailable { .. } => "device_unavailable",
            Error::UnknownValue { .. } => "invalid",
            Error::NoLibraryFolder => "no_library_folder",
            Error::NotAFolder(_) | Error::NotALibraryFolder(_) => "not_a_folder",
            Error::NotInLibrary(_) => "not_in_library",
            Error::NothingToSearch
            | Error::TextRankingNeedsText
            | Error::KeywordRankingNeedsText => "invalid",
            Error::Ocr(_) => "ocr",
            Error::EmptyLibrary => "empty_library",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
