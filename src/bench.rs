//! `shoebox bench`: the flags and the printing (a table, or the report as JSON) of the benchmark,
//! `shoebox_bench` (crates/shoebox-bench).

use anyhow::Result;
use clap::Args;

use shoebox_bench::{Arch, BenchOptions, BenchReport};
use shoebox_core::index::HnswParams;
use shoebox_core::options::ModelOptions;
use shoebox_core::pipeline::PipelineOptions;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Build these architectures with random weights to time them where the real weights are
    /// absent: clip-vit-b-32, blip-base, vit-gpt2, minilm-l6 (comma-separated or repeated). CLIP
    /// figures then come from a random clip-vit-b-32 unless --clip-model names another model
    #[arg(long, value_name = "ARCH", value_delimiter = ',')]
    random_weights: Vec<String>,
    /// Camera-sized JPEGs (4000×3000) to generate for the indexing figures
    #[arg(long, default_value_t = 16, value_name = "N")]
    photos: usize,
    /// Random unit vectors for the query and HNSW figures
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    vectors: usize,
    /// Sentence encoder (BERT, e.g. all-MiniLM-L6-v2) to time: a hub id or a local folder
    #[arg(long, value_name = "ID_OR_DIR")]
    bert_model: Option<String>,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
    /// Images per model call [default: the pipeline's]
    #[arg(long, hide = true)]
    batch_size: Option<usize>,
    /// Decode threads [default: the pipeline's]
    #[arg(long, hide = true)]
    decode_threads: Option<usize>,
    /// HNSW M of the bench's index
    #[arg(long, hide = true)]
    hnsw_m: Option<usize>,
    /// HNSW ef_construction of the bench's index
    #[arg(long, hide = true)]
    ef_construction: Option<usize>,
    /// HNSW ef_search of the bench's index
    #[arg(long, hide = true)]
    ef_search: Option<usize>,
    /// Also measure a recall/latency curve over HNSW parameters (slow)
    #[arg(long, hide = true)]
    hnsw_sweep: bool,
    /// Use the portable dot product, not AVX2/FMA
    #[arg(long, hide = true)]
    no_simd: bool,
    /// Run only the app-like query phase on this prepared library and print its figures (the
    /// bench runs it as a fresh process, for its peak memory)
    #[arg(long, hide = true, value_name = "LIBRARY")]
    app_phase: Option<std::path::PathBuf>,
    /// Keep generated photos, models and libraries here (reused by the next run)
    #[arg(long, hide = true, value_name = "DIR")]
    work_dir: Option<std::path::PathBuf>,
}

/// Run the bench and print its report.
pub fn run(a: &BenchArgs, m: &ModelOptions, quiet: bool) -> Result<()> {
    let random_weights = a
        .random_weights
        .iter()
        .map(|s| s.parse::<Arch>())
        .collect::<shoebox_core::Result<Vec<_>>>()?;
    let defaults = PipelineOptions::default();
    let hnsw = HnswParams::default();
    let opts = BenchOptions {
        clip_model: m.clip_model.clone(),
        caption_model: Some(m.caption_model.clone()),
        text_model: a.bert_model.clone(),
        random_weights,
        photos: a.photos,
        vectors: a.vectors,
        device: m.device,
        precision: m.precision,
        exe: std::env::current_exe().ok(),
        pipeline: PipelineOptions {
            batch_size: a.batch_size.unwrap_or(defaults.batch_size).max(1),
            decode_threads: a.decode_threads.unwrap_or(defaults.decode_threads).max(1),
        },
        hnsw: HnswParams {
            m: a.hnsw_m.unwrap_or(hnsw.m),
            ef_construction: a.ef_construction.unwrap_or(hnsw.ef_construction),
            ef_search: a.ef_search.unwrap_or(hnsw.ef_search),
        },
        hnsw_sweep: a.hnsw_sweep,
        work_dir: a.work_dir.clone(),
        portable_dot: a.no_simd,
    };
    if let Some(dir) = &a.app_phase {
        let figures = shoebox_bench::app_phase(&opts, dir.clone())?;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    let report = shoebox_bench::run(&opts, &mut |msg| {
        if !quiet {
            eprintln!("bench: {msg}");
        }
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "not measured".into())
}

fn print_table(r: &BenchReport) {
    let note = |k: &str| r.notes.get(k).map(|v| v.to_string()).unwrap_or_default();
    println!(
        "Shoebox bench — CLIP: {}{} — {} threads",
        r.clip_model,
        if r.random_weights {
            " — random weights: speed only"
        } else {
            ""
        },
        r.threads
    );
    println!("  indexing");
    println!(
        "    decode + preprocess   {:>9.1} img/s   (one thread, reduced-scale JPEG decode)",
        r.index.decode_img_s
    );
    println!(
        "    image model           {:>9.1} img/s   (batch {})",
        r.index.model_img_s,
        note("batch_size")
    );
    println!(
        "    end to end            {:>9.1} img/s   ({} decode threads; {:.0} % of model-only)",
        r.index.end_to_end_img_s,
        note("decode_threads"),
        100.0 * r.index.end_to_end_img_s / r.index.model_img_s.max(1e-9)
    );
    println!("  search over {} photos", r.query.vectors);
    println!("    text query p50        {:>9.1} ms", r.query.p50_ms);
    println!("    text query p95        {:>9.1} ms", r.query.p95_ms);
    println!(
        "    first query           {:>9.1} ms      (fresh process: start, model, index, answer)",
        r.query.first_query_ms
    );
    println!(
        "    library open          {:>9.1} ms      (catalog + persisted index)",
        r.open_ms
    );
    if let Some(d) = r.notes.get("duplicates") {
        println!(
            "    duplicates            {:>9} s       (every photo's neighbours, hash-checked)",
            d["seconds"]
        );
    }
    if let Some(p) = r.notes.get("places") {
        println!(
            "    places                {:>9} photos/s (offline reverse geocoding; +{} MB per 100k)",
            p["geocode_photos_s"], p["catalog_mb_per_100k"]
        );
    }
    println!("  HNSW over {} random unit vectors", r.hnsw.vectors);
    println!("    recall@10             {:>9.3}", r.hnsw.recall_at_10);
    println!(
        "    search                {:>9.1} µs      (exact: {:.1} µs, {:.1}× faster)",
        r.hnsw.search_us,
        r.hnsw.exact_us,
        r.hnsw.exact_us / r.hnsw.search_us.max(1e-9)
    );
    println!("  memory");
    println!("    peak RSS (bench)      {:>9.1} MB", r.peak_rss_mb);
    if let Some(v) = r.notes.get("search_process_peak_rss_mb") {
        println!("    peak RSS (search)     {:>9} MB", v.to_string());
    }
    println!("  other models");
    println!(
        "    caption               {}",
        opt(r.caption_s, |s| format!(
            "{s:.2} s/caption ({} tokens; {} s without the cross-attention cache)",
            note("caption_tokens"),
            note("caption_s_without_cross_cache")
        ))
    );
    println!(
        "    sentence encoder      {}",
        opt(r.bert_sentences_s, |s| format!("{s:.1} sentences/s"))
    );
    println!("  notes");
    for (k, v) in &r.notes {
        if k != "hnsw_curve" {
            println!("    {k}: {v}");
        }
    }
}
