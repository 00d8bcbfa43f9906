//! Text in photos from the command line: `index --ocr`, keyword and phrase search with the text in
//! `--json`, `--mode keyword`, OCR counts in `status`, and a language without data (a note, not a
//! failed index).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn labels() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("data/ocr/labels.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn photos(tmp: &Path) -> std::path::PathBuf {
    let photos = tmp.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for l in labels() {
        let f = l["file"].as_str().unwrap();
        std::fs::copy(fixtures().join("data/ocr").join(f), photos.join(f)).unwrap();
    }
    photos
}

fn names(r: &Value) -> Vec<String> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            Path::new(h["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn index_ocr_then_keyword_and_phrase_search() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let lib = tmp.path().join("lib");
    ok(shoebox(&lib, &["add", photos.to_str().unwrap()]));
    let out = ok(shoebox(&lib, &["index", "--ocr"]));
    let texts = labels().iter().filter(|l| l["has_text"] == true).count();
    assert!(
        out.contains(&format!("({texts} with text, 0 failed)")),
        "{out}"
    );
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["ocr"]["read"], labels().len());
    assert_eq!(st["ocr"]["with_text"], texts);

    let receipt = labels()
        .into_iter()
        .find(|l| l["kind"] == "receipt" && !l["phrases"].as_array().unwrap().is_empty())
        .unwrap();
    let first = receipt["first_line"].as_str().unwrap();
    let r = json(shoebox(&lib, &["search", "--json", first]));
    assert_eq!(r["mode"], "hybrid");
    assert_eq!(names(&r)[0], receipt["file"].as_str().unwrap());
    let text = r["results"][0]["text"].as_str().unwrap();
    assert!(
        text.contains(first.split_whitespace().next().unwrap()),
        "{text}"
    );

    let r = json(shoebox(
        &lib,
        &["search", "--json", "--mode", "keyword", first],
    ));
    assert_eq!(r["mode"], "keyword");
    assert_eq!(names(&r)[0], receipt["file"].as_str().unwrap());

    // A quoted phrase: exactly the photos containing it.
    let phrase = receipt["phrases"][0].as_str().unwrap();
    let want: std::collections::BTreeSet<String> = labels()
        .iter()
        .filter(|l| l["phrases"].as_array().unwrap().iter().any(|p| p == phrase))
        .map(|l| l["file"].as_str().unwrap().to_string())
        .collect();
    let quoted = format!("\"{phrase}\"");
    let r = json(shoebox(
        &lib,
        &["search", "--json", "--limit", "100", &quoted],
    ));
    let got: std::collections::BTreeSet<String> = names(&r).into_iter().collect();
    assert_eq!(got, want);
}

#[test]
fn a_language_without_data_is_a_note_and_the_photos_are_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let lib = tmp.path().join("lib");
    ok(shoebox(&lib, &["add", photos.to_str().unwrap()]));
    let out = shoebox(&lib, &["index", "--ocr", "--ocr-lang", "xx_nonexistent"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xx_nonexistent") && err.contains("tesseract-ocr-"),
        "{err}"
    );
    let st = json(shoebox(&lib, &["status", "--json"]));
    assert_eq!(st["photos"]["indexed"], labels().len());
    assert_eq!(st["ocr"]["read"], 0);

    let bad = shoebox(&lib, &["index", "--ocr-lang", "eng; rm"]);
    assert!(!bad.status.success());
    // Off: nothing read, nothing said.
    let out = shoebox_cmd(&lib)
        .args(["index"])
        .env("SHOEBOX_OCR", "off")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("read text"));
}
