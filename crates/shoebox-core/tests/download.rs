//! Fetching a model by hub id: the same hf-hub code users run, against a local HTTP server that
//! answers like the Hugging Face hub (support/fake_hub.rs; this machine cannot reach the real one),
//! serving the fixture CLIP model slowly enough that progress is reported while a file downloads.

mod common;

#[path = "support/fake_hub.rs"]
mod fake_hub;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_hub::{serve, COMMIT};

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
    let (url, requests) = serve(
        HashMap::from([("shoebox-test/clip-dev".to_string(), fixture.clone())]),
        Duration::from_millis(20),
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
    assert!(matches!(err, Error::ModelUnavailable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("shoebox-test/no-such-model") && msg.contains("--clip-model"),
        "{msg}"
    );
    assert!(!Path::new(
        &tmp.path()
            .join("hf/hub/models--shoebox-test--no-such-model/snapshots")
    )
    .join(COMMIT)
    .join("model.safetensors")
    .exists());
}
