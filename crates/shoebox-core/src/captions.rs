//! Captioning: any image file on demand (no library needed), and a library's photos as a
//! background job — resumable (the catalog records each caption as it is made) and interruptible.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::bounded;
use serde::Serialize;

use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::library::{display_path, Library};
use crate::models::caption::{CaptionOptions, Captioner, CAPTION_CONFIG_FILES, CAPTION_FILES};
use crate::models::hub::{self, DownloadProgress};
use crate::models::DeviceChoice;

/// One file's caption (the `caption --json` element shape).
#[derive(Debug, Clone, Serialize)]
pub struct FileCaption {
    pub path: String,
    pub caption: String,
    pub model: String,
    pub took_ms: f64,
}

/// Progress of library captioning, reported after every photo.
#[derive(Debug, Clone, Copy)]
pub struct CaptionProgress {
    pub total: usize,
    pub done: usize,
    pub captioned: usize,
    pub failed: usize,
}

/// What a library captioning run did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CaptionReport {
    pub total: usize,
    pub captioned: usize,
    pub failed: usize,
    pub interrupted: bool,
    pub seconds: f64,
}

/// Resolve (fetching on first use) and load a captioning model.
pub fn load_captioner(
    spec: &str,
    device: DeviceChoice,
    progress: &DownloadProgress,
) -> Result<Captioner> {
    let dir = if hub::is_local(spec) {
        let dir = hub::resolve(spec, CAPTION_CONFIG_FILES, progress)?;
        if !dir.file("model.safetensors").is_file() && !dir.file("model.gguf").is_file() {
            return Err(Error::ModelUnavailable(format!(
                "{} has neither model.safetensors nor model.gguf",
                dir.dir.display()
            )));
        }
        dir
    } else {
        hub::resolve(spec, CAPTION_FILES, progress)?
    };
    Captioner::load(&dir, &device.device()?)
}

/// Make a quantized copy of a BLIP captioner: `dest` gets its config, tokenizer and processor files
/// and a `model.gguf` (matrices in `qtype`, e.g. q8_0). Returns (quantized, kept f32) tensor counts.
pub fn quantize_captioner(
    spec: &str,
    dest: &Path,
    qtype: &str,
    progress: &DownloadProgress,
) -> Result<(usize, usize)> {
    let dtype = crate::models::weights::parse_qtype(qtype)?;
    let dir = hub::resolve(spec, CAPTION_FILES, progress)?;
    let cfg = std::fs::read_to_string(dir.file("config.json"))
        .map_err(|e| Error::io(dir.file("config.json"), e))?;
    if !cfg.contains("\"blip\"") {
        return Err(Error::Invalid(format!(
            "{spec}: only BLIP captioners can be quantized (config.json model_type \"blip\")"
        )));
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for f in CAPTION_CONFIG_FILES
        .iter()
        .chain(&["generation_config.json", "tokenizer_config.json"])
    {
        let from = dir.file(f);
        if from.is_file() {
            std::fs::copy(&from, dest.join(f)).map_err(|e| Error::io(&from, e))?;
        }
    }
    crate::models::weights::quantize_safetensors(
        &dir.file("model.safetensors"),
        &dest.join("model.gguf"),
        dtype,
    )
}

/// Caption one image file, in the library or not.
pub fn caption_file(cap: &Captioner, path: &Path, opts: &CaptionOptions) -> Result<FileCaption> {
    let start = Instant::now();
    let c = cap.caption_file(path, opts)?;
    Ok(FileCaption {
        path: display_path(path),
        caption: c.text,
        model: cap.name().to_string(),
        took_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

impl Library {
    /// The captioning model, loaded (and fetched if needed) on first use.
    pub fn captioner(&self) -> Result<&Captioner> {
        if let Some(c) = self.captioner.get() {
            return Ok(c);
        }
        let cap = load_captioner(
            &self.opts.caption_model,
            self.opts.device,
            &self.opts.downloads,
        )?;
        Ok(self.captioner.get_or_init(|| cap))
    }

    /// Caption every indexed photo (or the first `limit`) that lacks a caption from the configured
    /// model. Each caption is
    /// committed as it is made, so a kill loses at most the photo in flight and the next run goes
    /// on from there. Stops after the current photo when `cancel` is set. Takes the writer lock.
    pub fn caption_library(
        &mut self,
        opts: &CaptionOptions,
        limit: Option<usize>,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(CaptionProgress),
    ) -> Result<CaptionReport> {
        self.lock_for_writing()?;
        let start = Instant::now();
        self.captioner()?;
        let cap = self.captioner.get().expect("loaded above");
        let model_id = self.catalog.model_id(cap.name(), "caption", 0)?;
        let mut work = self.catalog.caption_work(model_id)?;
        if let Some(n) = limit {
            work.truncate(n);
        }
        let total = work.len();
        let mut report = CaptionReport {
            total,
            ..Default::default()
        };
        let mut progress = CaptionProgress {
            total,
            done: 0,
            captioned: 0,
            failed: 0,
        };
        on_progress(progress);
        if total == 0 {
            return Ok(report);
        }
        let min_short = cap.decode_short_side();
        let catalog = &self.catalog;
        // One decode thread keeps the next image ready while the model captions this one.
        let (tx, rx) = bounded::<(i64, std::result::Result<Vec<f32>, String>)>(2);
        let result = std::thread::scope(|s| -> Result<()> {
            s.spawn(move || {
                for item in work {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let px = std::panic::catch_unwind(|| decode_file(&item.path, min_short))
                        .unwrap_or_else(|_| Err("decoder crashed on this file".into()))
                        .and_then(|d| cap.preprocess(&d.image).map_err(|e| e.to_string()));
                    if tx.send((item.id, px)).is_err() {
                        break;
                    }
                }
            });
            // `rx` moves in: an early error drops it, which unblocks and ends the decode thread.
            for (id, px) in rx {
                match px {
                    Ok(px) => {
                        let c = cap.caption_pixels(&[px], opts)?.remove(0);
                        catalog.set_caption(id, model_id, &c.text)?;
                        progress.captioned += 1;
                    }
                    // The file changed or vanished since it was indexed: the next scan sorts it
                    // out, and captioning retries it then.
                    Err(reason) => {
                        log::warn!("caption: photo {id}: {reason}");
                        progress.failed += 1;
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
        report.captioned = progress.captioned;
        report.failed = progress.failed;
        report.interrupted = cancel.load(Ordering::Relaxed) && progress.done < total;
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }
}
