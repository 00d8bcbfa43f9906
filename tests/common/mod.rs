//! Shared helpers for the end-to-end tests: fixture paths and running the `shoebox` binary on a
//! temp library with the tiny CLIP fixture model, offline.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `shoebox --library LIB` with the fixture model, offline, ready for arguments.
pub fn shoebox_cmd(lib: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shoebox"));
    c.arg("--library")
        .arg(lib)
        .env("SHOEBOX_CLIP_MODEL", fixtures().join("models/clip-dev"))
        .env("SHOEBOX_CAPTION_MODEL", fixtures().join("models/blip-dev"))
        .env("HF_HUB_OFFLINE", "1")
        // The tiny test CLIP takes most shape photos for text: reading them all would only slow
        // the tests that are not about OCR (tests/ocr.rs asks for it with --ocr).
        .env("SHOEBOX_OCR", "off")
        .env_remove("SHOEBOX_LIBRARY");
    c
}

pub fn shoebox(lib: &Path, args: &[&str]) -> Output {
    shoebox_cmd(lib).args(args).output().expect("run shoebox")
}

/// Stdout of a successful run (fails the test with stderr otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("valid JSON")
}

/// A folder of copies of the first `n` shape images (sorted by name), with their labels.
pub fn shape_photos(dir: &Path, n: usize) -> Vec<(PathBuf, String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let labels = std::fs::read_to_string(fixtures().join("data/dev/labels.jsonl")).unwrap();
    let mut out = Vec::new();
    for line in labels.lines().take(n) {
        let v: Value = serde_json::from_str(line).unwrap();
        let name = v["file"].as_str().unwrap();
        let to = dir.join(name);
        std::fs::copy(fixtures().join("data/dev").join(name), &to).unwrap();
        out.push((
            to,
            v["color"].as_str().unwrap().to_string(),
            v["shape"].as_str().unwrap().to_string(),
        ));
    }
    out
}
