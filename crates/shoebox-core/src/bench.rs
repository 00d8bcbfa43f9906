//! `shoebox bench`: what users feel, measured on inputs the bench makes itself — indexing speed
//! (reduced-scale decode, model, the real pipeline end to end), query latency over a persisted
//! library, HNSW recall and speed against exact search, library open time, a fresh process's first
//! query, peak memory, captioning and sentence-encoder speed — with real models, or with the real
//! architectures built with random weights (`--random-weights`) where the real weights are absent.
//!
//! Random weights: every model is first built through a recording VarBuilder that only notes the
//! name and shape of each tensor it asks for; those tensors are then written, filled with random
//! values (LayerNorm weights 1), as a Hugging Face folder with the real config.json, and loaded
//! through the same loaders users run (`Clip::load`, `Captioner::load`, `TextEncoder::load`).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use image::RgbImage;
use serde::Serialize;
use serde_json::{json, Value};

use crate::captions;
use crate::catalog::{Catalog, FoundFile, Outcome, PhotoMeta, ScanChanges};
use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::index::{dot, HnswParams, VectorIndex};
use crate::library::{Library, LibraryOptions};
use crate::models::blip::{BlipConfig, BlipTextDecoder, BlipVision};
use crate::models::caption::{CaptionOptions, Captioner, CAPTION_FILES, DEFAULT_CAPTION_MODEL};
use crate::models::clip::{clip_config, Clip, CLIP_FILES, DEFAULT_CLIP_MODEL};
use crate::models::hub::{self, ModelDir};
use crate::models::text::{TextEncoder, TEXT_FILES};
use crate::models::vitgpt2::{Gpt2Decoder, VitEncoder, VitGpt2Config};
use crate::models::weights::Weights;
use crate::models::DeviceChoice;
use crate::pipeline::PipelineOptions;
use crate::search::SearchRequest;

/// An architecture `--random-weights` can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// openai/clip-vit-base-patch32
    ClipVitB32,
    /// Salesforce/blip-image-captioning-base
    BlipBase,
    /// nlpconnect/vit-gpt2-image-captioning
    VitGpt2,
    /// sentence-transformers/all-MiniLM-L6-v2
    MiniLmL6,
}

impl Arch {
    pub const ALL: [Arch; 4] = [
        Arch::ClipVitB32,
        Arch::BlipBase,
        Arch::VitGpt2,
        Arch::MiniLmL6,
    ];

    /// The name `--random-weights` takes.
    pub fn name(self) -> &'static str {
        match self {
            Arch::ClipVitB32 => "clip-vit-b-32",
            Arch::BlipBase => "blip-base",
            Arch::VitGpt2 => "vit-gpt2",
            Arch::MiniLmL6 => "minilm-l6",
        }
    }

    /// The real model whose architecture (config.json) it is.
    pub fn hub_id(self) -> &'static str {
        match self {
            Arch::ClipVitB32 => DEFAULT_CLIP_MODEL,
            Arch::BlipBase => DEFAULT_CAPTION_MODEL,
            Arch::VitGpt2 => "nlpconnect/vit-gpt2-image-captioning",
            Arch::MiniLmL6 => "sentence-transformers/all-MiniLM-L6-v2",
        }
    }

    fn is_captioner(self) -> bool {
        matches!(self, Arch::BlipBase | Arch::VitGpt2)
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s.trim())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown architecture {s:?} for --random-weights ({})",
                    Arch::ALL.map(Arch::name).join(", ")
                ))
            })
    }
}

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

const QUERIES: &[&str] = &[
    "a dog running on the beach",
    "kids on a beach at sunset",
    "birthday cake with candles",
    "snowy mountain landscape",
    "a red car parked in the street",
    "receipt",
    "two cats sleeping on a sofa",
    "city skyline at night",
    "wedding photo in a garden",
    "a plate of pasta",
    "people hiking in the forest",
    "old black and white family portrait",
];

/// Run the bench. `progress` gets one line per step.
pub fn run(opts: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<BenchReport> {
    if opts.photos == 0 || opts.vectors < 100 {
        return Err(Error::Invalid(
            "bench needs at least 1 photo and 100 vectors".into(),
        ));
    }
    let tmp;
    let work: PathBuf = match &opts.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("shoebox-bench-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            tmp.path().to_path_buf()
        }
    };
    let work = std::fs::canonicalize(&work).map_err(|e| Error::io(&work, e))?;
    let device = opts.device.device()?;
    crate::index::force_portable_dot(opts.portable_dot);
    let mut notes: BTreeMap<String, Value> = BTreeMap::new();
    let note = |notes: &mut BTreeMap<String, Value>, k: &str, v: Value| {
        notes.insert(k.to_string(), v);
    };

    // ---- models ----
    let random_clip = opts.random_weights.contains(&Arch::ClipVitB32)
        || (!opts.random_weights.is_empty() && opts.clip_model == DEFAULT_CLIP_MODEL);
    let (clip_dir, clip_label) = if random_clip {
        progress("building clip-vit-b-32 with random weights");
        let d = random_model(Arch::ClipVitB32, &work)?;
        (d, format!("{} (random weights)", Arch::ClipVitB32.hub_id()))
    } else {
        let d = hub::resolve(&opts.clip_model, CLIP_FILES, &Default::default())?;
        let label = d.name.clone();
        (d, label)
    };
    let threads = candle_core::utils::get_num_threads();
    note(
        &mut notes,
        "batch_size",
        json!(opts.pipeline.batch_size.max(1)),
    );
    note(
        &mut notes,
        "decode_threads",
        json!(opts.pipeline.decode_threads.max(1)),
    );
    note(
        &mut notes,
        "photo_size",
        json!("4000x3000 JPEG q90 with EXIF"),
    );
    note(
        &mut notes,
        "dot",
        json!(if opts.portable_dot {
            "portable"
        } else {
            "avx2+fma where available"
        }),
    );

    // ---- photos ----
    let photos_dir = work.join(format!("photos-{}", opts.photos));
    progress(&format!(
        "writing {} camera-sized JPEGs (4000×3000) into {}",
        opts.photos,
        photos_dir.display()
    ));
    let t = Instant::now();
    let photos = write_photos(&photos_dir, opts.photos)?;
    let bytes: u64 = photos
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    note(
        &mut notes,
        "photo_mb_avg",
        json!(round(bytes as f64 / photos.len() as f64 / 1e6, 2)),
    );
    note(
        &mut notes,
        "photo_generation_s",
        json!(round(t.elapsed().as_secs_f64(), 1)),
    );

    // ---- index: decode, model ----
    let t = Instant::now();
    let clip = Clip::load(&clip_dir, &device)?;
    note(
        &mut notes,
        "clip_load_ms",
        json!(round(t.elapsed().as_secs_f64() * 1e3, 1)),
    );
    let dim = clip.dim();
    progress("timing decode + preprocess (one thread)");
    let min_short = clip.decode_short_side();
    let t = Instant::now();
    let mut pixels = Vec::with_capacity(photos.len());
    for p in &photos {
        let d = decode_file(p, min_short).map_err(|reason| Error::Decode {
            path: p.clone(),
            reason,
        })?;
        pixels.push(clip.preprocess(&d.image)?);
    }
    let decode_img_s = photos.len() as f64 / t.elapsed().as_secs_f64();

    let batch = opts.pipeline.batch_size.max(1);
    progress(&format!("timing image embedding (batch {batch})"));
    clip.embed_pixels(&pixels[..batch.min(pixels.len())])?; // warm-up
    let t = Instant::now();
    for chunk in pixels.chunks(batch) {
        clip.embed_pixels(chunk)?;
    }
    let model_img_s = pixels.len() as f64 / t.elapsed().as_secs_f64();
    drop(pixels);
    drop(clip);

    // ---- index: end to end ----
    progress("timing the real pipeline (Library::index)");
    let lib_opts = |dir: PathBuf| LibraryOptions {
        dir,
        clip_model: clip_dir.name.clone(),
        caption_model: opts
            .caption_model
            .clone()
            .unwrap_or_else(|| DEFAULT_CAPTION_MODEL.to_string()),
        text_model: crate::models::text::DEFAULT_TEXT_MODEL.to_string(),
        device: opts.device,
        downloads: Default::default(),
    };
    let index_lib_dir = fresh_dir(&work.join("library-index"))?;
    let (end_to_end_img_s, pipeline_s, exif_dates) = {
        let mut lib = Library::open(lib_opts(index_lib_dir.clone()))?;
        lib.lock_for_writing()?;
        lib.add_folders(std::slice::from_ref(&photos_dir))?;
        lib.clip()?;
        let never = AtomicBool::new(false);
        let t = Instant::now();
        let r = lib.index(opts.pipeline, &never, &mut |_| {})?;
        let secs = t.elapsed().as_secs_f64();
        if r.pipeline.embedded != photos.len() {
            return Err(Error::Invalid(format!(
                "the pipeline embedded {} of {} generated photos ({} failed)",
                r.pipeline.embedded,
                photos.len(),
                r.pipeline.failed
            )));
        }
        let model_id = lib
            .catalog()
            .find_model(&clip_dir.name)?
            .map(|m| m.0)
            .unwrap_or(-1);
        let dated = lib
            .catalog()
            .embedded_infos(model_id)?
            .iter()
            .filter(|p| p.taken_at.is_some())
            .count();
        (photos.len() as f64 / secs, r.pipeline.seconds, dated)
    };
    let _ = std::fs::remove_dir_all(&index_lib_dir);
    note(
        &mut notes,
        "end_to_end_pipeline_only_img_s",
        json!(round(photos.len() as f64 / pipeline_s, 2)),
    );
    note(&mut notes, "exif_dates_read", json!(exif_dates));

    // ---- the query library and the HNSW figures ----
    let n = opts.vectors;
    progress(&format!(
        "{n} photo-like random unit vectors of {dim} dimensions"
    ));
    let flat = photo_like_vectors(n, dim, 0x5EED);
    let query_lib_dir = fresh_dir(&work.join("library-query"))?;
    let t = Instant::now();
    let (ids, generation, last_row) =
        fill_catalog(&query_lib_dir, &work, &clip_dir.name, &flat, dim)?;
    note(
        &mut notes,
        "catalog_fill_s",
        json!(round(t.elapsed().as_secs_f64(), 2)),
    );

    progress(&format!(
        "building HNSW over {n} vectors (M {}, ef_construction {})",
        opts.hnsw.m, opts.hnsw.ef_construction
    ));
    let t = Instant::now();
    let mut idx = build_index(&flat, dim, &ids, opts.hnsw)?;
    let build_s = t.elapsed().as_secs_f64();
    note(&mut notes, "hnsw_build_s", json!(round(build_s, 2)));
    note(
        &mut notes,
        "hnsw_params",
        json!({"m": opts.hnsw.m, "ef_construction": opts.hnsw.ef_construction, "ef_search": opts.hnsw.ef_search}),
    );
    progress("timing HNSW against exact search");
    let queries = photo_like_queries(200, dim, 0x5EED);
    let exact = ExactSearch::new(&flat, dim, &ids);
    let (truth, exact_us) = exact.top10_all(&queries);
    {
        // The flat copy of the graph that searches walk (made in the background after a change).
        let t = Instant::now();
        idx.prepare_walk();
        note(
            &mut notes,
            "walk_copy_ms",
            json!(round(t.elapsed().as_secs_f64() * 1e3, 1)),
        );
        note(
            &mut notes,
            "walk_copy_mb",
            json!(idx.walk_bytes().map(|b| round(b as f64 / 1048576.0, 1))),
        );
    }
    let (recall_at_10, search_us) = measure_hnsw(&idx, &queries, dim, &truth);
    {
        // What the flat walk brings: the same searches with hnsw_rs's own search.
        crate::index::force_hnsw_rs_search(true);
        let (recall, us) = measure_hnsw(&idx, &queries, dim, &truth);
        crate::index::force_hnsw_rs_search(false);
        note(
            &mut notes,
            "hnsw_rs_search",
            json!({"recall_at_10": round(recall, 4), "search_us": round(us, 1)}),
        );
    }
    {
        // What the SIMD dot product brings: the same searches with the portable one.
        crate::index::force_portable_dot(!opts.portable_dot);
        let (_, exact_other) = exact.top10_all(&queries);
        let (_, search_other) = measure_hnsw(&idx, &queries, dim, &truth);
        crate::index::force_portable_dot(opts.portable_dot);
        let other = if opts.portable_dot {
            "avx2"
        } else {
            "portable"
        };
        note(
            &mut notes,
            "dot_comparison",
            json!({
                "other": other,
                "search_us_other": round(search_other, 1),
                "exact_us_other": round(exact_other, 1),
            }),
        );
    }
    let hnsw = HnswFigures {
        vectors: n,
        recall_at_10,
        search_us,
        exact_us,
    };
    if opts.hnsw_sweep {
        progress("sweeping HNSW parameters (slow)");
        let curve = sweep(
            &flat,
            dim,
            &ids,
            &queries,
            &truth,
            &mut idx,
            opts.hnsw,
            build_s,
            &mut *progress,
        )?;
        note(&mut notes, "hnsw_curve", Value::Array(curve));
    }
    drop(exact);
    note(
        &mut notes,
        "vectors",
        json!(
            "photo-like: events of ~20 similar photos in a 64-d semantic subspace plus noise \
               (mean pairwise cosine ~0.5); queries drawn alike around another mean"
        ),
    );
    {
        // The worst case for any graph index: uniform random vectors have no neighbourhood
        // structure at all (every pair is nearly orthogonal).
        let m = n.min(10_000);
        progress(&format!(
            "HNSW over {m} uniform random unit vectors (worst case)"
        ));
        let flat_u = random_unit_vectors(m, dim, 0xA11);
        let ids_u: Vec<i64> = (1..=m as i64).collect();
        let t = Instant::now();
        let idx_u = build_index(&flat_u, dim, &ids_u, opts.hnsw)?;
        let build_s = t.elapsed().as_secs_f64();
        let q_u = random_unit_vectors(100, dim, 0xB22);
        let (truth_u, exact_u) = ExactSearch::new(&flat_u, dim, &ids_u).top10_all(&q_u);
        let (recall_u, us_u) = measure_hnsw(&idx_u, &q_u, dim, &truth_u);
        note(
            &mut notes,
            "hnsw_uniform",
            json!({"vectors": m, "recall_at_10": round(recall_u, 4), "search_us": round(us_u, 1),
                   "exact_us": round(exact_u, 1), "build_s": round(build_s, 2)}),
        );
    }

    // Persist the index for the library, as `index` would.
    idx.generation = generation;
    idx.last_row = last_row;
    let lib = Library::open(lib_opts(query_lib_dir.clone()))?;
    let index_dir = lib.index_dir(&clip_dir.name);
    idx.save(&index_dir, &clip_dir.name)?;
    drop(lib);
    drop(idx);
    drop(flat);

    // ---- open ----
    progress("timing library open (catalog + persisted index)");
    let t = Instant::now();
    let lib = Library::open(lib_opts(query_lib_dir.clone()))?;
    let loaded = VectorIndex::load(&index_dir, &clip_dir.name, dim)?;
    let in_step = loaded.generation == lib.catalog().generation()?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    if !in_step || loaded.len() != n {
        return Err(Error::Index(format!(
            "the persisted index is not in step with the catalog ({} vectors)",
            loaded.len()
        )));
    }
    // Searches walk the mapped flat copy of the graph at once.
    note(
        &mut notes,
        "walk_mapped_at_open",
        json!(loaded.walk_is_mapped()),
    );
    let q = photo_like_queries(20, dim, 1);
    let t_first = Instant::now();
    for row in q.chunks_exact(dim) {
        loaded.search(row, 10, None);
    }
    note(
        &mut notes,
        "search_right_after_open_us",
        json!(round(t_first.elapsed().as_secs_f64() * 1e6 / 20.0, 1)),
    );
    // hnsw_rs's graph is loaded only to change the index (a save after new photos).
    let t_graph = Instant::now();
    loaded.wait_for_graph()?;
    note(
        &mut notes,
        "graph_load_for_changes_ms",
        json!(round(t_graph.elapsed().as_secs_f64() * 1e3, 1)),
    );
    drop(loaded);
    drop(lib);

    // ---- queries in process: ViT-B/32 (both towers) and the index, as the app holds them ----
    progress("timing text queries (Library::search)");
    let bench_peak_so_far = peak_rss_mb();
    if let Some(mb) = reset_peak_rss() {
        note(&mut notes, "rss_before_app_phase_mb", json!(round(mb, 1)));
    }
    let mut lib = Library::open(lib_opts(query_lib_dir.clone()))?;
    let req = |q: &str| SearchRequest {
        query: Some(q.to_string()),
        limit: 10,
        ..SearchRequest::default()
    };
    let t = Instant::now();
    let first = lib.search(&req(QUERIES[0]))?;
    note(
        &mut notes,
        "first_query_in_process_ms",
        json!(round(t.elapsed().as_secs_f64() * 1e3, 1)),
    );
    if first.results.len() != 10 {
        return Err(Error::Invalid(format!(
            "a query over {n} vectors returned {} results",
            first.results.len()
        )));
    }
    // Steady state: the graph in memory and the vision tower loaded too.
    lib.wait_for_index()?;
    lib.clip()?.load_vision()?;
    let mut ms = Vec::new();
    for i in 0..40 {
        let t = Instant::now();
        lib.search(&req(QUERIES[i % QUERIES.len()]))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let (p50_ms, p95_ms) = (percentile(&ms, 0.50), percentile(&ms, 0.95));
    let app_peak_rss = peak_rss_mb();
    drop(lib);
    if let Some(mb) = bench_peak_so_far {
        note(&mut notes, "bench_process_peak_rss_mb", json!(round(mb, 1)));
    }

    // ---- first query of a fresh process ----
    progress("timing a fresh process's first query");
    let first_query_ms = match &opts.exe {
        Some(exe) => {
            let (ms, exit_ms, rss) =
                first_query_process(exe, &query_lib_dir, &clip_dir.name, opts.device, QUERIES[1])?;
            note(&mut notes, "first_query_exit_ms", json!(round(exit_ms, 1)));
            note(
                &mut notes,
                "first_query",
                json!("fresh `shoebox search --json` process"),
            );
            if let Some(mb) = rss {
                note(
                    &mut notes,
                    "search_process_peak_rss_mb",
                    json!(round(mb, 1)),
                );
            }
            ms
        }
        None => {
            let t = Instant::now();
            let mut lib = Library::open(lib_opts(query_lib_dir.clone()))?;
            lib.search(&req(QUERIES[1]))?;
            note(
                &mut notes,
                "first_query",
                json!("in process (no binary given)"),
            );
            t.elapsed().as_secs_f64() * 1e3
        }
    };

    // ---- captioning ----
    let cap_arch = opts
        .random_weights
        .iter()
        .copied()
        .find(|a| a.is_captioner());
    let captioner = match cap_arch {
        Some(arch) => {
            progress(&format!("building {} with random weights", arch.name()));
            let d = random_model(arch, &work)?;
            note(
                &mut notes,
                "caption_model",
                json!(format!("{} (random weights)", arch.hub_id())),
            );
            Some(Captioner::load(&d, &device)?)
        }
        None => match &opts.caption_model {
            Some(spec) if available_offline(spec, CAPTION_FILES) => {
                note(&mut notes, "caption_model", json!(hub::model_name(spec)));
                Some(captions::load_captioner(
                    spec,
                    opts.device,
                    &Default::default(),
                )?)
            }
            Some(spec) => {
                note(
                    &mut notes,
                    "caption_model",
                    json!(format!("{spec}: not available offline, not timed")),
                );
                None
            }
            None => None,
        },
    };
    let caption_s = match captioner {
        Some(cap) => {
            progress("timing captions (greedy, 20 new tokens at most)");
            Some(time_captions(&cap, &photos[0], &mut notes)?)
        }
        None => None,
    };

    // ---- sentence encoder ----
    let encoder = if opts.random_weights.contains(&Arch::MiniLmL6) {
        progress("building minilm-l6 with random weights");
        let d = random_model(Arch::MiniLmL6, &work)?;
        note(
            &mut notes,
            "bert_model",
            json!(format!("{} (random weights)", Arch::MiniLmL6.hub_id())),
        );
        Some(TextEncoder::load(&d, &device)?)
    } else {
        match &opts.text_model {
            Some(spec) if available_offline(spec, TEXT_FILES) => {
                let d = hub::resolve(spec, TEXT_FILES, &Default::default())?;
                note(&mut notes, "bert_model", json!(d.name.clone()));
                Some(TextEncoder::load(&d, &device)?)
            }
            Some(spec) => {
                note(
                    &mut notes,
                    "bert_model",
                    json!(format!("{spec}: not available offline, not timed")),
                );
                None
            }
            None => None,
        }
    };
    let bert_sentences_s = match encoder {
        Some(enc) => {
            progress("timing sentence embeddings (batches of 32)");
            Some(time_sentences(&enc)?)
        }
        None => None,
    };

    Ok(BenchReport {
        clip_model: clip_label,
        threads,
        index: IndexFigures {
            decode_img_s,
            model_img_s,
            end_to_end_img_s,
        },
        query: QueryFigures {
            vectors: n,
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
        notes,
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fresh_dir(d: &Path) -> Result<PathBuf> {
    if d.exists() {
        std::fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    Ok(d.to_path_buf())
}

/// A local folder, or a hub id already in the Hugging Face cache (the bench never downloads these).
fn available_offline(spec: &str, files: &[&str]) -> bool {
    hub::is_local(spec) || hub::cached(spec, files).is_some()
}

/// VmHWM (peak resident set) of this process, in MiB (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    proc_hwm_mb(Path::new("/proc/self/status"))
}

/// Return freed heap to the system, then reset this process's VmHWM to its current resident set
/// (Linux; elsewhere a no-op). Returns the resident set it starts from, in MiB.
fn reset_peak_rss() -> Option<f64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status_mb(Path::new("/proc/self/status"), "VmRSS:")
}

fn proc_hwm_mb(status: &Path) -> Option<f64> {
    proc_status_mb(status, "VmHWM:")
}

/// A `field` (e.g. `VmHWM:`) of a /proc status file, in MiB.
fn proc_status_mb(status: &Path, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

// ---- random numbers ----

/// xorshift64*: fast, deterministic, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Approximately standard normal (sum of four uniforms, rescaled).
    fn normal(&mut self) -> f32 {
        let x = self.next();
        let s = (x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48);
        (s as f32 / 65535.0 - 2.0) * 1.732_050_8
    }
}

/// `n` random unit vectors of `dim` dimensions (uniform on the sphere), row after row.
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0f32; n * dim];
    for row in out.chunks_exact_mut(dim) {
        for x in row.iter_mut() {
            *x = rng.normal();
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    out
}

/// `n` photo-like unit vectors, row after row. CLIP image embeddings are nothing like uniform
/// random vectors: they share a mean direction (unrelated photos sit near cosine 0.5), vary mostly
/// in a low-dimensional semantic subspace, and come in events — bursts of similar shots. Here:
/// `mean + semantic + noise`, the semantic part a point of a 64-d latent space (decaying spectrum)
/// drawn around its event's centre (events of ~20 photos), the noise isotropic.
pub fn photo_like_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let space = Semantic::new(dim, seed);
    let mut rng = Rng::new(seed ^ 0xE7E7);
    let mut out = vec![0f32; n * dim];
    let mut centre = vec![0f32; LATENT];
    for (i, row) in out.chunks_exact_mut(dim).enumerate() {
        if i == 0 || rng.uniform() < 1.0 / 20.0 {
            centre.iter_mut().for_each(|c| *c = rng.normal());
        }
        let tau = 0.35f32;
        let z: Vec<f32> = centre
            .iter()
            .map(|c| (c + tau * rng.normal()) / (1.0 + tau * tau).sqrt())
            .collect();
        space.embed(&space.image_mean, &z, &mut rng, row);
    }
    out
}

/// `n` query vectors for [`photo_like_vectors`] of the same seed: a fresh semantic point each,
/// around another mean (text embeddings sit apart from image embeddings in CLIP).
pub fn photo_like_queries(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let space = Semantic::new(dim, seed);
    let mut rng = Rng::new(seed ^ 0x7E57);
    let mut out = vec![0f32; n * dim];
    for row in out.chunks_exact_mut(dim) {
        let z: Vec<f32> = (0..LATENT).map(|_| rng.normal()).collect();
        space.embed(&space.text_mean, &z, &mut rng, row);
    }
    out
}

const LATENT: usize = 64;

/// The shared structure of photo-like vectors: means and a semantic basis.
struct Semantic {
    image_mean: Vec<f32>,
    text_mean: Vec<f32>,
    /// LATENT directions, each scaled by its standard deviation.
    basis: Vec<Vec<f32>>,
    dim: usize,
}

impl Semantic {
    fn new(dim: usize, seed: u64) -> Self {
        let unit = |s: u64| random_unit_vectors(1, dim, s);
        // Spectrum σ_j ∝ 1/√(j+1), scaled so the semantic part has variance 0.8 (mean 1, noise 0.2).
        let raw: Vec<f32> = (0..LATENT).map(|j| 1.0 / ((j + 1) as f32).sqrt()).collect();
        let total: f32 = raw.iter().map(|s| s * s).sum();
        let basis = (0..LATENT)
            .map(|j| {
                let s = raw[j] * (0.8 / total).sqrt();
                unit(seed ^ (0x1000 + j as u64))
                    .into_iter()
                    .map(|x| x * s)
                    .collect()
            })
            .collect();
        Semantic {
            image_mean: unit(seed ^ 0x11),
            text_mean: unit(seed ^ 0x22),
            basis,
            dim,
        }
    }

    fn embed(&self, mean: &[f32], z: &[f32], rng: &mut Rng, row: &mut [f32]) {
        let noise = (0.2f32 / self.dim as f32).sqrt();
        for (k, x) in row.iter_mut().enumerate() {
            *x = mean[k] + noise * rng.normal();
        }
        for (b, zj) in self.basis.iter().zip(z) {
            for (x, bk) in row.iter_mut().zip(b) {
                *x += zj * bk;
            }
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

// ---- photos ----

const PHOTO_W: u32 = 4000;
const PHOTO_H: u32 = 3000;

/// Write `n` camera-sized JPEGs (kept when already there), in parallel. Returns their paths.
fn write_photos(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| dir.join(format!("IMG_{:04}.jpg", i + 1)))
        .collect();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(n);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if paths[i].is_file() {
                    continue;
                }
                if let Err(e) = write_photo(&paths[i], i as u64) {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    break;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(paths)
}

fn write_photo(path: &Path, i: u64) -> Result<()> {
    let img = synth_photo(i, PHOTO_W, PHOTO_H);
    let mut jpeg = Vec::with_capacity(6 << 20);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .map_err(|e| Error::Invalid(format!("encoding a bench photo: {e}")))?;
    // Every fifth photo was shot in portrait (rotated 90° clockwise on display).
    let orientation = if i % 5 == 4 { 6 } else { 1 };
    let taken = format!(
        "20{:02}:{:02}:{:02} {:02}:{:02}:{:02}",
        10 + i % 15,
        1 + i % 12,
        1 + i % 28,
        (8 + i) % 24,
        (i * 7) % 60,
        (i * 13) % 60
    );
    let exif = exif_app1(orientation, &taken, "Shoebox", "Bench Camera 12MP");
    let mut out = Vec::with_capacity(jpeg.len() + exif.len());
    out.extend_from_slice(&jpeg[..2]); // SOI
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    let tmp = path.with_extension("jpg.partial");
    std::fs::write(&tmp, &out).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A photo-like image: a sky-to-ground gradient, soft-shaded shapes, sensor-like noise.
fn synth_photo(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut rng = Rng::new(seed + 1);
    let color =
        |rng: &mut Rng| [rng.uniform(), rng.uniform(), rng.uniform()].map(|c| 30.0 + 200.0 * c);
    let (top, bottom, tint) = (color(&mut rng), color(&mut rng), color(&mut rng));
    let (w_us, h_us) = (w as usize, h as usize);
    let mut buf = vec![0u8; w_us * h_us * 3];
    for (y, row) in buf.chunks_exact_mut(w_us * 3).enumerate() {
        let t = y as f32 / h as f32;
        let base = [0, 1, 2].map(|c| top[c] * (1.0 - t) + bottom[c] * t);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let s = x as f32 / w as f32 - 0.5;
            for c in 0..3 {
                px[c] = (base[c] + (tint[c] - 128.0) * 0.3 * s) as u8;
            }
        }
    }
    // Shapes: discs and boxes, lit from above.
    for _ in 0..10 {
        let c = color(&mut rng);
        let r = (h as f32 * (0.04 + 0.18 * rng.uniform())) as i64;
        let cx = (rng.uniform() * w as f32) as i64;
        let cy = (rng.uniform() * h as f32) as i64;
        let disc = rng.uniform() < 0.5;
        let (y0, y1) = ((cy - r).max(0), (cy + r).min(h as i64 - 1));
        let (x0, x1) = ((cx - r).max(0), (cx + r).min(w as i64 - 1));
        for y in y0..=y1 {
            let dy = y - cy;
            let shade = 0.8 - 0.25 * dy as f32 / r as f32;
            let row = &mut buf[(y as usize) * w_us * 3..(y as usize + 1) * w_us * 3];
            for x in x0..=x1 {
                let dx = x - cx;
                if disc && dx * dx + dy * dy > r * r {
                    continue;
                }
                let px = &mut row[x as usize * 3..x as usize * 3 + 3];
                for k in 0..3 {
                    px[k] = (c[k] * shade).clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    // Noise: mostly luminance, a little colour, as a camera at moderate ISO.
    for px in buf.chunks_exact_mut(3) {
        let l = rng.normal() * 4.0;
        for v in px.iter_mut() {
            *v = (*v as f32 + l + rng.normal()).clamp(0.0, 255.0) as u8;
        }
    }
    RgbImage::from_raw(w, h, buf).expect("buffer matches the size")
}

/// A JPEG APP1 segment with a little-endian EXIF block: Make, Model, Orientation and, in the EXIF
/// sub-IFD, DateTimeOriginal.
fn exif_app1(orientation: u16, taken: &str, make: &str, model: &str) -> Vec<u8> {
    let ascii = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        b
    };
    let (make, model, taken) = (ascii(make), ascii(model), ascii(taken));
    let ifd0 = 8u32;
    let make_at = ifd0 + 2 + 4 * 12 + 4;
    let model_at = make_at + make.len() as u32;
    let exif_at = (model_at + model.len() as u32 + 1) & !1;
    let taken_at = exif_at + 2 + 12 + 4;
    let mut t = Vec::new();
    t.extend_from_slice(b"II");
    t.extend_from_slice(&42u16.to_le_bytes());
    t.extend_from_slice(&ifd0.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&typ.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    t.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut t, 0x010F, 2, make.len() as u32, make_at);
    entry(&mut t, 0x0110, 2, model.len() as u32, model_at);
    entry(&mut t, 0x0112, 3, 1, orientation as u32);
    entry(&mut t, 0x8769, 4, 1, exif_at);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&make);
    t.extend_from_slice(&model);
    t.resize(exif_at as usize, 0);
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x9003, 2, taken.len() as u32, taken_at);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&taken);
    let len = (2 + 6 + t.len()) as u16;
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    seg
}

// ---- the query library ----

/// A catalog with one photo row per vector (files that need not exist: nothing scans this library)
/// and their embeddings. Returns (photo ids in vector order, generation, last embedding row).
fn fill_catalog(
    lib_dir: &Path,
    work: &Path,
    model: &str,
    flat: &[f32],
    dim: usize,
) -> Result<(Vec<i64>, i64, i64)> {
    let n = flat.len() / dim;
    let root = work.join("library-query-photos");
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let mut cat = Catalog::open(&lib_dir.join("catalog.sqlite"))?;
    let (root_id, _) = cat.add_root(&root)?;
    let base_ns: i64 = 1_600_000_000_000_000_000;
    let added: Vec<FoundFile> = (0..n)
        .map(|i| FoundFile {
            root_id,
            rel_path: PathBuf::from(format!("{:03}/IMG_{:06}.jpg", i / 1000, i)),
            ext: "jpg".into(),
            size: 3_000_000 + i as u64,
            mtime_ns: base_ns + i as i64 * 1_000_000_000,
        })
        .collect();
    cat.apply_scan(&ScanChanges {
        roots: vec![root_id],
        added,
        ..Default::default()
    })?;
    let work_items = cat.pending_work(None)?;
    if work_items.len() != n {
        return Err(Error::Invalid(format!(
            "expected {n} photo rows, found {}",
            work_items.len()
        )));
    }
    let model_id = cat.model_id(model, "clip", dim)?;
    let ids: Vec<i64> = work_items.iter().map(|w| w.id).collect();
    for (c, chunk) in ids.chunks(5000).enumerate() {
        let outcomes: Vec<Outcome> = chunk
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                let i = c * 5000 + j;
                Outcome::Embedded {
                    id,
                    meta: PhotoMeta {
                        size: 3_000_000 + i as u64,
                        mtime_ns: base_ns + i as i64 * 1_000_000_000,
                        hash: blake3::hash(&(i as u64).to_le_bytes()).as_bytes().to_vec(),
                        width: PHOTO_W,
                        height: PHOTO_H,
                        orientation: Some(1),
                        taken_at: Some(format!("20{:02}-06-01T12:00:00", 10 + i % 15)),
                        camera_make: Some("Shoebox".into()),
                        camera_model: Some("Bench Camera 12MP".into()),
                    },
                    vector: flat[i * dim..(i + 1) * dim].to_vec(),
                }
            })
            .collect();
        cat.record(model_id, &outcomes)?;
    }
    Ok((ids, cat.generation()?, cat.last_embedding_row()?))
}

// ---- HNSW ----

/// Build an index over `flat` (photo `ids[i]` ↔ row `i`), inserting in chunks to bound memory.
fn build_index(flat: &[f32], dim: usize, ids: &[i64], params: HnswParams) -> Result<VectorIndex> {
    let n = ids.len();
    let mut idx = VectorIndex::with_params(dim, n, params);
    for (c, chunk) in ids.chunks(10_000).enumerate() {
        let items: Vec<(i64, Vec<f32>)> = chunk
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                let i = c * 10_000 + j;
                (id, flat[i * dim..(i + 1) * dim].to_vec())
            })
            .collect();
        idx.insert_many(items)?;
    }
    Ok(idx)
}

/// Brute-force top-k by dot product over a contiguous matrix, on one thread.
struct ExactSearch<'a> {
    flat: &'a [f32],
    dim: usize,
    ids: &'a [i64],
}

impl<'a> ExactSearch<'a> {
    fn new(flat: &'a [f32], dim: usize, ids: &'a [i64]) -> Self {
        ExactSearch { flat, dim, ids }
    }

    fn top_k(&self, q: &[f32], k: usize) -> Vec<i64> {
        let mut scored: Vec<(f32, usize)> = self
            .flat
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, v)| (dot(q, v), i))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        scored.truncate(k);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(_, i)| self.ids[i]).collect()
    }

    /// The exact top 10 of every query, and the mean µs per query.
    fn top10_all(&self, queries: &[f32]) -> (Vec<Vec<i64>>, f64) {
        let t = Instant::now();
        let truth: Vec<Vec<i64>> = queries
            .chunks_exact(self.dim)
            .map(|q| self.top_k(q, 10))
            .collect();
        let us = t.elapsed().as_secs_f64() * 1e6 / truth.len().max(1) as f64;
        (truth, us)
    }
}

/// (recall@10, mean µs per search) of an index against the exact answers.
fn measure_hnsw(idx: &VectorIndex, queries: &[f32], dim: usize, truth: &[Vec<i64>]) -> (f64, f64) {
    // The flat copy searches walk, then a warm-up (first touches of the graph).
    idx.prepare_walk();
    for q in queries.chunks_exact(dim).take(10) {
        idx.search(q, 10, None);
    }
    let t = Instant::now();
    let found: Vec<Vec<(i64, f32)>> = queries
        .chunks_exact(dim)
        .map(|q| idx.search(q, 10, None))
        .collect();
    let us = t.elapsed().as_secs_f64() * 1e6 / found.len().max(1) as f64;
    let mut hits = 0usize;
    for (f, t) in found.iter().zip(truth) {
        let t: HashSet<i64> = t.iter().copied().collect();
        hits += f.iter().filter(|h| t.contains(&h.0)).count();
    }
    (hits as f64 / (truth.len() * 10).max(1) as f64, us)
}

/// Recall and latency for several (M, ef_construction) builds and ef_search values; `main` (built
/// with `main_params` in `main_build_s`) stands for its own combination.
#[allow(clippy::too_many_arguments)]
fn sweep(
    flat: &[f32],
    dim: usize,
    ids: &[i64],
    queries: &[f32],
    truth: &[Vec<i64>],
    main: &mut VectorIndex,
    main_params: HnswParams,
    main_build_s: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Value>> {
    let mut curve = Vec::new();
    for (m, efc) in [(16, 128), (16, 256), (24, 256), (32, 256)] {
        let mut built;
        let (idx, build_s) = if (m, efc) == (main_params.m, main_params.ef_construction) {
            (&mut *main, main_build_s)
        } else {
            progress(&format!("  build M {m}, ef_construction {efc}"));
            let t = Instant::now();
            let p = HnswParams {
                m,
                ef_construction: efc,
                ef_search: 64,
            };
            built = build_index(flat, dim, ids, p)?;
            (&mut built, t.elapsed().as_secs_f64())
        };
        for ef in [32, 64, 96, 128, 192, 256, 384, 512] {
            idx.set_ef_search(ef);
            let (recall, us) = measure_hnsw(idx, queries, dim, truth);
            progress(&format!(
                "    M {m}, ef_construction {efc}, ef_search {ef}: recall@10 {recall:.4}, {us:.0} µs"
            ));
            curve.push(json!({
                "m": m, "ef_construction": efc, "ef_search": ef,
                "recall_at_10": round(recall, 4), "search_us": round(us, 1),
                "build_s": round(build_s, 1),
            }));
        }
    }
    main.set_ef_search(main_params.ef_search);
    Ok(curve)
}

// ---- first query of a fresh process ----

fn device_flag(d: DeviceChoice) -> &'static str {
    match d {
        DeviceChoice::Auto => "auto",
        DeviceChoice::Cpu => "cpu",
        DeviceChoice::Cuda => "cuda",
        DeviceChoice::Metal => "metal",
    }
}

/// Run `shoebox search QUERY --json` on the library; (milliseconds to its answer, to its exit, its
/// peak RSS in MiB as last seen while it ran).
fn first_query_process(
    exe: &Path,
    lib: &Path,
    model: &str,
    device: DeviceChoice,
    query: &str,
) -> Result<(f64, f64, Option<f64>)> {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--library")
        .arg(lib)
        .arg("--clip-model")
        .arg(model)
        .arg("--device")
        .arg(device_flag(device))
        .arg("-q")
        .args(["search", query, "--json", "--limit", "10"])
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("SHOEBOX_LIBRARY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Error::io(exe, e))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    // The answer is one JSON line: the clock stops when it arrives (the process may take longer
    // to exit, tearing down what it loaded).
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = std::io::BufReader::new(stdout);
        let _ = std::io::BufRead::read_line(&mut r, &mut line);
        let at = Instant::now();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut r, &mut rest);
        (line, at)
    });
    let mut hwm = None;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| Error::io(exe, e))? {
            break st;
        }
        if let Some(mb) = proc_hwm_mb(&status_file) {
            hwm = Some(mb);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let exit_ms = t.elapsed().as_secs_f64() * 1e3;
    let (line, answered) = reader
        .join()
        .map_err(|_| Error::Invalid("reading `shoebox search` output failed".into()))?;
    let ms = answered.duration_since(t).as_secs_f64() * 1e3;
    let out = child.wait_with_output().map_err(|e| Error::io(exe, e))?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "`shoebox search` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| Error::Invalid(format!("`shoebox search --json` printed no JSON: {e}")))?;
    let n = v["results"].as_array().map(Vec::len).unwrap_or(0);
    if n == 0 {
        return Err(Error::Invalid("`shoebox search` found nothing".into()));
    }
    Ok((ms, exit_ms, hwm))
}

// ---- captions and sentences ----

/// Mean seconds of `f` over at least `min` runs, more while under `budget_s` (at most `max`).
fn mean_secs<T>(
    min: usize,
    max: usize,
    budget_s: f64,
    mut f: impl FnMut() -> Result<T>,
) -> Result<(f64, T)> {
    let start = Instant::now();
    let mut runs = 0;
    let mut last;
    loop {
        last = f()?;
        runs += 1;
        let spent = start.elapsed().as_secs_f64();
        if runs >= max || (runs >= min && spent >= budget_s) {
            return Ok((spent / runs as f64, last));
        }
    }
}

/// Seconds per caption of one generated photo (greedy, 20 new tokens at most); notes the tokens
/// generated, the image-encoding share, and the cost without the cross-attention cache.
fn time_captions(
    cap: &Captioner,
    photo: &Path,
    notes: &mut BTreeMap<String, Value>,
) -> Result<f64> {
    let d = decode_file(photo, cap.decode_short_side()).map_err(|reason| Error::Decode {
        path: photo.to_path_buf(),
        reason,
    })?;
    let px = vec![cap.preprocess(&d.image)?];
    let o = CaptionOptions {
        beams: 1,
        max_tokens: 20,
        ..CaptionOptions::default()
    };
    cap.caption_pixels(&px, &o)?; // warm-up
    let (secs, c) = mean_secs(2, 10, 3.0, || Ok(cap.caption_pixels(&px, &o)?.remove(0)))?;
    let tokens = c.tokens.len().saturating_sub(1);
    let (enc_s, _) = mean_secs(1, 10, 1.0, || cap.encode(&px))?;
    let uncached = CaptionOptions {
        cache_cross: false,
        ..o
    };
    let (secs_uncached, c2) = mean_secs(1, 10, 3.0, || {
        Ok(cap.caption_pixels(&px, &uncached)?.remove(0))
    })?;
    let tokens2 = c2.tokens.len().saturating_sub(1);
    notes.insert("caption_tokens".into(), json!(tokens));
    notes.insert("caption_encode_s".into(), json!(round(enc_s, 4)));
    notes.insert(
        "caption_ms_per_token".into(),
        json!(round(
            (secs - enc_s).max(0.0) * 1e3 / tokens.max(1) as f64,
            2
        )),
    );
    notes.insert(
        "caption_s_without_cross_cache".into(),
        json!(round(secs_uncached, 4)),
    );
    notes.insert("caption_tokens_without_cross_cache".into(), json!(tokens2));
    Ok(secs)
}

const SUBJECTS: &[&str] = &[
    "a brown dog",
    "two small children",
    "an old man",
    "a small white cat",
    "a group of friends",
    "a red vintage car",
    "a smiling woman",
    "a flock of birds",
];
const ACTIONS: &[&str] = &[
    "running on wet sand",
    "sitting on a bench",
    "waiting at the station",
    "playing in the park",
];
const PLACES: &[&str] = &[
    "near the sea at sunset",
    "under a cloudy sky",
    "in the busy city",
    "beside a snowy mountain",
    "on a summer afternoon",
    "next to a lake",
    "at a birthday party",
    "behind the village church",
];

/// Sentences per second: 256 caption-like sentences of about 10 words, in batches of 32.
fn time_sentences(enc: &TextEncoder) -> Result<f64> {
    let sentences: Vec<String> = (0..256)
        .map(|i| {
            format!(
                "{} {} {}",
                SUBJECTS[i % SUBJECTS.len()],
                ACTIONS[(i / SUBJECTS.len()) % ACTIONS.len()],
                PLACES[(i / (SUBJECTS.len() * ACTIONS.len())) % PLACES.len()]
            )
        })
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    enc.embed(&refs[..32])?; // warm-up
    let t = Instant::now();
    for chunk in refs.chunks(32) {
        enc.embed(chunk)?;
    }
    Ok(refs.len() as f64 / t.elapsed().as_secs_f64())
}

// ---- random weights ----

/// Notes the name and shape of every tensor a model asks for, handing out zero-cost stand-ins.
struct Recorder {
    shapes: Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims().to_vec();
        let mut m = self.shapes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = m.get(name) {
            if *prev != dims {
                candle_core::bail!("{name} asked for as {dims:?} and as {prev:?}");
            }
        }
        m.insert(name.to_string(), dims);
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name} asked for without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        // As models/checked.rs: the model asks for every optional tensor, so the file has them.
        true
    }
}

/// Build `arch` through a recording VarBuilder: the names and shapes of its tensors.
fn record_tensors(arch: Arch) -> Result<BTreeMap<String, Vec<usize>>> {
    let shapes = Arc::new(Mutex::new(BTreeMap::new()));
    let vb = VarBuilder::from_backend(
        Box::new(Recorder {
            shapes: shapes.clone(),
        }),
        DType::F32,
        Device::Cpu,
    );
    let built: candle_core::Result<()> = (|| {
        match arch {
            Arch::ClipVitB32 => {
                let (cfg, _) = clip_config(CLIP_B32_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                candle_transformers::models::clip::ClipModel::new(vb, &cfg)?;
            }
            Arch::BlipBase => {
                let c = BlipConfig::parse(BLIP_BASE_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let enc = c
                    .text_config
                    .encoder_hidden_size
                    .unwrap_or(c.vision_config.hidden_size);
                BlipVision::new(&c.vision_config, Weights::F32(vb.pp("vision_model")))?;
                // Tied LM head, as the published checkpoint (no cls.predictions.decoder.weight).
                BlipTextDecoder::new(
                    &c.text_config,
                    enc,
                    true,
                    Weights::F32(vb.pp("text_decoder")),
                )?;
            }
            Arch::VitGpt2 => {
                let c = VitGpt2Config::parse(VITGPT2_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                VitEncoder::new(&c.encoder, vb.pp("encoder"))?;
                Gpt2Decoder::new(&c.decoder, c.encoder.hidden_size, vb)?;
            }
            Arch::MiniLmL6 => {
                let cfg: candle_transformers::models::bert::Config =
                    serde_json::from_str(MINILM_L6_CONFIG)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                candle_transformers::models::bert::BertModel::load(vb, &cfg)?;
            }
        }
        Ok(())
    })();
    built.map_err(|e| {
        Error::Model(format!(
            "building {} to record its tensors: {e}",
            arch.name()
        ))
    })?;
    let m = shapes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(m)
}

/// Write a Hugging Face folder for `arch` with random weights under `work/models/` (kept when
/// already complete there) and return it.
pub fn random_model(arch: Arch, work: &Path) -> Result<ModelDir> {
    let dir = work.join("models").join(format!("{}-random", arch.name()));
    let weights = dir.join("model.safetensors");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (config, preprocessor, tokenizer): (&str, Option<&str>, &[u8]) = match arch {
        Arch::ClipVitB32 => (CLIP_B32_CONFIG, Some(CLIP_B32_PREPROCESSOR), CLIP_TOKENIZER),
        Arch::BlipBase => (
            BLIP_BASE_CONFIG,
            Some(BLIP_BASE_PREPROCESSOR),
            BERT_TOKENIZER,
        ),
        Arch::VitGpt2 => (VITGPT2_CONFIG, Some(VITGPT2_PREPROCESSOR), GPT2_TOKENIZER),
        Arch::MiniLmL6 => (MINILM_L6_CONFIG, None, BERT_TOKENIZER),
    };
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
    };
    write("config.json", config.as_bytes())?;
    if let Some(p) = preprocessor {
        write("preprocessor_config.json", p.as_bytes())?;
    }
    write("tokenizer.json", tokenizer)?;
    if arch == Arch::MiniLmL6 {
        write(
            "sentence_bert_config.json",
            br#"{"max_seq_length": 256, "do_lower_case": false}"#,
        )?;
    }
    write(
        "README.md",
        format!(
            "Random weights in the architecture of {} (config.json as published), written by \
             `shoebox bench --random-weights {}`: for speed measurements only.\n",
            arch.hub_id(),
            arch.name()
        )
        .as_bytes(),
    )?;
    if !weights.is_file() {
        let tensors = record_tensors(arch)?;
        write_random_safetensors(&weights, &tensors, arch as u64 + 17)?;
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(ModelDir {
        name: dir.to_string_lossy().into_owned(),
        dir,
    })
}

/// Write f32 tensors of the given shapes as safetensors, streaming: N(0, 0.02) everywhere except
/// 1-D `*weight` tensors (LayerNorm scales: 1) and `logit_scale` (ln(1/0.07), CLIP's init).
fn write_random_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, Vec<usize>>,
    seed: u64,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| Error::Model(format!("safetensors header: {e}")))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let tmp = path.with_extension("safetensors.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io(&tmp, e);
    w.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&h).map_err(io)?;
    let mut rng = Rng::new(seed);
    let mut chunk: Vec<u8> = Vec::with_capacity(1 << 18);
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let fill = if name == "logit_scale" || name.ends_with(".logit_scale") {
            Some(2.6592f32)
        } else if shape.len() == 1 && name.ends_with("weight") {
            Some(1.0)
        } else {
            None
        };
        let mut left = n;
        while left > 0 {
            let m = left.min(1 << 16);
            chunk.clear();
            for _ in 0..m {
                let v = fill.unwrap_or_else(|| rng.normal() * 0.02);
                chunk.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&chunk).map_err(io)?;
            left -= m;
        }
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

// ---- the real configurations ----

/// The real OpenAI CLIP BPE tokenizer (the clip-dev fixture ships it unchanged).
const CLIP_TOKENIZER: &[u8] =
    include_bytes!("../../../tests/fixtures/models/clip-dev/tokenizer.json");
/// bert-base-uncased plus BLIP's [DEC] (the vocabulary of BLIP and of all-MiniLM-L6-v2).
const BERT_TOKENIZER: &[u8] =
    include_bytes!("../../../tests/fixtures/models/blip-dev/tokenizer.json");
/// A byte-level BPE of 1024 tokens (GPT-2's is 50257): ids beyond it decode to nothing, which only
/// matters for the caption text, never for the timing.
const GPT2_TOKENIZER: &[u8] =
    include_bytes!("../../../tests/fixtures/models/vitgpt2-dev/tokenizer.json");

/// openai/clip-vit-base-patch32 config.json (the fields that define the architecture).
pub const CLIP_B32_CONFIG: &str = r#"{
  "_name_or_path": "openai/clip-vit-base-patch32",
  "architectures": ["CLIPModel"],
  "initializer_factor": 1.0,
  "logit_scale_init_value": 2.6592,
  "model_type": "clip",
  "projection_dim": 512,
  "text_config": {
    "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
    "hidden_act": "quick_gelu", "hidden_size": 512, "initializer_range": 0.02,
    "intermediate_size": 2048, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 8, "num_hidden_layers": 12,
    "projection_dim": 512, "vocab_size": 49408
  },
  "vision_config": {
    "attention_dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 768, "image_size": 224,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model", "num_attention_heads": 12, "num_channels": 3,
    "num_hidden_layers": 12, "patch_size": 32, "projection_dim": 512
  }
}"#;

/// openai/clip-vit-base-patch32 preprocessor_config.json.
pub const CLIP_B32_PREPROCESSOR: &str = r#"{
  "crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
  "feature_extractor_type": "CLIPFeatureExtractor",
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "resample": 3, "size": 224
}"#;

/// Salesforce/blip-image-captioning-base config.json (architecture fields).
pub const BLIP_BASE_CONFIG: &str = r#"{
  "architectures": ["BlipForConditionalGeneration"],
  "image_text_hidden_size": 256, "initializer_factor": 1.0, "initializer_range": 0.02,
  "logit_scale_init_value": 2.6592, "model_type": "blip", "projection_dim": 512,
  "text_config": {
    "attention_probs_dropout_prob": 0.0, "bos_token_id": 30522, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "model_type": "blip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12,
    "pad_token_id": 0, "projection_dim": 768, "sep_token_id": 102, "use_cache": true,
    "vocab_size": 30524
  },
  "vision_config": {
    "attention_dropout": 0.0, "hidden_act": "gelu", "hidden_size": 768, "image_size": 384,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "model_type": "blip_vision_model", "num_attention_heads": 12, "num_hidden_layers": 12,
    "patch_size": 16, "projection_dim": 512
  }
}"#;

/// Salesforce/blip-image-captioning-base preprocessor_config.json.
pub const BLIP_BASE_PREPROCESSOR: &str = r#"{
  "do_normalize": true, "do_rescale": true, "do_resize": true,
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_processor_type": "BlipImageProcessor",
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "processor_class": "BlipProcessor", "resample": 3,
  "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 384}
}"#;

/// nlpconnect/vit-gpt2-image-captioning config.json (architecture fields).
pub const VITGPT2_CONFIG: &str = r#"{
  "architectures": ["VisionEncoderDecoderModel"],
  "decoder": {
    "activation_function": "gelu_new", "add_cross_attention": true,
    "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1, "bos_token_id": 50256,
    "decoder_start_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
    "initializer_range": 0.02, "is_decoder": true, "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": null,
    "n_layer": 12, "n_positions": 1024, "pad_token_id": 50256, "resid_pdrop": 0.1,
    "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true,
    "use_cache": true, "vocab_size": 50257
  },
  "decoder_start_token_id": 50256,
  "encoder": {
    "architectures": ["ViTModel"], "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 768, "image_size": 224,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "model_type": "vit", "num_attention_heads": 12, "num_channels": 3,
    "num_hidden_layers": 12, "patch_size": 16, "qkv_bias": true
  },
  "eos_token_id": 50256,
  "is_encoder_decoder": true,
  "model_type": "vision-encoder-decoder",
  "pad_token_id": 50256,
  "tie_word_embeddings": false
}"#;

/// nlpconnect/vit-gpt2-image-captioning preprocessor_config.json, with the size written as the
/// (height, width) dict that transformers expands the published `"size": 224` into.
pub const VITGPT2_PREPROCESSOR: &str = r#"{
  "do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor",
  "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
  "size": {"height": 224, "width": 224}
}"#;

/// sentence-transformers/all-MiniLM-L6-v2 config.json.
pub const MINILM_L6_CONFIG: &str = r#"{
  "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
  "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
  "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
  "position_embedding_type": "absolute", "transformers_version": "4.8.2", "type_vocab_size": 2,
  "use_cache": true, "vocab_size": 30522
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_segment_is_read_back() {
        let img = RgbImage::from_pixel(64, 48, image::Rgb([120, 130, 140]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        let mut out = jpeg[..2].to_vec();
        out.extend(exif_app1(
            6,
            "2021:07:04 18:30:00",
            "Shoebox",
            "Bench Camera 12MP",
        ));
        out.extend_from_slice(&jpeg[2..]);
        let e = crate::decode::read_exif(&out);
        assert_eq!(e.orientation, Some(6));
        assert_eq!(e.taken_at.as_deref(), Some("2021-07-04T18:30:00"));
        assert_eq!(e.make.as_deref(), Some("Shoebox"));
        assert_eq!(e.model.as_deref(), Some("Bench Camera 12MP"));
        let (rgb, meta) = crate::decode::decode_bytes(&out, 0).unwrap();
        assert_eq!((meta.width, meta.height), (48, 64));
        assert_eq!(rgb.dimensions(), (48, 64));
    }

    #[test]
    fn random_unit_vectors_are_unit() {
        let v = random_unit_vectors(10, 32, 1);
        for r in v.chunks_exact(32) {
            let n: f32 = r.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
    }
}
