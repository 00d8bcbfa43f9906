//! What the webview may name. Any script in it can call any command with any path, so every path
//! it sends is checked lexically (no file-system call: a forbidden path and a missing one get the
//! same answer) against what the user handed over, then resolved and checked again; folders are
//! handed over in native dialogs, where broad ones (the whole disk, the home folder, system
//! folders) get a warning. Files for the `photo:` protocol are opened once and served from what was
//! opened.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::Core;
use crate::error::{ApiError, ApiResult};

/// `~/x` → the home folder's `x`.
pub fn expand_home(p: &str) -> PathBuf {
    let p = p.trim();
    if let (Some(rest), Some(home)) = (p.strip_prefix("~"), dirs::home_dir()) {
        if rest.is_empty() {
            return home;
        }
        if let Some(rest) = rest.strip_prefix('/') {
            return home.join(rest);
        }
    }
    PathBuf::from(p)
}

/// A path the webview sent, made absolute without the file system: `~` expanded, `.` and repeated
/// separators dropped. `None` for relative paths, paths with `..` (only the file system can resolve
/// those) and paths with control or direction-changing characters (they would garble the
/// confirmation dialog that shows them).
pub fn lexical(p: &str) -> Option<PathBuf> {
    lexical_path(&expand_home(p))
}

/// [`lexical`] for a path (no `~`).
pub fn lexical_path(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let odd = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if p.to_string_lossy().chars().any(odd) {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// `path` with links followed as far as it exists: its longest existing ancestor canonicalized and
/// the rest appended (a destination need not exist yet).
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut out) = std::fs::canonicalize(existing) {
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// System folders: adding or sorting one (or anything in one) needs a warning.
const SYSTEM_FOLDERS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/nix",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/srv",
    "/sys",
    "/usr",
    "/var",
    "/System",
    "/Library",
    "/private",
    "C:\\Windows",
    "C:\\Program Files",
    "C:\\Program Files (x86)",
    "C:\\ProgramData",
];

/// What makes a folder too broad to use without a warning, if anything: the whole disk, the home
/// folder or a folder above it, a system folder or anything inside one. Lexical.
pub fn broad_folder(path: &Path) -> Option<&'static str> {
    if path.parent().is_none() {
        return Some("the whole disk");
    }
    if dirs::home_dir().is_some_and(|home| home == path) {
        return Some("your whole home folder");
    }
    if dirs::home_dir().is_some_and(|home| home.starts_with(path)) {
        return Some("a folder holding every user's home folder");
    }
    // Inside the home folder (even one under /var, as on Fedora Silverblue), and removable drives
    // (mounted under /run/media on some systems), are where photos live.
    if dirs::home_dir().is_some_and(|home| path.starts_with(home)) || path.starts_with("/run/media")
    {
        return None;
    }
    SYSTEM_FOLDERS
        .iter()
        .any(|s| path.starts_with(s))
        .then_some("a system folder")
}

/// What the user chooses a folder for (the dialogs say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FolderUse {
    /// Add to the library: read, index and watch.
    Library,
    /// Look at its images to sort them (Sort's folder).
    Sort,
    /// Move or copy sorted files into it (Sort's destination).
    #[serde(rename = "dest")]
    Destination,
}

impl FolderUse {
    /// The native folder dialog's title.
    pub fn picker_title(self) -> &'static str {
        match self {
            FolderUse::Library => "Add a photo folder",
            FolderUse::Sort => "Choose a folder to sort",
            FolderUse::Destination => "Choose where sorted files go",
        }
    }
}

/// A yes/no question for the user, asked in a native dialog (never in the webview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub title: String,
    pub message: String,
    /// The label of the button that says yes.
    pub ok: String,
    /// The folder is broad (the whole disk, the home folder, a system folder): a warning.
    pub broad: bool,
}

pub(crate) fn question(purpose: FolderUse, shown: &Path, broad: Option<&str>) -> Question {
    let path = shown.display();
    let (title, message, ok) = match purpose {
        FolderUse::Library => (
            "Add this folder to Shoebox?",
            format!("Shoebox will read and index every photo in\n\n{path}\n\nand watch it for changes."),
            "Add folder",
        ),
        FolderUse::Sort => (
            "Sort this folder?",
            format!("Shoebox will look at the images in\n\n{path}\n\nto show how it would sort them. Nothing moves until you say so."),
            "Look at it",
        ),
        FolderUse::Destination => (
            "Sort into this folder?",
            format!("Shoebox will create label folders in\n\n{path}\n\nand move or copy the sorted files into them."),
            "Sort into it",
        ),
    };
    let mut message = message;
    if let Some(what) = broad {
        message.push_str(&format!(
            "\n\nThis is {what}. Continue only if you really mean all of it."
        ));
    }
    Question {
        title: title.to_string(),
        message,
        ok: ok.to_string(),
        broad: broad.is_some(),
    }
}

pub(crate) fn not_chosen(path: &str) -> ApiError {
    ApiError::new(
        "not_allowed",
        format!(
            "{} is not a folder you chose: choose it with the folder button, or confirm it when asked",
            path.trim()
        ),
    )
}

pub(crate) fn not_handed_over(path: &str) -> ApiError {
    ApiError::new(
        "not_allowed",
        format!("{path} is neither a library photo nor a file you dropped, picked or previewed"),
    )
}

/// An image file opened for the webview (see [`Core::open_readable`]).
pub struct OpenedFile {
    pub file: File,
    /// Where the opened file is (links resolved): what was checked.
    pub path: PathBuf,
}

impl OpenedFile {
    /// A path that names exactly the opened file, for engine functions that read by path: on Linux
    /// `/proc/self/fd/N` (a swap of the file's path after opening changes nothing), elsewhere its
    /// canonical path.
    pub fn reopen_path(&self) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let p = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
            if p.exists() {
                return p;
            }
        }
        self.path.clone()
    }

    /// Whether `path` still names the opened file (same device and inode on Unix).
    pub fn still_at(&self, path: &Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (self.file.metadata(), std::fs::metadata(path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            }
        }
        #[cfg(not(unix))]
        {
            path.is_file()
        }
    }
}

/// Where an opened file really is: on Linux what `/proc/self/fd/N` points at (the opened file,
/// whatever happened to `named` since); elsewhere the canonical path, if it still names that file.
pub(crate) fn where_opened(file: &File, named: &Path) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            return Some(p);
        }
    }
    let canon = std::fs::canonicalize(named).ok()?;
    let opened = OpenedFile {
        file: file.try_clone().ok()?,
        path: canon.clone(),
    };
    opened.still_at(&canon).then_some(canon)
}

impl Core {
    // ---- the folders the user chose ----

    /// The library's folders (canonical, as the catalog records them).
    pub(crate) fn roots(&self) -> ApiResult<Vec<PathBuf>> {
        self.with_view(|lib| Ok(lib.catalog().roots()?.into_iter().map(|r| r.path).collect()))
    }

    /// Whether `path` is a folder the user chose or a library folder, or inside one. Lexical: no
    /// file-system call.
    pub(crate) fn folder_allowed(&self, path: &Path) -> ApiResult<bool> {
        if self.chosen_folders().iter().any(|g| path.starts_with(g)) {
            return Ok(true);
        }
        Ok(self.roots()?.iter().any(|r| path.starts_with(r)))
    }

    /// A folder the webview names, to add, sort or sort into: it must be (lexically, before the
    /// file system is asked anything) a folder the user chose or a library folder, or inside one;
    /// then, links followed, it must still be. Returns the resolved path, which the engine gets.
    pub(crate) fn chosen_folder(&self, path: &str) -> ApiResult<PathBuf> {
        let named = lexical(path).ok_or_else(|| not_chosen(path))?;
        if !self.folder_allowed(&named)? {
            return Err(not_chosen(path));
        }
        let resolved = resolve(&named);
        if !self.folder_allowed(&resolved)? {
            return Err(ApiError::new(
                "not_allowed",
                format!(
                    "{} leads to {}, outside the folders you chose",
                    path.trim(),
                    resolved.display()
                ),
            ));
        }
        Ok(resolved)
    }

    /// Record a folder the user chose in a native dialog, as named and resolved.
    pub(crate) fn grant(&self, named: &Path) {
        let resolved = resolve(named);
        let mut g = self.chosen_folders();
        for p in [named.to_path_buf(), resolved] {
            if !g.contains(&p) {
                g.push(p);
            }
        }
    }

    /// A folder the user picked in the native folder dialog (the picker command calls this with the
    /// dialog's answer; `ask` is a native yes/no dialog): from now on the webview may name it, and
    /// what is inside it, to add, sort or sort into. A broad folder (the whole disk, the home folder
    /// and above, a system folder), as picked or after following links, is granted only when `ask`
    /// says yes. Returns the folder to show, `None` when the user said no.
    pub fn grant_picked(
        &self,
        picked: &Path,
        purpose: FolderUse,
        ask: &mut dyn FnMut(&Question) -> bool,
    ) -> ApiResult<Option<String>> {
        let named = lexical_path(picked).ok_or_else(|| {
            ApiError::new(
                "invalid",
                format!("{} cannot be used as a folder", picked.display()),
            )
        })?;
        let resolved = resolve(&named);
        let broad = broad_folder(&named).or_else(|| broad_folder(&resolved));
        if broad.is_some() && !ask(&question(purpose, &named, broad)) {
            return Ok(None);
        }
        self.grant(&named);
        Ok(Some(named.to_string_lossy().into_owned()))
    }

    /// A folder typed in the UI: it may be used once the user says yes to it in a native dialog
    /// (`ask`; the confirmation command calls this). A folder already allowed needs no question; a
    /// typed folder that leads (through links) to a broad one needs a second, warning, yes. Returns
    /// whether the webview may use it now. Nothing on disk is looked at before the first yes.
    pub fn grant_typed(
        &self,
        typed: &str,
        purpose: FolderUse,
        ask: &mut dyn FnMut(&Question) -> bool,
    ) -> ApiResult<bool> {
        let Some(named) = lexical(typed) else {
            return Err(ApiError::new(
                "invalid",
                format!("{} is not a full path (start it with / or ~)", typed.trim()),
            ));
        };
        if self.folder_allowed(&named)? && self.folder_allowed(&resolve(&named))? {
            return Ok(true);
        }
        let broad = broad_folder(&named);
        if !ask(&question(purpose, &named, broad)) {
            return Ok(false);
        }
        let resolved = resolve(&named);
        if broad.is_none() {
            if let Some(what) = broad_folder(&resolved) {
                let mut q = question(purpose, &resolved, Some(what));
                q.message = format!(
                    "{} leads to {}.\n\n{}",
                    named.display(),
                    resolved.display(),
                    q.message
                );
                if !ask(&q) {
                    return Ok(false);
                }
            }
        }
        self.grant(&named);
        Ok(true)
    }

    /// Whether the webview may name this file at all: one the user handed over (dropped, picked,
    /// previewed), or anything in a library folder. Lexical (`named` comes from [`lexical_path`]):
    /// no file-system call, so a forbidden path and a missing one look the same.
    pub(crate) fn may_name(&self, named: &Path) -> ApiResult<bool> {
        if self.handed_over().contains(named) {
            return Ok(true);
        }
        Ok(self.roots()?.iter().any(|r| named.starts_with(r)))
    }

    /// Whether the file really at `canonical` may be shown: one the user handed over, or a library
    /// photo.
    pub(crate) fn may_show(&self, canonical: &Path) -> bool {
        if self.handed_over().contains(canonical) {
            return true;
        }
        self.with_view(|lib| Ok(lib.catalog().photo_id_at(canonical)?.is_some()))
            .unwrap_or(false)
    }

    /// Whether the webview may see this file: a library photo, or a file the user dropped, picked
    /// or previewed. Checked on the path as named before the file system is asked, then on where
    /// it leads.
    pub fn may_read(&self, path: &Path) -> bool {
        let Some(named) = lexical_path(path) else {
            return false;
        };
        if !self.may_name(&named).unwrap_or(false) {
            return false;
        }
        std::fs::canonicalize(&named).is_ok_and(|canon| self.may_show(&canon))
    }

    /// The canonical path of a readable file, or `not_allowed`.
    pub fn readable(&self, path: &str) -> ApiResult<PathBuf> {
        let p = Path::new(path);
        if self.may_read(p) {
            std::fs::canonicalize(p).map_err(|_| not_handed_over(path))
        } else {
            Err(not_handed_over(path))
        }
    }

    /// Open a file for the `photo:` protocol: allowed by name (lexically, so a forbidden path and
    /// a missing one get the same `not_allowed`), a regular file, and allowed where the opened file
    /// really is. Serve from the returned file (or [`OpenedFile::reopen_path`]), never from the name
    /// again: the check and what is served are the same file even if the name changes meanwhile.
    pub fn open_readable(&self, path: &Path) -> ApiResult<OpenedFile> {
        let shown = path.display().to_string();
        let named = lexical_path(path).ok_or_else(|| not_handed_over(&shown))?;
        if !self.may_name(&named)? {
            return Err(not_handed_over(&shown));
        }
        let missing = |e: std::io::Error| ApiError::new("not_found", format!("{shown}: {e}"));
        // Regular files only (opening a FIFO would wait forever).
        if !std::fs::metadata(&named).map_err(missing)?.is_file() {
            return Err(ApiError::new("not_found", format!("{shown} is not a file")));
        }
        let file = File::open(&named).map_err(missing)?;
        if !file.metadata().map_err(missing)?.is_file() {
            return Err(ApiError::new("not_found", format!("{shown} is not a file")));
        }
        let real = where_opened(&file, &named).ok_or_else(|| {
            ApiError::new("not_found", format!("{shown} changed while it was opened"))
        })?;
        if !self.may_show(&real) {
            return Err(not_handed_over(&shown));
        }
        Ok(OpenedFile { file, path: real })
    }
}
