//! Fetching a model from a hub that lies (support/fake_hub.rs's `Lies`): headers that are paths
//! instead of hashes, bytes that do not hash to the sha256 the hub gave, more bytes than announced,
//! redirects in a loop, and model ids that are no ids. Each is refused with an error, nothing is
//! written outside the Hugging Face cache, and the model's snapshot does not get the file.

mod common;

#[path = "support/fake_hub.rs"]
mod fake_hub;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use fake_hub::{serve_with, Lies, Options};
use sha2::{Digest, Sha256};

use shoebox_core::models::hub::DownloadProgress;
use shoebox_core::{Error, Library};

const ID: &str = "shoebox-test/clip-dev";
const REPO: &str = "hf/hub/models--shoebox-test--clip-dev";

/// The environment points the download at each test's hub and cache: one test at a time.
static ENV: Mutex<()> = Mutex::new(());

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Pull the fixture CLIP model by hub id into `tmp/hf` from a hub answering as `options` say.
/// Returns what the pull returned and how many requests the hub saw. Bounded in time: a download
/// that follows redirects forever fails the test instead of hanging it.
fn pull(tmp: &Path, id: &str, options: Options) -> (shoebox_core::Result<PathBuf>, usize) {
    let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    let (url, requests) = serve_with(
        HashMap::from([(ID.to_string(), common::clip_dir())]),
        options,
    );
    std::env::set_var("HF_ENDPOINT", &url);
    std::env::set_var("HF_HOME", tmp.join("hf"));
    std::env::remove_var("HF_HUB_OFFLINE");
    let (tx, rx) = std::sync::mpsc::channel();
    let id = id.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(Library::pull_model(&id, &DownloadProgress::Quiet));
    });
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the download returns within 30 s");
    (got, requests.load(Ordering::SeqCst))
}

fn lfs() -> Options {
    Options {
        lfs_sha256: Some(sha256),
        ..Options::default()
    }
}

fn lying(lies: Lies) -> Options {
    Options {
        lies,
        ..Options::default()
    }
}

fn header(name: &'static str, value: &str) -> Lies {
    Lies {
        headers: vec![(name, Some(value.to_string()))],
        ..Lies::default()
    }
}

/// Everything under `tmp` is in the cache `tmp/hf`, and the model's snapshots hold no file `file`
/// (no file at all when `None`).
fn assert_contained(tmp: &Path, file: Option<&str>) {
    for e in walkdir::WalkDir::new(tmp).min_depth(1) {
        let e = e.unwrap();
        assert!(
            e.path().starts_with(tmp.join("hf")),
            "{} was written outside the cache",
            e.path().display()
        );
    }
    let snapshots = tmp.join(REPO).join("snapshots");
    for e in walkdir::WalkDir::new(&snapshots).into_iter().flatten() {
        if e.file_type().is_dir() {
            continue;
        }
        assert!(
            file.is_some_and(|f| e.file_name() != f),
            "{} is in the snapshot",
            e.path().display()
        );
    }
}

/// The pull failed with a refusal naming `what`, and nothing escaped the cache.
fn assert_refused(tmp: &Path, got: shoebox_core::Result<PathBuf>, what: &str, file: Option<&str>) {
    let err = got.expect_err("a hostile answer is refused");
    assert!(matches!(err, Error::ModelUnavailable(_)), "{err:?}");
    assert_eq!(err.code(), "model_unavailable");
    let msg = err.to_string();
    assert!(msg.contains("refused") && msg.contains(what), "{msg}");
    assert_contained(tmp, file);
}

#[test]
fn download_refuses_a_commit_that_is_a_relative_path() {
    let tmp = tempfile::tempdir().unwrap();
    // From snapshots/<commit>: the temp folder, outside the cache.
    let (got, _) = pull(
        tmp.path(),
        ID,
        lying(header("x-repo-commit", "../../../../evil")),
    );
    assert_refused(tmp.path(), got, "x-repo-commit", None);
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn download_refuses_a_commit_that_is_an_absolute_path() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = tmp.path().join("evil");
    let (got, _) = pull(
        tmp.path(),
        ID,
        lying(header("x-repo-commit", evil.to_str().unwrap())),
    );
    assert_refused(tmp.path(), got, "x-repo-commit", None);
    assert!(!evil.exists());
}

#[test]
fn download_refuses_etags_that_are_paths() {
    let tmp = tempfile::tempdir().unwrap();
    // From blobs/: the temp folder, outside the cache.
    let (got, _) = pull(
        tmp.path(),
        ID,
        lying(header("etag", "\"../../../../evil-blob\"")),
    );
    assert_refused(tmp.path(), got, "etag", None);

    let tmp = tempfile::tempdir().unwrap();
    let evil = tmp.path().join("evil-blob");
    let (got, _) = pull(
        tmp.path(),
        ID,
        lying(header("etag", &format!("\"{}\"", evil.display()))),
    );
    assert_refused(tmp.path(), got, "etag", None);
    assert!(!evil.exists());

    // An LFS file's etag, the one that names its blob.
    let tmp = tempfile::tempdir().unwrap();
    let (got, _) = pull(
        tmp.path(),
        ID,
        Options {
            lies: Lies {
                files: vec!["model.safetensors".into()],
                ..header("x-linked-etag", "\"../../../../evil-lfs\"")
            },
            ..lfs()
        },
    );
    assert_refused(tmp.path(), got, "etag", Some("model.safetensors"));
}

#[test]
fn download_refuses_etags_that_are_not_hashes() {
    // What this stand-in hub used to send.
    let tmp = tempfile::tempdir().unwrap();
    let (got, _) = pull(
        tmp.path(),
        ID,
        lying(header("etag", "\"config.json-4242\"")),
    );
    assert_refused(tmp.path(), got, "etag", None);
}

#[test]
fn download_refuses_an_lfs_file_whose_bytes_do_not_hash_to_its_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let (got, _) = pull(
        tmp.path(),
        ID,
        Options {
            lies: Lies {
                files: vec!["model.safetensors".into()],
                corrupt: true,
                ..Lies::default()
            },
            ..lfs()
        },
    );
    assert_refused(tmp.path(), got, "sha256", Some("model.safetensors"));
    // Neither the blob nor the bytes that were not it are kept.
    let weights = std::fs::read(common::clip_dir().join("model.safetensors")).unwrap();
    let blobs = tmp.path().join(REPO).join("blobs");
    assert!(!blobs.join(sha256(&weights)).exists());
    for e in std::fs::read_dir(&blobs).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".incomplete"), "{name} was kept");
    }

    // The hub honest again: the model comes, checked.
    let (got, _) = pull(tmp.path(), ID, lfs());
    let dir = got.unwrap();
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        weights
    );
    assert!(blobs.join(sha256(&weights)).is_file());
}

#[test]
fn download_refuses_more_bytes_than_the_hub_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let (got, _) = pull(
        tmp.path(),
        ID,
        Options {
            lies: Lies {
                files: vec!["model.safetensors".into()],
                ..header("x-linked-size", "1000")
            },
            ..lfs()
        },
    );
    assert_refused(tmp.path(), got, "size", Some("model.safetensors"));
}

#[test]
fn download_stops_following_relative_redirects_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let (got, requests) = pull(
        tmp.path(),
        ID,
        lying(Lies {
            files: vec!["config.json".into()],
            status: Some(302),
            ..header("location", &format!("/{ID}/resolve/main/config.json"))
        }),
    );
    assert_refused(tmp.path(), got, "redirects", None);
    assert!(requests < 10, "{requests} requests");
}

#[test]
fn download_without_a_commit_header_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (got, _) = pull(
        tmp.path(),
        ID,
        lying(Lies {
            headers: vec![("x-repo-commit", None)],
            ..Lies::default()
        }),
    );
    let err = got.unwrap_err();
    assert!(matches!(err, Error::NotDownloaded { .. }), "{err:?}");
    assert!(err.to_string().contains("x-repo-commit"), "{err}");
    assert_contained(tmp.path(), None);
}

#[test]
fn download_refuses_model_ids_that_are_not_ids_without_asking_the_hub() {
    let tmp = tempfile::tempdir().unwrap();
    for id in [
        "shoebox-test/../shoebox-test/clip-dev",
        "x/shoebox-test/clip-dev",
        "shoebox-test\\clip-dev",
        "shoebox-test/clip-dev/",
        "shoebox--test/clip-dev",
        "shoebox-test/-clip-dev",
        "shoebox-test/clip dev",
    ] {
        let (got, requests) = pull(tmp.path(), id, lying(Lies::default()));
        let err = got.expect_err(id);
        assert!(matches!(err, Error::ModelUnavailable(_)), "{id}: {err:?}");
        assert!(err.to_string().contains("model id"), "{err}");
        assert_eq!(requests, 0, "{id}: the hub was asked");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn download_resumes_an_incomplete_blob_and_checks_all_of_it() {
    let weights = std::fs::read(common::clip_dir().join("model.safetensors")).unwrap();
    let half = weights.len() / 2;
    let sha = sha256(&weights);

    // The first half from an earlier, interrupted download: the rest is fetched, the whole checked.
    let tmp = tempfile::tempdir().unwrap();
    let blobs = tmp.path().join(REPO).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let part = blobs.join(format!("{sha}.incomplete"));
    std::fs::write(&part, &weights[..half]).unwrap();
    let (got, _) = pull(tmp.path(), ID, lfs());
    let dir = got.unwrap();
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        weights
    );
    assert!(!part.exists());

    // A first half that is not the file's: the whole does not hash to its sha256, and is dropped.
    let tmp = tempfile::tempdir().unwrap();
    let blobs = tmp.path().join(REPO).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let part = blobs.join(format!("{sha}.incomplete"));
    std::fs::write(&part, vec![0u8; half]).unwrap();
    let (got, _) = pull(tmp.path(), ID, lfs());
    assert_refused(tmp.path(), got, "sha256", Some("model.safetensors"));
    assert!(!part.exists() && !blobs.join(&sha).exists());
    let (got, _) = pull(tmp.path(), ID, lfs());
    assert_eq!(
        std::fs::read(got.unwrap().join("model.safetensors")).unwrap(),
        weights
    );
}
