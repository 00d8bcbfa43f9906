//! Model families and switching, end to end through the binary: OpenCLIP (GELU) and SigLIP folders
//! index, search and classify as OpenAI CLIP does; `--query-model` answers queries in other
//! languages; switching `--clip-model` keeps searches answering from the model that covers the
//! library until the new one does, switching back embeds nothing, `models remove` drops one;
//! `embed --json` gives the reference implementation's vectors; `models list --json` its shape.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn model(name: &str) -> String {
    fixtures()
        .join("models")
        .join(name)
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn with_model(lib: &Path, clip: &str, args: &[&str]) -> std::process::Output {
    shoebox_cmd(lib)
        .arg("--clip-model")
        .arg(model(clip))
        .args(args)
        .output()
        .unwrap()
}

/// A library of the first `n` shape photos; returns (photos dir, labels by file name).
fn library(tmp: &Path, n: usize) -> (std::path::PathBuf, Vec<(String, String, String)>) {
    let photos = tmp.join("photos");
    let labels = shape_photos(&photos, n)
        .into_iter()
        .map(|(p, c, s)| (p.file_name().unwrap().to_string_lossy().into_owned(), c, s))
        .collect();
    ok(shoebox(
        &tmp.join("lib"),
        &["add", photos.to_str().unwrap()],
    ));
    (photos, labels)
}

fn label_of<'a>(labels: &'a [(String, String, String)], path: &str) -> (&'a str, &'a str) {
    let name = Path::new(path).file_name().unwrap().to_string_lossy();
    let (_, c, s) = labels.iter().find(|(f, _, _)| *f == name).unwrap();
    (c, s)
}

fn paths(r: &Value) -> Vec<String> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn openclip_gelu_indexes_searches_and_classifies() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let (photos, labels) = library(tmp.path(), 60);
    ok(with_model(&lib, "openclip-dev", &["index"]));
    let r = json(with_model(
        &lib,
        "openclip-dev",
        &[
            "search",
            "a photo of a red circle",
            "--mode",
            "clip",
            "--limit",
            "3",
            "--json",
        ],
    ));
    assert_eq!(r["model"], model("openclip-dev"));
    for p in paths(&r) {
        assert_eq!(label_of(&labels, &p), ("red", "circle"), "{p}");
    }
    let c = json(with_model(
        &lib,
        "openclip-dev",
        &[
            "classify",
            photos.to_str().unwrap(),
            "--labels",
            "red=a photo of a red circle, blue=a photo of a blue square",
            "--threshold",
            "0",
            "--json",
        ],
    ));
    assert_eq!(c["results"].as_array().unwrap().len(), 60);
}

#[test]
fn siglip_indexes_searches_and_classifies_with_its_own_scoring() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let (photos, _) = library(tmp.path(), 20);
    ok(with_model(&lib, "siglip-dev", &["index"]));
    let st = json(with_model(&lib, "siglip-dev", &["status", "--json"]));
    assert_eq!(st["photos"]["indexed"], 20);
    // Random weights: no meaning, but a photo is its own nearest neighbour.
    let first = photos.join("dev_0003.png");
    let first = if first.exists() {
        first
    } else {
        photos.join("dev_0000.jpg")
    };
    let r = json(with_model(
        &lib,
        "siglip-dev",
        &[
            "search",
            "--like",
            first.to_str().unwrap(),
            "--limit",
            "1",
            "--json",
        ],
    ));
    assert_eq!(
        Path::new(paths(&r)[0].as_str()).file_name(),
        first.file_name()
    );
    let r = json(with_model(
        &lib,
        "siglip-dev",
        &["search", "a red circle", "--mode", "clip", "--json"],
    ));
    assert_eq!(r["results"].as_array().unwrap().len(), 20);
    // Sigmoid scores: each label judged alone, so they need not add up to 1.
    let c = json(with_model(
        &lib,
        "siglip-dev",
        &[
            "classify",
            photos.to_str().unwrap(),
            "--labels",
            "red, blue, green",
            "--threshold",
            "0",
            "--json",
        ],
    ));
    let sums: Vec<f64> = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["scores"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_f64().unwrap())
                .sum()
        })
        .collect();
    assert!(sums.iter().any(|s| (s - 1.0).abs() > 1e-3), "{sums:?}");
    for s in sums {
        assert!(s > 0.0 && s < 3.0);
    }
}

#[test]
fn a_query_model_answers_other_languages() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let (_, labels) = library(tmp.path(), 80);
    ok(shoebox(&lib, &["index"]));
    let q = model("mclip-dev");
    for (query, want) in [
        ("un cercle rouge", ("red", "circle")),
        ("ein blaues Quadrat", ("blue", "square")),
        ("un triángulo amarillo", ("yellow", "triangle")),
    ] {
        let r = json(
            shoebox_cmd(&lib)
                .args([
                    "--query-model",
                    &q,
                    "search",
                    query,
                    "--mode",
                    "clip",
                    "--limit",
                    "3",
                    "--json",
                ])
                .output()
                .unwrap(),
        );
        assert_eq!(r["query_model"], q.as_str());
        for p in paths(&r) {
            assert_eq!(label_of(&labels, &p), want, "{query}: {p}");
        }
    }
    // Without it the field is null.
    let r = json(shoebox(
        &lib,
        &["search", "a red circle", "--mode", "clip", "--json"],
    ));
    assert!(r["query_model"].is_null());
    // A query model from another space is refused, saying why. (A search with siglip-dev here
    // would still answer, from clip-dev, which covers the library: embed asks siglip-dev itself.)
    let out = shoebox_cmd(&lib)
        .args([
            "--clip-model",
            &model("siglip-dev"),
            "--query-model",
            &q,
            "embed",
            "--text",
            "rouge",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("64-dimensional") && err.contains("96"),
        "{err}"
    );
}

#[test]
fn switching_models_keeps_search_answering_and_switching_back_embeds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let (_, labels) = library(tmp.path(), 30);
    ok(shoebox(&lib, &["index"]));
    let clip = model("clip-dev");
    let open = model("openclip-dev");

    // A CLIP-only search with openclip-dev configured.
    let red_circle = || {
        json(with_model(
            &lib,
            "openclip-dev",
            &[
                "search",
                "a photo of a red circle",
                "--mode",
                "clip",
                "--limit",
                "2",
                "--json",
            ],
        ))
    };
    // Switched, nothing embedded with the new model yet: searches answer from clip-dev.
    let st = json(with_model(&lib, "openclip-dev", &["status", "--json"]));
    let models = st["models"].as_array().unwrap();
    let entry = |id: &str| models.iter().find(|m| m["id"] == id).cloned().unwrap();
    assert_eq!(entry(&clip)["embedded"], 30);
    assert_eq!(entry(&clip)["of"], 30);
    assert_eq!(entry(&open)["embedded"], 0);
    assert_eq!(st["search_model"], clip.as_str());
    let r = red_circle();
    assert_eq!(r["model"], clip.as_str());
    for p in paths(&r) {
        assert_eq!(label_of(&labels, &p), ("red", "circle"));
    }

    // Once the new model covers the library, it answers.
    ok(with_model(&lib, "openclip-dev", &["index"]));
    let r = red_circle();
    assert_eq!(r["model"], open.as_str());

    // Back to clip-dev: its embeddings are all there, nothing to embed.
    let out = ok(shoebox(&lib, &["index"]));
    assert!(
        out.contains("0 embedded") || !out.contains(" embedded"),
        "{out}"
    );
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["photos"]["pending"], 0);
    assert_eq!(st["search_model"], clip.as_str());

    // Drop the other model: gone from status, its index folder removed.
    ok(shoebox(&lib, &["models", "remove", &open]));
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert!(st["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["id"] != open.as_str()));
    let out = shoebox(&lib, &["models", "remove", &open]);
    assert!(!out.status.success());
}

#[test]
fn embed_prints_the_reference_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let text = std::fs::read_to_string(fixtures().join("reference/openclip-dev.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let t0 = &reference["texts"][0];
    let img = reference["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["file"].as_str().unwrap().ends_with(".png"))
        .unwrap();
    let file = fixtures().join("data").join(img["file"].as_str().unwrap());
    let out = json(with_model(
        &lib,
        "openclip-dev",
        &[
            "embed",
            "--text",
            t0["text"].as_str().unwrap(),
            file.to_str().unwrap(),
            "--json",
        ],
    ));
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["kind"], "text");
    assert_eq!(out[0]["input"], t0["text"]);
    assert_eq!(out[0]["model"], model("openclip-dev"));
    assert_eq!(out[1]["kind"], "image");
    let close = |a: &Value, b: &Value, tol: f64| {
        let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .all(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < tol)
    };
    assert!(close(&out[0]["embedding"], &t0["embedding"], 1e-4));
    // Through our own decode of the PNG: the same pixels as Pillow's, so the same vector.
    assert!(close(&out[1]["embedding"], &img["embedding"], 1e-4));
    // Plain output: kind, input, model, values.
    let plain = ok(with_model(
        &lib,
        "openclip-dev",
        &["embed", "--text", "red"],
    ));
    let cols: Vec<&str> = plain.trim_end().split('\t').collect();
    assert_eq!(cols[0], "text");
    assert_eq!(cols[3].split(' ').count(), 64);
    // A file that is not an image is a clear error.
    let bad = tmp.path().join("bad.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let out = with_model(&lib, "openclip-dev", &["embed", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jpg"));
}

#[test]
fn models_list_json_has_the_menu() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json(shoebox(
        &tmp.path().join("lib"),
        &["models", "list", "--json"],
    ));
    let list = v.as_array().unwrap();
    for kind in ["image-text", "caption", "sentence", "query"] {
        assert!(list.iter().any(|e| e["kind"] == kind), "{kind}");
    }
    for e in list {
        for k in [
            "id",
            "kind",
            "dims",
            "size_mb",
            "languages",
            "cached",
            "note",
        ] {
            assert!(e.get(k).is_some(), "{k} in {e}");
        }
    }
    assert!(list
        .iter()
        .any(|e| e["id"] == "google/siglip2-base-patch16-224"));
}
