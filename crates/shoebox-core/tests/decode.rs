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

/// A PNG written row by row (never held whole): `w`×`h`, `color`, each row from `row(y, buf)`.
fn write_png(
    path: &std::path::Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    channels: usize,
    row: impl Fn(u32, &mut [u8]),
) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(f, w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let mut buf = vec![0u8; w as usize * channels];
    for y in 0..h {
        row(y, &mut buf);
        std::io::Write::write_all(&mut stream, &buf).unwrap();
    }
    stream.finish().unwrap();
}

#[test]
fn large_pngs_are_decoded_row_by_row_to_the_size_needed() {
    let tmp = tempfile::tempdir().unwrap();
    // 20 MP RGBA: left half red, right half blue, with alpha (dropped, as for small PNGs).
    let p = tmp.path().join("wide.png");
    write_png(&p, 5000, 4000, png::ColorType::Rgba, 4, |_, buf| {
        for (x, px) in buf.chunks_exact_mut(4).enumerate() {
            px.copy_from_slice(if x < 2500 {
                &[255, 0, 0, 128]
            } else {
                &[0, 0, 255, 255]
            });
        }
    });
    let d = decode_file(&p, 224).unwrap();
    assert_eq!((d.meta.width, d.meta.height), (5000, 4000));
    let (w, h) = d.image.dimensions();
    assert!(
        h >= 224 && h < 448 && w == 5000u32.div_ceil(4000 / 224),
        "{w}×{h}"
    );
    assert_eq!(d.image.get_pixel(2, h / 2).0, [255, 0, 0]);
    assert_eq!(d.image.get_pixel(w - 3, h / 2).0, [0, 0, 255]);
    // Full size asked for: still bounded (reduced to ≤ 16 MP), never decoded whole.
    let full = decode_file(&p, 0).unwrap();
    let (fw, fh) = full.image.dimensions();
    assert!(
        (fw as u64 * fh as u64) <= 16_000_000 && fw >= 2500,
        "{fw}×{fh}"
    );

    // A decompression bomb: 6000² RGBA of zeros (144 MB of pixels) is small on disk; it is
    // decoded to what is needed.
    let bomb = tmp.path().join("bomb.png");
    write_png(&bomb, 6000, 6000, png::ColorType::Rgba, 4, |_, _| {});
    assert!(
        std::fs::metadata(&bomb).unwrap().len() < 2_000_000,
        "a bomb is small on disk"
    );
    let d = decode_file(&bomb, 224).unwrap();
    // 26×26 blocks (6000 / 224): 231² out.
    assert_eq!(d.image.dimensions(), (231, 231));
    assert_eq!(d.image.get_pixel(0, 0).0, [0, 0, 0]);

    // Gray PNGs stream too.
    let gray = tmp.path().join("gray.png");
    write_png(&gray, 4500, 4000, png::ColorType::Grayscale, 1, |y, buf| {
        buf.fill(if y < 2000 { 10 } else { 200 })
    });
    let d = decode_file(&gray, 500).unwrap();
    assert_eq!(d.image.get_pixel(0, 0).0, [10, 10, 10]);
    let (_, gh) = d.image.dimensions();
    assert_eq!(d.image.get_pixel(0, gh - 1).0, [200, 200, 200]);
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("huge.jpg");
    // Sparse: 300 MB on paper, nothing on disk.
    std::fs::File::create(&p)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let e = decode_file(&p, 224).err().unwrap();
    assert!(e.contains("over the 256 MB limit"), "{e}");
}

#[test]
fn rgba_images_lose_alpha_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("small.png");
    let img = image::RgbaImage::from_fn(7, 5, |x, y| {
        image::Rgba([x as u8 * 30, y as u8 * 40, 7, 99])
    });
    img.save(&p).unwrap();
    let d = decode_file(&p, 0).unwrap();
    assert_eq!(d.image.dimensions(), (7, 5));
    for (x, y, px) in d.image.enumerate_pixels() {
        assert_eq!(px.0, [x as u8 * 30, y as u8 * 40, 7]);
    }
}
