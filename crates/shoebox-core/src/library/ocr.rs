//! Reading the text in the library's photos: which photos to read (all, or those a CLIP zero-shot
//! gate finds likely to hold text) and the resumable, interruptible background job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::unbounded;
use serde::Serialize;

use super::Library;
use crate::catalog::{ModelRef, OcrState};
use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::ocr::{OcrEngine, OcrText, DEFAULT_LANGS, OCR_DECODE_SHORT_SIDE};

/// Which photos are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrMode {
    /// None.
    Off,
    /// Those the gate finds likely to hold text (screenshots, documents, receipts, signs).
    #[default]
    Likely,
    /// Every photo.
    All,
}

impl std::str::FromStr for OcrMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(OcrMode::Off),
            "likely" | "auto" => Ok(OcrMode::Likely),
            "all" | "everything" => Ok(OcrMode::All),
            other => Err(Error::UnknownValue {
                what: "OCR mode",
                value: other.to_string(),
                expected: "off, likely, all",
            }),
        }
    }
}

impl OcrMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OcrMode::Off => "off",
            OcrMode::Likely => "likely",
            OcrMode::All => "all",
        }
    }
}

/// OCR settings: which photos, which languages, and the gate's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    pub mode: OcrMode,
    /// Tesseract languages joined by '+'.
    pub langs: String,
    /// A photo is read when the gate's probability of text is at least this.
    pub gate: f32,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            mode: OcrMode::Likely,
            langs: DEFAULT_LANGS.into(),
            gate: DEFAULT_GATE,
        }
    }
}

/// `SHOEBOX_OCR`: off, likely or all. `SHOEBOX_OCR_LANGS`: e.g. eng+deu.
pub const ENV_OCR: &str = "SHOEBOX_OCR";
pub const ENV_OCR_LANGS: &str = "SHOEBOX_OCR_LANGS";

impl OcrOptions {
    /// The defaults with the environment applied (an unknown value is an error).
    pub fn from_env() -> Result<Self> {
        let mut o = OcrOptions::default();
        if let Some(m) = crate::options::env(ENV_OCR) {
            o.mode = m.parse()?;
        }
        if let Some(l) = crate::options::env(ENV_OCR_LANGS) {
            o.langs = crate::ocr::parse_langs(&l)?;
        }
        Ok(o)
    }
}

/// What the gate asks CLIP: is the photo more like one of these ...
pub const TEXT_PROMPTS: &[&str] = &[
    "a screenshot",
    "a screenshot of a phone screen",
    "a screenshot of a computer screen",
    "a document",
    "a page of text",
    "a scanned document",
    "a receipt",
    "a ticket",
    "a boarding pass",
    "a sign with text",
    "a poster with text",
    "a restaurant menu",
    "a whiteboard with writing",
    "a handwritten note",
    "a book page",
    "a business card",
];
/// ... or like one of these.
pub const OTHER_PROMPTS: &[&str] = &[
    "a photo",
    "a photo of a person",
    "a photo of people",
    "a photo of a child",
    "a photo of an animal",
    "a photo of a pet",
    "a landscape",
    "a photo of the sea",
    "a photo of a city",
    "a photo of a building",
    "a photo of a room",
    "a photo of food",
    "a photo of a plant",
    "a photo of an object",
    "a photo of a car",
    "a selfie",
];
/// The gate's default threshold on the probability (softmax of the model's logits over all the
/// prompts) that a photo matches a text prompt rather than any other: more likely text than not.
pub const DEFAULT_GATE: f32 = 0.5;

/// Progress of an OCR run, reported after every photo.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OcrProgress {
    pub total: usize,
    pub done: usize,
}

/// What an OCR run did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OcrReport {
    /// Photos read (text found or not) ...
    pub read: usize,
    /// ... of which text was found in
    pub with_text: usize,
    /// Photos that could not be read (the reason is recorded).
    pub failed: usize,
    /// Photos the gate left out as unlikely to hold text.
    pub gated_out: usize,
    pub interrupted: bool,
    pub seconds: f64,
}

impl Library {
    /// The probability, for each photo with an embedding from the configured CLIP model, that it
    /// holds text (the gate's score).
    pub fn text_likelihood(&self, ids: &[i64]) -> Result<Vec<(i64, f32)>> {
        let Some(ModelRef { id: model_id, .. }) = self.catalog.find_model(&self.model_name())?
        else {
            return Ok(Vec::new());
        };
        let clip = self.clip()?;
        let prompts = super::get_or_load(&self.ocr_gate, || {
            let all: Vec<&str> = TEXT_PROMPTS.iter().chain(OTHER_PROMPTS).copied().collect();
            clip.embed_texts(&all)
        })?;
        let scale = clip.logit_scale();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(512) {
            let vectors = self.catalog.embeddings(model_id, chunk)?;
            for id in chunk {
                let Some(v) = vectors.get(id) else { continue };
                let logits: Vec<f32> = prompts
                    .iter()
                    .map(|p| scale * crate::index::dot(v, p))
                    .collect();
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                let text: f32 = exp[..TEXT_PROMPTS.len()].iter().sum();
                out.push((*id, text / sum));
            }
        }
        Ok(out)
    }

    /// Read the text in the photos `opts.mode` selects that have no OCR result in `opts.langs`
    /// yet (or the first `limit` of them). Each result (text, none, or why it failed) is committed
    /// as it is made, so a kill loses at most the photo in flight. Stops after the current photo
    /// when `cancel` is set. Takes the writer lock. A missing language or a build without OCR is
    /// an error before any photo is read.
    pub fn ocr_library(
        &mut self,
        opts: &OcrOptions,
        limit: Option<usize>,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(OcrProgress),
    ) -> Result<OcrReport> {
        let start = Instant::now();
        let mut report = OcrReport::default();
        if opts.mode == OcrMode::Off {
            return Ok(report);
        }
        self.lock_for_writing()?;
        let langs = crate::ocr::parse_langs(&opts.langs)?;
        let gate_model = match opts.mode {
            OcrMode::Likely => self.catalog.find_model(&self.model_name())?.map(|m| m.id),
            _ => None,
        };
        let mut work = self.catalog.ocr_work(&langs, gate_model)?;
        if let Some(model_id) = gate_model {
            // Judged a chunk at a time, only until `limit` photos pass: the watcher asks for one
            // photo at a time and must not score the whole library each time.
            let want = limit.unwrap_or(usize::MAX);
            let mut keep = Vec::new();
            for chunk in work.chunks(512) {
                if keep.len() >= want {
                    break;
                }
                let ids: Vec<i64> = chunk.iter().map(|w| w.id).collect();
                let scores: std::collections::HashMap<i64, f32> =
                    self.text_likelihood(&ids)?.into_iter().collect();
                let mut out = Vec::new();
                for w in chunk {
                    // Not embedded yet: the gate decides once it is.
                    match scores.get(&w.id) {
                        Some(p) if *p >= opts.gate => keep.push(w.clone()),
                        Some(_) => out.push(w.id),
                        None => {}
                    }
                }
                self.catalog.mark_ocr_gated(model_id, &out)?;
                report.gated_out += out.len();
            }
            work = keep;
        } else if opts.mode == OcrMode::Likely {
            // No CLIP model has embedded anything yet: nothing to gate on.
            work.clear();
        }
        if let Some(n) = limit {
            work.truncate(n);
        }
        let mut progress = OcrProgress {
            total: work.len(),
            done: 0,
        };
        on_progress(progress);
        if work.is_empty() {
            report.seconds = start.elapsed().as_secs_f64();
            return Ok(report);
        }
        // Readers started before (the watcher reads a few photos at a time) are used again.
        let n = crate::ocr::readers(work.len());
        let mut engines: Vec<OcrEngine> = std::mem::take(&mut *self.ocr_engines.lock().unwrap());
        engines.retain(|e| e.langs() == langs);
        while engines.len() < n {
            engines.push(OcrEngine::new(&langs)?);
        }
        let catalog = &self.catalog;
        let pool = &self.ocr_engines;
        let (job_tx, job_rx) = unbounded();
        for item in work {
            job_tx.send(item).expect("receiver alive");
        }
        drop(job_tx);
        // Each reader decodes and reads its own photos; this thread writes what they read.
        let (res_tx, res_rx) = unbounded::<(i64, std::result::Result<OcrText, String>)>();
        let result = std::thread::scope(|s| -> Result<()> {
            for mut engine in engines {
                let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
                s.spawn(move || {
                    while let Ok(item) = job_rx.recv() {
                        if cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let read = decode_file(&item.path, OCR_DECODE_SHORT_SIDE)
                            .and_then(|d| engine.read(&d.image).map_err(|e| e.to_string()));
                        if res_tx.send((item.id, read)).is_err() {
                            break;
                        }
                    }
                    pool.lock().unwrap().push(engine);
                });
            }
            drop(res_tx);
            // `res_rx` moves in: an early error drops it, which ends the readers.
            for (id, read) in res_rx {
                match read {
                    Ok(t) => {
                        catalog.set_ocr(id, &langs, &t)?;
                        report.read += 1;
                        if !t.text.is_empty() {
                            report.with_text += 1;
                        }
                    }
                    Err(reason) => {
                        log::warn!("ocr: photo {id}: {reason}");
                        catalog.set_ocr_failure(id, &langs, &reason)?;
                        report.failed += 1;
                    }
                }
                progress.done += 1;
                on_progress(progress);
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
            }
            Ok(())
        });
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        result?;
        report.interrupted = cancel.load(Ordering::Relaxed) && progress.done < progress.total;
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }

    /// What OCR read in a library photo (None: not read yet, or not a library photo).
    pub fn photo_ocr(&self, path: &std::path::Path) -> Result<Option<OcrState>> {
        let Ok(canon) = std::fs::canonicalize(path) else {
            return Ok(None);
        };
        match self.catalog.photo_id_at(&canon)? {
            Some(id) => self.catalog.ocr_state(id),
            None => Ok(None),
        }
    }
}
