//! Zero-shot classification: sort images into labels the user types, by CLIP similarity to an
//! ensemble of prompts per label — and, optionally, move or copy them into per-label folders with a
//! journal that `undo` replays backwards.
//!
//! Architecture Invariant: every file operation is written to the journal (and flushed) before it is
//! performed, and a move never overwrites: undo can always put every file back.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::catalog::{Outcome, WorkItem};
use crate::error::{Error, Result};
use crate::library::Library;
use crate::models::clip::{normalize, Clip};
use crate::pipeline::{self, PipelineOptions, Progress};
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
        if name.is_empty()
            || name == UNSORTED
            || name.contains(['/', '\\'])
            || name == "."
            || name == ".."
        {
            return Err(Error::Invalid(format!(
                "bad label {name:?}: labels name folders (no slashes), and {UNSORTED:?} is reserved"
            )));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(Error::Invalid(format!("label {name:?} given twice")));
        }
        out.push(Label {
            name: name.to_string(),
            prompt,
        });
    }
    if out.len() < 2 {
        return Err(Error::Invalid(
            "give at least two labels, e.g. --labels \"pets, receipts\"".into(),
        ));
    }
    Ok(out)
}

/// One label's text embedding: the normalized mean of its prompts' embeddings.
pub fn label_vectors(clip: &Clip, labels: &[Label], templates: &[String]) -> Result<Vec<Vec<f32>>> {
    labels
        .iter()
        .map(|l| {
            let prompts: Vec<String> = match &l.prompt {
                Some(p) => vec![p.clone()],
                None => templates.iter().map(|t| t.replace("{}", &l.name)).collect(),
            };
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let vecs = clip.embed_texts(&refs)?;
            let mut mean = vec![0f32; clip.dim()];
            for v in &vecs {
                for (m, x) in mean.iter_mut().zip(v) {
                    *m += x;
                }
            }
            Ok(normalize(mean))
        })
        .collect()
}

/// Softmax of `logit_scale × cosine` over labels.
pub fn probabilities(image: &[f32], labels: &[Vec<f32>], logit_scale: f32) -> Vec<f32> {
    let logits: Vec<f32> = labels
        .iter()
        .map(|l| logit_scale * crate::index::dot(image, l))
        .collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
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
            .filter_entry(|e| {
                e.depth() == 0 || e.file_name().as_encoded_bytes().first() != Some(&b'.')
            });
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

/// Classify images against labels. Library photos reuse their stored embeddings; the rest are
/// embedded through the indexing pipeline (nothing is added to the library).
pub fn classify(
    lib: &Library,
    paths: &[PathBuf],
    labels: &[Label],
    opts: &ClassifyOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Classification> {
    let start = std::time::Instant::now();
    let clip = lib.clip()?;
    let files = collect_images(paths, opts.recursive)?;
    let label_vecs = label_vectors(clip, labels, &opts.templates)?;
    let mut vectors: HashMap<usize, Vec<f32>> = HashMap::new();
    let mut work = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match lib.stored_embedding(f)? {
            Some(v) => {
                vectors.insert(i, v);
            }
            None => work.push(WorkItem {
                id: i as i64,
                path: f.clone(),
            }),
        }
    }
    let mut failures = Vec::new();
    let report = pipeline::embed_stream(
        clip,
        work,
        opts.pipeline,
        cancel,
        on_progress,
        &mut |batch| {
            for o in batch {
                match o {
                    Outcome::Embedded { id, vector, .. } => {
                        vectors.insert(id as usize, vector);
                    }
                    Outcome::Failed { id, reason, .. } => {
                        failures.push((files[id as usize].clone(), reason))
                    }
                }
            }
            Ok(())
        },
    )?;
    if report.interrupted {
        return Err(Error::Interrupted);
    }
    let scale = clip.logit_scale();
    let mut results = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(v) = vectors.get(&i) else { continue };
        let scores = probabilities(v, &label_vecs, scale);
        let (best, confidence) = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(j, p)| (j, *p))
            .expect("at least two labels");
        let label = if confidence >= opts.threshold {
            labels[best].name.clone()
        } else {
            UNSORTED.to_string()
        };
        results.push(Classified {
            path: f.clone(),
            label,
            confidence,
            scores,
        });
    }
    Ok(Classification {
        labels: labels.iter().map(|l| l.name.clone()).collect(),
        results,
        failures,
        embedded: report.embedded,
        seconds: start.elapsed().as_secs_f64(),
    })
}

// ---- acting on a classification ----

/// Move or copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Move,
    Copy,
}

/// One planned or performed file operation (a journal line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOp {
    pub op: Action,
    pub from: PathBuf,
    pub to: PathBuf,
    pub size: u64,
}

/// Where each file goes: DEST/<label>/<name>, with " (n)" before the extension on collisions with
/// existing files or other planned files. Nothing is touched.
pub fn plan(results: &[Classified], action: Action, dest: &Path) -> Result<Vec<FileOp>> {
    let mut taken: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut ops = Vec::new();
    for r in results {
        let name = r
            .path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{} has no file name", r.path.display())))?;
        let dir = dest.join(&r.label);
        let mut to = dir.join(name);
        let stem = Path::new(name).file_stem().unwrap_or(name).to_os_string();
        let ext = Path::new(name).extension().map(|e| e.to_os_string());
        let mut n = 1;
        while to.exists() || taken.contains(&to) {
            let mut candidate = stem.clone();
            candidate.push(format!(" ({n})"));
            if let Some(e) = &ext {
                candidate.push(".");
                candidate.push(e);
            }
            to = dir.join(candidate);
            n += 1;
        }
        taken.insert(to.clone());
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

fn copy_preserving(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    let md = std::fs::metadata(from).map_err(|e| Error::io(from, e))?;
    let mut times = std::fs::FileTimes::new();
    if let Ok(t) = md.modified() {
        times = times.set_modified(t);
    }
    if let Ok(t) = md.accessed() {
        times = times.set_accessed(t);
    }
    let f = std::fs::File::options()
        .write(true)
        .open(to)
        .map_err(|e| Error::io(to, e))?;
    f.set_times(times).map_err(|e| Error::io(to, e))?;
    f.sync_all().map_err(|e| Error::io(to, e))?;
    Ok(())
}

/// Move without overwriting: rename, or copy + remove across filesystems.
fn move_file(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        return Err(Error::Invalid(format!(
            "{} exists: not overwriting",
            to.display()
        )));
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            copy_preserving(from, to)?;
            std::fs::remove_file(from).map_err(|e| Error::io(from, e))
        }
        Err(e) => Err(Error::io(from, e)),
    }
}

/// Perform `ops`, journaling each before doing it. Checks up front that every destination folder can
/// be created and written, so an unwritable destination fails before any file moves.
/// Returns the journal's path.
pub fn apply(ops: &[FileOp], dest: &Path) -> Result<PathBuf> {
    let mut dirs: Vec<&Path> = ops.iter().filter_map(|o| o.to.parent()).collect();
    dirs.sort();
    dirs.dedup();
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        let probe = tempfile::NamedTempFile::new_in(d).map_err(|e| Error::io(d, e))?;
        drop(probe);
    }
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.3f");
    let journal_path = dest.join(format!(".shoebox-journal-{stamp}.jsonl"));
    let mut journal = std::fs::File::options()
        .create_new(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| Error::io(&journal_path, e))?;
    for op in ops {
        let line = serde_json::to_string(op).map_err(|e| Error::Invalid(e.to_string()))?;
        writeln!(journal, "{line}").map_err(|e| Error::io(&journal_path, e))?;
        journal
            .sync_data()
            .map_err(|e| Error::io(&journal_path, e))?;
        match op.op {
            Action::Move => move_file(&op.from, &op.to)?,
            Action::Copy => {
                if op.to.exists() {
                    return Err(Error::Invalid(format!(
                        "{} exists: not overwriting",
                        op.to.display()
                    )));
                }
                copy_preserving(&op.from, &op.to)?
            }
        }
    }
    Ok(journal_path)
}

/// Replay a journal backwards: moved files go back, copies are removed. Returns how many files were
/// restored; operations that never happened (a crash mid-run) are skipped.
pub fn undo(journal: &Path) -> Result<usize> {
    let f = std::fs::File::open(journal).map_err(|e| Error::io(journal, e))?;
    let mut ops = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(journal, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let op: FileOp = serde_json::from_str(&line).map_err(|e| {
            Error::Invalid(format!("{}: not a Shoebox journal: {e}", journal.display()))
        })?;
        ops.push(op);
    }
    let mut restored = 0;
    for op in ops.iter().rev() {
        if !op.to.exists() {
            continue;
        }
        match op.op {
            Action::Move => {
                if op.from.exists() {
                    return Err(Error::Invalid(format!(
                        "cannot move {} back: {} exists again",
                        op.to.display(),
                        op.from.display()
                    )));
                }
                if let Some(parent) = op.from.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                move_file(&op.to, &op.from)?;
            }
            Action::Copy => std::fs::remove_file(&op.to).map_err(|e| Error::io(&op.to, e))?,
        }
        restored += 1;
    }
    // Remove label folders the run created and left empty.
    let mut dirs: Vec<&Path> = ops.iter().filter_map(|o| o.to.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
    let done = journal.with_extension("undone");
    std::fs::rename(journal, &done).map_err(|e| Error::io(journal, e))?;
    Ok(restored)
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
        let p = probabilities(&[1.0, 0.0], &[vec![1.0, 0.0], vec![0.0, 1.0]], 100.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > 0.99);
    }
}
