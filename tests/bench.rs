//! End-to-end tests of `shoebox bench` on small sizes: the report has the JSON shape and
//! sane values (rates positive, recall in [0, 1], p50 ≤ p95). Never a timed assertion.

mod common;

use common::{fixtures, json, shoebox};
use serde_json::Value;

fn positive(v: &Value, path: &str) -> f64 {
    let x = v
        .pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"));
    assert!(x > 0.0 && x.is_finite(), "{path} = {x}");
    x
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// The stable shape of issue 8 (plus the `random_weights` label and the `notes` object).
fn check_shape(v: &Value, vectors: u64) {
    assert_eq!(
        keys(v),
        [
            "bert_sentences_s",
            "caption_s",
            "clip_model",
            "hnsw",
            "index",
            "notes",
            "open_ms",
            "peak_rss_mb",
            "query",
            "random_weights",
            "threads"
        ]
    );
    assert_eq!(
        keys(&v["index"]),
        ["decode_img_s", "end_to_end_img_s", "model_img_s"]
    );
    assert_eq!(
        keys(&v["query"]),
        ["first_query_ms", "p50_ms", "p95_ms", "vectors"]
    );
    assert_eq!(
        keys(&v["hnsw"]),
        ["exact_us", "recall_at_10", "search_us", "vectors"]
    );
    assert!(v["clip_model"].is_string());
    assert!(v["threads"].as_u64().unwrap() >= 1);
    for p in [
        "/index/decode_img_s",
        "/index/model_img_s",
        "/index/end_to_end_img_s",
        "/query/p50_ms",
        "/query/p95_ms",
        "/query/first_query_ms",
        "/hnsw/search_us",
        "/hnsw/exact_us",
        "/open_ms",
    ] {
        positive(v, p);
    }
    assert!(positive(v, "/query/p50_ms") <= positive(v, "/query/p95_ms"));
    assert_eq!(v["query"]["vectors"].as_u64(), Some(vectors));
    assert_eq!(v["hnsw"]["vectors"].as_u64(), Some(vectors));
    let recall = v["hnsw"]["recall_at_10"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&recall), "recall {recall}");
    assert!(v["peak_rss_mb"].as_f64().unwrap() >= 0.0);
    assert!(v["notes"].is_object());
    for k in ["caption_s", "bert_sentences_s"] {
        assert!(
            v[k].is_null() || v[k].as_f64().is_some_and(|x| x > 0.0),
            "{k} = {}",
            v[k]
        );
    }
}

#[test]
fn bench_reports_the_stable_json_shape() {
    let lib = tempfile::tempdir().unwrap();
    let clip = fixtures().join("models/clip-dev");
    let v = json(shoebox(
        lib.path(),
        &[
            "--clip-model",
            clip.to_str().unwrap(),
            "bench",
            "--photos",
            "4",
            "--vectors",
            "2000",
            "--json",
        ],
    ));
    check_shape(&v, 2000);
    assert_eq!(v["random_weights"], false);
    // The generated photos carry EXIF dates, and the pipeline read them.
    assert_eq!(v["notes"]["exif_dates_read"], 4);
    // The test environment's captioner is the local blip-dev fixture: it is timed.
    positive(&v, "/caption_s");
    assert!(
        v["notes"]["caption_s_without_cross_cache"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(v["bert_sentences_s"].is_null());
}

#[test]
fn bench_random_weights_times_a_sentence_encoder() {
    let lib = tempfile::tempdir().unwrap();
    let clip = fixtures().join("models/clip-dev");
    let v = json(shoebox(
        lib.path(),
        &[
            "--clip-model",
            clip.to_str().unwrap(),
            "bench",
            "--random-weights",
            "minilm-l6",
            "--photos",
            "1",
            "--vectors",
            "500",
            "--json",
        ],
    ));
    check_shape(&v, 500);
    assert_eq!(v["random_weights"], true);
    positive(&v, "/bert_sentences_s");
    // --clip-model names a model: the CLIP figures come from it, not from random weights.
    assert!(v["clip_model"].as_str().unwrap().ends_with("clip-dev"));
}

#[test]
fn bench_refuses_an_unknown_architecture() {
    let lib = tempfile::tempdir().unwrap();
    let out = shoebox(
        lib.path(),
        &["bench", "--random-weights", "resnet-50", "--json"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("clip-vit-b-32"), "{err}");
}
