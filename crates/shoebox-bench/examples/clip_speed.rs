//! Image–text encoder speed in a loop, for profilers (`perf record`): image batches through the
//! vision tower, or one short query at a time through the text tower.
//! Usage: `cargo run --release -p shoebox-bench --example clip_speed MODEL_DIR [image|text] [SECONDS]`
//! (MODEL_DIR: any CLIP/SigLIP folder, e.g. the one `scripts/bench-runtimes.py --keep DIR` writes;
//! `SHOEBOX_PRECISION=q8` for the int8 towers).

use std::time::{Duration, Instant};

use shoebox_core::models::clip::{Clip, CLIP_FILES};
use shoebox_core::models::hub;

fn main() {
    shoebox_core::models::parallel::keep_candle_pool_out();
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: clip_speed MODEL_DIR [image|text] [SECONDS]");
    let what = args.next().unwrap_or_else(|| "image".into());
    let secs: f64 = args.next().map_or(10.0, |s| s.parse().expect("seconds"));
    let dir = hub::resolve(&dir, CLIP_FILES, &Default::default()).expect("a model folder");
    let precision = shoebox_core::options::env_precision()
        .expect("SHOEBOX_PRECISION: f32 or q8")
        .unwrap_or_default();
    let clip = Clip::open(&dir, &candle_core::Device::Cpu)
        .expect("loadable model")
        .with_precision(precision);
    clip.load_text().expect("text tower");
    clip.load_vision().expect("vision tower");
    let until = Duration::from_secs_f64(secs);
    let (mut n, mut best) = (0usize, f64::INFINITY);
    let start = Instant::now();
    match what.as_str() {
        "image" => {
            let side = clip.image_size();
            let px: Vec<Vec<f32>> = (0..8)
                .map(|i| {
                    (0..3 * side * side)
                        .map(|j| ((i * 31 + j * 7) % 255) as f32 / 128.0 - 1.0)
                        .collect()
                })
                .collect();
            clip.embed_pixels(&px).expect("embed");
            while start.elapsed() < until {
                let t = Instant::now();
                clip.embed_pixels(&px).expect("embed");
                best = best.min(t.elapsed().as_secs_f64());
                n += 8;
            }
            println!("{n} images; best batch of 8: {:.1} img/s", 8.0 / best);
        }
        "text" => {
            let q = ["a photo of a dog on the beach"];
            clip.embed_texts(&q).expect("embed");
            while start.elapsed() < until {
                let t = Instant::now();
                clip.embed_texts(&q).expect("embed");
                best = best.min(t.elapsed().as_secs_f64());
                n += 1;
            }
            println!("{n} queries; best {:.2} ms", best * 1e3);
        }
        other => panic!("image or text, not {other}"),
    }
}
