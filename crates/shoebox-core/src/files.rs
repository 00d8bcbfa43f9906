//! Small file-system helpers shared across the engine: display forms of paths, modification times,
//! hidden entries, and file operations that never replace what is already there.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::path::Path;

/// Display form of a path (lossy for non-UTF-8 names).
pub fn display_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A file's modification time in nanoseconds since the Unix epoch (None where the platform or the
/// file system has none, or it lies before 1970).
pub fn mtime_ns(md: &Metadata) -> Option<i64> {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
}

/// Whether a directory entry's name marks it hidden (a leading dot): scans, the watcher and
/// classification skip those.
pub fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Rename `from` to `to` unless `to` exists (as anything, a dangling symlink included): atomic where
/// the platform can (`renameat2(RENAME_NOREPLACE)` on Linux, else a hard link then unlink). Fails with
/// `AlreadyExists` when `to` is taken and `CrossesDevices` across file systems.
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // Old kernels and some file systems cannot: fall back to link + unlink.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Copy `from` into a new file `to` (never replacing anything there, never following a symlink
/// planted at `to`), keeping its modification and access times, synced to disk.
pub fn copy_new(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let md = src.metadata()?;
    let mut dst = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(to)?;
    let copied = std::io::copy(&mut src, &mut dst).and_then(|_| {
        let mut times = std::fs::FileTimes::new();
        if let Ok(t) = md.modified() {
            times = times.set_modified(t);
        }
        if let Ok(t) = md.accessed() {
            times = times.set_accessed(t);
        }
        dst.set_times(times)?;
        dst.sync_all()
    });
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Move a file without ever replacing one: a no-replace rename, or a new copy and then removing the
/// original where the rename cannot (across file systems, or where hard links are unsupported).
pub fn move_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    match rename_noreplace(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(e)
            if e.kind() == std::io::ErrorKind::CrossesDevices
                || e.kind() == std::io::ErrorKind::Unsupported
                || e.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            copy_new(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// Whether `path` is a real directory: not a symlink to one.
pub fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Whether anything (a file, a folder, a symlink, a dangling one included) is at `path`.
pub fn taken(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The blake3 hash (hex) and size of a regular file, opened without following a symlink.
pub fn hash_regular_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut opts = std::fs::File::options();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let mut f = opts.open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut h = blake3::Hasher::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((h.finalize().to_hex().to_string(), n))
}
