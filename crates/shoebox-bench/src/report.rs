//! What a run measures and with what (`BenchOptions`), and what it reports (`BenchReport`, the
//! `bench --json` shape), with the rounding and percentiles of its figures.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use shoebox_core::index::HnswParams;
use shoebox_core::models::clip::DEFAULT_CLIP_MODEL;
use shoebox_core::models::{DeviceChoice, Precision};
use shoebox_core::pipeline::PipelineOptions;

use crate::random_weights::Arch;

/// What to measure, and with what.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// CLIP model (hub id or folder), used unless random weights replace it: they do when
    /// `random_weights` holds `clip-vit-b-32`, or holds anything and this is the default hub id.
    pub clip_model: String,
    /// Captioner to time (hub id or folder); only when available without a download.
    pub caption_model: Option<String>,
    /// Sentence encoder (BERT) to time (hub id or folder); only when available without a download.
    pub text_model: Option<String>,
    /// Architectures to build with random weights.
    pub random_weights: Vec<Arch>,
    /// Generated 12 MP JPEGs for the indexing figures.
    pub photos: usize,
    /// Random unit vectors for the query and HNSW figures.
    pub vectors: usize,
    pub device: DeviceChoice,
    /// How the encoders hold their weights (CPU).
    pub precision: Precision,
    /// The `shoebox` binary, to time a fresh process's first query; None: timed in this process.
    pub exe: Option<PathBuf>,
    /// Batch size and decode threads of the indexing pipeline.
    pub pipeline: PipelineOptions,
    /// HNSW parameters of the index the bench builds (and persists for the query figures).
    pub hnsw: HnswParams,
    /// Also measure a recall/latency curve over HNSW parameters (slow: one build per (M, ef_c)).
    pub hnsw_sweep: bool,
    /// Work folder to keep (generated photos and random models are reused); None: a temp folder.
    pub work_dir: Option<PathBuf>,
    /// Use the portable dot product instead of AVX2/FMA (to measure what SIMD brings).
    pub portable_dot: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            clip_model: DEFAULT_CLIP_MODEL.to_string(),
            caption_model: None,
            text_model: None,
            random_weights: Vec::new(),
            photos: 16,
            vectors: 10_000,
            device: DeviceChoice::Auto,
            precision: Precision::F32,
            exe: None,
            pipeline: PipelineOptions::default(),
            hnsw: HnswParams::default(),
            hnsw_sweep: false,
            work_dir: None,
            portable_dot: false,
        }
    }
}

/// Indexing speed, images per second.
#[derive(Debug, Clone, Serialize)]
pub struct IndexFigures {
    /// Read + hash + EXIF + reduced-scale decode + preprocess, on one thread.
    pub decode_img_s: f64,
    /// Image embedding alone, at the pipeline's batch size.
    pub model_img_s: f64,
    /// `Library::index` over a folder of the generated photos (scan, pipeline, catalog, index).
    pub end_to_end_img_s: f64,
}

/// Text queries over a persisted library of `vectors` photos.
#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    pub vectors: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// From starting a fresh `shoebox search … --json` process to its answer.
    pub first_query_ms: f64,
}

/// The HNSW index against exact search on `vectors` random unit vectors (top 10).
#[derive(Debug, Clone, Serialize)]
pub struct HnswFigures {
    pub vectors: usize,
    pub recall_at_10: f64,
    pub search_us: f64,
    pub exact_us: f64,
}

/// The `bench --json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub clip_model: String,
    pub threads: usize,
    pub index: IndexFigures,
    pub query: QueryFigures,
    pub hnsw: HnswFigures,
    /// `Library::open` plus loading the persisted index (no rebuild).
    pub open_ms: f64,
    /// Peak resident set (VmHWM, reset before this phase) while the library is open with the
    /// model's both towers and the persisted index loaded, answering queries.
    pub peak_rss_mb: f64,
    /// Seconds per caption (greedy, 20 new tokens at most, image encoding included).
    pub caption_s: Option<f64>,
    pub bert_sentences_s: Option<f64>,
    /// Whether any figure comes from random weights (speed only: outputs are meaningless).
    pub random_weights: bool,
    /// Further figures and context.
    pub notes: BTreeMap<String, Value>,
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
    }
}
