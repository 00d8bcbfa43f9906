//! End to end through the `shoebox` binary on temp libraries with the tiny CLIP fixture model:
//! the CLI contract (flags, JSON shapes, exit codes) and search quality on the shape images.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::*;

use serde_json::Value;

/// One library with the 200 shape images indexed, shared by the read-only tests.
fn shapes_library() -> &'static Path {
    static LIB: OnceLock<tempfile::TempDir> = OnceLock::new();
    LIB.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        ok(shoebox(
            tmp.path(),
            &["add", fixtures().join("data/dev").to_str().unwrap()],
        ));
        ok(shoebox(tmp.path(), &["-q", "index"]));
        tmp
    })
    .path()
}

fn labels() -> Vec<Value> {
    std::fs::read_to_string(fixtures().join("data/dev/labels.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn label_of(path: &str) -> (String, String) {
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    let l = labels().into_iter().find(|l| l["file"] == name).unwrap();
    (
        l["color"].as_str().unwrap().into(),
        l["shape"].as_str().unwrap().into(),
    )
}

/// Images the reference model (transformers, same weights) itself classifies wrongly.
fn reference_misclassified() -> Vec<String> {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/clip-dev.json")).unwrap(),
    )
    .unwrap();
    reference["zero_shot_on_data_set"]["wrong"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["file"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_color_and_shape_is_found_first() {
    let lib = shapes_library();
    let known_wrong = reference_misclassified();
    let (mut first_right, mut top5_right, mut queries) = (0, 0, 0);
    for color in ["red", "green", "blue", "yellow"] {
        for shape in ["circle", "square", "triangle"] {
            let q = format!("a photo of a {color} {shape}");
            let r = json(shoebox(lib, &["search", &q, "--json", "--limit", "5"]));
            let want = (color.to_string(), shape.to_string());
            let paths: Vec<&str> = r["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["path"].as_str().unwrap())
                .collect();
            assert_eq!(paths.len(), 5);
            queries += 1;
            top5_right += paths.iter().filter(|p| label_of(p) == want).count();
            if label_of(paths[0]) == want {
                first_right += 1;
            } else {
                // A miss is only acceptable where the reference model is wrong too.
                let name = Path::new(paths[0]).file_name().unwrap().to_str().unwrap();
                assert!(
                    known_wrong.iter().any(|w| w == name),
                    "{q}: top result {name} is {:?}, and the reference model gets it right",
                    label_of(paths[0])
                );
            }
        }
    }
    // The reference model's zero-shot accuracy on these images is 96 %: at most one first-place miss.
    assert!(
        first_right >= queries - 1,
        "{first_right}/{queries} queries ranked a match first"
    );
    assert!(
        top5_right * 100 >= queries * 5 * 95,
        "precision@5 {top5_right}/{}",
        queries * 5
    );
}

#[test]
fn search_json_has_the_contract_shape_and_reference_scores() {
    let lib = shapes_library();
    let r = json(shoebox(
        lib,
        &[
            "search",
            "a photo of a red circle",
            "--json",
            "--limit",
            "200",
        ],
    ));
    assert_eq!(r["query"], "a photo of a red circle");
    assert!(r["model"].as_str().unwrap().ends_with("clip-dev"));
    assert!(r["took_ms"].as_f64().unwrap() >= 0.0);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 200);
    for (i, h) in results.iter().enumerate() {
        assert_eq!(h["rank"].as_u64().unwrap() as usize, i + 1);
        assert!(Path::new(h["path"].as_str().unwrap()).is_absolute());
        assert!(h["width"].as_u64().unwrap() > 0 && h["height"].as_u64().unwrap() > 0);
        assert!(h.get("taken_at").is_some());
        if i > 0 {
            assert!(h["score"].as_f64() <= results[i - 1]["score"].as_f64());
        }
    }
    // The score is the cosine of the reference model: compare with transformers' embeddings.
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/clip-dev.json")).unwrap(),
    )
    .unwrap();
    let text = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["text"] == "a photo of a red circle")
        .expect("reference text");
    let image = &reference["images"][0];
    let dot: f64 = text["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .zip(image["embedding"].as_array().unwrap())
        .map(|(a, b)| a.as_f64().unwrap() * b.as_f64().unwrap())
        .sum();
    let file = image["file"].as_str().unwrap().trim_start_matches("dev/");
    let ours = results
        .iter()
        .find(|h| h["path"].as_str().unwrap().ends_with(file))
        .unwrap()["score"]
        .as_f64()
        .unwrap();
    assert!(
        (ours - dot).abs() < 2e-3,
        "score {ours} vs reference cosine {dot}"
    );
}

#[test]
fn status_json_has_the_contract_shape() {
    let lib = shapes_library();
    let s = json(shoebox(lib, &["status", "--json"]));
    assert_eq!(s["library"], lib.to_str().unwrap());
    assert!(s["model"].as_str().unwrap().ends_with("clip-dev"));
    assert_eq!(s["folders"][0]["photos"], 200);
    assert_eq!(s["photos"]["indexed"], 200);
    assert_eq!(s["photos"]["pending"], 0);
    assert_eq!(s["photos"]["failed"], 0);
    assert_eq!(s["index"]["vectors"], 200);
    assert_eq!(s["index"]["fresh"], true);
    assert!(s.get("failures").is_none());
    let s = json(shoebox(lib, &["status", "--json", "--failed"]));
    assert_eq!(s["failures"], Value::Array(vec![]));
    let human = ok(shoebox(lib, &["status"]));
    assert!(human.contains("200 indexed"), "{human}");
}

#[test]
fn filters_like_and_compound_queries() {
    let lib = shapes_library();
    let png = json(shoebox(
        lib,
        &[
            "search",
            "a photo of a blue circle",
            "--type",
            "png",
            "--json",
            "--limit",
            "50",
        ],
    ));
    let results = png["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results
        .iter()
        .all(|h| h["path"].as_str().unwrap().ends_with(".png")));
    let n_png = labels().iter().filter(|l| l["format"] == "png").count();
    assert_eq!(results.len(), n_png.min(50));

    // --like an indexed image: it is its own best match, at cosine 1.
    let img = fixtures().join("data/dev/dev_0005.jpg");
    let r = json(shoebox(
        lib,
        &[
            "search",
            "--like",
            img.to_str().unwrap(),
            "--json",
            "--limit",
            "3",
        ],
    ));
    assert!(r["results"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("dev_0005.jpg"));
    assert!((r["results"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);

    // --like an image outside the library works too (and finds the same color and shape).
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("copy.jpg");
    std::fs::copy(&img, &outside).unwrap();
    let r = json(shoebox(
        lib,
        &[
            "search",
            "--like",
            outside.to_str().unwrap(),
            "--json",
            "--limit",
            "1",
        ],
    ));
    assert_eq!(
        label_of(r["results"][0]["path"].as_str().unwrap()),
        label_of("dev_0005.jpg")
    );

    // Compound: red things minus circles ranks a red non-circle first.
    let r = json(shoebox(
        lib,
        &[
            "search",
            "2:a photo of a red square + a photo of a red triangle - a photo of a red circle",
            "--json",
            "--limit",
            "3",
        ],
    ));
    let (color, shape) = label_of(r["results"][0]["path"].as_str().unwrap());
    assert_eq!(color, "red");
    assert_ne!(shape, "circle");

    // --min-score cuts, --in scopes, dates filter.
    let r = json(shoebox(
        lib,
        &[
            "search",
            "a photo of a red circle",
            "--min-score",
            "0.99",
            "--json",
        ],
    ));
    assert!(r["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["score"].as_f64().unwrap() >= 0.99));
    let r = json(shoebox(
        lib,
        &[
            "search",
            "a photo of a red circle",
            "--in",
            "/nonexistent",
            "--json",
        ],
    ));
    assert_eq!(r["results"].as_array().unwrap().len(), 0);
    let r = json(shoebox(
        lib,
        &[
            "search",
            "a photo of a red circle",
            "--before",
            "1990",
            "--json",
        ],
    ));
    assert_eq!(r["results"].as_array().unwrap().len(), 0);
    let r = json(shoebox(
        lib,
        &[
            "search",
            "a photo of a red circle",
            "--after",
            "1990-01-01",
            "--sort",
            "date",
            "--json",
            "--limit",
            "7",
        ],
    ));
    assert_eq!(r["results"].as_array().unwrap().len(), 7);
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = shoebox(tmp.path(), &["search", "x", "--limit", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let out = shoebox(tmp.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = shoebox(tmp.path(), &["add", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
    let out = shoebox(tmp.path(), &["search", "x", "--after", "last tuesday"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_model_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    shape_photos(&photos, 1);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_shoebox"))
            .args(["--library", tmp.path().join("lib").to_str().unwrap()])
            .args(["--clip-model", "nobody/no-such-model"])
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", tmp.path().join("hf"))
            .env_remove("SHOEBOX_CLIP_MODEL")
            .output()
            .unwrap()
    };
    // Adding a folder needs no model.
    ok(run(&["add", photos.to_str().unwrap()]));
    let out = run(&["search", "cat"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--clip-model /path/to/folder") && err.contains("models pull"),
        "{err}"
    );
}

#[test]
fn errors_are_said_once_in_the_terms_of_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A folder that is not there: said once, without the OS error repeated.
    let e = err(shoebox(tmp.path(), &["add", "/definitely/not/here"]));
    assert_eq!(e.matches("/definitely/not/here").count(), 1, "{e}");
    assert!(e.contains("not a folder") && !e.contains("os error"), "{e}");
    // Searching an empty library says so before any model is looked for.
    let out = shoebox_cmd(tmp.path())
        .args(["search", "a dog"])
        .env("SHOEBOX_CLIP_MODEL", "nobody/no-such-model")
        .env("HF_HOME", tmp.path().join("hf"))
        .output()
        .unwrap();
    let e = err(out);
    assert!(
        e.contains("no photos yet") && e.contains("shoebox add"),
        "{e}"
    );
    assert!(
        !e.contains("Hugging Face") && !e.contains("no-such-model"),
        "{e}"
    );
    // The CLI reads SHOEBOX_DEVICE as the app does (an unknown device is refused, not ignored).
    let out = shoebox_cmd(tmp.path())
        .args(["status"])
        .env("SHOEBOX_DEVICE", "quantum")
        .output()
        .unwrap();
    let e = err(out);
    assert!(e.contains("unknown device \"quantum\""), "{e}");
    // … and a flag overrides it.
    let out = shoebox_cmd(tmp.path())
        .args(["--device", "cpu", "status"])
        .env("SHOEBOX_DEVICE", "quantum")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = shoebox_cmd(tmp.path())
        .args(["--device", "gpu", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad flag is a usage error");
}

#[test]
fn failed_files_are_listed_and_index_still_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::copy(
        fixtures().join("data/dev/dev_0000.jpg"),
        photos.join("good.jpg"),
    )
    .unwrap();
    std::fs::write(photos.join("bad.jpg"), b"\xFF\xD8\xFFnot really").unwrap();
    let lib = tmp.path().join("lib");
    ok(shoebox(&lib, &["add", photos.to_str().unwrap()]));
    let out = ok(shoebox(&lib, &["index"]));
    assert!(out.contains("1 failed"), "{out}");
    let s = json(shoebox(&lib, &["status", "--failed", "--json"]));
    assert_eq!(s["photos"]["failed"], 1);
    assert_eq!(s["photos"]["indexed"], 1);
    let f = &s["failures"][0];
    assert!(f["path"].as_str().unwrap().ends_with("bad.jpg"));
    assert!(!f["reason"].as_str().unwrap().is_empty());
    // remove drops the folder and its photos.
    ok(shoebox(&lib, &["remove", photos.to_str().unwrap()]));
    let s = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(s["folders"], Value::Array(vec![]));
    assert_eq!(s["photos"]["indexed"], 0);
}

#[test]
fn search_on_an_empty_library_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["search", "a cat"][..],
        &["search", "--place", "Lisbon"][..],
    ] {
        let out = shoebox(tmp.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no photos yet") && err.contains("shoebox add"),
            "{err}"
        );
    }
}

/// `--precision q8` (and `SHOEBOX_PRECISION`) reach the models: searches of the f32-indexed library
/// at q8 rank the same photos first with scores a hair apart, and an index run at q8 embeds the
/// photos as well; an unknown precision is an error naming the choices.
#[test]
fn q8_precision_searches_like_f32() {
    let lib = shapes_library();
    for q in ["a photo of a red circle", "a photo of a blue triangle"] {
        let f32r = json(shoebox(lib, &["search", q, "--json", "--limit", "5"]));
        let q8r = json(shoebox(
            lib,
            &["--precision", "q8", "search", q, "--json", "--limit", "5"],
        ));
        let env_r = json(
            shoebox_cmd(lib)
                .args(["search", q, "--json", "--limit", "5"])
                .env("SHOEBOX_PRECISION", "q8")
                .output()
                .unwrap(),
        );
        assert_eq!(
            q8r["results"], env_r["results"],
            "{q}: the flag and the variable differ"
        );
        let (a, b) = (&f32r["results"][0], &q8r["results"][0]);
        assert_eq!(a["path"], b["path"], "{q}: top result moved at q8");
        let (sa, sb) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
        assert!(sa != sb, "{q}: q8 scored exactly as f32 (did it run?)");
        assert!((sa - sb).abs() < 0.01, "{q}: scores {sa} vs {sb}");
    }

    // A library indexed at q8 finds every color and shape first too.
    let tmp = tempfile::tempdir().unwrap();
    ok(shoebox(
        tmp.path(),
        &["add", fixtures().join("data/dev").to_str().unwrap()],
    ));
    ok(shoebox(tmp.path(), &["--precision", "q8", "-q", "index"]));
    let r = json(shoebox(
        tmp.path(),
        &[
            "--precision",
            "q8",
            "search",
            "a photo of a green square",
            "--json",
            "--limit",
            "3",
        ],
    ));
    for hit in r["results"].as_array().unwrap() {
        let p = hit["path"].as_str().unwrap();
        assert_eq!(label_of(p), ("green".into(), "square".into()), "{p}");
    }

    let out = shoebox_cmd(tmp.path())
        .args(["--precision", "q4", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad flag is a usage error");
    let out = shoebox_cmd(tmp.path())
        .arg("status")
        .env("SHOEBOX_PRECISION", "half")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("unknown precision \"half\""), "{e}");
}
