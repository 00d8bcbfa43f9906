//! `shoebox caption` and library captioning end to end, with the tiny BLIP and ViT-GPT2 fixtures:
//! the JSON shape, bad files, captions in search results and status, and resuming after a kill.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn caption_files_json_shape_and_a_bad_file_does_not_stop_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = shape_photos(&tmp.path().join("p"), 3);
    let bad = tmp.path().join("corrupt.jpg");
    std::fs::write(&bad, b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
    let lib = tmp.path().join("lib");
    for (model, beams) in [("blip-dev", "1"), ("vitgpt2-dev", "3")] {
        let out = shoebox_cmd(&lib)
            .args(["caption", "--json", "--beams", beams])
            .arg("--caption-model")
            .arg(fixtures().join("models").join(model))
            .arg(&photos[0].0)
            .arg(&bad)
            .arg(&photos[1].0)
            .arg(&photos[2].0)
            .output()
            .unwrap();
        // Some files failed: exit 1, the others are still captioned.
        assert_eq!(out.status.code(), Some(1), "{model}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("corrupt.jpg"), "{stderr}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3, "{model}: {v}");
        for (c, (path, color, shape)) in arr.iter().zip(&photos) {
            let obj = c.as_object().unwrap();
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["caption", "model", "path", "took_ms"]);
            assert_eq!(c["path"], path.to_str().unwrap());
            assert_eq!(c["caption"], format!("a {color} {shape}"), "{model}");
            assert!(c["model"].as_str().unwrap().ends_with(model));
            assert!(c["took_ms"].as_f64().unwrap() > 0.0);
        }
    }
    // Plain output: one "path<TAB>caption" line per file; the library was never created.
    let out = ok(shoebox(&lib, &["caption", photos[0].0.to_str().unwrap()]));
    assert_eq!(
        out.trim(),
        format!(
            "{}\ta {} {}",
            photos[0].0.display(),
            photos[0].1,
            photos[0].2
        )
    );
    assert!(!lib.exists(), "captioning a file must not touch a library");
}

fn captions(lib: &Path) -> BTreeMap<i64, String> {
    let c = shoebox_core::catalog::Catalog::open(&lib.join("catalog.sqlite")).unwrap();
    let mut st = c
        .connection()
        .prepare("SELECT photo_id, text FROM captions")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

#[test]
fn index_captions_shows_captions_in_search_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = shape_photos(&tmp.path().join("p"), 24);
    let lib = tmp.path().join("lib");
    ok(shoebox(
        &lib,
        &["add", tmp.path().join("p").to_str().unwrap()],
    ));
    ok(shoebox(&lib, &["-q", "index"]));
    let r = json(shoebox(
        &lib,
        &["search", "a photo of a red circle", "--json"],
    ));
    assert!(r["results"][0]["caption"].is_null(), "{r}");
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["photos"]["captioned"], 0);

    let out = ok(shoebox(&lib, &["index", "--captions"]));
    assert!(out.contains("captioned 24 photos"), "{out}");
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["photos"]["captioned"], 24);
    let r = json(shoebox(
        &lib,
        &[
            "search",
            "a photo of a red circle",
            "--json",
            "--limit",
            "24",
        ],
    ));
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 24);
    let mut right = 0;
    for h in results {
        let path = h["path"].as_str().unwrap();
        let (_, color, shape) = photos
            .iter()
            .find(|p| p.0.to_str().unwrap() == path)
            .unwrap();
        let cap = h["caption"].as_str().expect("every result has a caption");
        right += (cap == format!("a {color} {shape}")) as usize;
    }
    assert!(right >= 22, "{right}/24 captions right");
    // Nothing left to do: a second run captions nothing.
    let out = ok(shoebox(&lib, &["index", "--captions"]));
    assert!(out.contains("captioned 0 photos"), "{out}");
    // A changed file loses its caption and gets a new one.
    std::fs::copy(&photos[1].0, &photos[0].0).unwrap();
    ok(shoebox(&lib, &["-q", "index"]));
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["photos"]["captioned"], 23);
    ok(shoebox(&lib, &["-q", "index", "--captions"]));
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["photos"]["captioned"], 24);
}

#[test]
#[cfg(unix)]
fn killed_captioning_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    shape_photos(&tmp.path().join("p"), 200);
    let p = tmp.path().join("p");
    let clean = tmp.path().join("clean");
    ok(shoebox(&clean, &["add", p.to_str().unwrap()]));
    ok(shoebox(&clean, &["-q", "index", "--captions"]));
    let want = captions(&clean);
    assert_eq!(want.len(), 200);

    let lib = tmp.path().join("lib");
    ok(shoebox(&lib, &["add", p.to_str().unwrap()]));
    ok(shoebox(&lib, &["-q", "index"]));
    let mut progress = Vec::new();
    for target in [1usize, 40, 90, 140] {
        let mut child = shoebox_cmd(&lib)
            .args(["-q", "index", "--captions"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if captions(&lib).len() >= target {
                child.kill().unwrap(); // SIGKILL
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
        progress.push(captions(&lib).len());
    }
    eprintln!("captions after each kill: {progress:?}");
    assert!(progress.iter().any(|n| *n > 0 && *n < 200), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    ok(shoebox(&lib, &["-q", "index", "--captions"]));
    // Same photos (ids follow the same scan order) with the same captions as an uninterrupted run.
    assert_eq!(captions(&lib), want);
}
