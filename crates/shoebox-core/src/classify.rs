//! Zero-shot classification: sort images into labels the user types, by CLIP similarity to an
//! ensemble of prompts per label — and, optionally, move or copy them into per-label folders with a
//! journal that `undo` replays backwards.
//!
//! Architecture Invariant: every file operation is written to the journal (and synced) before it is
//! performed, and no move or copy ever replaces anything: undo can always put every file back.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::files;
use crate::journal::{self, JournalKey, JournalWriter};
use crate::models::clip::{normalize, Clip, Family};
use crate::pipeline::PipelineOptions;
use crate::scan::image_ext;

/// The prompt ensemble each label is embedded with ({} is the label). CLIP's standard practice.
pub const DEFAULT_TEMPLATES: &[&str] = &[
    "a photo of {}.",
    "a photo of a {}.",
    "a picture of {}.",
    "an image of {}.",
    "a close-up photo of {}.",
    "a cropped photo of {}.",
    "a bright photo of {}.",
    "a screenshot of {}.",
];

/// Default confidence (softmax probability of the best label) below which an image is "unsorted".
/// Chosen from the fixture measurement in the README ("Classify"): it keeps ≥ 98 % of correctly
/// classified shape images sorted (their 2nd-percentile confidence is 0.76 with color labels, 0.60
/// with 12 color-shape labels).
pub const DEFAULT_THRESHOLD: f32 = 0.6;

/// The label of images below the threshold.
pub const UNSORTED: &str = "unsorted";

/// A label and the prompts that describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    /// Its own prompt ("receipt=a photo of a paper receipt"); None: the template ensemble.
    pub prompt: Option<String>,
}

/// Parse "a, b, receipt=a photo of a paper receipt".
pub fn parse_labels(s: &str) -> Result<Vec<Label>> {
    let mut out: Vec<Label> = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, prompt) = match part.split_once('=') {
            Some((n, p)) => (
                n.trim(),
                Some(p.trim().to_string()).filter(|p| !p.is_empty()),
            ),
            None => (part, None),
        };
        check_folder_name(name)
            .map_err(|why| Error::Invalid(format!("bad label {name:?}: {why}")))?;
        if name.eq_ignore_ascii_case(UNSORTED) {
            return Err(Error::Invalid(format!(
                "bad label {name:?}: {UNSORTED:?} is where unsure images go"
            )));
        }
        // Folders "Pets" and "pets" are one folder on case-insensitive file systems.
        if out
            .iter()
            .any(|l| l.name.to_lowercase() == name.to_lowercase())
        {
            return Err(Error::Invalid(format!("label {name:?} given twice")));
        }
        out.push(Label {
            name: name.to_string(),
            prompt,
        });
    }
    if out.len() < 2 {
        return Err(Error::Invalid(
            "give at least two labels, e.g. \"pets, receipts\"".into(),
        ));
    }
    Ok(out)
}

/// One label's text embedding: the normalized mean of its prompts' embeddings (`embed` maps
/// texts to normalized vectors: CLIP's text tower or the query encoder).
pub fn label_vectors(
    embed: &dyn Fn(&[&str]) -> Result<Vec<Vec<f32>>>,
    labels: &[Label],
    templates: &[String],
) -> Result<Vec<Vec<f32>>> {
    labels
        .iter()
        .map(|l| {
            let prompts: Vec<String> = match &l.prompt {
                Some(p) => vec![p.clone()],
                None => templates.iter().map(|t| t.replace("{}", &l.name)).collect(),
            };
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let vecs = embed(&refs)?;
            let mut mean = vec![0f32; vecs.first().map_or(0, Vec::len)];
            for v in &vecs {
                for (m, x) in mean.iter_mut().zip(v) {
                    *m += x;
                }
            }
            Ok(normalize(mean))
        })
        .collect()
}

/// How a model turns cosines into label probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scoring {
    /// CLIP: softmax of `scale × cosine` over the labels (they compete).
    Softmax { scale: f32 },
    /// SigLIP: σ(`scale × cosine + bias`) per label, as it was trained (each label judged alone).
    Sigmoid { scale: f32, bias: f32 },
}

impl Scoring {
    /// The model's own scoring.
    pub fn of(clip: &Clip) -> Scoring {
        match clip.family() {
            Family::Clip => Scoring::Softmax {
                scale: clip.logit_scale(),
            },
            Family::Siglip => Scoring::Sigmoid {
                scale: clip.logit_scale(),
                bias: clip.logit_bias(),
            },
        }
    }
}

/// Label probabilities of an image under `scoring`.
pub fn probabilities(image: &[f32], labels: &[Vec<f32>], scoring: Scoring) -> Vec<f32> {
    let cos = labels.iter().map(|l| crate::index::dot(image, l));
    match scoring {
        Scoring::Softmax { scale } => {
            let logits: Vec<f32> = cos.map(|c| scale * c).collect();
            crate::rank::softmax(&logits)
        }
        Scoring::Sigmoid { scale, bias } => cos
            .map(|c| 1.0 / (1.0 + (-(scale * c + bias)).exp()))
            .collect(),
    }
}

/// Options of a classification.
#[derive(Debug, Clone)]
pub struct ClassifyOptions {
    pub threshold: f32,
    pub recursive: bool,
    pub templates: Vec<String>,
    pub pipeline: PipelineOptions,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            threshold: DEFAULT_THRESHOLD,
            recursive: false,
            templates: DEFAULT_TEMPLATES.iter().map(|s| s.to_string()).collect(),
            pipeline: PipelineOptions::default(),
        }
    }
}

/// One image's result.
#[derive(Debug, Clone)]
pub struct Classified {
    pub path: PathBuf,
    /// A label name, or [`UNSORTED`].
    pub label: String,
    /// Probability of the best label.
    pub confidence: f32,
    /// Probability per label, in label order.
    pub scores: Vec<f32>,
}

/// A classification run: results plus files that could not be read.
#[derive(Debug, Clone, Default)]
pub struct Classification {
    pub labels: Vec<String>,
    pub results: Vec<Classified>,
    pub failures: Vec<(PathBuf, String)>,
    /// Images embedded on the fly (not already in the library).
    pub embedded: usize,
    pub seconds: f64,
}

/// The image files named by `paths`: files as given, folders listed (recursively when asked),
/// hidden entries skipped. Sorted, deduplicated, absolute.
pub fn collect_images(paths: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let canon = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
        if canon.is_file() {
            out.push(canon);
            continue;
        }
        let walker = walkdir::WalkDir::new(&canon)
            .follow_links(true)
            .max_depth(if recursive { usize::MAX } else { 1 })
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !files::is_hidden(e.file_name()));
        for e in walker.flatten() {
            if e.file_type().is_file() && image_ext(e.path()).is_some() {
                out.push(e.into_path());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

// ---- acting on a classification ----

/// A label's folder name is valid: one normal path component on every platform (no separators,
/// drive prefixes, NUL or control characters, reserved device names, or trailing dots/spaces).
pub fn check_folder_name(name: &str) -> std::result::Result<(), String> {
    const RESERVED: &[&str] = &["con", "prn", "aux", "nul", "conin$", "conout$"];
    let lower = name.to_lowercase();
    let stem = lower.split('.').next().unwrap_or("").trim_end();
    let device = RESERVED.contains(&stem)
        || ((stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.len() == 4
            && stem[3..]
                .chars()
                .all(|c| c.is_ascii_digit() || "¹²³".contains(c)));
    if name.is_empty() || name == "." || name == ".." {
        Err("a label needs a name".into())
    } else if name.contains(['/', '\\', ':']) {
        Err("labels name folders: no slashes or colons".into())
    } else if name.chars().any(char::is_control) {
        Err("labels cannot hold control characters".into())
    } else if name.ends_with(['.', ' ']) || name.starts_with('.') {
        Err("labels cannot start with a dot or end with a dot or space".into())
    } else if device {
        Err("that name is reserved for a device on Windows".into())
    } else if name.len() > 200 {
        Err("labels are at most 200 bytes".into())
    } else {
        Ok(())
    }
}

pub use crate::journal::{Action, FileOp, Journal, UndoReport};

/// Where each file goes: DEST/<label>/<name>, with " (n)" before the extension where the name is
/// taken — by anything on disk (a dangling symlink too) or another planned file, compared without
/// case (the destination may be a case-insensitive file system). `dest` is made absolute (not
/// resolved): the journal records it. Nothing is touched.
pub fn plan(results: &[Classified], action: Action, dest: &Path) -> Result<Vec<FileOp>> {
    let dest = std::path::absolute(dest).map_err(|e| Error::io(dest, e))?;
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let folded = |p: &Path| p.to_string_lossy().to_lowercase();
    let mut ops = Vec::new();
    for r in results {
        check_folder_name(&r.label)
            .map_err(|why| Error::Invalid(format!("bad label {:?}: {why}", r.label)))?;
        let name = r
            .path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{} has no file name", r.path.display())))?;
        let dir = dest.join(&r.label);
        let mut to = dir.join(name);
        let stem = Path::new(name).file_stem().unwrap_or(name).to_os_string();
        let ext = Path::new(name).extension().map(|e| e.to_os_string());
        let mut n = 1;
        while files::taken(&to) || taken.contains(&folded(&to)) {
            let mut candidate = stem.clone();
            candidate.push(format!(" ({n})"));
            if let Some(e) = &ext {
                candidate.push(".");
                candidate.push(e);
            }
            to = dir.join(candidate);
            n += 1;
        }
        taken.insert(folded(&to));
        let size = std::fs::metadata(&r.path)
            .map_err(|e| Error::io(&r.path, e))?
            .len();
        ops.push(FileOp {
            op: action,
            from: r.path.clone(),
            to,
            size,
        });
    }
    Ok(ops)
}

/// Applying stopped part way: what failed, and the journal of what was done before (undo it to
/// put those files back). `journal` is None when nothing was touched.
#[derive(Debug)]
pub struct ApplyFailed {
    pub error: Error,
    pub journal: Option<Journal>,
}

impl From<ApplyFailed> for Error {
    fn from(f: ApplyFailed) -> Error {
        match f.journal {
            Some(j) if !j.entries.is_empty() => Error::PartlyApplied {
                done: j.entries.len(),
                journal: j.path,
                source: Box::new(f.error),
            },
            _ => f.error,
        }
    }
}

/// Perform `ops` (from [`plan`]) into `dest`, recording each in a signed journal before doing it.
/// Checks first that every label folder is a real folder that can be written (made when missing,
/// never a symlink), so a bad destination fails before any file moves. Moves and copies never
/// replace anything. On failure part way, the journal so far comes back with the error.
pub fn apply(
    ops: &[FileOp],
    dest: &Path,
    key: &JournalKey,
) -> std::result::Result<Journal, ApplyFailed> {
    let untouched = |error: Error| ApplyFailed {
        error,
        journal: None,
    };
    let dest = std::path::absolute(dest).map_err(|e| untouched(Error::io(dest, e)))?;
    std::fs::create_dir_all(&dest).map_err(|e| untouched(Error::io(&dest, e)))?;
    let mut dirs: Vec<&Path> = Vec::new();
    for op in ops {
        let dir = op
            .to
            .parent()
            .filter(|d| d.parent() == Some(dest.as_path()));
        let Some(dir) = dir else {
            return Err(untouched(Error::Invalid(format!(
                "{} is not a label folder of {}",
                op.to.display(),
                dest.display()
            ))));
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for d in &dirs {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(untouched(Error::io(d, e))),
        }
        if !files::is_real_dir(d) {
            return Err(untouched(Error::Invalid(format!(
                "{} is not a real folder (a symlink or a file): not sorting into it",
                d.display()
            ))));
        }
        let probe = tempfile::NamedTempFile::new_in(d).map_err(|e| untouched(Error::io(d, e)))?;
        drop(probe);
    }
    let mut w = JournalWriter::create(key, &dest).map_err(untouched)?;
    for op in ops {
        let failed = |error: Error, w: &JournalWriter| ApplyFailed {
            error,
            journal: Some(w.journal()),
        };
        let (hash, size) =
            files::hash_regular_file(&op.from).map_err(|e| failed(Error::io(&op.from, e), &w))?;
        w.record(journal::Entry {
            op: FileOp { size, ..op.clone() },
            hash,
        })
        .map_err(|e| failed(e, &w))?;
        let done = match op.op {
            Action::Move => files::move_noreplace(&op.from, &op.to),
            Action::Copy => files::copy_new(&op.from, &op.to),
            // Sorting plans only moves and copies (the trash is the duplicate finder's).
            Action::Trash => Err(std::io::Error::other("sorting never trashes files")),
        };
        done.map_err(|e| {
            let error = if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Invalid(format!("{} exists: not overwriting", op.to.display()))
            } else {
                Error::io(&op.from, e)
            };
            failed(error, &w)
        })?;
    }
    Ok(w.journal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let l = parse_labels(" receipts, pets ,receipt2=a photo of a paper receipt,").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[0],
            Label {
                name: "receipts".into(),
                prompt: None
            }
        );
        assert_eq!(l[2].prompt.as_deref(), Some("a photo of a paper receipt"));
        assert!(parse_labels("one").is_err());
        assert!(parse_labels("a, a").is_err());
        assert!(parse_labels("a, b/c").is_err());
        assert!(parse_labels("a, unsorted").is_err());
    }

    #[test]
    fn softmax_sums_to_one() {
        let p = probabilities(
            &[1.0, 0.0],
            &[vec![1.0, 0.0], vec![0.0, 1.0]],
            Scoring::Softmax { scale: 100.0 },
        );
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > 0.99);
    }
}
