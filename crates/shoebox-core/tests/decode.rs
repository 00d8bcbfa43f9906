//! Decoding: EXIF orientation, metadata, reduced-size JPEG decode, and clear errors on bad input.

mod common;

use common::*;
use shoebox_core::decode::{decode_bytes, decode_file, parse_exif_datetime};

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as i64 - *y as i64).unsigned_abs())
        .sum();
    s as f64 / a.as_raw().len() as f64
}

#[test]
fn exif_orientation_is_applied() {
    let dir = fixtures().join("data/real");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("exif_variants.json")).unwrap())
            .unwrap();
    let upright = decode_file(&dir.join(meta["upright_reference"].as_str().unwrap()), 0).unwrap();
    let clip = load_clip();
    let embed = |img: &image::RgbImage| {
        clip.embed_pixels(&[clip.preprocess(img).unwrap()])
            .unwrap()
            .remove(0)
    };
    let up_vec = embed(&upright.image);
    for v in meta["variants"].as_array().unwrap() {
        let file = dir.join(v["file"].as_str().unwrap());
        let d = decode_file(&file, 0).unwrap();
        let dims = (d.meta.width as u64, d.meta.height as u64);
        let want = (
            v["displayed_width"].as_u64().unwrap(),
            v["displayed_height"].as_u64().unwrap(),
        );
        assert_eq!(dims, want, "{}", file.display());
        assert_eq!(d.image.dimensions(), (want.0 as u32, want.1 as u32));
        assert_eq!(
            d.meta.orientation.map(u64::from),
            v["orientation_tag"].as_u64(),
            "{}",
            file.display()
        );
        if v["upright_after_exif_transpose"].as_bool().unwrap() {
            let diff = mean_abs_diff(&d.image, &upright.image);
            assert!(
                diff < 4.0,
                "{}: mean |diff| {diff} vs upright",
                file.display()
            );
            let c = cosine(&embed(&d.image), &up_vec);
            assert!(c >= 0.99, "{}: cosine {c} vs upright", file.display());
        }
    }
}

#[test]
fn large_jpeg_is_decoded_at_reduced_size() {
    // A 2000×1500 JPEG decoded for a model that needs a 128 px short side comes out at 1/4 scale
    // (the smallest DCT scale whose short side stays ≥ 128) — and reports full-size dimensions.
    let img = image::RgbImage::from_fn(2000, 1500, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let (small, meta) = decode_bytes(&bytes, 128).unwrap();
    assert_eq!((meta.width, meta.height), (2000, 1500));
    assert!(
        small.height() >= 128 && small.height() < 1500 / 2,
        "{:?}",
        small.dimensions()
    );
    let (full, _) = decode_bytes(&bytes, 0).unwrap();
    assert_eq!(full.dimensions(), (2000, 1500));
}

#[test]
fn exif_dates_parse() {
    assert_eq!(
        parse_exif_datetime("2021:07:04 18:30:05").as_deref(),
        Some("2021-07-04T18:30:05")
    );
    assert_eq!(parse_exif_datetime("0000:00:00 00:00:00"), None);
    assert_eq!(parse_exif_datetime("junk"), None);
}

#[test]
fn bad_bytes_give_reasons() {
    let jpeg = std::fs::read(fixtures().join("data/real/china.jpg")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("text", b"hello, I am not an image".to_vec(), "not an image"),
        ("truncated", jpeg[..jpeg.len() / 3].to_vec(), "JPEG"),
        (
            "garbage after header",
            {
                let mut b = jpeg[..200].to_vec();
                b.extend(std::iter::repeat_n(0x55u8, 5000));
                b
            },
            "JPEG",
        ),
        ("bomb", huge_png(), "50000"),
    ];
    for (name, bytes, needle) in cases {
        let err = decode_bytes(&bytes, 128)
            .err()
            .unwrap_or_else(|| panic!("{name} decoded"));
        assert!(err.contains(needle), "{name}: {err}");
    }
}
