//! `shoebox duplicates` end to end: planted groups (exact copy, resized, JPEG q60, cropped 4 %,
//! brightened 12 %) among other photos of the same kinds are all found and nothing else is grouped;
//! the keeper is the original; `--trash` puts the rest in the system trash and `--undo` brings it
//! back; `--dry-run` moves nothing. Prints the precision/recall curve over the threshold.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

type Groups = BTreeSet<BTreeSet<String>>;

fn save_jpeg(img: &image::RgbImage, path: &Path, quality: u8) {
    let f = std::fs::File::create(path).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(f, quality)
        .encode_image(img)
        .unwrap();
}

/// Planted groups over dev images (the originals are kept at full quality), plus unrelated
/// photos of the same colours and shapes. Returns the expected groups (file names).
fn plant(dir: &Path) -> Groups {
    std::fs::create_dir_all(dir).unwrap();
    let labels = std::fs::read_to_string(fixtures().join("data/dev/labels.jsonl")).unwrap();
    let jpegs: Vec<Value> = labels
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            v["format"] == "jpg"
                && v["width"].as_u64() >= Some(300)
                && v["height"].as_u64() >= Some(300)
        })
        .collect();
    let open = |v: &Value| {
        image::open(
            fixtures()
                .join("data/dev")
                .join(v["file"].as_str().unwrap()),
        )
        .unwrap()
        .to_rgb8()
    };
    let variants: [&[&str]; 6] = [
        &["resize", "q60"],
        &["crop"],
        &["bright"],
        &["copy"],
        &["resize", "crop", "bright"],
        &["q60", "copy"],
    ];
    let mut expected = Groups::new();
    for (g, kinds) in variants.iter().enumerate() {
        let img = open(&jpegs[g]);
        let name = format!("orig_{g}.jpg");
        save_jpeg(&img, &dir.join(&name), 95);
        // The original was there first (a day before its copies).
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(dir.join(&name))
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
        let mut group = BTreeSet::from([name.clone()]);
        for k in *kinds {
            let out = format!("g{g}_{k}.jpg");
            let (w, h) = img.dimensions();
            match *k {
                "resize" => save_jpeg(
                    &image::imageops::resize(
                        &img,
                        w * 3 / 5,
                        h * 3 / 5,
                        image::imageops::FilterType::Triangle,
                    ),
                    &dir.join(&out),
                    90,
                ),
                "q60" => save_jpeg(&img, &dir.join(&out), 60),
                "crop" => save_jpeg(
                    &image::imageops::crop_imm(&img, w / 50, h / 50, w - w / 25, h - h / 25)
                        .to_image(),
                    &dir.join(&out),
                    90,
                ),
                "bright" => save_jpeg(&image::imageops::brighten(&img, 31), &dir.join(&out), 90),
                "copy" => {
                    std::fs::copy(dir.join(&name), dir.join(&out)).unwrap();
                }
                _ => unreachable!(),
            }
            group.insert(out);
        }
        expected.insert(group);
    }
    // Unrelated photos of the same colours and shapes: never grouped.
    for (i, v) in jpegs.iter().skip(6).take(24).enumerate() {
        save_jpeg(&open(v), &dir.join(format!("other_{i}.jpg")), 92);
    }
    expected
}

fn name(p: &Value) -> String {
    Path::new(p["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn found(r: &Value) -> Groups {
    r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["photos"].as_array().unwrap().iter().map(name).collect())
        .collect()
}

/// Pairwise precision and recall of found groups against the planted ones.
fn pairs(groups: &Groups) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for g in groups {
        for a in g {
            for b in g {
                if a < b {
                    out.insert((a.clone(), b.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn planted_duplicates_are_found_trashed_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let expected = plant(&photos);
    let lib = tmp.path().join("lib");
    let xdg = tmp.path().join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    let run = |args: &[&str]| {
        shoebox_cmd(&lib)
            .env("XDG_DATA_HOME", &xdg)
            .args(args)
            .output()
            .unwrap()
    };
    ok(run(&["add", photos.to_str().unwrap()]));
    ok(run(&["-q", "index"]));

    // The curve: precision and recall of duplicate pairs over the CLIP threshold and the
    // perceptual-hash distance (the numbers in README's "Duplicates").
    let truth = pairs(&expected);
    for bits in ["8", "12", "16", "18", "20", "24", "32"] {
        for t in ["0.80", "0.90", "0.95", "0.98"] {
            let r = json(run(&[
                "duplicates",
                "--json",
                "--threshold",
                t,
                "--max-hash-distance",
                bits,
            ]));
            let got = pairs(&found(&r));
            let hit = got.intersection(&truth).count() as f64;
            eprintln!(
                "curve bits {bits} threshold {t}: precision {:.3} recall {:.3} ({} pairs)",
                if got.is_empty() {
                    1.0
                } else {
                    hit / got.len() as f64
                },
                hit / truth.len() as f64,
                got.len()
            );
        }
    }

    // The defaults find exactly the planted groups.
    let r = json(run(&["duplicates", "--json"]));
    assert_eq!(
        r["threshold"].as_f64().map(|t| (t * 100.0).round()),
        Some(90.0)
    );
    assert_eq!(found(&r), expected);
    for g in r["groups"].as_array().unwrap() {
        let keep: Vec<String> = g["photos"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["keep"] == true)
            .map(name)
            .collect();
        assert_eq!(keep.len(), 1, "{g}");
        // The keeper: the largest, most original, oldest: the full-quality original.
        assert!(keep[0].starts_with("orig_"), "{g}");
        assert!(
            g["photos"][0]["keep"] == true,
            "the keeper comes first: {g}"
        );
        for p in g["photos"].as_array().unwrap() {
            assert!(
                p["width"].as_u64().is_some() && p["size"].as_u64().is_some(),
                "{p}"
            );
        }
        let kind = g["kind"].as_str().unwrap();
        let names: BTreeSet<String> = g["photos"].as_array().unwrap().iter().map(name).collect();
        if names.len() == 2 && names.iter().any(|n| n.ends_with("_copy.jpg")) {
            assert_eq!(kind, "exact", "{g}");
        } else {
            assert_eq!(kind, "near", "{g}");
        }
    }

    // --in limits the search.
    let r = json(run(&[
        "duplicates",
        "--json",
        "--in",
        tmp.path().join("nowhere").to_str().unwrap(),
    ]));
    assert!(found(&r).is_empty());

    // A dry run moves nothing.
    let before = std::fs::read_dir(&photos).unwrap().count();
    let r = json(run(&["duplicates", "--trash", "--dry-run", "--json"]));
    let doomed: Vec<String> = r["trashed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let planted_extra: usize = expected.iter().map(|g| g.len() - 1).sum();
    assert_eq!(doomed.len(), planted_extra);
    assert_eq!(std::fs::read_dir(&photos).unwrap().count(), before);
    assert!(r["journal"].is_null());

    // --trash: the copies go to the trash (not deleted), the keepers stay, the catalog follows.
    let r = json(run(&["duplicates", "--trash", "--json"]));
    let journal = PathBuf::from(r["journal"].as_str().unwrap());
    assert!(journal.is_file());
    for p in &doomed {
        assert!(!Path::new(p).exists(), "{p} still there");
    }
    let trash_files: Vec<PathBuf> = std::fs::read_dir(xdg.join("Trash/files"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trash_files.len(), doomed.len());
    let st = json(run(&["status", "--json"]));
    assert_eq!(
        st["photos"]["indexed"].as_u64(),
        Some((before - doomed.len()) as u64)
    );
    assert!(found(&json(run(&["duplicates", "--json"]))).is_empty());

    // A journal of another library (or a changed one) is refused; this one undoes.
    let other = tmp.path().join("other-lib");
    let out = shoebox_cmd(&other)
        .env("XDG_DATA_HOME", &xdg)
        .args(["duplicates", "--undo", journal.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let r = json(run(&[
        "duplicates",
        "--undo",
        journal.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(r["restored"].as_u64(), Some(doomed.len() as u64));
    for p in &doomed {
        assert!(Path::new(p).is_file(), "{p} not back");
    }
    assert_eq!(std::fs::read_dir(&photos).unwrap().count(), before);
    assert_eq!(found(&json(run(&["duplicates", "--json"]))), expected);
    let st = json(run(&["status", "--json"]));
    assert_eq!(st["photos"]["indexed"].as_u64(), Some(before as u64));
}

/// Precision on a larger set: every dev shape JPEG plus the places photos (each a re-encoded copy
/// of one dev photo, with EXIF added). The groups must be exactly each places photo with its
/// source (and byte-identical dev files with each other): nothing else, though the tiny CLIP puts
/// every photo of one colour and shape at cosines near 1.
#[test]
fn reencoded_copies_pair_with_their_sources_only() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let dev = fixtures().join("data/dev");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dev).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jpg") {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(&p, photos.join(&n)).unwrap();
            names.push(n);
        }
    }
    let places: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("data/places/places.json")).unwrap(),
    )
    .unwrap();
    let mut edges: Vec<(String, String)> = Vec::new();
    for p in places.as_array().unwrap() {
        let (Some(file), Some(source)) = (p["file"].as_str(), p["source"].as_str()) else {
            continue;
        };
        std::fs::copy(fixtures().join("data/places").join(file), photos.join(file)).unwrap();
        edges.push((file.to_string(), source.to_string()));
        names.push(file.to_string());
    }
    // Byte-identical files are exact copies.
    let bytes: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(photos.join(n)).unwrap())
        .collect();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            if bytes[i] == bytes[j] {
                edges.push((names[i].clone(), names[j].clone()));
            }
        }
    }
    // Expected groups: the connected sets of those edges.
    let mut expected: Vec<BTreeSet<String>> = Vec::new();
    for (a, b) in edges {
        let hits: Vec<usize> = (0..expected.len())
            .filter(|&k| expected[k].contains(&a) || expected[k].contains(&b))
            .collect();
        let mut merged = BTreeSet::from([a, b]);
        for &k in hits.iter().rev() {
            merged.extend(expected.remove(k));
        }
        expected.push(merged);
    }
    let expected: Groups = expected.into_iter().collect();
    assert!(expected.len() >= 12, "{expected:?}");

    let lib = tmp.path().join("lib");
    ok(shoebox(&lib, &["add", photos.to_str().unwrap()]));
    ok(shoebox(&lib, &["-q", "index"]));
    let r = json(shoebox(&lib, &["duplicates", "--json"]));
    assert_eq!(found(&r), expected);
}
