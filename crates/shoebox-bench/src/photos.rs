//! Synthetic photos: camera-sized JPEGs (4000×3000, q90) of gradients, lit shapes and sensor-like
//! noise, with an EXIF block (make, model, orientation, capture time), written in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use image::RgbImage;
use shoebox_core::{Error, Result};

use crate::files::io;
use crate::vectors::Rng;

pub(crate) const PHOTO_W: u32 = 4000;
pub(crate) const PHOTO_H: u32 = 3000;

/// Write `n` camera-sized JPEGs (kept when already there), in parallel. Returns their paths.
pub(crate) fn write_photos(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| dir.join(format!("IMG_{:04}.jpg", i + 1)))
        .collect();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(n);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if paths[i].is_file() {
                    continue;
                }
                if let Err(e) = write_photo(&paths[i], i as u64) {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    break;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(paths)
}

fn write_photo(path: &Path, i: u64) -> Result<()> {
    let img = synth_photo(i, PHOTO_W, PHOTO_H);
    let mut jpeg = Vec::with_capacity(6 << 20);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .map_err(|e| Error::Invalid(format!("encoding a bench photo: {e}")))?;
    // Every fifth photo was shot in portrait (rotated 90° clockwise on display).
    let orientation = if i % 5 == 4 { 6 } else { 1 };
    let taken = format!(
        "20{:02}:{:02}:{:02} {:02}:{:02}:{:02}",
        10 + i % 15,
        1 + i % 12,
        1 + i % 28,
        (8 + i) % 24,
        (i * 7) % 60,
        (i * 13) % 60
    );
    let exif = exif_app1(orientation, &taken, "Shoebox", "Bench Camera 12MP");
    let mut out = Vec::with_capacity(jpeg.len() + exif.len());
    out.extend_from_slice(&jpeg[..2]); // SOI
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    let tmp = path.with_extension("jpg.partial");
    std::fs::write(&tmp, &out).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// A photo-like image: a sky-to-ground gradient, soft-shaded shapes, sensor-like noise.
fn synth_photo(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut rng = Rng::new(seed + 1);
    let color =
        |rng: &mut Rng| [rng.uniform(), rng.uniform(), rng.uniform()].map(|c| 30.0 + 200.0 * c);
    let (top, bottom, tint) = (color(&mut rng), color(&mut rng), color(&mut rng));
    let (w_us, h_us) = (w as usize, h as usize);
    let mut buf = vec![0u8; w_us * h_us * 3];
    for (y, row) in buf.chunks_exact_mut(w_us * 3).enumerate() {
        let t = y as f32 / h as f32;
        let base = [0, 1, 2].map(|c| top[c] * (1.0 - t) + bottom[c] * t);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let s = x as f32 / w as f32 - 0.5;
            for c in 0..3 {
                px[c] = (base[c] + (tint[c] - 128.0) * 0.3 * s) as u8;
            }
        }
    }
    // Shapes: discs and boxes, lit from above.
    for _ in 0..10 {
        let c = color(&mut rng);
        let r = (h as f32 * (0.04 + 0.18 * rng.uniform())) as i64;
        let cx = (rng.uniform() * w as f32) as i64;
        let cy = (rng.uniform() * h as f32) as i64;
        let disc = rng.uniform() < 0.5;
        let (y0, y1) = ((cy - r).max(0), (cy + r).min(h as i64 - 1));
        let (x0, x1) = ((cx - r).max(0), (cx + r).min(w as i64 - 1));
        for y in y0..=y1 {
            let dy = y - cy;
            let shade = 0.8 - 0.25 * dy as f32 / r as f32;
            let row = &mut buf[(y as usize) * w_us * 3..(y as usize + 1) * w_us * 3];
            for x in x0..=x1 {
                let dx = x - cx;
                if disc && dx * dx + dy * dy > r * r {
                    continue;
                }
                let px = &mut row[x as usize * 3..x as usize * 3 + 3];
                for k in 0..3 {
                    px[k] = (c[k] * shade).clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    // Noise: mostly luminance, a little colour, as a camera at moderate ISO.
    for px in buf.chunks_exact_mut(3) {
        let l = rng.normal() * 4.0;
        for v in px.iter_mut() {
            *v = (*v as f32 + l + rng.normal()).clamp(0.0, 255.0) as u8;
        }
    }
    RgbImage::from_raw(w, h, buf).expect("buffer matches the size")
}

/// A JPEG APP1 segment with a little-endian EXIF block: Make, Model, Orientation and, in the EXIF
/// sub-IFD, DateTimeOriginal.
fn exif_app1(orientation: u16, taken: &str, make: &str, model: &str) -> Vec<u8> {
    let ascii = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        b
    };
    let (make, model, taken) = (ascii(make), ascii(model), ascii(taken));
    let ifd0 = 8u32;
    let make_at = ifd0 + 2 + 4 * 12 + 4;
    let model_at = make_at + make.len() as u32;
    let exif_at = (model_at + model.len() as u32 + 1) & !1;
    let taken_at = exif_at + 2 + 12 + 4;
    let mut t = Vec::new();
    t.extend_from_slice(b"II");
    t.extend_from_slice(&42u16.to_le_bytes());
    t.extend_from_slice(&ifd0.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&typ.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    t.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut t, 0x010F, 2, make.len() as u32, make_at);
    entry(&mut t, 0x0110, 2, model.len() as u32, model_at);
    entry(&mut t, 0x0112, 3, 1, orientation as u32);
    entry(&mut t, 0x8769, 4, 1, exif_at);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&make);
    t.extend_from_slice(&model);
    t.resize(exif_at as usize, 0);
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x9003, 2, taken.len() as u32, taken_at);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&taken);
    let len = (2 + 6 + t.len()) as u16;
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    seg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_segment_is_read_back() {
        let img = RgbImage::from_pixel(64, 48, image::Rgb([120, 130, 140]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        let mut out = jpeg[..2].to_vec();
        out.extend(exif_app1(
            6,
            "2021:07:04 18:30:00",
            "Shoebox",
            "Bench Camera 12MP",
        ));
        out.extend_from_slice(&jpeg[2..]);
        let e = shoebox_core::decode::read_exif(&out);
        assert_eq!(e.orientation, Some(6));
        assert_eq!(e.taken_at.as_deref(), Some("2021-07-04T18:30:00"));
        assert_eq!(e.make.as_deref(), Some("Shoebox"));
        assert_eq!(e.model.as_deref(), Some("Bench Camera 12MP"));
        let (rgb, meta) = shoebox_core::decode::decode_bytes(&out, 0).unwrap();
        assert_eq!((meta.width, meta.height), (48, 64));
        assert_eq!(rgb.dimensions(), (48, 64));
    }
}
