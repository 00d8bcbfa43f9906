//! A bench run, phase by phase: the models, the generated photos and indexing speed
//! (`indexing`), the query library and the HNSW figures (`hnsw`), opening it and querying it
//! (`queries`), reverse geocoding (`places`), then the captioner and the sentence encoder (`models`).

mod hnsw;
mod indexing;
mod keywords;
pub(crate) mod models;
mod places;
pub(crate) mod queries;

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::Device;
use serde_json::{json, Value};
use shoebox_core::index;
use shoebox_core::library::LibraryOptions;
use shoebox_core::models::caption::DEFAULT_CAPTION_MODEL;
use shoebox_core::models::clip::{CLIP_FILES, DEFAULT_CLIP_MODEL};
use shoebox_core::models::hub::{self, ModelDir};
use shoebox_core::{Error, Result};

use crate::files::io;
use crate::random_weights::{random_model, Arch};
use crate::report::{BenchOptions, BenchReport, IndexFigures, QueryFigures};

/// Run the bench. `progress` gets one line per step.
pub fn run(opts: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<BenchReport> {
    if opts.photos == 0 || opts.vectors < 100 {
        return Err(Error::Invalid(
            "bench needs at least 1 photo and 100 vectors".into(),
        ));
    }
    // The temp folder (when no work folder is given) lives as long as the run.
    let (_tmp, work) = work_dir(opts)?;
    let device = opts.device.device()?;
    index::force_portable_dot(opts.portable_dot);
    let (clip, clip_label) = choose_clip(opts, &work, progress)?;
    let threads = candle_core::utils::get_num_threads();
    let mut run = Run {
        opts,
        work,
        device,
        clip,
        notes: BTreeMap::new(),
        progress,
    };
    run.note_settings();

    let photos = run.generate_photos()?;
    let (decode_img_s, model_img_s, dim) = run.time_decode_and_model(&photos.paths)?;
    let end_to_end_img_s = run.time_end_to_end(&photos)?;
    let (library, hnsw) = run.query_library(dim)?;
    let open_ms = run.time_open(&library, dim)?;
    let (p50_ms, p95_ms, app_peak_rss) = run.time_queries(&library)?;
    let first_query_ms = run.time_first_query(&library)?;
    let caption_s = run.time_captioner(&photos.paths[0])?;
    let bert_sentences_s = run.time_sentence_encoder()?;

    Ok(BenchReport {
        clip_model: clip_label,
        threads,
        index: IndexFigures {
            decode_img_s,
            model_img_s,
            end_to_end_img_s,
        },
        query: QueryFigures {
            vectors: opts.vectors,
            p50_ms,
            p95_ms,
            first_query_ms,
        },
        hnsw,
        open_ms,
        peak_rss_mb: app_peak_rss.unwrap_or(0.0),
        caption_s,
        bert_sentences_s,
        random_weights: !opts.random_weights.is_empty(),
        notes: run.notes,
    })
}

/// What the phases of a run share.
struct Run<'a> {
    opts: &'a BenchOptions,
    /// The work folder (canonical): generated photos, random models, libraries.
    work: PathBuf,
    device: Device,
    /// The CLIP model the figures are of.
    clip: ModelDir,
    notes: BTreeMap<String, Value>,
    progress: &'a mut dyn FnMut(&str),
}

impl Run<'_> {
    fn note(&mut self, key: &str, value: Value) {
        self.notes.insert(key.to_string(), value);
    }

    fn progress(&mut self, step: &str) {
        (self.progress)(step);
    }

    /// The options of a library in `dir` with the bench's models and device.
    fn lib_opts(&self, dir: PathBuf) -> LibraryOptions {
        LibraryOptions {
            dir,
            clip_model: self.clip.name.clone(),
            caption_model: self
                .opts
                .caption_model
                .clone()
                .unwrap_or_else(|| DEFAULT_CAPTION_MODEL.to_string()),
            text_model: shoebox_core::models::text::DEFAULT_TEXT_MODEL.to_string(),
            query_model: None,
            device: self.opts.device,
            precision: self.opts.precision,
            downloads: Default::default(),
        }
    }

    /// The settings every figure depends on.
    fn note_settings(&mut self) {
        let pipeline = self.opts.pipeline;
        self.note("batch_size", json!(pipeline.batch_size.max(1)));
        self.note("decode_threads", json!(pipeline.decode_threads.max(1)));
        self.note("precision", json!(self.opts.precision.as_str()));
        self.note("photo_size", json!("4000x3000 JPEG q90 with EXIF"));
        let dot = if self.opts.portable_dot {
            "portable"
        } else {
            "avx2+fma where available"
        };
        self.note("dot", json!(dot));
    }
}

/// The work folder, canonical: the one asked for, or a new temp folder (returned too: the folder
/// goes when it is dropped).
fn work_dir(opts: &BenchOptions) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    let (tmp, work) = match &opts.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
            (None, d.clone())
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("shoebox-bench-")
                .tempdir()
                .map_err(|e| io(std::env::temp_dir(), e))?;
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    };
    let work = std::fs::canonicalize(&work).map_err(|e| io(&work, e))?;
    Ok((tmp, work))
}

/// The CLIP model to measure and its label in the report: a random clip-vit-b-32 when asked for
/// (or when any random weights are and no other CLIP model is named), else the one named.
fn choose_clip(
    opts: &BenchOptions,
    work: &std::path::Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(ModelDir, String)> {
    let random_clip = opts.random_weights.contains(&Arch::ClipVitB32)
        || (!opts.random_weights.is_empty() && opts.clip_model == DEFAULT_CLIP_MODEL);
    if random_clip {
        progress("building clip-vit-b-32 with random weights");
        let d = random_model(Arch::ClipVitB32, work)?;
        Ok((d, format!("{} (random weights)", Arch::ClipVitB32.hub_id())))
    } else {
        let d = hub::resolve(&opts.clip_model, CLIP_FILES, &Default::default())?;
        let label = d.name.clone();
        Ok((d, label))
    }
}
