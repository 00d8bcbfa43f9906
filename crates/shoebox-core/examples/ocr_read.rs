//! OCR on image files, one line each: seconds (decode + prepare + Tesseract), the rotation
//! straightened, and the words read with their confidences (`-v`); then the mean seconds per image.
//! Usage: `cargo run --release --example ocr_read [-v] [--langs eng] [--save-prepared DIR] FILE...`
//! (`--save-prepared`: also write each picture as prepared for Tesseract, as PNG).

use std::time::Instant;

fn main() {
    let mut verbose = false;
    let mut save: Option<std::path::PathBuf> = None;
    let mut langs = shoebox_core::ocr::DEFAULT_LANGS.to_string();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-v" => verbose = true,
            "--save-prepared" => save = Some(std::path::PathBuf::from(args.next().expect("DIR"))),
            "--langs" => langs = args.next().expect("--langs LANGS"),
            _ => files.push(std::path::PathBuf::from(a)),
        }
    }
    let mut engine = shoebox_core::ocr::OcrEngine::new(&langs).expect("Tesseract starts");
    let mut total = 0.0;
    for f in &files {
        let start = Instant::now();
        let img =
            match shoebox_core::decode::decode_file(f, shoebox_core::ocr::OCR_DECODE_SHORT_SIDE) {
                Ok(d) => d.image,
                Err(e) => {
                    println!("{}: {e}", f.display());
                    continue;
                }
            };
        if let Some(dir) = &save {
            let (g, _) = shoebox_core::ocr::prepare(&img);
            g.save(dir.join(f.file_name().unwrap()).with_extension("png"))
                .expect("writable");
        }
        let t = engine.read(&img).expect("read");
        let secs = start.elapsed().as_secs_f64();
        total += secs;
        println!(
            "{}: {secs:.2}s, deskewed {:.2}°, {:?}",
            f.display(),
            t.deskew_degrees,
            t.text.replace('\n', " / ")
        );
        if verbose {
            let words: Vec<String> = t
                .words
                .iter()
                .map(|w| format!("{}:{:.0}", w.text, w.conf))
                .collect();
            println!("    {}", words.join(" "));
        }
    }
    println!(
        "{:.2} s per image over {}",
        total / files.len().max(1) as f64,
        files.len()
    );
}
