//! Decode: read an image file once, hash it, read its EXIF, and decode it upright at the smallest size
//! the model can use (DCT-scaled JPEG decode), with limits against decompression bombs.

use std::io::{Cursor, Read};
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits, RgbImage};

/// Largest image (in pixels, before any reduced-size decode) Shoebox agrees to decode.
pub const MAX_PIXELS: u64 = 200_000_000;
/// Largest allocation a decoder of a whole image may make (formats other than JPEG and PNG, and
/// JPEGs decoded near full size). Larger PNGs are decoded row by row instead.
pub const MAX_ALLOC: u64 = 256 << 20;
/// Largest file Shoebox reads as a photo.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// PNGs over this many pixels are decoded row by row, reduced on the fly, never whole.
const PNG_STREAM_PIXELS: u64 = 16_000_000;
/// Memory all decodes running at once may hold (workers, thumbnails, the app's photo view,
/// captions): a decode waits for its share rather than pushing the process past it.
pub const DECODE_BUDGET: u64 = 512 << 20;

/// The process-wide budget of decode memory (see [`DECODE_BUDGET`]).
static BUDGET: (std::sync::Mutex<u64>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A share of the decode budget, returned when dropped.
pub(crate) struct Permit(u64);

impl Permit {
    /// Wait until `bytes` fit in the budget (alone, anything within the decoders' limits fits).
    pub(crate) fn take(bytes: u64) -> Permit {
        let bytes = bytes.min(DECODE_BUDGET);
        let (lock, cv) = &BUDGET;
        let mut used = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && *used + bytes > DECODE_BUDGET {
            used = cv.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += bytes;
        Permit(bytes)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (lock, cv) = &BUDGET;
        let mut used = lock.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.0;
        cv.notify_all();
    }
}

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
    /// EXIF GPS position (latitude, longitude in decimal degrees).
    pub gps: Option<(f64, f64)>,
    /// EXIF time zone offset of `taken_at` ('+01:00'), when the camera wrote one.
    pub taken_offset: Option<String>,
    /// Perceptual hash of the picture (the pipeline computes it; see `duplicates::phash`).
    pub phash: Option<Vec<u8>>,
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
    pub gps: Option<(f64, f64)>,
    pub taken_offset: Option<String>,
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

/// Read the EXIF block of a file's bytes (JPEG, TIFF, PNG, WebP, HEIF). Missing or broken EXIF is no
/// error; what could be read of a damaged block (an odd IFD link, say) is kept.
pub fn read_exif(bytes: &[u8]) -> ExifInfo {
    let exif = match exif::Reader::new()
        .continue_on_error(true)
        .read_from_container(&mut Cursor::new(bytes))
    {
        Ok(exif) => exif,
        Err(exif::Error::PartialResult(partial)) => partial.into_inner().0,
        Err(_) => return ExifInfo::default(),
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
    let taken_offset = ascii_field(&exif, exif::Tag::OffsetTimeOriginal)
        .or_else(|| ascii_field(&exif, exif::Tag::OffsetTime))
        .filter(|o| parse_offset(o).is_some());
    ExifInfo {
        orientation,
        taken_at,
        make: ascii_field(&exif, exif::Tag::Make),
        model: ascii_field(&exif, exif::Tag::Model),
        gps: gps_position(&exif),
        taken_offset,
    }
}

/// One GPS coordinate from EXIF's degrees, minutes and seconds (numerator, denominator) and its
/// reference ('S' and 'W' are negative). Every reader of EXIF GPS (this file's, RAW metadata's)
/// goes through here.
pub(crate) fn gps_degrees(dms: &[(u32, u32)], reference: Option<&str>) -> Option<f64> {
    let mut deg = 0.0;
    for (i, (n, d)) in dms.iter().take(3).enumerate() {
        if *d == 0 {
            return None;
        }
        deg += *n as f64 / *d as f64 / [1.0, 60.0, 3600.0][i];
    }
    let sign = match reference.map(str::trim) {
        Some("S") | Some("W") => -1.0,
        Some("N") | Some("E") | None => 1.0,
        Some(_) => return None,
    };
    Some(sign * deg)
}

/// A position worth keeping: a real one, and not the (0, 0) a camera without a fix often writes.
pub(crate) fn gps_fix(lat: f64, lon: f64) -> Option<(f64, f64)> {
    (crate::places::valid_position(lat, lon) && (lat, lon) != (0.0, 0.0)).then_some((lat, lon))
}

fn gps_coordinate(exif: &exif::Exif, value: exif::Tag, reference: exif::Tag) -> Option<f64> {
    let f = exif.get_field(value, exif::In::PRIMARY)?;
    let exif::Value::Rational(parts) = &f.value else {
        return None;
    };
    let dms: Vec<(u32, u32)> = parts.iter().map(|r| (r.num, r.denom)).collect();
    gps_degrees(&dms, ascii_field(exif, reference).as_deref())
}

fn gps_position(exif: &exif::Exif) -> Option<(f64, f64)> {
    let lat = gps_coordinate(exif, exif::Tag::GPSLatitude, exif::Tag::GPSLatitudeRef)?;
    let lon = gps_coordinate(exif, exif::Tag::GPSLongitude, exif::Tag::GPSLongitudeRef)?;
    gps_fix(lat, lon)
}

/// '+01:00' → minutes east of UTC; None for junk.
pub fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

/// The EXIF block of a file, read from its first 4 MiB (where JPEG, TIFF and HEIF keep it); None
/// when the file cannot be read.
pub fn read_file_exif(path: &std::path::Path) -> Option<ExifInfo> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(4 << 20)
        .read_to_end(&mut head)
        .ok()?;
    // A panic in the EXIF parser costs this file's position, never the run.
    std::panic::catch_unwind(|| read_exif(&head)).ok()
}

/// "2021:07:04 18:30:00" → "2021-07-04T18:30:00"; None for zeros or junk.
pub fn parse_exif_datetime(s: &str) -> Option<String> {
    let dt = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y:%m:%d %H:%M:%S").ok()?;
    Some(dt.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn orient(img: DynamicImage, orientation: Option<u16>) -> DynamicImage {
    let mut img = img;
    if let (DynamicImage::ImageRgb8(rgb), Some(o @ 5..=8)) = (&img, orientation) {
        return DynamicImage::ImageRgb8(turn_rgb(rgb, o));
    }
    if let Some(o) = orientation
        .and_then(|o| u8::try_from(o).ok())
        .and_then(image::metadata::Orientation::from_exif)
    {
        img.apply_orientation(o);
    }
    img
}

/// An RGB picture turned by an EXIF orientation that swaps its axes (5–8), in tiles that stay in
/// cache (image's pixel-by-pixel rotation cost a tenth of a camera JPEG's decode; most phone
/// photos are stored turned).
fn turn_rgb(src: &RgbImage, orientation: u16) -> RgbImage {
    const TILE: u32 = 32;
    let (w, h) = src.dimensions();
    // Where source pixel (x, y) goes in the h × w result.
    let to = |x: u32, y: u32| -> (u32, u32) {
        match orientation {
            5 => (y, x),                 // transpose
            6 => (h - 1 - y, x),         // 90° clockwise
            7 => (h - 1 - y, w - 1 - x), // transverse
            _ => (y, w - 1 - x),         // 8: 90° counter-clockwise
        }
    };
    let mut out = RgbImage::new(h, w);
    let (sp, dp) = (src.as_raw(), &mut *out);
    for ty in (0..h).step_by(TILE as usize) {
        for tx in (0..w).step_by(TILE as usize) {
            for y in ty..(ty + TILE).min(h) {
                for x in tx..(tx + TILE).min(w) {
                    let (dx, dy) = to(x, y);
                    let s = ((y * w + x) * 3) as usize;
                    let d = ((dy * h + dx) * 3) as usize;
                    dp[d..d + 3].copy_from_slice(&sp[s..s + 3]);
                }
            }
        }
    }
    out
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
    dec.set_max_decoding_buffer_size(MAX_ALLOC as usize);
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
    let (sw, sh) = dec
        .info()
        .map(|i| (i.width as u64, i.height as u64))
        .unwrap_or((w as u64, h as u64));
    let out_bytes = sw * sh * info.pixel_format.pixel_bytes() as u64;
    if out_bytes > MAX_ALLOC {
        return Err(format!(
            "image is {w}×{h}: too large to decode safely at {sw}×{sh}"
        ));
    }
    let _permit = Permit::take(out_bytes);
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
    // Up to 8 bytes a pixel (16-bit RGBA) while decoding, the limit caps the rest.
    let _permit = Permit::take((w as u64 * h as u64 * 8).min(MAX_ALLOC));
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => format!("image too large to decode safely: {l}"),
        other => format!("corrupt or unsupported image: {other}"),
    })?;
    Ok((img, w, h))
}

/// Decode a large PNG row by row, averaging `k`×`k` blocks on the fly so that the short side stays
/// ≥ `min_short` (or the result stays under [`PNG_STREAM_PIXELS`] when the caller wants full
/// size): memory is a few rows and the result, whatever the PNG claims. None: not a PNG worth it.
fn decode_png_streamed(
    bytes: &[u8],
    min_short: u32,
) -> Result<Option<(DynamicImage, u32, u32)>, String> {
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    let (w, h) = match dec.read_header_info() {
        Ok(info) => (info.width, info.height),
        Err(e) => return Err(format!("not a readable PNG: {e}")),
    };
    let pixels = w as u64 * h as u64;
    if pixels <= PNG_STREAM_PIXELS {
        return Ok(None);
    }
    if pixels > MAX_PIXELS {
        return Err(format!(
            "image is {w}×{h}, over the {MAX_PIXELS}-pixel limit"
        ));
    }
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    if reader.info().interlaced {
        return Err(format!(
            "interlaced PNG of {w}×{h}: too large to decode safely"
        ));
    }
    let channels = match reader.output_color_type().0 {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("PNG palette could not be expanded".into()),
    };
    let short = w.min(h).max(1);
    let mut k = if min_short == 0 {
        1
    } else {
        (short / min_short).max(1)
    };
    while (w.div_ceil(k) as u64) * (h.div_ceil(k) as u64) > PNG_STREAM_PIXELS {
        k += 1;
    }
    let (ow, oh) = (w.div_ceil(k), h.div_ceil(k));
    let mut out = Vec::with_capacity(ow as usize * oh as usize * 3);
    let mut acc = vec![0u32; ow as usize * 3];
    let mut counts = vec![0u32; ow as usize];
    let mut y = 0u32;
    while let Some(row) = reader.next_row().map_err(|e| format!("corrupt PNG: {e}"))? {
        let data = row.data();
        for x in 0..w as usize {
            let p = &data[x * channels..x * channels + channels];
            let rgb = match channels {
                1 | 2 => [p[0], p[0], p[0]],
                _ => [p[0], p[1], p[2]],
            };
            let o = x / k as usize;
            for c in 0..3 {
                acc[o * 3 + c] += rgb[c] as u32;
            }
            counts[o] += 1;
        }
        y += 1;
        if y % k == 0 || y == h {
            for (o, n) in counts.iter_mut().enumerate() {
                for c in 0..3 {
                    out.push((acc[o * 3 + c] as f32 / (*n).max(1) as f32).round() as u8);
                    acc[o * 3 + c] = 0;
                }
                *n = 0;
            }
        }
    }
    if y != h {
        return Err(format!("truncated PNG: {y} of {h} rows"));
    }
    let img = RgbImage::from_raw(ow, oh, out).ok_or("corrupt PNG: wrong row count")?;
    Ok(Some((DynamicImage::ImageRgb8(img), w, h)))
}

/// An RGB image from any decoded image; RGBA is compacted in place, never copied whole.
fn into_rgb8(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(rgba) => {
            let (w, h) = rgba.dimensions();
            let mut raw = rgba.into_raw();
            let n = w as usize * h as usize;
            for i in 0..n {
                raw.copy_within(i * 4..i * 4 + 3, i * 3);
            }
            raw.truncate(n * 3);
            RgbImage::from_raw(w, h, raw).expect("3 bytes a pixel")
        }
        other => other.into_rgb8(),
    }
}

/// Decode image bytes upright. `min_short` is the smallest short side the caller needs (0 = full size).
/// Returns the upright image and EXIF facts; `meta.width/height` are the full displayed dimensions.
pub fn decode_bytes(bytes: &[u8], min_short: u32) -> Result<(RgbImage, PhotoMeta), String> {
    decode_bytes_as(bytes, None, min_short)
}

/// [`decode_bytes`] for a file with extension `ext` (lower case), which is what tells a camera RAW
/// (most are TIFF inside) from a plain TIFF. HEIC/HEIF/AVIF are recognized by their content.
pub fn decode_bytes_as(
    bytes: &[u8],
    ext: Option<&str>,
    min_short: u32,
) -> Result<(RgbImage, PhotoMeta), String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    if ext.is_some_and(crate::formats::is_raw_ext) {
        let raw = crate::formats::decode_raw(bytes)?;
        let (w, h) = (raw.image.width(), raw.image.height());
        return Ok(upright(raw.image, w, h, raw.exif, bytes.len()));
    }
    let heif = crate::formats::is_heif(bytes);
    let mut exif = read_exif(bytes);
    let is_jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    let is_png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
    let scaled = if is_jpeg {
        decode_jpeg_scaled(bytes, min_short)?
    } else if is_png {
        decode_png_streamed(bytes, min_short)?
    } else {
        None
    };
    let (img, w, h) = match scaled {
        Some(x) => x,
        None if heif => {
            // libheif turns the picture upright itself (the file's irot/imir boxes).
            exif.orientation = None;
            crate::formats::decode_heif(bytes)?
        }
        None => decode_generic(bytes)?,
    };
    Ok(upright(img, w, h, exif, bytes.len()))
}

/// The picture turned upright by its EXIF orientation, with what the catalog keeps about it.
fn upright(
    img: DynamicImage,
    w: u32,
    h: u32,
    exif: ExifInfo,
    size: usize,
) -> (RgbImage, PhotoMeta) {
    let img = orient(img, exif.orientation);
    let (dw, dh) = if swaps_axes(exif.orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let meta = PhotoMeta {
        size: size as u64,
        width: dw,
        height: dh,
        orientation: exif.orientation,
        taken_at: exif.taken_at,
        gps: exif.gps,
        taken_offset: exif.taken_offset,
        camera_make: exif.make,
        camera_model: exif.model,
        ..PhotoMeta::default()
    };
    (into_rgb8(img), meta)
}

/// Read, hash and decode a file. Errors are human-readable reasons. Every decode of a file in
/// Shoebox (indexing, thumbnails, the photo view, captions, drag-in) comes through here: the size
/// cap, the decoders' limits, the shared memory budget and panic containment apply to all.
pub fn decode_file(path: &Path, min_short: u32) -> Result<Decoded, String> {
    decode_file_as(path, extension(path).as_deref(), min_short)
}

/// A path's extension, lower case.
pub fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// [`decode_file`] for a path that does not carry the file's extension (an open file reached
/// through `/proc/self/fd/N`): `ext` is the extension of its real name (lower case), which tells a
/// camera RAW from a TIFF.
pub fn decode_file_as(path: &Path, ext: Option<&str>, min_short: u32) -> Result<Decoded, String> {
    let md = std::fs::metadata(path).map_err(|e| read_reason(&e))?;
    if md.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file is {} MB, over the {} MB limit for photos",
            md.len() >> 20,
            MAX_FILE_BYTES >> 20
        ));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| read_reason(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err("file grew past the size limit while being read".into());
    }
    // A panic in a decoder costs this file, never the run (or the app).
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_bytes_as(&bytes, ext, min_short)
    }))
    .unwrap_or_else(|_| Err("the decoder crashed on this file".into()));
    let (image, mut meta) = decoded?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turning_matches_image_s_orientation() {
        let img = RgbImage::from_fn(70, 45, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, (x * y % 251) as u8])
        });
        for o in 5..=8u16 {
            let ours = orient(DynamicImage::ImageRgb8(img.clone()), Some(o)).to_rgb8();
            let mut theirs = DynamicImage::ImageRgb8(img.clone());
            theirs.apply_orientation(
                image::metadata::Orientation::from_exif(o as u8).expect("5..=8"),
            );
            assert_eq!(ours, theirs.to_rgb8(), "orientation {o}");
        }
    }

    #[test]
    fn decodes_wait_for_their_share_of_the_budget() {
        let first = Permit::take(DECODE_BUDGET / 2 + 1);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let p = Permit::take(DECODE_BUDGET / 2 + 1);
            tx.send(()).unwrap();
            drop(p);
        });
        // Both halves do not fit: the second waits …
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(first);
        // … until the first is returned.
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        waiter.join().unwrap();
        // Alone, anything fits (the decoders' own limits bound it).
        drop(Permit::take(DECODE_BUDGET * 4));
    }
}
