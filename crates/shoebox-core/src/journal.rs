//! Journals of classification moves and copies, and of duplicates put in the system trash: written
//! ahead of every file operation, signed with the library's key, and replayed backwards by undo —
//! which acts only inside the journal's own folder (sorting) or only on the trashed files it names
//! (duplicates), only on regular files that still hold what was recorded, and never replaces
//! anything.
//!
//! Architecture Invariant: undo trusts nothing in a journal it did not sign. A journal is refused
//! whole (nothing touched) unless its header and every line carry this library's MAC, every target
//! is `<journal's folder>/<label>/<name>` with single normal components, and every origin is an
//! absolute path. Each file is then put back only if it is still a regular file (not a symlink)
//! with the recorded size and content hash, and only into a folder that still exists.

use std::io::{BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files;

/// Journal files are named `.shoebox-journal-<time>.jsonl` in the destination folder.
pub const JOURNAL_PREFIX: &str = ".shoebox-journal-";
const VERSION: u32 = 2;
/// Larger files are not journals this code wrote (a line is ~300 bytes: this is ~200k files).
const MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// Move or copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Move,
    Copy,
    /// Put in the system trash (`to` is `from`: where it goes back).
    Trash,
}

/// One planned or performed file operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOp {
    pub op: Action,
    #[serde(with = "path_serde")]
    pub from: PathBuf,
    #[serde(with = "path_serde")]
    pub to: PathBuf,
    pub size: u64,
}

/// A file operation as journaled: with the content hash of the file it moved or copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub op: FileOp,
    /// blake3 (hex) of the file's contents when it was moved or copied.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    shoebox_journal: u32,
    /// A random id: lines are signed with it, so lines of two journals cannot be mixed.
    id: String,
    /// The destination folder as it was when sorting (absolute).
    #[serde(with = "path_serde")]
    dest: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Signed<T> {
    #[serde(flatten)]
    body: T,
    mac: String,
}

/// The secret that signs a library's journals (`journal.key` in the library folder, 0600).
#[derive(Clone)]
pub struct JournalKey([u8; 32]);

impl JournalKey {
    /// Read the library's key, making it on first use.
    pub fn open_or_create(libdir: &Path) -> Result<Self> {
        let path = libdir.join("journal.key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                return Ok(JournalKey(bytes.try_into().expect("32 bytes")));
            }
            Ok(_) => {
                return Err(Error::Invalid(format!(
                "{} is damaged: delete it (journals signed with it can then no longer be undone)",
                path.display()
            )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| Error::Invalid(format!("no randomness for the journal key: {e}")))?;
        let mut tmp = tempfile::NamedTempFile::new_in(libdir).map_err(|e| Error::io(libdir, e))?;
        tmp.write_all(&key).map_err(|e| Error::io(&path, e))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        // Never replace a key another process made meanwhile: journals may already be signed with it.
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(JournalKey(key)),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::open_or_create(libdir)
            }
            Err(e) => Err(Error::io(&path, e.error)),
        }
    }

    fn mac(&self, id: &str, index: usize, body: &str) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(id.as_bytes());
        h.update(&(index as u64).to_le_bytes());
        h.update(body.as_bytes());
        h.finalize().to_hex().to_string()
    }

    fn sign<T: Serialize>(&self, id: &str, index: usize, body: T) -> Result<String> {
        let text = to_json(&body)?;
        let mac = self.mac(id, index, &text);
        to_json(&Signed { body, mac })
    }

    fn verify<T: Serialize + for<'de> Deserialize<'de>>(
        &self,
        id: Option<&str>,
        index: usize,
        line: &str,
    ) -> std::result::Result<T, String> {
        let signed: Signed<T> =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", index + 1))?;
        let text = to_json(&signed.body).map_err(|e| e.to_string())?;
        let id = match id {
            Some(id) => id.to_string(),
            // The header signs itself with its own id.
            None => serde_json::from_str::<Header>(&text)
                .map(|h| h.id)
                .map_err(|e| e.to_string())?,
        };
        let want = self.mac(&id, index, &text);
        // Compare in constant time: the MAC is the journal's only proof of origin.
        if blake3::Hash::from_hex(&want).ok() != blake3::Hash::from_hex(&signed.mac).ok() {
            return Err(format!("line {} is not signed by this library", index + 1));
        }
        Ok(signed.body)
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(format!("journal: {e}")))
}

/// An open journal being written while sorting: every operation is appended (and synced) before
/// it happens.
pub struct JournalWriter {
    key: JournalKey,
    header: Header,
    path: PathBuf,
    file: std::fs::File,
    entries: Vec<Entry>,
}

/// What was sorted: the journal's path and the operations it records, enough to undo them without
/// reading the file back (the app keeps this in memory).
#[derive(Debug, Clone)]
pub struct Journal {
    pub path: PathBuf,
    pub dest: PathBuf,
    pub entries: Vec<Entry>,
}

impl JournalWriter {
    /// Create a new journal in `dest` (an absolute, existing folder) and record its header.
    pub fn create(key: &JournalKey, dest: &Path) -> Result<Self> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|e| Error::Invalid(format!("no randomness for a journal id: {e}")))?;
        let header = Header {
            shoebox_journal: VERSION,
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            dest: dest.to_path_buf(),
        };
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.3f");
        let path = dest.join(format!("{JOURNAL_PREFIX}{stamp}.jsonl"));
        let file = std::fs::File::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut w = JournalWriter {
            key: key.clone(),
            header,
            path,
            file,
            entries: Vec::new(),
        };
        let line = w.key.sign(&w.header.id, 0, &w.header)?;
        w.write_line(&line)?;
        Ok(w)
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|e| Error::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    /// Record an operation (before performing it).
    pub fn record(&mut self, entry: Entry) -> Result<()> {
        let line = self
            .key
            .sign(&self.header.id, self.entries.len() + 1, &entry)?;
        self.write_line(&line)?;
        self.entries.push(entry);
        Ok(())
    }

    /// What has been recorded so far.
    pub fn journal(&self) -> Journal {
        Journal {
            path: self.path.clone(),
            dest: self.header.dest.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// What an undo did.
#[derive(Debug, Clone, Default)]
pub struct UndoReport {
    /// Files moved back or copies removed.
    pub restored: usize,
    /// Journaled operations that never happened (an interrupted run).
    pub not_done: usize,
    /// Files left in place, with the reason (changed since they were sorted, their folder gone…).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Read and check a journal file: signed by `key`, every line well formed and inside the journal's
/// folder. Anything else refuses the whole journal.
pub fn read(path: &Path, key: &JournalKey) -> Result<Journal> {
    let refuse = |why: String| {
        Error::Invalid(format!(
            "{} cannot be undone: {why}; nothing was changed",
            path.display()
        ))
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if !name.is_some_and(|n| n.starts_with(JOURNAL_PREFIX)) {
        return Err(refuse(format!(
            "not a Shoebox journal (those are named {JOURNAL_PREFIX}….jsonl)"
        )));
    }
    let md = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !md.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if md.len() > MAX_JOURNAL_BYTES {
        return Err(refuse("too large to be a Shoebox journal".into()));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(f.take(MAX_JOURNAL_BYTES)).lines() {
        let line = line.map_err(|_| refuse("not a text file".into()))?;
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    let Some(first) = lines.first() else {
        return Err(refuse("it is empty".into()));
    };
    let version = serde_json::from_str::<serde_json::Value>(first)
        .ok()
        .and_then(|v| v.get("shoebox_journal").and_then(|x| x.as_u64()));
    if version != Some(VERSION as u64) {
        return Err(refuse(
            "it is not a journal of this Shoebox version (journals of Shoebox before 0.2 carry no \
             signature and cannot be undone safely)"
                .into(),
        ));
    }
    let header: Header = key.verify(None, 0, first).map_err(|why| {
        refuse(format!(
            "{why} (it was written by another library, or changed since)"
        ))
    })?;
    let mut entries = Vec::with_capacity(lines.len() - 1);
    for (i, line) in lines.iter().enumerate().skip(1) {
        let e: Entry = key.verify(Some(&header.id), i, line).map_err(|why| {
            refuse(format!(
                "{why} (it was written by another library, or changed since)"
            ))
        })?;
        entries.push(e);
    }
    let journal = Journal {
        path: path.to_path_buf(),
        dest: header.dest,
        entries,
    };
    check(&journal).map_err(refuse)?;
    Ok(journal)
}

/// One normal path component: no separators, not `.`/`..`, no root or drive prefix.
fn single_normal(name: &std::ffi::OsStr) -> bool {
    let p = Path::new(name);
    let mut comps = p.components();
    matches!(comps.next(), Some(Component::Normal(c)) if c == name) && comps.next().is_none()
}

/// The label folder and file name of a journaled target `dest/<label>/<name>`.
fn target_parts<'a>(
    dest: &Path,
    to: &'a Path,
) -> std::result::Result<(&'a std::ffi::OsStr, &'a std::ffi::OsStr), String> {
    let bad = || format!("{} is not inside {}", to.display(), dest.display());
    let name = to.file_name().ok_or_else(bad)?;
    let label_dir = to.parent().ok_or_else(bad)?;
    let label = label_dir.file_name().ok_or_else(bad)?;
    if label_dir.parent() != Some(dest) || !single_normal(name) || !single_normal(label) {
        return Err(bad());
    }
    if to.components().count() != dest.components().count() + 2 {
        return Err(bad());
    }
    Ok((label, name))
}

/// Every operation of a journal stays inside its folder and names absolute origins.
fn check(j: &Journal) -> std::result::Result<(), String> {
    if !j.dest.is_absolute() {
        return Err("its destination is not an absolute path".into());
    }
    let trash = j
        .entries
        .iter()
        .filter(|e| e.op.op == Action::Trash)
        .count();
    if trash != 0 && trash != j.entries.len() {
        return Err("it mixes sorting and trashing".into());
    }
    for e in &j.entries {
        if e.op.op == Action::Trash {
            if e.op.to != e.op.from {
                return Err(format!("{} names two places", e.op.from.display()));
            }
        } else {
            target_parts(&j.dest, &e.op.to)?;
        }
        let from = &e.op.from;
        if !from.is_absolute()
            || from
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
            || !from.file_name().is_some_and(single_normal)
        {
            return Err(format!("{} is not a plain absolute path", from.display()));
        }
        if blake3::Hash::from_hex(&e.hash).is_err() {
            return Err(format!("{} has no valid content hash", e.op.to.display()));
        }
    }
    Ok(())
}

/// Undo a journal: backwards, moved files go back and copies are removed, inside the folder the
/// journal file is in now (`journal_dir`; it may have been moved with its folder). Files changed
/// since, symlinks, and origins whose folder is gone are skipped and reported. The journal is
/// renamed `.undone` when nothing was skipped.
pub fn undo(j: &Journal) -> Result<UndoReport> {
    check(j).map_err(|why| Error::Invalid(format!("cannot undo: {why}")))?;
    if is_trash(j) {
        return Err(Error::Invalid(format!(
            "{} records duplicates put in the trash: undo it with `shoebox duplicates --undo`",
            j.path.display()
        )));
    }
    let journal_dir = j
        .path
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{} has no folder", j.path.display())))?;
    let mut report = UndoReport::default();
    let mut label_dirs: Vec<PathBuf> = Vec::new();
    for e in j.entries.iter().rev() {
        let (label, name) = target_parts(&j.dest, &e.op.to).map_err(Error::Invalid)?;
        let label_dir = journal_dir.join(label);
        let here = label_dir.join(name);
        if !label_dirs.contains(&label_dir) {
            label_dirs.push(label_dir.clone());
        }
        let Ok(md) = std::fs::symlink_metadata(&here) else {
            report.not_done += 1;
            continue;
        };
        let mut skip = |why: &str| report.skipped.push((here.clone(), why.to_string()));
        if !files::is_real_dir(&label_dir) {
            skip("its label folder is not a real folder");
            continue;
        }
        if !md.is_file() {
            skip("not a regular file (a symlink or folder is never followed)");
            continue;
        }
        match files::hash_regular_file(&here) {
            Ok((hash, size)) if hash == e.hash && size == e.op.size => {}
            Ok(_) => {
                skip("changed since it was sorted");
                continue;
            }
            Err(err) => {
                skip(&format!("cannot be read: {err}"));
                continue;
            }
        }
        match e.op.op {
            Action::Trash => {
                skip("trashed files come back with `duplicates --undo`");
                continue;
            }
            Action::Copy => {
                std::fs::remove_file(&here).map_err(|err| Error::io(&here, err))?;
            }
            Action::Move => {
                let back = &e.op.from;
                if !back.parent().is_some_and(files::is_real_dir) {
                    skip("the folder it came from is gone");
                    continue;
                }
                match files::move_noreplace(&here, back) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                        skip(&format!("{} exists again", back.display()));
                        continue;
                    }
                    Err(err) => return Err(Error::io(&here, err)),
                }
            }
        }
        report.restored += 1;
    }
    // Remove label folders the run created and left empty (never through a symlink).
    for d in label_dirs {
        if files::is_real_dir(&d) {
            let _ = std::fs::remove_dir(&d);
        }
    }
    if report.skipped.is_empty() && files::taken(&j.path) {
        let done = j.path.with_extension("undone");
        std::fs::rename(&j.path, &done).map_err(|e| Error::io(&j.path, e))?;
    }
    Ok(report)
}

/// Whether a journal records files put in the trash (by the duplicate finder), not sorting.
pub fn is_trash(j: &Journal) -> bool {
    j.entries.first().is_some_and(|e| e.op.op == Action::Trash)
}

/// Put files in the system trash, journaling each (with its content hash) in a new journal in
/// `journal_dir` before it goes. Stops at the first file that cannot be trashed; what was trashed
/// until then is in the journal either way.
pub fn trash_files(
    key: &JournalKey,
    journal_dir: &Path,
    files_to_trash: &[PathBuf],
) -> std::result::Result<Journal, (Error, Option<Journal>)> {
    std::fs::create_dir_all(journal_dir).map_err(|e| (Error::io(journal_dir, e), None))?;
    let mut w = JournalWriter::create(key, journal_dir).map_err(|e| (e, None))?;
    for path in files_to_trash {
        let fail = |e: Error, w: &JournalWriter| (e, Some(w.journal()));
        let (hash, size) =
            files::hash_regular_file(path).map_err(|e| fail(Error::io(path, e), &w))?;
        w.record(Entry {
            op: FileOp {
                op: Action::Trash,
                from: path.clone(),
                to: path.clone(),
                size,
            },
            hash,
        })
        .map_err(|e| fail(e, &w))?;
        trash::delete(path).map_err(|e| {
            fail(
                Error::Invalid(format!(
                    "{}: cannot put it in the trash: {e}",
                    path.display()
                )),
                &w,
            )
        })?;
    }
    Ok(w.journal())
}

/// Take a trash journal's files back out of the system trash, each only if the trash still holds
/// a file from that place with the recorded content, and nothing has taken its place since.
#[cfg(any(
    windows,
    all(
        unix,
        not(target_os = "macos"),
        not(target_os = "ios"),
        not(target_os = "android")
    )
))]
pub fn untrash(j: &Journal) -> Result<UndoReport> {
    check(j).map_err(|why| Error::Invalid(format!("cannot undo: {why}")))?;
    if !is_trash(j) {
        return Err(Error::Invalid(format!(
            "{} records sorting, not trashing: undo it with `shoebox classify --undo`",
            j.path.display()
        )));
    }
    let items = trash::os_limited::list()
        .map_err(|e| Error::Invalid(format!("cannot read the trash: {e}")))?;
    let mut report = UndoReport::default();
    for e in j.entries.iter().rev() {
        let from = &e.op.from;
        let mut skip = |why: String| report.skipped.push((from.clone(), why));
        // The newest trashed file from that place that still holds what was trashed.
        let mut candidates: Vec<&trash::TrashItem> = items
            .iter()
            .filter(|i| &i.original_path() == from)
            .collect();
        candidates.sort_by_key(|i| std::cmp::Reverse(i.time_deleted));
        let found = candidates.into_iter().find(|i| match trashed_file(i) {
            Some(p) => files::hash_regular_file(&p)
                .is_ok_and(|(hash, size)| hash == e.hash && size == e.op.size),
            None => true,
        });
        let Some(item) = found else {
            report.not_done += 1;
            continue;
        };
        if files::taken(from) {
            skip(format!("{} exists again", from.display()));
            continue;
        }
        if !from.parent().is_some_and(files::is_real_dir) {
            skip("the folder it came from is gone".into());
            continue;
        }
        match trash::os_limited::restore_all([item.clone()]) {
            Ok(()) => report.restored += 1,
            Err(err) => skip(format!("cannot take it out of the trash: {err}")),
        }
    }
    if report.skipped.is_empty() && files::taken(&j.path) {
        let done = j.path.with_extension("undone");
        std::fs::rename(&j.path, &done).map_err(|e| Error::io(&j.path, e))?;
    }
    Ok(report)
}

/// Elsewhere the trash cannot be listed: say so.
#[cfg(not(any(
    windows,
    all(
        unix,
        not(target_os = "macos"),
        not(target_os = "ios"),
        not(target_os = "android")
    )
)))]
pub fn untrash(j: &Journal) -> Result<UndoReport> {
    Err(Error::Invalid(format!(
        "taking files back out of the trash is not supported on this system: restore them from the \
         trash yourself ({} lists them)",
        j.path.display()
    )))
}

/// Where a trashed file's contents are (freedesktop trash: `files/<name>` beside `info/`).
#[cfg(all(
    unix,
    not(target_os = "macos"),
    not(target_os = "ios"),
    not(target_os = "android")
))]
fn trashed_file(item: &trash::TrashItem) -> Option<PathBuf> {
    let info = Path::new(&item.id);
    let name = info.file_name()?.to_str()?.strip_suffix(".trashinfo")?;
    Some(info.parent()?.parent()?.join("files").join(name))
}

#[cfg(windows)]
fn trashed_file(_item: &trash::TrashItem) -> Option<PathBuf> {
    None
}

/// Paths in journals: a string when valid UTF-8, else `{"hex": "<bytes>"}` (Unix names need not be
/// UTF-8, and a journal must be able to put such a file back).
mod path_serde {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes { hex: String },
    }

    pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        match p.to_str() {
            Some(t) => Repr::Text(t.to_string()),
            None => Repr::Bytes {
                hex: p
                    .as_os_str()
                    .as_encoded_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(PathBuf::from(t)),
            Repr::Bytes { hex } => {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| serde::de::Error::custom("bad hex path"))?;
                from_bytes(bytes).ok_or_else(|| serde::de::Error::custom("bad path bytes"))
            }
        }
    }

    #[cfg(unix)]
    fn from_bytes(b: Vec<u8>) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        Some(PathBuf::from(std::ffi::OsString::from_vec(b)))
    }

    #[cfg(not(unix))]
    fn from_bytes(b: Vec<u8>) -> Option<PathBuf> {
        String::from_utf8(b).ok().map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_one_label_and_one_name_inside_dest() {
        let dest = Path::new("/d");
        assert!(target_parts(dest, Path::new("/d/pets/a.jpg")).is_ok());
        for bad in [
            "/d/a.jpg",
            "/d/pets/sub/a.jpg",
            "/d/../pets/a.jpg",
            "/d/pets/../a.jpg",
            "/elsewhere/pets/a.jpg",
            "/d/./a.jpg",
            "d/pets/a.jpg",
        ] {
            assert!(target_parts(dest, Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let p = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/caf\xe9.jpg"));
        let op = FileOp {
            op: Action::Move,
            from: p.clone(),
            to: PathBuf::from("/d/x/caf.jpg"),
            size: 3,
        };
        let text = serde_json::to_string(&op).unwrap();
        assert!(text.contains("\"hex\""), "{text}");
        assert_eq!(serde_json::from_str::<FileOp>(&text).unwrap(), op);
    }
}
