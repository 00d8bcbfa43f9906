//! Shoebox engine: catalog (SQLite), scan, decode, CLIP models, HNSW index, indexing pipeline and
//! search — everything the `shoebox` CLI and the desktop app do, with no UI or CLI dependencies.

pub mod bench;
pub mod captions;
pub mod catalog;
pub mod classify;
pub mod decode;
pub mod error;
pub mod index;
pub mod keyphrase;
pub mod library;
pub mod models;
pub mod pipeline;
pub mod scan;
pub mod search;
pub mod tags;
pub mod thumbs;
pub mod vocabulary;
mod walk;
pub mod watch;

pub use error::{Error, Result};
pub use library::{Library, LibraryOptions};
