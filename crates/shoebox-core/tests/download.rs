//! Fetching a model by hub id: the same hf-hub code users run, against a local HTTP server that
//! answers like the Hugging Face hub (this machine cannot reach the real one), serving the fixture
//! CLIP model slowly enough that progress is reported while a file downloads.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoebox_core::models::clip::CLIP_FILES;
use shoebox_core::models::hub::{self, Download, DownloadProgress};
use shoebox_core::{Error, Library};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A body read out in 256 KiB pieces, 20 ms apart.
struct Slow {
    data: std::io::Cursor<Vec<u8>>,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(20));
        let n = buf.len().min(256 * 1024);
        self.data.read(&mut buf[..n])
    }
}

/// Serve `repos` (hub id → folder) under /{id}/resolve/{revision}/{file} as the hub does: ranged
/// GETs, an etag per file and the commit in x-repo-commit. Returns the base URL and a request count.
fn serve(repos: HashMap<String, PathBuf>) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", server.server_addr());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            seen.fetch_add(1, Ordering::SeqCst);
            let path = req.url().trim_start_matches('/').to_string();
            let file = path.split_once("/resolve/").and_then(|(id, rest)| {
                let (_rev, name) = rest.split_once('/')?;
                let dir = repos.get(id)?;
                std::fs::read(dir.join(name)).ok().map(|b| (name.to_string(), b))
            });
            let Some((name, bytes)) = file else {
                let _ = req.respond(tiny_http::Response::empty(404));
                continue;
            };
            let start: usize = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .and_then(|h| {
                    h.value
                        .as_str()
                        .strip_prefix("bytes=")?
                        .split('-')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            let probe = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("Range") && h.value.as_str() == "bytes=0-0");
            let end = if probe { 1 } else { bytes.len() };
            let total = bytes.len();
            let body = bytes[start.min(total)..end.min(total)].to_vec();
            let len = body.len();
            let header = |k: &str, v: String| tiny_http::Header::from_bytes(k, v).unwrap();
            let headers = vec![
                header("etag", format!("\"{name}-{total}\"")),
                header("x-repo-commit", COMMIT.to_string()),
                header(
                    "content-range",
                    format!("bytes {start}-{}/{total}", (start + len).max(1) - 1),
                ),
            ];
            let slow = !probe && name.ends_with(".safetensors");
            let reader: Box<dyn Read + Send> = if slow {
                Box::new(Slow {
                    data: std::io::Cursor::new(body),
                })
            } else {
                Box::new(std::io::Cursor::new(body))
            };
            let resp = tiny_http::Response::new(206.into(), headers, reader, Some(len), None);
            let _ = req.respond(resp);
        }
    });
    (url, count)
}

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
    let (url, requests) = serve(HashMap::from([(
        "shoebox-test/clip-dev".to_string(),
        fixture.clone(),
    )]));
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
        assert!(last.finished && last.done == size && last.total == size, "{f}: {last:?}");
        assert!(rs.windows(2).all(|w| w[0].done <= w[1].done), "{f} never goes back");
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
    let err = Library::pull_model("shoebox-test/no-such-model", &DownloadProgress::Quiet)
        .unwrap_err();
    assert!(matches!(err, Error::ModelUnavailable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("shoebox-test/no-such-model") && msg.contains("--clip-model"),
        "{msg}"
    );
    assert!(!Path::new(&tmp.path().join("hf/hub/models--shoebox-test--no-such-model/snapshots"))
        .join(COMMIT)
        .join("model.safetensors")
        .exists());
}
