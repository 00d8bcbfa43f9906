//! Peak memory (Linux): this process's or a child's VmHWM from /proc, and resetting it between
//! phases (after handing freed heap back to the system with glibc's malloc_trim).

use std::path::Path;

/// VmHWM (peak resident set) of this process, in MiB (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    proc_hwm_mb(Path::new("/proc/self/status"))
}

/// Return freed heap to the system, then reset this process's VmHWM to its current resident set
/// (Linux; elsewhere a no-op). Returns the resident set it starts from, in MiB.
pub(crate) fn reset_peak_rss() -> Option<f64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status_mb(Path::new("/proc/self/status"), "VmRSS:")
}

/// VmHWM (peak resident set) from a /proc status file (this process's or a child's), in MiB.
pub(crate) fn proc_hwm_mb(status: &Path) -> Option<f64> {
    proc_status_mb(status, "VmHWM:")
}

/// A `field` (e.g. `VmHWM:`) of a /proc status file, in MiB.
fn proc_status_mb(status: &Path, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
