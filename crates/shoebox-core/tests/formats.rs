//! Camera and phone formats through the engine: HEIC (with EXIF date and GPS), AVIF and DNG decode
//! and are found by the image they were made from; a damaged HEIC and a RAW with a broken header
//! are recorded failures with reasons; a RAW+JPEG pair is one photo (or two, in separate mode).

mod common;

use std::path::PathBuf;

use common::*;
use shoebox_core::decode::decode_file;
use shoebox_core::scan::RawMode;
use shoebox_core::search::SearchRequest;

fn formats() -> PathBuf {
    fixtures().join("data/formats")
}

fn source_of(file: &str) -> PathBuf {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(formats().join("formats.json")).unwrap())
            .unwrap();
    let src = meta
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["file"] == file)
        .unwrap()["source"]
        .as_str()
        .unwrap()
        .to_string();
    fixtures().join("data/dev").join(src)
}

#[test]
fn heic_avif_and_dng_decode_with_their_metadata() {
    let heic = decode_file(&formats().join("phone.heic"), 0).unwrap();
    let src = decode_file(&source_of("phone.heic"), 0).unwrap();
    assert_eq!(
        (heic.meta.width, heic.meta.height),
        (src.meta.width, src.meta.height)
    );
    assert_eq!(heic.meta.taken_at.as_deref(), Some("2022-05-01T12:00:00"));
    assert_eq!(heic.meta.camera_make.as_deref(), Some("Shoebox"));
    let (lat, lon) = heic.meta.gps.unwrap();
    assert!(
        (lat - 35.6895).abs() < 1e-3 && (lon - 139.6917).abs() < 1e-3,
        "{lat} {lon}"
    );

    let avif = decode_file(&formats().join("web.avif"), 0).unwrap();
    let src = decode_file(&source_of("web.avif"), 0).unwrap();
    assert_eq!(
        (avif.meta.width, avif.meta.height),
        (src.meta.width, src.meta.height)
    );

    // The DNG has no preview: its sensor data are demosaiced. Its pixels are the source's, give or
    // take demosaicing and 12-bit rounding.
    let dng = decode_file(&formats().join("camera.dng"), 0).unwrap();
    let src = decode_file(&source_of("camera.dng"), 0).unwrap();
    assert_eq!(dng.meta.width, src.meta.width / 2 * 2);
    assert_eq!(dng.meta.camera_model.as_deref(), Some("Fixture RAW"));
    let mean = |img: &image::RgbImage| {
        let mut s = [0f64; 3];
        for p in img.pixels() {
            for c in 0..3 {
                s[c] += p[c] as f64;
            }
        }
        s.map(|v| v / (img.width() * img.height()) as f64)
    };
    let (a, b) = (mean(&dng.image), mean(&src.image));
    for c in 0..3 {
        assert!(
            (a[c] - b[c]).abs() < 12.0,
            "channel {c}: {a:?} vs {b:?} (DNG vs source)"
        );
    }
}

#[test]
fn damaged_files_give_reasons() {
    let e = decode_file(&formats().join("broken.heic"), 0)
        .err()
        .unwrap();
    assert!(e.contains("HEIF"), "{e}");
    let e = decode_file(&formats().join("broken.nef"), 0).err().unwrap();
    assert!(e.contains("RAW"), "{e}");
}

#[test]
fn library_indexes_every_format_and_pairs_raw_with_jpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    copy_fixture_photos(&formats(), &photos);
    let mut lib = open_library(&tmp.path().join("lib"));
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    index(&mut lib);
    let st = lib.status(true).unwrap();
    assert_eq!(
        (st.photos.indexed, st.photos.failed),
        (4, 2),
        "{:?}",
        st.failures
    );
    let failures = st.failures.unwrap();
    let reason = |name: &str| {
        failures
            .iter()
            .find(|f| f.path.ends_with(name))
            .map(|f| f.reason.clone())
            .unwrap_or_default()
    };
    assert!(reason("broken.heic").contains("HEIF"), "{failures:?}");
    assert!(reason("broken.nef").contains("RAW"), "{failures:?}");

    // Each new format is found first by the image it was made from.
    for file in ["phone.heic", "web.avif", "camera.dng", "IMG_0042.JPG"] {
        let r = lib
            .search(&SearchRequest {
                like: vec![source_of(file)],
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert!(
            r.results[0].path.ends_with(file),
            "{file}: {:?}",
            r.results[0]
        );
        assert!(r.results[0].score > 0.95, "{file}: {}", r.results[0].score);
    }

    // The RAW beside the JPEG is its original, not a photo of its own.
    let jpeg = photos.join("IMG_0042.JPG");
    let d = lib.photo_details(&jpeg).unwrap();
    assert!(d
        .original
        .as_deref()
        .is_some_and(|o| o.ends_with("IMG_0042.dng")));
    assert!(lib.photo_details(&photos.join("IMG_0042.dng")).is_err());
    // The HEIC's GPS gave it a place.
    let d = lib.photo_details(&photos.join("phone.heic")).unwrap();
    assert_eq!(d.place.map(|p| p.country), Some("Japan".to_string()));

    // Separate mode: both are photos; back to pairs: the RAW goes again.
    lib.set_raw_mode(RawMode::Separate);
    index(&mut lib);
    assert_eq!(lib.status(false).unwrap().photos.indexed, 5);
    assert!(lib.photo_details(&photos.join("IMG_0042.dng")).is_ok());
    assert!(lib.photo_details(&jpeg).unwrap().original.is_none());
    lib.set_raw_mode(RawMode::Pair);
    index(&mut lib);
    assert_eq!(lib.status(false).unwrap().photos.indexed, 4);
    assert!(lib.photo_details(&jpeg).unwrap().original.is_some());
}
