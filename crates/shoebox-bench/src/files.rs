//! File helpers of the bench: I/O errors as the engine reports them, fresh work folders.

use std::path::{Path, PathBuf};

use shoebox_core::{Error, Result};

/// An I/O error on `path`, as the engine reports one.
pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
    Error::Io {
        path: path.into(),
        source,
    }
}

/// `d`, emptied (or created).
pub(crate) fn fresh_dir(d: &Path) -> Result<PathBuf> {
    if d.exists() {
        std::fs::remove_dir_all(d).map_err(|e| io(d, e))?;
    }
    std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
    Ok(d.to_path_buf())
}
