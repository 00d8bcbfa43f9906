//! Micro-benchmarks (divan) of the hot inner pieces — image preprocessing, CLIP tokenization, HNSW
//! search — so regressions show up in review. Run: `cargo bench --workspace --bench hot`.

use std::path::PathBuf;

use candle_core::Device;
use divan::{black_box, Bencher};
use shoebox_bench::{photo_like_queries, photo_like_vectors, CLIP_B32_PREPROCESSOR};
use shoebox_core::index::VectorIndex;
use shoebox_core::models::clip::{Clip, CLIP_FILES};
use shoebox_core::models::hub;
use shoebox_core::models::preprocess::ImageProcessor;

fn main() {
    divan::main();
}

/// CLIP ViT-B/32's processor (bicubic resize, crop, normalize) on a 12 MP photo decoded at 1/4
/// scale (1000×750), as the pipeline hands it over.
#[divan::bench]
fn preprocess_clip_b32(bencher: Bencher) {
    let cfg: serde_json::Value = serde_json::from_str(CLIP_B32_PREPROCESSOR).unwrap();
    let p = ImageProcessor::from_json(&cfg, 224).unwrap();
    let img = image::RgbImage::from_fn(1000, 750, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * 3 + y) % 256) as u8])
    });
    bencher.bench_local(|| p.preprocess(black_box(&img)).unwrap());
}

/// The real OpenAI CLIP BPE tokenizer (shipped with the clip-dev fixture) on a typical query.
#[divan::bench]
fn tokenize_clip(bencher: Bencher) {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-dev");
    let dir = hub::resolve(dir.to_str().unwrap(), CLIP_FILES, &Default::default()).unwrap();
    let clip = Clip::load(&dir, &Device::Cpu).unwrap();
    bencher.bench_local(|| {
        clip.tokenize(black_box("kids flying a red kite on the beach at sunset"))
            .unwrap()
    });
}

/// Vectors in the HNSW bench: 10,000 (2,000 in unoptimized builds, where `cargo test
/// --all-targets` runs each bench once).
const HNSW_VECTORS: usize = if cfg!(debug_assertions) {
    2_000
} else {
    10_000
};

/// Top-10 HNSW search (default parameters: the flat walk over i8 codes, f32 re-ranking) over
/// photo-like unit vectors of 512 dimensions (ViT-B/32's).
#[divan::bench]
fn hnsw_search(bencher: Bencher) {
    let dim = 512;
    let flat = photo_like_vectors(HNSW_VECTORS, dim, 1);
    let items = flat
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_vec()))
        .collect();
    let idx = VectorIndex::build(dim, items).unwrap();
    // Searches walk the graph's flat copy (made in the background otherwise).
    assert!(idx.prepare_walk());
    let queries = photo_like_queries(64, dim, 1);
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % 64;
        idx.search(black_box(&queries[i * dim..(i + 1) * dim]), 10, None)
    });
}
