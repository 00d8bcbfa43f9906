//! `shoebox bench`: what users feel, measured on inputs the bench makes itself — indexing speed
//! (reduced-scale decode, model, the real pipeline end to end), query latency over a persisted
//! library, HNSW recall and speed against exact search, library open time, a fresh process's first
//! query, peak memory, captioning and sentence-encoder speed — with real models, or with the real
//! architectures built with random weights (`--random-weights`) where the real weights are absent.
//!
//! The engine (`shoebox-core`) is used as the CLI and the app use it, plus what its `testing`
//! feature exposes for measuring: the switch to the portable dot products, hnsw_rs's own search per
//! index, and where a library keeps its saved index.
//!
//! Modules, top down: `phases` runs the bench phase by phase; `report` holds the options and
//! the report; `photos` and `vectors` make the inputs; `random_weights` (with `configs`)
//! builds models; `rss` reads peak memory.

mod configs;
mod files;
mod phases;
mod photos;
mod random_weights;
mod report;
mod rss;
mod vectors;

pub use configs::{
    BLIP_BASE_CONFIG, BLIP_BASE_PREPROCESSOR, CLIP_B32_CONFIG, CLIP_B32_PREPROCESSOR,
    MINILM_L6_CONFIG, VITGPT2_CONFIG, VITGPT2_PREPROCESSOR,
};
pub use phases::models::caption_like_sentences;
pub use phases::queries::AppFigures;
pub use phases::run;
pub use random_weights::{random_model, Arch};
pub use report::{BenchOptions, BenchReport, HnswFigures, IndexFigures, QueryFigures};
pub use rss::peak_rss_mb;
pub use vectors::{photo_like_queries, photo_like_vectors, random_unit_vectors};

/// The app-like query phase on the library at `dir` with `opts`' models (`shoebox bench
/// --app-phase`, which the bench runs as a fresh process for its memory figure).
pub fn app_phase(opts: &BenchOptions, dir: std::path::PathBuf) -> shoebox_core::Result<AppFigures> {
    phases::queries::app_phase(shoebox_core::LibraryOptions {
        dir,
        clip_model: opts.clip_model.clone(),
        caption_model: opts
            .caption_model
            .clone()
            .unwrap_or_else(|| shoebox_core::models::caption::DEFAULT_CAPTION_MODEL.to_string()),
        text_model: shoebox_core::models::text::DEFAULT_TEXT_MODEL.to_string(),
        query_model: None,
        device: opts.device,
        precision: opts.precision,
        downloads: Default::default(),
    })
}
