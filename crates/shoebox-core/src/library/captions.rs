//! Captioning the library: the lazily loaded captioner and the resumable background job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::bounded;

use super::{get_or_load, Library};
use crate::captions::{load_captioner, CaptionProgress, CaptionReport};
use crate::catalog::ModelKind;
use crate::decode::decode_file;
use crate::error::Result;
use crate::models::caption::{CaptionOptions, Captioner};

impl Library {
    /// The captioning model, loaded (and fetched if needed) on first use.
    pub fn captioner(&self) -> Result<&Captioner> {
        get_or_load(&self.captioner, || {
            load_captioner(
                &self.opts.caption_model,
                self.opts.device,
                self.opts.precision,
                &self.opts.downloads,
            )
        })
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
        let model_id = self.catalog.model_id(cap.name(), ModelKind::Caption, 0)?;
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
                    let px = decode_file(&item.path, min_short)
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
