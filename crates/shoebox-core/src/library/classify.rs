//! Sorting with the library: classify files (stored embeddings where the library has them), then
//! move or copy them under the writer lock with a signed journal, rescanning so library photos that
//! moved keep their ids; and undo.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::Library;
use crate::catalog::{Outcome, WorkItem};
use crate::classify::{
    self, collect_images, label_vectors, probabilities, ApplyFailed, Classification, Classified,
    ClassifyOptions, FileOp, Label, Scoring, UNSORTED,
};
use crate::error::{Error, Result};
use crate::journal::{self, Journal, JournalKey, UndoReport};
use crate::pipeline::{self, Progress};

impl Library {
    /// Classify images against labels. Library photos reuse their stored embeddings; the rest are
    /// embedded through the indexing pipeline (nothing is added to the library).
    pub fn classify(
        &self,
        paths: &[PathBuf],
        labels: &[Label],
        opts: &ClassifyOptions,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<Classification> {
        let start = std::time::Instant::now();
        let clip = self.clip()?;
        let files = collect_images(paths, opts.recursive)?;
        let label_vecs = label_vectors(&|t| self.embed_query_texts(t), labels, &opts.templates)?;
        let mut vectors: HashMap<usize, Vec<f32>> = HashMap::new();
        let mut work = Vec::new();
        for (i, f) in files.iter().enumerate() {
            match self.stored_embedding(f)? {
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
        let scoring = Scoring::of(clip);
        let mut results = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let Some(v) = vectors.get(&i) else { continue };
            let scores = probabilities(v, &label_vecs, scoring);
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

    /// Move or copy classified files into `dest/<label>/` (see [`classify::apply`]), holding the
    /// writer lock, then rescan so library photos that moved keep their ids, captions and tags.
    /// The journal is signed with this library's key: only this library can undo it.
    pub fn apply_classification(
        &mut self,
        ops: &[FileOp],
        dest: &Path,
    ) -> std::result::Result<Journal, ApplyFailed> {
        let untouched = |error: Error| ApplyFailed {
            error,
            journal: None,
        };
        self.lock_for_writing().map_err(untouched)?;
        let key = JournalKey::open_or_create(self.dir()).map_err(untouched)?;
        let applied = classify::apply(ops, dest, &key);
        let rescanned = self.scan();
        let journal = applied?;
        rescanned.map_err(|error| ApplyFailed {
            error,
            journal: Some(journal.clone()),
        })?;
        Ok(journal)
    }

    /// Undo a journal file written by [`Library::apply_classification`] of this library, then
    /// rescan. A journal not signed by this library, or naming anything outside its own folder,
    /// is refused whole.
    pub fn undo_classification_file(&mut self, journal: &Path) -> Result<UndoReport> {
        self.lock_for_writing()?;
        let key = JournalKey::open_or_create(self.dir())?;
        let j = journal::read(journal, &key)?;
        self.undo_classification(&j)
    }

    /// Undo a classification from its in-memory journal (the app keeps the one it applied), then
    /// rescan.
    pub fn undo_classification(&mut self, j: &Journal) -> Result<UndoReport> {
        self.lock_for_writing()?;
        let report = journal::undo(j)?;
        self.scan()?;
        Ok(report)
    }
}
