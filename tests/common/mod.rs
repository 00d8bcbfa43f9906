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
        .env("HF_HUB_OFFLINE", "1")
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
