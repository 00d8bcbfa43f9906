//! Sentence-encoder throughput: 256 caption-like sentences of about 12 words, embedded in batches
//! of 32. Usage: `cargo run --release -p shoebox-bench --example text_speed MODEL_DIR` (MODEL_DIR: a folder holding
//! all-MiniLM-L6-v2, e.g. the one scripts/fetch-minilm.sh prints).

use std::time::Instant;

use shoebox_core::models::hub;
use shoebox_core::models::text::{TextEncoder, TEXT_FILES};

fn main() {
    shoebox_core::models::parallel::keep_candle_pool_out();
    let dir = std::env::args()
        .nth(1)
        .expect("usage: text_speed MODEL_DIR");
    let dir =
        hub::resolve(&dir, TEXT_FILES, &Default::default()).expect("a sentence-encoder folder");
    let enc = TextEncoder::load(&dir, &candle_core::Device::Cpu).expect("loadable model");
    let sentences = shoebox_bench::caption_like_sentences(256);
    let words = sentences
        .iter()
        .map(|s| s.split_whitespace().count())
        .sum::<usize>() as f64
        / sentences.len() as f64;
    let tokens = sentences
        .iter()
        .map(|s| enc.tokenize(s).expect("tokenizable").len())
        .sum::<usize>() as f64
        / sentences.len() as f64;
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    // Warm up (first-call allocations), then time.
    enc.embed(&refs[..32]).expect("embed");
    let start = Instant::now();
    for batch in refs.chunks(32) {
        let out = enc.embed(batch).expect("embed");
        assert_eq!(out.len(), batch.len());
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{}: {} sentences ({words:.1} words, {tokens:.1} tokens on average) in batches of 32: \
         {s:.2}s = {:.0} sentences/s",
        enc.name(),
        refs.len(),
        refs.len() as f64 / s
    );
}
