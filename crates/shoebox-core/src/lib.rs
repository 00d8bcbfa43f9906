//! Shoebox engine: catalog (SQLite), scan, decode, CLIP models, HNSW index, indexing pipeline and
//! search — everything the `shoebox` CLI and the desktop app do, with no UI or CLI dependencies.

pub mod captions;
pub mod catalog;
pub mod classify;
pub mod decode;
pub mod duplicates;
pub mod error;
pub mod files;
pub mod formats;
pub mod index;
pub mod journal;
pub mod keyphrase;
pub mod library;
pub mod models;
pub mod ocr;
pub mod options;
pub mod pipeline;
pub mod places;
pub mod rank;
pub mod scan;
pub mod search;
pub mod tags;
#[cfg(feature = "testing")]
pub mod testing;
pub mod thumbs;
pub mod vocabulary;

pub use error::{Error, Result};
pub use library::{watch, Library, LibraryOptions};
