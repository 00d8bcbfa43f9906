//! Image preprocessing as Hugging Face image processors do it, configured by preprocessor_config.json:
//! resize (shortest edge or exact size, bicubic), center crop, rescale, normalize → CHW f32.

use std::path::Path;

use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde_json::Value;

use crate::error::{Error, Result};

/// How to resize before cropping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resize {
    /// Scale so the short side is this long, keeping the aspect ratio (CLIPImageProcessor).
    ShortestEdge(u32),
    /// Scale to exactly (height, width), ignoring the aspect ratio (BLIP, ViT).
    Exact(u32, u32),
}

/// A Hugging Face image processor's settings.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    pub resize: Option<Resize>,
    pub crop: Option<(u32, u32)>,
    pub filter: FilterType,
    pub rescale: Option<f32>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

fn size_field(v: &Value) -> Option<Resize> {
    match v {
        Value::Number(n) => Some(Resize::ShortestEdge(n.as_u64()? as u32)),
        Value::Object(o) => {
            if let Some(s) = o.get("shortest_edge").and_then(Value::as_u64) {
                Some(Resize::ShortestEdge(s as u32))
            } else {
                let h = o.get("height")?.as_u64()? as u32;
                let w = o.get("width")?.as_u64()? as u32;
                Some(Resize::Exact(h, w))
            }
        }
        _ => None,
    }
}

fn crop_field(v: &Value) -> Option<(u32, u32)> {
    match v {
        Value::Number(n) => {
            let s = n.as_u64()? as u32;
            Some((s, s))
        }
        Value::Object(o) => Some((
            o.get("height")?.as_u64()? as u32,
            o.get("width")?.as_u64()? as u32,
        )),
        _ => None,
    }
}

fn triple(v: Option<&Value>, default: [f32; 3]) -> Result<[f32; 3]> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.0) as f32;
            Ok([x, x, x])
        }
        Some(Value::Array(a)) if a.len() == 3 => {
            let mut out = [0f32; 3];
            for (o, x) in out.iter_mut().zip(a) {
                *o = x
                    .as_f64()
                    .ok_or_else(|| Error::Model("image_mean/std must be numbers".into()))?
                    as f32;
            }
            Ok(out)
        }
        Some(other) => Err(Error::Model(format!("bad image mean/std: {other}"))),
    }
}

impl ImageProcessor {
    /// Read preprocessor_config.json. `default_size` applies when the file names no size.
    pub fn from_file(path: &Path, default_size: u32) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        Self::from_json(&v, default_size)
    }

    pub fn from_json(v: &Value, default_size: u32) -> Result<Self> {
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
        let resize = flag("do_resize").then(|| {
            v.get("size")
                .and_then(size_field)
                .unwrap_or(Resize::ShortestEdge(default_size))
        });
        let crop = if flag("do_center_crop") && v.get("crop_size").is_some() {
            v.get("crop_size").and_then(crop_field)
        } else {
            None
        };
        // PIL codes: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming.
        let filter = match v.get("resample").and_then(Value::as_u64).unwrap_or(3) {
            1 => FilterType::Lanczos3,
            2 => FilterType::Bilinear,
            4 => FilterType::Box,
            5 => FilterType::Hamming,
            _ => FilterType::CatmullRom,
        };
        let rescale = flag("do_rescale").then(|| {
            v.get("rescale_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 255.0) as f32
        });
        let (mean, std) = if flag("do_normalize") {
            (
                triple(v.get("image_mean"), [0.5; 3])?,
                triple(v.get("image_std"), [0.5; 3])?,
            )
        } else {
            ([0.0; 3], [1.0; 3])
        };
        Ok(ImageProcessor {
            resize,
            crop,
            filter,
            rescale,
            mean,
            std,
        })
    }

    /// Output (height, width).
    pub fn output_size(&self, in_w: u32, in_h: u32) -> (u32, u32) {
        if let Some((h, w)) = self.crop {
            return (h, w);
        }
        match self.resize {
            Some(Resize::Exact(h, w)) => (h, w),
            Some(Resize::ShortestEdge(s)) => {
                let (w, h) = shortest_edge_size(in_w, in_h, s);
                (h, w)
            }
            None => (in_h, in_w),
        }
    }

    /// The smallest short side the decoder must deliver so resizing never upsamples a reduced decode.
    pub fn min_input_short_side(&self) -> u32 {
        let resize = match self.resize {
            Some(Resize::ShortestEdge(s)) => s,
            Some(Resize::Exact(h, w)) => h.max(w),
            None => 0,
        };
        let crop = self.crop.map(|(h, w)| h.max(w)).unwrap_or(0);
        resize.max(crop)
    }

    /// Preprocess an RGB image into CHW f32 values.
    pub fn preprocess(&self, img: &RgbImage) -> Result<Vec<f32>> {
        let resized = match self.resize {
            None => img.clone(),
            Some(r) => {
                let (w, h) = match r {
                    Resize::ShortestEdge(s) => shortest_edge_size(img.width(), img.height(), s),
                    Resize::Exact(h, w) => (w, h),
                };
                resize_like_pil(img, w, h, self.filter)
            }
        };
        let (ch, cw) = self.crop.unwrap_or((resized.height(), resized.width()));
        let (rw, rh) = (resized.width(), resized.height());
        // As transformers' center_crop: top = (H - h) // 2, left = (W - w) // 2, zero padding if smaller.
        let top = (rh as i64 - ch as i64).div_euclid(2);
        let left = (rw as i64 - cw as i64).div_euclid(2);
        let scale = self.rescale.unwrap_or(1.0);
        let plane = (ch * cw) as usize;
        let mut out = vec![0f32; 3 * plane];
        for y in 0..ch as i64 {
            let sy = y + top;
            for x in 0..cw as i64 {
                let sx = x + left;
                let px = if sy >= 0 && sy < rh as i64 && sx >= 0 && sx < rw as i64 {
                    resized.get_pixel(sx as u32, sy as u32).0
                } else {
                    [0, 0, 0]
                };
                let i = (y * cw as i64 + x) as usize;
                for c in 0..3 {
                    out[c * plane + i] = (px[c] as f32 * scale - self.mean[c]) / self.std[c];
                }
            }
        }
        Ok(out)
    }
}

/// transformers' get_resize_output_image_size(default_to_square=False): short side = s, long side
/// = int(s * long / short). Returns (width, height).
pub fn shortest_edge_size(w: u32, h: u32, s: u32) -> (u32, u32) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = ((s as u64 * long as u64) / short.max(1) as u64) as u32;
    if w <= h {
        (s, new_long)
    } else {
        (new_long, s)
    }
}

/// Bits of PIL's fixed-point resampling coefficients for 8-bit images (32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// PIL's resampling kernel for a filter, and its support.
fn pil_kernel(filter: FilterType) -> (fn(f64) -> f64, f64) {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            let p = std::f64::consts::PI * x;
            p.sin() / p
        }
    }
    fn bicubic(x: f64) -> f64 {
        // a = −0.5, as PIL.
        let a = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            (((x - 5.0) * x + 8.0) * x - 4.0) * a
        } else {
            0.0
        }
    }
    fn bilinear(x: f64) -> f64 {
        let x = x.abs();
        if x < 1.0 {
            1.0 - x
        } else {
            0.0
        }
    }
    fn lanczos(x: f64) -> f64 {
        if -3.0 <= x && x < 3.0 {
            sinc(x) * sinc(x / 3.0)
        } else {
            0.0
        }
    }
    fn boxf(x: f64) -> f64 {
        if x > -0.5 && x <= 0.5 {
            1.0
        } else {
            0.0
        }
    }
    fn hamming(x: f64) -> f64 {
        let x = x.abs();
        if x == 0.0 {
            1.0
        } else if x >= 1.0 {
            0.0
        } else {
            sinc(x) * (0.46 + 0.54 * (std::f64::consts::PI * x).cos())
        }
    }
    match filter {
        FilterType::Bilinear => (bilinear, 1.0),
        FilterType::Lanczos3 => (lanczos, 3.0),
        FilterType::Box => (boxf, 0.5),
        FilterType::Hamming => (hamming, 1.0),
        _ => (bicubic, 2.0),
    }
}

/// For each output position: the first input index, the count, and fixed-point weights (PIL's
/// `precompute_coeffs` and `normalize_coeffs_8bpc`).
fn pil_coeffs(in_size: u32, out_size: u32, filter: FilterType) -> Vec<(usize, Vec<i32>)> {
    let (kernel, base_support) = pil_kernel(filter);
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = base_support * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut k: Vec<f64> = (0..n)
                .map(|x| kernel((x as f64 + xmin as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|v| *v /= ww);
            }
            let one = (1u64 << PRECISION_BITS) as f64;
            let fixed = k
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize exactly as Pillow's `Image.resize` (what transformers' image processors call): separable
/// convolution with PIL's kernels and fixed-point coefficients, horizontal pass first into 8-bit
/// rows (only those the vertical pass reads), then vertical. Matching it to the bit matters: the
/// ±1 levels a different resizer's rounding leaves move a small model's scores by 0.01.
pub fn resize_like_pil(img: &RgbImage, w: u32, h: u32, filter: FilterType) -> RgbImage {
    let (iw, ih) = (img.width(), img.height());
    let (w, h) = (w.max(1), h.max(1));
    if iw == w && ih == h {
        return img.clone();
    }
    let src = img.as_raw();
    let vert = (ih != h).then(|| pil_coeffs(ih, h, filter));
    // Rows the vertical pass reads.
    let (row0, row1) = match &vert {
        Some(v) => (
            v.iter().map(|(a, _)| *a).min().unwrap_or(0),
            v.iter()
                .map(|(a, k)| a + k.len())
                .max()
                .unwrap_or(ih as usize),
        ),
        None => (0, ih as usize),
    };
    let rows = row1 - row0;
    let horiz: Vec<u8> = if iw != w {
        let coeffs = pil_coeffs(iw, w, filter);
        let mut out = vec![0u8; rows * w as usize * 3];
        for y in 0..rows {
            let line = &src[(row0 + y) * iw as usize * 3..][..iw as usize * 3];
            let dst = &mut out[y * w as usize * 3..][..w as usize * 3];
            for (xx, (xmin, k)) in coeffs.iter().enumerate() {
                let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                for (i, &c) in k.iter().enumerate() {
                    let p = &line[(xmin + i) * 3..][..3];
                    acc[0] += p[0] as i32 * c;
                    acc[1] += p[1] as i32 * c;
                    acc[2] += p[2] as i32 * c;
                }
                dst[xx * 3] = clip8(acc[0]);
                dst[xx * 3 + 1] = clip8(acc[1]);
                dst[xx * 3 + 2] = clip8(acc[2]);
            }
        }
        out
    } else {
        src[row0 * iw as usize * 3..row1 * iw as usize * 3].to_vec()
    };
    let stride = w as usize * 3;
    let out = match vert {
        Some(coeffs) => {
            let mut out = vec![0u8; h as usize * stride];
            for (yy, (ymin, k)) in coeffs.iter().enumerate() {
                let dst = &mut out[yy * stride..][..stride];
                let mut acc = vec![1i32 << (PRECISION_BITS - 1); stride];
                for (i, &c) in k.iter().enumerate() {
                    let line = &horiz[(ymin - row0 + i) * stride..][..stride];
                    for (a, &p) in acc.iter_mut().zip(line) {
                        *a += p as i32 * c;
                    }
                }
                for (d, a) in dst.iter_mut().zip(acc) {
                    *d = clip8(a);
                }
            }
            out
        }
        None => horiz,
    };
    RgbImage::from_raw(w, h, out).expect("w × h × 3 bytes")
}

/// Resize with a SIMD convolution resizer (Catmull-Rom = PIL's bicubic).
pub fn resize_rgb(img: &RgbImage, w: u32, h: u32, filter: FilterType) -> Result<RgbImage> {
    if img.width() == w && img.height() == h {
        return Ok(img.clone());
    }
    let src = Image::from_vec_u8(
        img.width(),
        img.height(),
        img.as_raw().clone(),
        PixelType::U8x3,
    )
    .map_err(|e| Error::Invalid(format!("resize: {e}")))?;
    let mut dst = Image::new(w.max(1), h.max(1), PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)),
        )
        .map_err(|e| Error::Invalid(format!("resize: {e}")))?;
    RgbImage::from_raw(w.max(1), h.max(1), dst.into_vec())
        .ok_or_else(|| Error::Invalid("resize produced a wrong buffer".into()))
}
