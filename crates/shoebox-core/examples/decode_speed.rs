//! Decode throughput on a folder of images, per format: full-size decode vs the reduced-size
//! decode the pipeline uses (short side ≥ 3 × 224). Best of three passes each.
//! Usage: `cargo run --release --example decode_speed DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: decode_speed DIR");
    let mut by_ext: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for p in std::fs::read_dir(&dir)
        .expect("readable folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
    {
        if let Some(ext) = shoebox_core::scan::image_ext(&p) {
            by_ext.entry(ext).or_default().push(p);
        }
    }
    for (ext, files) in &by_ext {
        for (label, min_short) in [("full size", 0u32), ("reduced (short side >= 672)", 672)] {
            let mut best = f64::INFINITY;
            let mut px = 0u64;
            for _ in 0..3 {
                let start = Instant::now();
                px = 0;
                for f in files {
                    let d = shoebox_core::decode::decode_file(f, min_short).expect("decodable");
                    px += d.image.width() as u64 * d.image.height() as u64;
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{ext:>5} {label}: {} images in {best:.2}s = {:.2} img/s ({:.0} ms each, mean decoded {:.1} MP)",
                files.len(),
                files.len() as f64 / best,
                best * 1e3 / files.len() as f64,
                px as f64 / files.len() as f64 / 1e6
            );
        }
    }
}
