//! Decode: read an image file once, hash it, read its EXIF, and decode it upright at the smallest size
//! the model can use (DCT-scaled JPEG decode), with limits against decompression bombs.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits, RgbImage};

/// Largest image (in pixels, before any reduced-size decode) Shoebox agrees to decode.
pub const MAX_PIXELS: u64 = 200_000_000;
/// Largest allocation a non-JPEG decoder may make.
pub const MAX_ALLOC: u64 = 1 << 30;

/// What reading a file taught about it: size, time, content hash, displayed dimensions, EXIF facts
/// (what the catalog stores for a photo).
#[derive(Debug, Clone, Default)]
pub struct PhotoMeta {
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub orientation: Option<u16>,
    pub taken_at: Option<String>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
}

/// A decoded, upright image plus what was learned about the file.
pub struct Decoded {
    pub image: RgbImage,
    pub meta: PhotoMeta,
}

/// EXIF facts Shoebox keeps.
#[derive(Debug, Default, Clone)]
pub struct ExifInfo {
    pub orientation: Option<u16>,
    pub taken_at: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
}

fn ascii_field(exif: &exif::Exif, tag: exif::Tag) -> Option<String> {
    let f = exif.get_field(tag, exif::In::PRIMARY)?;
    match &f.value {
        exif::Value::Ascii(v) => {
            let s: String = v
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let s = s
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string();
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    }
}

/// Read the EXIF block of a file's bytes (JPEG, TIFF, PNG, WebP, HEIF). Missing or broken EXIF is no error.
pub fn read_exif(bytes: &[u8]) -> ExifInfo {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return ExifInfo::default();
    };
    let orientation = exif
        .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u16::try_from(v).ok())
        .filter(|v| (1..=8).contains(v));
    let taken_at = ascii_field(&exif, exif::Tag::DateTimeOriginal)
        .or_else(|| ascii_field(&exif, exif::Tag::DateTimeDigitized))
        .or_else(|| ascii_field(&exif, exif::Tag::DateTime))
        .and_then(|s| parse_exif_datetime(&s));
    ExifInfo {
        orientation,
        taken_at,
        make: ascii_field(&exif, exif::Tag::Make),
        model: ascii_field(&exif, exif::Tag::Model),
    }
}

/// "2021:07:04 18:30:00" → "2021-07-04T18:30:00"; None for zeros or junk.
pub fn parse_exif_datetime(s: &str) -> Option<String> {
    let dt = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y:%m:%d %H:%M:%S").ok()?;
    Some(dt.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn orient(img: DynamicImage, orientation: Option<u16>) -> DynamicImage {
    let mut img = img;
    if let Some(o) = orientation
        .and_then(|o| u8::try_from(o).ok())
        .and_then(image::metadata::Orientation::from_exif)
    {
        img.apply_orientation(o);
    }
    img
}

fn swaps_axes(orientation: Option<u16>) -> bool {
    matches!(orientation, Some(5..=8))
}

/// Decode a JPEG with DCT scaling so its short side stays ≥ `min_short` (when it was that large).
/// Returns the image and the full-size dimensions. None when the JPEG needs the generic path (CMYK).
fn decode_jpeg_scaled(
    bytes: &[u8],
    min_short: u32,
) -> Result<Option<(DynamicImage, u32, u32)>, String> {
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info()
        .map_err(|e| format!("not a readable JPEG: {e}"))?;
    let info = dec.info().ok_or("not a readable JPEG: no header")?;
    let (w, h) = (info.width as u32, info.height as u32);
    if w == 0 || h == 0 {
        return Err("JPEG has zero width or height".into());
    }
    if (w as u64) * (h as u64) > MAX_PIXELS {
        return Err(format!(
            "image is {w}×{h}, over the {MAX_PIXELS}-pixel limit"
        ));
    }
    if info.pixel_format == jpeg_decoder::PixelFormat::CMYK32 {
        return Ok(None);
    }
    let short = w.min(h);
    if min_short > 0 && short > min_short {
        // Ask for the size that keeps the short side at min_short; the decoder picks the
        // smallest DCT scale (1/8 … 1) at least that large.
        let f = min_short as f64 / short as f64;
        let rw = ((w as f64 * f).ceil() as u32).clamp(1, u16::MAX as u32) as u16;
        let rh = ((h as f64 * f).ceil() as u32).clamp(1, u16::MAX as u32) as u16;
        dec.scale(rw, rh).map_err(|e| format!("JPEG scale: {e}"))?;
    }
    let pixels = dec.decode().map_err(|e| format!("corrupt JPEG: {e}"))?;
    let info = dec.info().ok_or("corrupt JPEG")?;
    let (ow, oh) = (info.width as u32, info.height as u32);
    let img = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            RgbImage::from_raw(ow, oh, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(ow, oh, pixels).map(DynamicImage::ImageLuma8)
        }
        jpeg_decoder::PixelFormat::L16 => {
            let px: Vec<u16> = pixels
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(ow, oh, px)
                .map(DynamicImage::ImageLuma16)
        }
        jpeg_decoder::PixelFormat::CMYK32 => return Ok(None),
    }
    .ok_or("corrupt JPEG: truncated pixel data")?;
    Ok(Some((img, w, h)))
}

fn decode_generic(bytes: &[u8]) -> Result<(DynamicImage, u32, u32), String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("not an image (unrecognized format)".into());
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    limits.max_image_width = Some(65_535);
    limits.max_image_height = Some(65_535);
    reader.limits(limits);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("cannot read image header: {e}"))?;
    if (w as u64) * (h as u64) > MAX_PIXELS {
        return Err(format!(
            "image is {w}×{h}, over the {MAX_PIXELS}-pixel limit"
        ));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => format!("image too large to decode safely: {l}"),
        other => format!("corrupt or unsupported image: {other}"),
    })?;
    Ok((img, w, h))
}

/// Decode image bytes upright. `min_short` is the smallest short side the caller needs (0 = full size).
/// Returns the upright image and EXIF facts; `meta.width/height` are the full displayed dimensions.
pub fn decode_bytes(bytes: &[u8], min_short: u32) -> Result<(RgbImage, PhotoMeta), String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    let exif = read_exif(bytes);
    let is_jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    let scaled = if is_jpeg {
        // jpeg-decoder panics on some malformed headers: contain it as a decode error.
        std::panic::catch_unwind(|| decode_jpeg_scaled(bytes, min_short))
            .map_err(|_| "malformed JPEG (decoder gave up)".to_string())??
    } else {
        None
    };
    let (img, w, h) = match scaled {
        Some(x) => x,
        None => decode_generic(bytes)?,
    };
    let img = orient(img, exif.orientation);
    let (dw, dh) = if swaps_axes(exif.orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let meta = PhotoMeta {
        size: bytes.len() as u64,
        width: dw,
        height: dh,
        orientation: exif.orientation,
        taken_at: exif.taken_at,
        camera_make: exif.make,
        camera_model: exif.model,
        ..PhotoMeta::default()
    };
    Ok((img.into_rgb8(), meta))
}

/// Read, hash and decode a file. Errors are human-readable reasons.
pub fn decode_file(path: &Path, min_short: u32) -> Result<Decoded, String> {
    let md = std::fs::metadata(path).map_err(|e| read_reason(&e))?;
    let bytes = std::fs::read(path).map_err(|e| read_reason(&e))?;
    let (image, mut meta) = decode_bytes(&bytes, min_short)?;
    meta.hash = blake3::hash(&bytes).as_bytes().to_vec();
    meta.mtime_ns = crate::files::mtime_ns(&md).unwrap_or(0);
    Ok(Decoded { image, meta })
}

fn read_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file vanished before it could be read".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => format!("cannot read: {e}"),
    }
}
