//! What only the bench (`crates/shoebox-bench`) and tests need from the engine's insides, behind
//! the `testing` feature. The index's switches live with it: `index::force_portable_dot` and
//! `VectorIndex::use_hnsw_rs_search`.

use std::path::PathBuf;

use crate::library::Library;

/// The folder where `lib` keeps the saved index of `model` (the bench saves one there, as
/// `index` would).
pub fn index_dir(lib: &Library, model: &str) -> PathBuf {
    lib.index_dir(model)
}
