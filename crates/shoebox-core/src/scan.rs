//! Scan: walk the library folders and reconcile what is on disk with the catalog (new, changed,
//! moved, removed), without decoding anything.
//!
//! Architecture Invariant: a file found at a new path with the same size and content hash as a
//! vanished photo is a move: it keeps its photo id, so its embeddings and metadata follow it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::catalog::{Catalog, FoundFile, KnownFile, Root, ScanChanges};
use crate::error::Result;
use crate::files;

/// File extensions the `image` crate reads (lower case); the HEIF and RAW ones are in
/// [`crate::formats`].
const IMAGE_CRATE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "webp", "gif", "bmp", "tif", "tiff",
];

/// Every file extension Shoebox indexes (lower case).
pub fn image_extensions() -> impl Iterator<Item = &'static str> {
    IMAGE_CRATE_EXTENSIONS
        .iter()
        .chain(crate::formats::HEIF_EXTENSIONS)
        .chain(crate::formats::RAW_EXTENSIONS)
        .copied()
}

/// What to do with a camera RAW file that has a JPEG of the same name beside it (RAW+JPEG shooting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RawMode {
    /// One photo: the JPEG is shown and searched, the RAW is listed as its original.
    #[default]
    Pair,
    /// Both are photos of their own.
    Separate,
}

impl std::str::FromStr for RawMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pair" => Ok(RawMode::Pair),
            "separate" => Ok(RawMode::Separate),
            other => Err(crate::Error::UnknownValue {
                what: "RAW mode",
                value: other.to_string(),
                expected: "pair, separate",
            }),
        }
    }
}

/// The JPEG extensions a RAW file pairs with.
const PAIR_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe"];

/// In [`RawMode::Pair`], take RAW files that have a JPEG of the same name in the same folder out of
/// `found`; returns (JPEG, RAW) relative paths.
fn pair_raws(found: &mut Vec<FoundFile>) -> Vec<(PathBuf, PathBuf)> {
    let key = |f: &FoundFile| {
        (
            f.rel_path.parent().map(Path::to_path_buf),
            f.rel_path
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase()),
        )
    };
    let jpegs: HashMap<_, PathBuf> = found
        .iter()
        .filter(|f| PAIR_EXTENSIONS.contains(&f.ext.as_str()))
        .map(|f| (key(f), f.rel_path.clone()))
        .collect();
    let mut pairs = Vec::new();
    found.retain(|f| {
        if !crate::formats::is_raw_ext(&f.ext) {
            return true;
        }
        match jpegs.get(&key(f)) {
            Some(jpeg) => {
                pairs.push((jpeg.clone(), f.rel_path.clone()));
                false
            }
            None => true,
        }
    });
    pairs
}

/// What a scan did, for reporting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    pub seen: usize,
    pub added: usize,
    pub changed: usize,
    pub moved: usize,
    pub removed: usize,
    pub issues: usize,
}

/// Lower-case extension of a path when it is one we index.
pub fn image_ext(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    image_extensions().any(|e| e == ext).then_some(ext)
}

fn is_hidden(entry: &walkdir::DirEntry) -> bool {
    entry.depth() > 0 && files::is_hidden(entry.file_name())
}

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    files::mtime_ns(md).unwrap_or(0)
}

/// Hash a whole file with blake3.
pub fn hash_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().as_bytes().to_vec())
}

/// A photo the catalog has but the walk did not find: (id, content hash if known).
type Vanished = (i64, Option<Vec<u8>>);

struct Walked {
    found: Vec<FoundFile>,
    issues: Vec<(i64, PathBuf, String)>,
}

fn walk(root: &Root) -> Walked {
    let mut found = Vec::new();
    let mut issues = Vec::new();
    if !root.path.is_dir() {
        issues.push((
            root.id,
            PathBuf::new(),
            "folder is missing or not a directory (its photos are kept until it is back or removed)"
                .to_string(),
        ));
        return Walked { found, issues };
    }
    let walker = WalkDir::new(&root.path)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| !is_hidden(e));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let rel = err
                    .path()
                    .and_then(|p| p.strip_prefix(&root.path).ok())
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let reason = if err.loop_ancestor().is_some() {
                    "symlink loop: skipped".to_string()
                } else if let Some(io) = err.io_error() {
                    format!("cannot read: {io}")
                } else {
                    err.to_string()
                };
                issues.push((root.id, rel, reason));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(ext) = image_ext(entry.path()) else {
            continue;
        };
        let md = match entry.metadata() {
            Ok(md) => md,
            Err(err) => {
                let rel = entry
                    .path()
                    .strip_prefix(&root.path)
                    .unwrap_or(entry.path());
                issues.push((root.id, rel.to_path_buf(), format!("cannot stat: {err}")));
                continue;
            }
        };
        let rel = entry
            .path()
            .strip_prefix(&root.path)
            .unwrap_or(entry.path())
            .to_path_buf();
        found.push(FoundFile {
            root_id: root.id,
            rel_path: rel,
            ext,
            size: md.len(),
            mtime_ns: mtime_ns(&md),
        });
    }
    Walked { found, issues }
}

/// Scan the given roots (all when `only` is None), detect changes and apply them to the catalog,
/// pairing RAW files with their JPEGs.
pub fn scan(catalog: &mut Catalog, only: Option<&[i64]>) -> Result<ScanReport> {
    scan_with(catalog, only, RawMode::Pair)
}

/// [`scan`] with a choice of what RAW+JPEG pairs are.
pub fn scan_with(catalog: &mut Catalog, only: Option<&[i64]>, raw: RawMode) -> Result<ScanReport> {
    let roots: Vec<Root> = catalog
        .roots()?
        .into_iter()
        .filter(|r| only.is_none_or(|ids| ids.contains(&r.id)))
        .collect();
    let mut changes = ScanChanges::default();
    let mut report = ScanReport::default();
    // Vanished photos, by size, for move detection.
    let mut missing: HashMap<u64, Vec<Vanished>> = HashMap::new();
    let mut candidates: Vec<FoundFile> = Vec::new();

    for root in &roots {
        changes.roots.push(root.id);
        let mut walked = walk(root);
        let root_missing = !root.path.is_dir();
        report.issues += walked.issues.len();
        changes.issues.extend(walked.issues);
        if root_missing {
            // A root that went away (unplugged drive, network share) keeps its photos.
            continue;
        }
        changes.walked.push(root.id);
        if raw == RawMode::Pair {
            for (jpeg, raw) in pair_raws(&mut walked.found) {
                changes.originals.push((root.id, jpeg, raw));
            }
        }
        let mut known: HashMap<PathBuf, KnownFile> = catalog.known_files(root.id)?;
        report.seen += walked.found.len();
        for f in walked.found {
            match known.remove(&f.rel_path) {
                Some(k) if k.size == f.size && k.mtime_ns == f.mtime_ns => {}
                Some(k) => changes.changed.push((k.id, f)),
                None => candidates.push(f),
            }
        }
        for (_, k) in known {
            missing.entry(k.size).or_default().push((k.id, k.hash));
        }
    }

    for f in candidates {
        let moved_from = missing.get_mut(&f.size).and_then(|list| {
            if list.iter().all(|(_, h)| h.is_none()) {
                return None;
            }
            let path = roots
                .iter()
                .find(|r| r.id == f.root_id)
                .map(|r| r.path.join(&f.rel_path))?;
            let hash = hash_file(&path).ok()?;
            let pos = list
                .iter()
                .position(|(_, h)| h.as_deref() == Some(hash.as_slice()))?;
            Some(list.swap_remove(pos).0)
        });
        match moved_from {
            Some(id) => changes.moved.push((id, f)),
            None => changes.added.push(f),
        }
    }
    changes.removed = missing.into_values().flatten().map(|(id, _)| id).collect();

    report.added = changes.added.len();
    report.changed = changes.changed.len();
    report.moved = changes.moved.len();
    report.removed = changes.removed.len();
    catalog.apply_scan(&changes)?;
    Ok(report)
}
