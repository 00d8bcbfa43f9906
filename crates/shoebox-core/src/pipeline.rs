//! The indexing pipeline: decode workers read, hash and decode photos while the model embeds them in
//! batches; each batch is committed to the catalog in one transaction and added to the index.
//!
//! Architecture Invariant: a photo's embedding and its metadata are written in the same transaction,
//! so an interrupted run leaves only whole photos behind and the next run picks up the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::bounded;

use crate::catalog::{Catalog, Outcome, WorkItem};
use crate::decode::{decode_file, PhotoMeta};
use crate::error::Result;
use crate::index::VectorIndex;
use crate::models::clip::Clip;

/// Tuning knobs for a run.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions {
    /// Images per model call (8 is fastest on CPU here).
    pub batch_size: usize,
    /// Decode worker threads.
    pub decode_threads: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // One decode worker per core: the model's threads and the decoders share the cores, and
        // whichever waits gives its core to the other (measured on 2 cores with 12 MP JPEGs:
        // one decoder per core indexes 8 % faster than half as many at f32, 30 % at q8, where
        // the model waits on decoding).
        PipelineOptions {
            batch_size: 8,
            decode_threads: cores.max(1),
        }
    }
}

/// Progress of a run, reported after every batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub embedded: usize,
    pub failed: usize,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineReport {
    pub total: usize,
    pub embedded: usize,
    pub failed: usize,
    pub interrupted: bool,
    pub seconds: f64,
}

enum Prepared {
    Ok {
        id: i64,
        pixels: Vec<f32>,
        meta: PhotoMeta,
    },
    Failed {
        id: i64,
        reason: String,
        size: Option<u64>,
        mtime_ns: Option<i64>,
    },
}

fn prepare(item: &WorkItem, clip: &Clip, min_short: u32) -> Prepared {
    let fail = |reason: String| {
        let md = std::fs::metadata(&item.path).ok();
        Prepared::Failed {
            id: item.id,
            reason,
            size: md.as_ref().map(|m| m.len()),
            mtime_ns: md.as_ref().and_then(crate::files::mtime_ns),
        }
    };
    // decode_file contains decoder panics: a bad file costs one photo, not the run.
    match decode_file(&item.path, min_short) {
        Ok(d) => match clip.preprocess(&d.image) {
            Ok(pixels) => Prepared::Ok {
                id: item.id,
                pixels,
                meta: PhotoMeta {
                    phash: Some(crate::duplicates::phash(&d.image)),
                    ..d.meta
                },
            },
            Err(e) => fail(e.to_string()),
        },
        Err(reason) => fail(reason),
    }
}

/// Where a run's results go: the catalog (under the model's id) and the model's index.
pub struct Sink<'a> {
    pub catalog: &'a mut Catalog,
    pub model_id: i64,
    pub index: &'a mut VectorIndex,
}

/// Run the pipeline over `work`, committing to the sink's catalog and inserting into its index.
/// Stops early (cleanly, after the batch in flight) when `cancel` is set.
pub fn run(
    sink: Sink<'_>,
    clip: &Clip,
    work: Vec<WorkItem>,
    opts: PipelineOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<PipelineReport> {
    let Sink {
        catalog,
        model_id,
        index,
    } = sink;
    embed_stream(clip, work, opts, cancel, on_progress, &mut |outcomes| {
        let fresh: Vec<(i64, Vec<f32>)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Embedded { id, vector, .. } => Some((*id, vector.clone())),
                Outcome::Failed { .. } => None,
            })
            .collect();
        catalog.record(model_id, &outcomes)?;
        index.insert_many(fresh)?;
        index.generation = catalog.generation()?;
        index.last_row = catalog.last_embedding_row()?;
        Ok(())
    })
}

/// Decode, preprocess and embed `work` (ids are the caller's), handing each batch of outcomes to
/// `on_batch` on the calling thread. Decoding runs on worker threads while the model runs.
pub fn embed_stream(
    clip: &Clip,
    work: Vec<WorkItem>,
    opts: PipelineOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
    on_batch: &mut dyn FnMut(Vec<Outcome>) -> Result<()>,
) -> Result<PipelineReport> {
    let start = Instant::now();
    let total = work.len();
    let batch_size = opts.batch_size.max(1);
    let min_short = clip.decode_short_side();
    let mut report = PipelineReport {
        total,
        ..Default::default()
    };
    on_progress(Progress {
        total,
        done: 0,
        embedded: 0,
        failed: 0,
    });
    if total == 0 {
        return Ok(report);
    }
    let (work_tx, work_rx) = bounded::<WorkItem>(batch_size * 2);
    let (out_tx, out_rx) = bounded::<Prepared>(batch_size * 2);

    std::thread::scope(|s| -> Result<()> {
        s.spawn(move || {
            for item in work {
                if cancel.load(Ordering::Relaxed) || work_tx.send(item).is_err() {
                    break;
                }
            }
        });
        for _ in 0..opts.decode_threads.max(1) {
            let rx = work_rx.clone();
            let tx = out_tx.clone();
            s.spawn(move || {
                for item in rx {
                    if tx.send(prepare(&item, clip, min_short)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(out_tx);

        let mut pending: Vec<(i64, Vec<f32>, PhotoMeta)> = Vec::with_capacity(batch_size);
        let mut failures: Vec<Outcome> = Vec::new();
        let mut flush = |pending: &mut Vec<(i64, Vec<f32>, PhotoMeta)>,
                         failures: &mut Vec<Outcome>,
                         report: &mut PipelineReport|
         -> Result<()> {
            let pixels: Vec<Vec<f32>> = pending
                .iter_mut()
                .map(|p| std::mem::take(&mut p.1))
                .collect();
            let vectors = clip.embed_pixels(&pixels)?;
            let mut outcomes = std::mem::take(failures);
            let nfail = outcomes.len();
            for ((id, _, meta), vector) in pending.drain(..).zip(vectors) {
                outcomes.push(Outcome::Embedded { id, meta, vector });
            }
            let n = outcomes.len();
            on_batch(outcomes)?;
            report.failed += nfail;
            report.embedded += n - nfail;
            on_progress(Progress {
                total,
                done: report.embedded + report.failed,
                embedded: report.embedded,
                failed: report.failed,
            });
            Ok(())
        };
        let mut result = Ok(());
        for p in out_rx.iter() {
            match p {
                Prepared::Ok { id, pixels, meta } => pending.push((id, pixels, meta)),
                Prepared::Failed {
                    id,
                    reason,
                    size,
                    mtime_ns,
                } => failures.push(Outcome::Failed {
                    id,
                    reason,
                    size,
                    mtime_ns,
                }),
            }
            if pending.len() >= batch_size || failures.len() >= batch_size {
                if let Err(e) = flush(&mut pending, &mut failures, &mut report) {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() && (!pending.is_empty() || !failures.is_empty()) {
            result = flush(&mut pending, &mut failures, &mut report);
        }
        if result.is_err() {
            // Unblock the feeder and workers so the scope can end.
            cancel.store(true, Ordering::Relaxed);
            for _ in out_rx.iter() {}
        }
        result
    })?;
    report.interrupted = cancel.load(Ordering::Relaxed) && report.embedded + report.failed < total;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
