//! Tags and caption-aware search end to end: the tiny CLIP and BLIP fixtures plus the REAL
//! all-MiniLM-L6-v2 (fetched by scripts/fetch-minilm.sh; required in CI, skipped elsewhere without it).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// The sentence encoder folder, or None (skip) outside CI.
fn minilm() -> Option<PathBuf> {
    let dir = std::env::var_os("SHOEBOX_MINILM_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("SHOEBOX_TEST_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(|d| PathBuf::from(d).join("shoebox-test"))
                })
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shoebox-test"))
                })?;
            Some(cache.join("all-MiniLM-L6-v2"))
        })
        .filter(|d| d.join("model.safetensors").is_file());
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "all-MiniLM-L6-v2 is missing: run scripts/fetch-minilm.sh (CI must run these tests)"
        );
        eprintln!("skipping: all-MiniLM-L6-v2 not fetched (scripts/fetch-minilm.sh)");
    }
    dir
}

fn cmd(lib: &Path, text_model: &Path) -> Command {
    let mut c = shoebox_cmd(lib);
    c.env("SHOEBOX_TEXT_MODEL", text_model);
    c
}

fn run(lib: &Path, text_model: &Path, args: &[&str]) -> Output {
    cmd(lib, text_model).args(args).output().unwrap()
}

struct Shapes {
    _tmp: tempfile::TempDir,
    lib: PathBuf,
    photos: Vec<(PathBuf, String, String)>,
}

/// The 200 shape images, indexed, captioned and tagged once for the read-only tests.
fn shapes(text_model: &Path) -> &'static Shapes {
    static LIB: OnceLock<Shapes> = OnceLock::new();
    LIB.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let photos = shape_photos(&tmp.path().join("p"), 200);
        let lib = tmp.path().join("lib");
        ok(run(
            &lib,
            text_model,
            &["add", tmp.path().join("p").to_str().unwrap()],
        ));
        let out = ok(run(&lib, text_model, &["index", "--captions"]));
        assert!(out.contains("200 captions embedded"), "{out}");
        Shapes {
            _tmp: tmp,
            lib,
            photos,
        }
    })
}

/// Images whose reference caption (transformers, same BLIP weights) is wrong.
fn reference_miscaptioned() -> Vec<String> {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/blip-dev.json")).unwrap(),
    )
    .unwrap();
    r["caption_exact_match_on_data_set"]["wrong"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["file"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_shape_image_is_tagged_with_its_color_and_shape() {
    let Some(tm) = minilm() else { return };
    let s = shapes(&tm);
    let mut args = vec!["tags", "--json"];
    let paths: Vec<String> = s
        .photos
        .iter()
        .map(|p| p.0.to_str().unwrap().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let v = json(run(&s.lib, &tm, &args));
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 200);
    let wrong_reference = reference_miscaptioned();
    let mut missing = Vec::new();
    for (p, (path, color, shape)) in arr.iter().zip(&s.photos) {
        assert_eq!(p["path"], path.to_str().unwrap());
        let mut words = BTreeSet::new();
        for t in p["tags"].as_array().unwrap() {
            let keys: BTreeSet<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["score", "source", "tag"]));
            assert!(["caption", "clip", "user"].contains(&t["source"].as_str().unwrap()));
            let score = t["score"].as_f64().unwrap();
            assert!((0.0..=1.0001).contains(&score), "{t}");
            words.extend(t["tag"].as_str().unwrap().split(' ').map(String::from));
        }
        if !(words.contains(color) && words.contains(shape)) {
            missing.push(path.file_name().unwrap().to_str().unwrap().to_string());
        }
    }
    // Only images the reference captioner itself gets wrong may lack their color or shape.
    for m in &missing {
        assert!(
            wrong_reference.contains(m),
            "{m} lacks its color/shape tags: {missing:?}"
        );
    }
    eprintln!(
        "{}/200 tagged with color and shape; missing: {missing:?}",
        200 - missing.len()
    );
    // tags --all: the shape words are the most common tags.
    let all = json(run(&s.lib, &tm, &["tags", "--all", "--json"]));
    let counts: Vec<(String, u64)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"].as_str().unwrap().into(),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    for w in [
        "circle", "square", "triangle", "red", "green", "blue", "yellow",
    ] {
        let n = counts.iter().find(|c| c.0 == w).map(|c| c.1).unwrap_or(0);
        assert!(n >= 40, "{w}: {n} photos");
    }
    assert!(counts.windows(2).all(|w| w[0].1 >= w[1].1));
}

fn search(lib: &Path, tm: &Path, args: &[&str]) -> Value {
    let mut a = vec!["search", "--json"];
    a.extend_from_slice(args);
    json(run(lib, tm, &a))
}

fn precision_at(results: &Value, s: &Shapes, color: &str, shape: &str, k: usize) -> f64 {
    let hits = results["results"].as_array().unwrap();
    let right = hits
        .iter()
        .take(k)
        .filter(|h| {
            let p = h["path"].as_str().unwrap();
            s.photos
                .iter()
                .any(|(q, c, sh)| q.to_str().unwrap() == p && c == color && sh == shape)
        })
        .count();
    right as f64 / k as f64
}

#[test]
fn hybrid_search_is_the_default_and_ranks_at_least_as_well_as_clip() {
    let Some(tm) = minilm() else { return };
    let s = shapes(&tm);
    let (mut clip, mut hybrid, mut text) = (0.0, 0.0, 0.0);
    let mut n = 0.0;
    for color in ["red", "green", "blue", "yellow"] {
        for shape in ["circle", "square", "triangle"] {
            let q = format!("a photo of a {color} {shape}");
            let c = search(&s.lib, &tm, &[&q, "--mode", "clip", "--limit", "10"]);
            let h = search(&s.lib, &tm, &[&q, "--limit", "10"]);
            let t = search(&s.lib, &tm, &[&q, "--mode", "text", "--limit", "10"]);
            assert_eq!(c["mode"], "clip");
            assert_eq!(
                h["mode"], "hybrid",
                "hybrid is the default once captions exist"
            );
            assert_eq!(t["mode"], "text");
            assert_eq!(h["results"].as_array().unwrap().len(), 10);
            for hit in h["results"].as_array().unwrap() {
                assert!(hit["caption"].is_string() && hit["tags"].is_array());
            }
            clip += precision_at(&c, s, color, shape, 10);
            hybrid += precision_at(&h, s, color, shape, 10);
            text += precision_at(&t, s, color, shape, 10);
            n += 1.0;
        }
    }
    eprintln!(
        "precision@10 over 12 queries: clip {:.3}, text {:.3}, hybrid {:.3}",
        clip / n,
        text / n,
        hybrid / n
    );
    assert!(hybrid >= clip, "hybrid {hybrid} < clip {clip}");
    // An image query has no text side: hybrid falls back to CLIP.
    let like = search(&s.lib, &tm, &["--like", s.photos[0].0.to_str().unwrap()]);
    assert_eq!(like["mode"], "clip");
}

#[test]
fn tag_filter_keeps_only_tagged_photos() {
    let Some(tm) = minilm() else { return };
    let s = shapes(&tm);
    let r = search(
        &s.lib,
        &tm,
        &[
            "a photo", "--tag", "Red", "--tag", "circle", "--limit", "200",
        ],
    );
    let hits = r["results"].as_array().unwrap();
    assert!(hits.len() >= 10, "{}", hits.len());
    for h in hits {
        let tags: Vec<&str> = h["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            tags.contains(&"red") && tags.contains(&"circle"),
            "{tags:?}"
        );
    }
    let none = search(&s.lib, &tm, &["a photo", "--tag", "no-such-tag"]);
    assert_eq!(none["results"].as_array().unwrap().len(), 0);
}

#[test]
fn user_tags_persist_and_removed_tags_never_come_back() {
    let Some(tm) = minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let photos = shape_photos(&tmp.path().join("p"), 6);
    let lib = tmp.path().join("lib");
    ok(run(
        &lib,
        &tm,
        &["add", tmp.path().join("p").to_str().unwrap()],
    ));
    ok(run(&lib, &tm, &["-q", "index", "--captions"]));
    let (p0, p1) = (photos[0].0.to_str().unwrap(), photos[1].0.to_str().unwrap());
    assert_eq!(photos[0].1, "red");
    let tags_of = |p: &str| -> Vec<(String, String)> {
        json(run(&lib, &tm, &["tags", "--json", p]))[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["tag"].as_str().unwrap().into(),
                    t["source"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert!(tags_of(p0).iter().any(|t| t.0 == "red"));
    ok(run(&lib, &tm, &["tag", "add", p0, p1, "  Birthday Party "]));
    ok(run(&lib, &tm, &["tag", "remove", p0, "red"]));
    let t0 = tags_of(p0);
    assert!(
        t0.contains(&("birthday party".into(), "user".into())),
        "{t0:?}"
    );
    assert!(!t0.iter().any(|t| t.0 == "red"), "{t0:?}");
    assert!(tags_of(p1).contains(&("birthday party".into(), "user".into())));
    // The file changes (another red image): automatic tags are redone, but "red" stays removed
    // and the user's tag stays.
    std::fs::copy(&photos[1].0, &photos[0].0).unwrap();
    ok(run(&lib, &tm, &["-q", "index", "--captions"]));
    let t0 = tags_of(p0);
    assert!(
        t0.iter().any(|t| t.0 == "square"),
        "re-tagged from the new content: {t0:?}"
    );
    assert!(
        !t0.iter().any(|t| t.0 == "red"),
        "a removed tag came back: {t0:?}"
    );
    assert!(t0.contains(&("birthday party".into(), "user".into())));
    // Adding it back by hand is allowed.
    ok(run(&lib, &tm, &["tag", "add", p0, "red"]));
    assert!(tags_of(p0).contains(&("red".into(), "user".into())));
    // A path outside the library is a clear error.
    let out = run(&lib, &tm, &["tag", "add", "/etc/hostname", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a photo of this library") && err.contains("shoebox add"),
        "{err}"
    );
}
