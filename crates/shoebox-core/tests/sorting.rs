//! Sorting files into label folders and undoing it, against hostile inputs: crafted or altered
//! journals, symlinks planted in the destination, names that collide without case, labels that
//! escape their folder, and a run that stops part way. No model is needed: results are built by hand.

mod common;

use std::path::{Path, PathBuf};

use common::open_library;
use shoebox_core::classify::{self, Action, Classified};
use shoebox_core::Library;

fn result(path: &Path, label: &str) -> Classified {
    Classified {
        path: path.to_path_buf(),
        label: label.into(),
        confidence: 0.9,
        scores: vec![0.9, 0.1],
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    lib: Library,
    src: PathBuf,
    dest: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let lib = open_library(&root.join("lib"));
    let src = root.join("src");
    let dest = root.join("dest");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dest).unwrap();
    Setup {
        _tmp: tmp,
        root,
        lib,
        src,
        dest,
    }
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

fn journal_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".shoebox-journal-")
                && p.extension().is_some_and(|e| e == "jsonl")
        })
        .collect()
}

#[test]
fn move_and_undo_round_trip_and_the_journal_is_signed() {
    let mut s = setup();
    let a = write(&s.src.join("a.jpg"), b"aaaa");
    let b = write(&s.src.join("b.jpg"), b"bbbbbb");
    let ops = classify::plan(
        &[result(&a, "pets"), result(&b, "receipts")],
        Action::Move,
        &s.dest,
    )
    .unwrap();
    let j = s.lib.apply_classification(&ops, &s.dest).unwrap();
    assert_eq!(j.entries.len(), 2);
    assert!(!a.exists() && s.dest.join("pets/a.jpg").exists());
    let text = std::fs::read_to_string(&j.path).unwrap();
    assert!(text.lines().all(|l| l.contains("\"mac\"")), "{text}");
    assert!(text.contains(&blake3::hash(b"aaaa").to_hex().to_string()));
    let r = s.lib.undo_classification_file(&j.path).unwrap();
    assert_eq!((r.restored, r.skipped.len()), (2, 0));
    assert_eq!(std::fs::read(&a).unwrap(), b"aaaa");
    assert_eq!(std::fs::read(&b).unwrap(), b"bbbbbb");
    assert!(!s.dest.join("pets").exists(), "emptied label folders go");
    assert!(j.path.with_extension("undone").exists());
}

/// The journal format of Shoebox before signing: `{"op","from","to","size"}` lines.
fn crafted_journal(dest: &Path, lines: &[serde_json::Value]) -> PathBuf {
    let path = dest.join(".shoebox-journal-20260101-000000.000.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_unsigned_journal_deletes_and_plants_nothing() {
    let mut s = setup();
    // A "sorted" folder someone shipped, with a journal that names files outside it.
    let victim = write(&s.root.join("home/notes.txt"), b"precious");
    let payload = write(&s.dest.join("pets/cat.jpg"), b"#!/bin/sh\necho owned\n");
    let planted = s.root.join("home/.profile");
    let j = crafted_journal(
        &s.dest,
        &[
            serde_json::json!({"op": "copy", "from": "/x", "to": victim, "size": 8}),
            serde_json::json!({"op": "move", "from": planted, "to": payload, "size": 21}),
        ],
    );
    let e = s.lib.undo_classification_file(&j).unwrap_err();
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!planted.exists());
    assert!(payload.exists());
    assert!(j.exists(), "a refused journal stays as it was");
}

#[test]
fn an_altered_or_foreign_journal_is_refused_whole() {
    let mut s = setup();
    let a = write(&s.src.join("a.jpg"), b"aaaa");
    let b = write(&s.src.join("b.jpg"), b"bbbb");
    let ops = classify::plan(
        &[result(&a, "pets"), result(&b, "pets")],
        Action::Move,
        &s.dest,
    )
    .unwrap();
    let j = s.lib.apply_classification(&ops, &s.dest).unwrap();
    let original = std::fs::read_to_string(&j.path).unwrap();

    // Redirect where a file goes back to: the signature no longer matches.
    let elsewhere = s.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let altered = original.replace(
        &s.src.join("b.jpg").to_string_lossy().into_owned(),
        &elsewhere.join("b.jpg").to_string_lossy().into_owned(),
    );
    assert_ne!(altered, original);
    std::fs::write(&j.path, &altered).unwrap();
    let e = s.lib.undo_classification_file(&j.path).unwrap_err();
    assert!(e.to_string().contains("not signed by this library"), "{e}");
    assert!(
        !a.exists() && !elsewhere.join("b.jpg").exists(),
        "nothing moved"
    );

    // Lines dropped or reordered break the signatures too.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.swap(1, 2);
    std::fs::write(&j.path, lines.join("\n")).unwrap();
    assert!(s.lib.undo_classification_file(&j.path).is_err());

    // Another library cannot undo it.
    std::fs::write(&j.path, &original).unwrap();
    let mut other = open_library(&s.root.join("other-lib"));
    let e = other.undo_classification_file(&j.path).unwrap_err();
    assert!(e.to_string().contains("another library"), "{e}");
    assert!(!a.exists());

    // The library that wrote it can.
    let r = s.lib.undo_classification_file(&j.path).unwrap();
    assert_eq!(r.restored, 2);
    assert!(a.exists() && b.exists());
}

#[test]
fn undo_leaves_changed_files_and_symlinks_where_they_are() {
    let mut s = setup();
    let a = write(&s.src.join("a.jpg"), b"aaaa");
    let b = write(&s.src.join("b.jpg"), b"bbbb");
    let ops = classify::plan(
        &[result(&a, "pets"), result(&b, "pets")],
        Action::Move,
        &s.dest,
    )
    .unwrap();
    let j = s.lib.apply_classification(&ops, &s.dest).unwrap();
    // a.jpg edited after sorting; b.jpg swapped for a symlink to a file elsewhere.
    std::fs::write(s.dest.join("pets/a.jpg"), b"edited").unwrap();
    let victim = write(&s.root.join("victim.txt"), b"bbbb");
    std::fs::remove_file(s.dest.join("pets/b.jpg")).unwrap();
    std::os::unix::fs::symlink(&victim, s.dest.join("pets/b.jpg")).unwrap();
    let r = s.lib.undo_classification_file(&j.path).unwrap();
    assert_eq!(r.restored, 0);
    assert_eq!(r.skipped.len(), 2, "{:?}", r.skipped);
    assert!(!a.exists() && !b.exists());
    assert_eq!(std::fs::read(s.dest.join("pets/a.jpg")).unwrap(), b"edited");
    assert!(victim.exists());
    assert!(j.path.exists(), "the journal is kept while files are left");
}

#[test]
fn planted_symlinks_in_the_destination_are_never_followed() {
    let mut s = setup();
    let a = write(&s.src.join("a.jpg"), b"aaaa");
    let victim = s.root.join("victim.txt");
    // A dangling symlink where a copy would go: its target must not be created.
    std::fs::create_dir_all(s.dest.join("pets")).unwrap();
    std::os::unix::fs::symlink(&victim, s.dest.join("pets/a.jpg")).unwrap();
    let ops = classify::plan(&[result(&a, "pets")], Action::Copy, &s.dest).unwrap();
    assert_eq!(ops[0].to, s.dest.join("pets/a (1).jpg"));
    s.lib.apply_classification(&ops, &s.dest).unwrap();
    assert!(!victim.exists());
    assert_eq!(
        std::fs::read(s.dest.join("pets/a (1).jpg")).unwrap(),
        b"aaaa"
    );

    // Copying onto a symlink planted after planning fails instead of writing through it.
    let b = write(&s.src.join("b.jpg"), b"bbbb");
    let ops = classify::plan(&[result(&b, "pets")], Action::Copy, &s.dest).unwrap();
    std::os::unix::fs::symlink(&victim, &ops[0].to).unwrap();
    assert!(s.lib.apply_classification(&ops, &s.dest).is_err());
    assert!(!victim.exists());

    // A label folder that is a symlink to elsewhere: refused before anything moves.
    let outside = s.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, s.dest.join("receipts")).unwrap();
    let ops = classify::plan(&[result(&a, "receipts")], Action::Move, &s.dest).unwrap();
    let f = s.lib.apply_classification(&ops, &s.dest).unwrap_err();
    assert!(f.journal.is_none());
    assert!(
        f.error.to_string().contains("not a real folder"),
        "{}",
        f.error
    );
    assert!(a.exists());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn a_move_never_replaces_a_file_that_appeared_after_planning() {
    let mut s = setup();
    let a = write(&s.src.join("a.jpg"), b"aaaa");
    let ops = classify::plan(&[result(&a, "pets")], Action::Move, &s.dest).unwrap();
    write(&ops[0].to, b"arrived meanwhile");
    let f = s.lib.apply_classification(&ops, &s.dest).unwrap_err();
    assert!(
        f.error.to_string().contains("not overwriting"),
        "{}",
        f.error
    );
    assert_eq!(std::fs::read(&ops[0].to).unwrap(), b"arrived meanwhile");
    assert_eq!(std::fs::read(&a).unwrap(), b"aaaa");
}

#[test]
fn names_that_differ_only_in_case_get_their_own_files() {
    let s = setup();
    let a = write(&s.src.join("one/Cat.jpg"), b"1");
    let b = write(&s.src.join("two/cat.jpg"), b"2");
    let ops = classify::plan(
        &[result(&a, "pets"), result(&b, "pets")],
        Action::Copy,
        &s.dest,
    )
    .unwrap();
    assert_eq!(ops[0].to, s.dest.join("pets/Cat.jpg"));
    assert_eq!(ops[1].to, s.dest.join("pets/cat (1).jpg"));
}

#[test]
fn a_run_that_stops_part_way_can_be_undone() {
    let mut s = setup();
    let a = write(&s.src.join("a.jpg"), b"aaaa");
    let b = write(&s.src.join("b.jpg"), b"bbbb");
    let c = write(&s.src.join("c.jpg"), b"cccc");
    let ops = classify::plan(
        &[result(&a, "pets"), result(&b, "pets"), result(&c, "pets")],
        Action::Move,
        &s.dest,
    )
    .unwrap();
    // b.jpg vanishes between the preview and Apply.
    std::fs::remove_file(&b).unwrap();
    let f = s.lib.apply_classification(&ops, &s.dest).unwrap_err();
    let j = f
        .journal
        .clone()
        .expect("the undo plan comes back with the error");
    assert_eq!(j.entries.len(), 1);
    assert!(!a.exists() && c.exists());
    let e = shoebox_core::Error::from(f);
    assert_eq!(e.code(), "partly_applied");
    assert!(e.to_string().contains(&j.path.display().to_string()), "{e}");
    // Undo from memory (the app) and from the file (the CLI) agree; here from memory.
    let r = s.lib.undo_classification(&j).unwrap();
    assert_eq!(r.restored, 1);
    assert_eq!(std::fs::read(&a).unwrap(), b"aaaa");
    assert_eq!(
        journal_files(&s.dest).len(),
        0,
        "the journal is marked undone"
    );
}

#[test]
fn labels_are_single_safe_folder_names() {
    for bad in [
        "pets, Pets",
        "C:, pets",
        "D:x, pets",
        "con, pets",
        "LPT1.txt, pets",
        "a\u{0}b, pets",
        "tab\there, pets",
        "x., pets",
        ".hidden, pets",
        "../up, pets",
        "a\\b, pets",
        "Unsorted, pets",
    ] {
        assert!(classify::parse_labels(bad).is_err(), "{bad:?} was accepted");
    }
    let ok = classify::parse_labels("café, 2024 trips, receipts=a photo of a receipt").unwrap();
    assert_eq!(ok.len(), 3);
}
