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
                resize_rgb(img, w, h, self.filter)?
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
