//! Fetching a model by hub id: the same download code users run, against a local HTTP server that
//! answers like the Hugging Face hub (support/fake_hub.rs; this machine cannot reach the real one),
//! serving the fixture CLIP model slowly enough that progress is reported while a file downloads,
//! its weights as an LFS file (a redirect, their sha256 as the etag). Hostile answers:
//! tests/hostile_hub.rs.

mod common;

#[path = "support/fake_hub.rs"]
mod fake_hub;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_hub::{serve_with, Options, COMMIT};
use sha2::{Digest, Sha256};

use shoebox_core::models::clip::CLIP_FILES;
use shoebox_core::models::hub::{self, Download, DownloadProgress};
use shoebox_core::{Error, Library};

fn recorder() -> (DownloadProgress, Arc<Mutex<Vec<Download>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&got);
    let progress = DownloadProgress::Report(Arc::new(move |d: &Download| {
        out.lock().unwrap().push(d.clone());
    }));
    (progress, got)
}

#[test]
fn a_hub_model_is_fetched_into_the_cache_with_progress_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = common::clip_dir();
    // 20 ms every 256 KiB: about 1.2 s for the fixture's weights.
    let (url, requests) = serve_with(
        HashMap::from([("shoebox-test/clip-dev".to_string(), fixture.clone())]),
        Options {
            pause: Duration::from_millis(20),
            lfs_sha256: Some(sha256),
            ..Options::default()
        },
    );
    // The only test in this binary: the environment is hf-hub's way of being pointed elsewhere.
    std::env::set_var("HF_ENDPOINT", &url);
    std::env::set_var("HF_HOME", tmp.path().join("hf"));
    std::env::remove_var("HF_HUB_OFFLINE");

    let (progress, reports) = recorder();
    let dir = Library::pull_model("shoebox-test/clip-dev", &progress).unwrap();
    assert!(dir.starts_with(tmp.path().join("hf")), "{}", dir.display());
    for f in CLIP_FILES {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(fixture.join(f)).unwrap(),
            "{f} is the served file"
        );
    }

    // The standard Hugging Face cache layout, so that other tools find the model: the snapshot's
    // files link to blobs named by their etags (the weights' sha256), and refs/main holds the commit.
    let repo = tmp.path().join("hf/hub/models--shoebox-test--clip-dev");
    assert_eq!(dir, repo.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let weights = std::fs::read(fixture.join("model.safetensors")).unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_link(dir.join("model.safetensors")).unwrap(),
        Path::new("../../blobs").join(sha256(&weights)),
        "a relative link to the blob"
    );
    assert!(repo.join("blobs").join(sha256(&weights)).is_file());
    let blobs: Vec<_> = std::fs::read_dir(repo.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(blobs.len(), CLIP_FILES.len(), "{blobs:?}");
    assert!(
        blobs.iter().all(|b| b.len() == 40 || b.len() == 64),
        "{blobs:?}"
    );

    let reports = reports.lock().unwrap().clone();
    let mut by_file: HashMap<&str, Vec<&Download>> = HashMap::new();
    for r in &reports {
        assert_eq!(r.model, "shoebox-test/clip-dev");
        by_file.entry(r.file.as_str()).or_default().push(r);
    }
    for f in CLIP_FILES {
        let size = std::fs::metadata(fixture.join(f)).unwrap().len();
        let rs = by_file
            .get(f)
            .unwrap_or_else(|| panic!("no report for {f}"));
        assert_eq!((rs[0].done, rs[0].total), (0, size), "{f} starts at 0");
        let last = rs.last().unwrap();
        assert!(
            last.finished && last.done == size && last.total == size,
            "{f}: {last:?}"
        );
        assert!(
            rs.windows(2).all(|w| w[0].done <= w[1].done),
            "{f} never goes back"
        );
    }
    // The weights take over a second to arrive: progress is reported while they do, not only at
    // the start and the end (and not for every read: at most every 100 ms).
    let weights = &by_file["model.safetensors"];
    let between = weights
        .iter()
        .filter(|r| !r.finished && r.done > 0 && r.done < r.total)
        .count();
    assert!(
        (3..=40).contains(&between),
        "{between} reports while the weights downloaded"
    );

    // Cached now: resolving again asks the server nothing and reports nothing.
    let before = requests.load(Ordering::SeqCst);
    let (progress, again) = recorder();
    let cached = hub::resolve("shoebox-test/clip-dev", CLIP_FILES, &progress).unwrap();
    assert_eq!(cached.dir, dir);
    assert_eq!(requests.load(Ordering::SeqCst), before);
    assert!(again.lock().unwrap().is_empty());

    // A model the hub does not have: a clear error that says how to get it another way.
    let err =
        Library::pull_model("shoebox-test/no-such-model", &DownloadProgress::Quiet).unwrap_err();
    assert!(matches!(err, Error::NotDownloaded { .. }), "{err:?}");
    assert_eq!(err.code(), "model_unavailable");
    let msg = err.to_string();
    // The engine says what is missing and the two ways to get it, in its own terms: each front
    // end adds how to do that there (a flag, a Settings field).
    assert!(
        msg.contains("shoebox-test/no-such-model")
            && msg.contains("local model folder")
            && msg.contains("config.json"),
        "{msg}"
    );
    assert!(!msg.contains("--") && !msg.contains("`shoebox"), "{msg}");
    assert!(!Path::new(
        &tmp.path()
            .join("hf/hub/models--shoebox-test--no-such-model/snapshots")
    )
    .join(COMMIT)
    .join("model.safetensors")
    .exists());
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
