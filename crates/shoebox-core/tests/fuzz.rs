//! Property tests over hostile bytes: the journal reader, the label parser and the image decoders
//! get seeded random and mutated inputs. Every input must end in a result or a clear error — no
//! panic may escape, and whatever is accepted must still obey the rules (a journal accepted after
//! mutation says exactly what was signed; an accepted label is one safe folder name).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Component, Path};

use common::{fixtures, open_library};
use shoebox_core::classify::{self, Action, Classified};
use shoebox_core::decode::decode_file;
use shoebox_core::journal::{self, JournalKey};

/// Change `bytes` in one of several ways a damaged or crafted file differs from a good one.
fn mutate(rng: &mut fastrand::Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b.is_empty() {
        return vec![rng.u8(..)];
    }
    match rng.u8(..6) {
        // Truncated anywhere.
        0 => b.truncate(rng.usize(..b.len())),
        // A few bytes flipped.
        1 => {
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(..b.len());
                b[i] ^= 1 << rng.u8(..8);
            }
        }
        // A run of bytes overwritten with 0xFF or 0x00 (huge or zero sizes in headers).
        2 => {
            let i = rng.usize(..b.len());
            let fill = if rng.bool() { 0xFF } else { 0x00 };
            for x in b.iter_mut().skip(i).take(rng.usize(1..9)) {
                *x = fill;
            }
        }
        // A slice repeated (duplicated chunks, duplicated lines).
        3 => {
            let i = rng.usize(..b.len());
            let j = (i + rng.usize(1..64)).min(b.len());
            let piece = b[i..j].to_vec();
            b.splice(i..i, piece);
        }
        // Random bytes inserted.
        4 => {
            let i = rng.usize(..=b.len());
            let junk: Vec<u8> = (0..rng.usize(1..32)).map(|_| rng.u8(..)).collect();
            b.splice(i..i, junk);
        }
        // The head kept, the rest random.
        _ => {
            let keep = rng.usize(..b.len().min(64));
            b.truncate(keep);
            b.extend((0..rng.usize(0..256)).map(|_| rng.u8(..)));
        }
    }
    b
}

#[test]
fn mutated_journals_are_refused_or_read_exactly_as_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let mut lib = open_library(&root.join("lib"));
    let src = root.join("src");
    let dest = root.join("dest");
    std::fs::create_dir_all(&src).unwrap();
    let mut results = Vec::new();
    for (i, label) in ["pets", "receipts", "pets"].iter().enumerate() {
        let p = src.join(format!("f{i}.jpg"));
        std::fs::write(&p, format!("photo {i}")).unwrap();
        results.push(Classified {
            path: p,
            label: label.to_string(),
            confidence: 0.9,
            scores: vec![0.9, 0.1],
        });
    }
    let ops = classify::plan(&results, Action::Copy, &dest).unwrap();
    let good = lib.apply_classification(&ops, &dest).unwrap();
    let key = JournalKey::open_or_create(&root.join("lib")).unwrap();
    let original = std::fs::read(&good.path).unwrap();
    let signed = journal::read(&good.path, &key).unwrap();
    let probe = dest.join(".shoebox-journal-fuzz.jsonl");
    let mut rng = fastrand::Rng::with_seed(0x5eed_0001);
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..2000 {
        let bytes = mutate(&mut rng, &original);
        std::fs::write(&probe, &bytes).unwrap();
        let read = catch_unwind(AssertUnwindSafe(|| journal::read(&probe, &key)))
            .expect("reading a journal never panics");
        match read {
            Ok(j) => {
                accepted += 1;
                // Lines can be cut from the end (undo then does less), never changed or added.
                assert!(
                    signed.entries.starts_with(&j.entries),
                    "accepted only as signed"
                );
                assert_eq!(j.dest, signed.dest);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // Nearly every change breaks a signature; the few accepted ones were harmless (last lines
    // cut, a MAC's hex case…) and read as signed.
    assert!(refused > 1900, "{refused} refused, {accepted} accepted");
    // Reading changed nothing on disk.
    assert_eq!(std::fs::read_dir(dest.join("pets")).unwrap().count(), 2);
}

#[test]
fn random_labels_parse_to_safe_single_folder_names_or_errors() {
    let alphabet: Vec<char> = "ab Z.,=/\\:é\u{0}\t\n-_*?<>|\"'~$ \u{202e}con1lpt9"
        .chars()
        .collect();
    let mut rng = fastrand::Rng::with_seed(0x5eed_0002);
    let mut ok = 0;
    for _ in 0..20_000 {
        let s: String = (0..rng.usize(0..24))
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let parsed = catch_unwind(|| classify::parse_labels(&s)).expect("never panics");
        let Ok(labels) = parsed else { continue };
        ok += 1;
        assert!(labels.len() >= 2);
        let mut seen = std::collections::HashSet::new();
        for l in &labels {
            let mut comps = Path::new(&l.name).components();
            assert!(
                matches!(comps.next(), Some(Component::Normal(c)) if c == l.name.as_str())
                    && comps.next().is_none(),
                "{:?} is not one folder name",
                l.name
            );
            assert!(!l.name.chars().any(|c| c.is_control() || "/\\:".contains(c)));
            assert!(classify::check_folder_name(&l.name).is_ok());
            assert!(seen.insert(l.name.to_lowercase()), "{:?} twice", l.name);
        }
    }
    assert!(
        ok > 100,
        "the generator also makes valid label lists ({ok})"
    );
}

#[test]
fn mutated_images_decode_or_fail_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let real = fixtures().join("data/real");
    let seeds: Vec<Vec<u8>> = ["rocket.jpg", "flower.jpg", "logo.png", "camera.png"]
        .iter()
        .map(|f| std::fs::read(real.join(f)).unwrap())
        .chain([std::fs::read(fixtures().join("data/dev/dev_0000.jpg")).unwrap()])
        .collect();
    let mut rng = fastrand::Rng::with_seed(0x5eed_0003);
    let path = tmp.path().join("mutant.img");
    let (mut decoded, mut failed) = (0, 0);
    for i in 0..400 {
        let bytes = mutate(&mut rng, &seeds[i % seeds.len()]);
        std::fs::write(&path, &bytes).unwrap();
        let r = catch_unwind(|| decode_file(&path, 224)).expect("no panic escapes decode_file");
        match r {
            Ok(d) => {
                decoded += 1;
                let (w, h) = d.image.dimensions();
                assert!(w > 0 && h > 0 && (w as u64 * h as u64) <= 16_000_000);
            }
            Err(reason) => {
                failed += 1;
                assert!(!reason.is_empty());
            }
        }
    }
    assert!(
        decoded > 0 && failed > 0,
        "{decoded} decoded, {failed} failed"
    );
}
