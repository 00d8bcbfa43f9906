//! Text in photos through the engine: Tesseract reads generated receipts, screenshots, signs and
//! skewed scans; keyword search finds each by its first line; quoted phrases are exact; a changed
//! file is read again; a failure is recorded; the keyword index follows captions, tags and moves;
//! the gate's choices are kept.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::*;
use shoebox_core::catalog::OcrState;
use shoebox_core::library::{OcrMode, OcrOptions};
use shoebox_core::ocr::OcrEngine;
use shoebox_core::search::{SearchInput, SearchMode};
use shoebox_core::Library;

fn ocr_dir() -> PathBuf {
    fixtures().join("data/ocr")
}

struct Label {
    file: String,
    has_text: bool,
    kind: String,
    first_line: Option<String>,
    phrases: Vec<String>,
}

fn ocr_labels() -> Vec<Label> {
    let text = std::fs::read_to_string(ocr_dir().join("labels.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| Label {
            file: l["file"].as_str().unwrap().into(),
            has_text: l["has_text"].as_bool().unwrap(),
            kind: l["kind"].as_str().unwrap().into(),
            first_line: l["first_line"].as_str().map(String::from),
            phrases: l["phrases"]
                .as_array()
                .map(|a| a.iter().map(|p| p.as_str().unwrap().into()).collect())
                .unwrap_or_default(),
        })
        .collect()
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn all() -> OcrOptions {
    OcrOptions {
        mode: OcrMode::All,
        ..Default::default()
    }
}

fn read_library(lib: &mut Library, opts: &OcrOptions) -> shoebox_core::library::OcrReport {
    lib.ocr_library(opts, None, &AtomicBool::new(false), &mut |_| {})
        .unwrap()
}

fn library(tmp: &Path) -> Library {
    let photos = tmp.join("photos");
    copy_fixture_photos(&ocr_dir(), &photos);
    let mut lib = open_library(&tmp.join("lib"));
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    index(&mut lib);
    lib
}

fn search(lib: &mut Library, query: &str, mode: Option<SearchMode>) -> Vec<String> {
    let req = SearchInput {
        query: Some(query.into()),
        mode,
        limit: Some(100),
        ..Default::default()
    }
    .into_request()
    .unwrap();
    lib.search(&req)
        .unwrap()
        .results
        .iter()
        .map(|h| name(&h.path))
        .collect()
}

#[test]
fn keyword_search_finds_text_and_phrases_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());
    let labels = ocr_labels();
    let r = read_library(&mut lib, &all());
    assert_eq!(r.read, labels.len());
    assert_eq!(r.with_text, labels.iter().filter(|l| l.has_text).count());
    assert_eq!(r.failed, 0);
    let st = lib.status(false).unwrap();
    assert_eq!(st.ocr.read as usize, labels.len());

    // Tesseract read every first line (receipts, screenshots light and dark, signs, skewed scans,
    // small text), and nothing in the photos without text.
    let photos = tmp.path().join("photos");
    let (mut found, mut total) = (0usize, 0usize);
    for l in &labels {
        let text = match lib.photo_ocr(&photos.join(&l.file)).unwrap() {
            Some(OcrState::Read { text, langs }) => {
                assert_eq!(langs, "eng");
                text
            }
            other => panic!("{}: {other:?}", l.file),
        };
        if !l.has_text {
            assert_eq!(text, "", "{} ({}) has no text", l.file, l.kind);
            continue;
        }
        let got: BTreeSet<String> = words(&text).into_iter().collect();
        let want = words(l.first_line.as_deref().unwrap());
        let hit = want.iter().filter(|w| got.contains(*w)).count();
        if hit < want.len() {
            eprintln!(
                "{} ({}): first line {want:?}, read {text:?}",
                l.file, l.kind
            );
        }
        found += hit;
        total += want.len();
    }
    eprintln!("first-line words read: {found}/{total}");
    assert!(found + 1 >= total, "{found}/{total} first-line words");

    // The first line of each finds it first: by keywords alone, and fused with CLIP (the default
    // for a text query once words match).
    for l in labels.iter().filter(|l| l.has_text) {
        let q = l.first_line.as_deref().unwrap();
        let by_words = search(&mut lib, q, Some(SearchMode::Keyword));
        assert_eq!(
            by_words.first(),
            Some(&l.file),
            "keyword {q:?}: {by_words:?}"
        );
        let req = SearchInput {
            query: Some(q.into()),
            ..Default::default()
        }
        .into_request()
        .unwrap();
        let resp = lib.search(&req).unwrap();
        assert_eq!(resp.mode, SearchMode::Hybrid);
        assert_eq!(name(&resp.results[0].path), l.file, "hybrid {q:?}");
        let text = resp.results[0].text.as_deref().unwrap();
        assert!(
            words(text).contains(&words(q)[0]),
            "the hit carries its text: {text:?}"
        );
    }

    // A quoted phrase returns exactly the photos containing it, whatever the ranking.
    let mut phrases: BTreeSet<String> = BTreeSet::new();
    for l in &labels {
        phrases.extend(l.phrases.iter().cloned());
    }
    assert!(phrases.len() >= 2, "{phrases:?}");
    for p in &phrases {
        let want: BTreeSet<String> = labels
            .iter()
            .filter(|l| l.phrases.contains(p))
            .map(|l| l.file.clone())
            .collect();
        for mode in [None, Some(SearchMode::Clip), Some(SearchMode::Keyword)] {
            let got: BTreeSet<String> = search(&mut lib, &format!("\"{p}\""), mode)
                .into_iter()
                .collect();
            assert_eq!(got, want, "\"{p}\" ({mode:?})");
        }
    }
    // A phrase nobody wrote: nothing, even though every word of it is somewhere.
    let nowhere = search(&mut lib, "\"thank gate\"", None);
    assert!(nowhere.is_empty(), "{nowhere:?}");
}

#[test]
fn a_changed_file_is_read_again_and_failures_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = ocr_labels();
    let texts: Vec<&Label> = labels
        .iter()
        .filter(|l| l.has_text && l.file.ends_with(".jpg"))
        .collect();
    let (a, b) = (texts[0], texts[1]);
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for l in [a, b] {
        std::fs::copy(ocr_dir().join(&l.file), photos.join(&l.file)).unwrap();
    }
    let mut lib = open_library(&tmp.path().join("lib"));
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    index(&mut lib);
    assert_eq!(read_library(&mut lib, &all()).with_text, 2);
    let first = |l: &Label| l.first_line.clone().unwrap();

    // a's file now holds b's picture: the old text goes with the old contents.
    std::fs::copy(ocr_dir().join(&b.file), photos.join(&a.file)).unwrap();
    index(&mut lib);
    assert_eq!(lib.photo_ocr(&photos.join(&a.file)).unwrap(), None);
    let found = search(&mut lib, &first(a), Some(SearchMode::Keyword));
    assert!(!found.contains(&a.file), "{found:?}");
    let r = read_library(&mut lib, &all());
    assert_eq!((r.read, r.failed), (1, 0), "only the changed photo is read");
    let found = search(&mut lib, &first(b), Some(SearchMode::Keyword));
    let two: BTreeSet<&String> = found.iter().take(2).collect();
    assert_eq!(two, BTreeSet::from([&a.file, &b.file]), "{found:?}");

    // A file that went bad after indexing (no rescan yet): its failure is recorded, the run goes
    // on, and it is not tried again until the file changes.
    std::fs::copy(ocr_dir().join(&b.file), photos.join("late.jpg")).unwrap();
    index(&mut lib);
    std::fs::write(photos.join("late.jpg"), b"").unwrap();
    let opts = all();
    let r = read_library(&mut lib, &opts);
    assert_eq!((r.read, r.failed), (0, 1), "{r:?}");
    match lib.photo_ocr(&photos.join("late.jpg")).unwrap() {
        Some(OcrState::Failed { reason }) => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(lib.status(false).unwrap().ocr.failed, 1);
    let r = read_library(&mut lib, &opts);
    assert_eq!(
        (r.read, r.failed),
        (0, 0),
        "a recorded failure is not retried"
    );
}

#[test]
fn keyword_index_follows_tags_captions_and_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());
    let photos = tmp.path().join("photos");
    let labels = ocr_labels();
    let photo = labels.iter().find(|l| !l.has_text).unwrap();
    let kw = |lib: &mut Library, q: &str| search(lib, q, Some(SearchMode::Keyword));

    // File names are words too ("img_01" is the phrase "img 01").
    let stem = Path::new(&photo.file)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        kw(&mut lib, &format!("\"{stem}\"")),
        vec![photo.file.clone()]
    );
    assert_eq!(kw(&mut lib, &stem)[0], photo.file);

    lib.add_tag(&[photos.join(&photo.file)], "zanzibar holiday")
        .unwrap();
    assert_eq!(kw(&mut lib, "zanzibar"), vec![photo.file.clone()]);
    lib.remove_tag(&[photos.join(&photo.file)], "zanzibar holiday")
        .unwrap();
    assert!(kw(&mut lib, "zanzibar").is_empty());

    // A move keeps the photo and renames its words.
    std::fs::create_dir(photos.join("quokka trip")).unwrap();
    std::fs::rename(
        photos.join(&photo.file),
        photos.join("quokka trip").join(&photo.file),
    )
    .unwrap();
    index(&mut lib);
    assert_eq!(kw(&mut lib, "quokka"), vec![photo.file.clone()]);

    // Deleted: gone from keyword search.
    std::fs::remove_file(photos.join("quokka trip").join(&photo.file)).unwrap();
    index(&mut lib);
    assert!(kw(&mut lib, "quokka").is_empty());
}

#[test]
fn the_gate_decides_once_per_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());
    let labels = ocr_labels();
    let ids: Vec<i64> = (1..=labels.len() as i64).collect();
    let scores = lib.text_likelihood(&ids).unwrap();
    assert_eq!(scores.len(), labels.len());
    assert!(scores.iter().all(|(_, p)| (0.0..=1.0).contains(p)));
    // The gate's precision and recall on the labelled fixtures, for the record (printed with
    // --nocapture). The test CLIP knows only coloured shapes, so these say nothing of a real CLIP.
    let photos = tmp.path().join("photos");
    let has_text: std::collections::HashMap<i64, bool> = labels
        .iter()
        .map(|l| {
            let path = photos.join(&l.file).canonicalize().unwrap();
            (
                lib.catalog().photo_id_at(&path).unwrap().unwrap(),
                l.has_text,
            )
        })
        .collect();
    for t in [0.3f32, 0.5, 0.7] {
        let picked: Vec<bool> = scores
            .iter()
            .filter(|s| s.1 >= t)
            .map(|s| has_text[&s.0])
            .collect();
        let tp = picked.iter().filter(|x| **x).count();
        let texts = has_text.values().filter(|x| **x).count();
        eprintln!(
            "gate {t}: {} picked, precision {:.2}, recall {:.2}",
            picked.len(),
            tp as f32 / picked.len().max(1) as f32,
            tp as f32 / texts as f32
        );
    }

    // Everything gated out at a threshold above 1; nothing left to decide on the next run.
    let strict = OcrOptions {
        gate: 1.01,
        ..Default::default()
    };
    let r = read_library(&mut lib, &strict);
    assert_eq!((r.read, r.gated_out), (0, labels.len()));
    let r = read_library(&mut lib, &strict);
    assert_eq!((r.read, r.gated_out), (0, 0));
    // "All" does not ask the gate.
    let r = lib
        .ocr_library(&all(), Some(2), &AtomicBool::new(false), &mut |_| {})
        .unwrap();
    assert_eq!((r.read, r.gated_out), (2, 0));
    // Off reads nothing.
    let off = OcrOptions {
        mode: OcrMode::Off,
        ..Default::default()
    };
    assert_eq!(read_library(&mut lib, &off).read, 0);
}

#[test]
fn missing_language_data_is_a_clear_error() {
    let e = OcrEngine::new("xx_nonexistent").err().unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("xx_nonexistent") && msg.contains("tesseract-ocr-"),
        "{msg}"
    );
    assert!(OcrEngine::new("eng; rm -rf").is_err());
}
