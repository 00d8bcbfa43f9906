//! Decode throughput on a folder of images: full-size decode vs the reduced-size decode the
//! pipeline uses (short side ≥ 3 × 224). Usage: `cargo run --release --example decode_speed DIR`.

use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: decode_speed DIR");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("readable folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| shoebox_core::scan::image_ext(p).is_some())
        .collect();
    files.sort();
    for (label, min_short) in [("full size", 0u32), ("reduced (short side >= 672)", 672)] {
        let start = Instant::now();
        let mut px = 0u64;
        for f in &files {
            let d = shoebox_core::decode::decode_file(f, min_short).expect("decodable");
            px += d.image.width() as u64 * d.image.height() as u64;
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "{label}: {} images in {s:.2}s = {:.1} img/s (mean decoded {:.1} MP)",
            files.len(),
            files.len() as f64 / s,
            px as f64 / files.len() as f64 / 1e6
        );
    }
}
