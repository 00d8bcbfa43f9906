//! Shared helpers for the engine's integration tests: fixture paths, the tiny CLIP model, copies of
//! fixture folders, and indexing a library.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use shoebox_core::models::clip::{Clip, CLIP_FILES};
use shoebox_core::models::hub;
use shoebox_core::{Library, LibraryOptions};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn clip_dir() -> PathBuf {
    fixtures().join("models/clip-dev")
}

pub fn load_clip() -> Clip {
    let dir = hub::resolve(
        clip_dir().to_str().unwrap(),
        CLIP_FILES,
        &Default::default(),
    )
    .unwrap();
    Clip::load(&dir, &candle_core::Device::Cpu).unwrap()
}

/// A library at `dir` using the tiny fixture CLIP model.
pub fn open_library(dir: &Path) -> Library {
    Library::open(LibraryOptions {
        dir: dir.to_path_buf(),
        clip_model: clip_dir().to_string_lossy().into_owned(),
        caption_model: fixtures()
            .join("models/blip-dev")
            .to_string_lossy()
            .into_owned(),
        text_model: shoebox_core::models::text::DEFAULT_TEXT_MODEL.into(),
        query_model: None,
        device: Default::default(),
        precision: Default::default(),
        downloads: Default::default(),
    })
    .unwrap()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("reference/clip-dev.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// A labelled shape image: (file path, color, shape).
pub fn labels() -> Vec<(PathBuf, String, String)> {
    let dir = fixtures().join("data/dev");
    std::fs::read_to_string(dir.join("labels.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                dir.join(v["file"].as_str().unwrap()),
                v["color"].as_str().unwrap().to_string(),
                v["shape"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A PNG whose header claims 50000×50000 (a decompression bomb): refused before allocating.
pub fn huge_png() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for b in data {
            c ^= *b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(50_000u32.to_be_bytes());
    ihdr.extend(50_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32(&ihdr).to_be_bytes());
    let mut idat = b"IDAT".to_vec();
    idat.extend([0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    out.extend(8u32.to_be_bytes());
    out.extend(&idat);
    out.extend(crc32(&idat).to_be_bytes());
    out
}

/// Copies of the photos of a fixture folder (every file but its `.json` description) in `dest`.
pub fn copy_fixture_photos(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.extension().is_some_and(|x| x != "json") {
            std::fs::copy(&p, dest.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Index a library to the end (scan, embed, locate, tag).
pub fn index(lib: &mut Library) -> shoebox_core::library::IndexReport {
    lib.index(
        shoebox_core::pipeline::PipelineOptions::default(),
        &std::sync::atomic::AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap()
}
