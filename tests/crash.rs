//! Crash safety: `shoebox index` killed with SIGKILL at several moments, then restarted, ends with
//! the same catalog and search results as an uninterrupted run, and an intact SQLite file.

#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// What a library answers: status counts and, per query, every photo's score.
fn answers(lib: &Path) -> (Value, Vec<BTreeMap<String, f64>>) {
    let mut st = json(shoebox(lib, &["status", "--json"]));
    st.as_object_mut().unwrap().remove("library");
    let queries = [
        "a photo of a red circle",
        "a photo of a blue square",
        "a photo of a yellow triangle",
    ];
    let results = queries
        .iter()
        .map(|q| {
            let r = json(shoebox(lib, &["search", q, "--json", "--limit", "400"]));
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["path"].as_str().unwrap().to_string(),
                        h["score"].as_f64().unwrap(),
                    )
                })
                .collect()
        })
        .collect();
    (st, results)
}

fn integrity(lib: &Path) -> String {
    let c = shoebox_core::catalog::Catalog::open(&lib.join("catalog.sqlite")).unwrap();
    c.connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

fn embeddings(lib: &Path) -> u64 {
    let c = shoebox_core::catalog::Catalog::open(&lib.join("catalog.sqlite")).unwrap();
    c.connection()
        .query_row("SELECT COUNT(*) FROM embeddings", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
}

#[test]
fn killed_index_resumes_to_the_same_library() {
    let tmp = tempfile::tempdir().unwrap();
    // 400 photos: the shape images twice, in two folders.
    let photos = tmp.path().join("photos");
    for sub in ["one", "two"] {
        let d = photos.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(fixtures().join("data/dev")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jpg" || x == "png") {
                std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    let clean = tmp.path().join("clean");
    ok(shoebox(&clean, &["add", photos.to_str().unwrap()]));
    ok(shoebox(&clean, &["-q", "index"]));
    let want = answers(&clean);

    let crashed = tmp.path().join("crashed");
    ok(shoebox(&crashed, &["add", photos.to_str().unwrap()]));
    let mut kills = 0;
    let mut progress = Vec::new();
    // Kill when the catalog holds at least `target` embeddings, whatever the machine's speed.
    for target in [1u64, 60, 130, 200, 270, 340] {
        let mut child = shoebox_cmd(&crashed)
            .args(["-q", "index"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if embeddings(&crashed) >= target {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert_eq!(integrity(&crashed), "ok");
        let st = json(shoebox(&crashed, &["status", "--json"]));
        progress.push(st["photos"]["indexed"].as_u64().unwrap());
    }
    eprintln!("indexed after each kill: {progress:?} ({kills} kills)");
    assert!(
        progress.iter().any(|n| *n > 0 && *n < 400),
        "no kill landed in the middle of indexing: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "work was lost: {progress:?}"
    );
    assert!(
        kills >= 2,
        "the index finished before it could be killed ({kills} kills)"
    );
    ok(shoebox(&crashed, &["-q", "index"]));
    assert_eq!(integrity(&crashed), "ok");
    let got = answers(&crashed);
    assert_eq!(got.0, want.0, "status differs after kills");
    // Same photos with the same scores (batching may change the last float bits, and the two
    // copies of each image tie, so ranks among equals are not compared).
    for (g, w) in got.1.iter().zip(&want.1) {
        assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
        for (path, score) in g {
            assert!(
                (score - w[path]).abs() < 1e-4,
                "{path}: {score} vs {}",
                w[path]
            );
        }
    }
}
