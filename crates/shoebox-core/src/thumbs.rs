//! Thumbnails, display images and photo details for viewers (the desktop app's grid and photo view):
//! made by the engine from the same upright decode as indexing (EXIF orientation applied), thumbnails
//! cached on disk in the library folder (`thumbs/`).
//!
//! The engine does not decide who may see which file: `Library::is_photo` tells a viewer whether a
//! path is a library photo, and the viewer keeps its own list of other files the user handed it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::tags::Tag;

/// Thumbnails are this many pixels on their short side (JPEG).
pub const THUMB_SIZE: u32 = 256;
/// Long side cap of a thumbnail (panoramas).
const THUMB_MAX_LONG: u32 = 4 * THUMB_SIZE;
/// JPEG quality of thumbnails and rendered display images.
const JPEG_QUALITY: u8 = 85;
/// Bumped when the thumbnail recipe changes, so old cache entries are not used.
const RECIPE: &str = "thumb-v1";
/// Originals larger than this are rendered down for display instead of being served as is.
const MAX_SERVED_ORIGINAL: u64 = 48 << 20;

/// An encoded image and its MIME type.
#[derive(Debug, Clone)]
pub struct ImageBytes {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
}

/// The thumbnail cache folder of a library.
pub fn thumbs_dir(libdir: &Path) -> PathBuf {
    libdir.join("thumbs")
}

/// The MIME type of a file a web view can show as is, by extension.
pub fn web_mime(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => return None,
    })
}

fn decode_error(path: &Path, reason: String) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        reason,
    }
}

/// Where the thumbnail of `path` (as it is now: size and mtime) lives in the cache.
pub(crate) fn cache_path(libdir: &Path, path: &Path) -> Result<PathBuf> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = crate::files::mtime_ns(&md).unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(RECIPE.as_bytes());
    h.update(path.as_os_str().as_encoded_bytes());
    h.update(&md.len().to_le_bytes());
    h.update(&mtime.to_le_bytes());
    let hex = h.finalize().to_hex();
    Ok(thumbs_dir(libdir)
        .join(&hex[..2])
        .join(format!("{}.jpg", &hex[2..32])))
}

fn encode_jpeg(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(img)
        .map_err(|e| Error::Invalid(format!("cannot encode a JPEG: {e}")))?;
    Ok(out)
}

/// Scale so the short side is at most `short` and the long side at most `long` (never up).
fn fit(img: image::RgbImage, short: u32, long: u32) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let s = (short as f64 / w.min(h).max(1) as f64).min(long as f64 / w.max(h).max(1) as f64);
    if s >= 1.0 {
        return img;
    }
    let nw = ((w as f64 * s).round() as u32).max(1);
    let nh = ((h as f64 * s).round() as u32).max(1);
    image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle)
}

/// Render a thumbnail of any image file: upright, [`THUMB_SIZE`] px on its short side, JPEG.
pub fn render_thumbnail(path: &Path) -> Result<Vec<u8>> {
    let d = decode_file(path, THUMB_SIZE).map_err(|r| decode_error(path, r))?;
    encode_jpeg(&fit(d.image, THUMB_SIZE, THUMB_MAX_LONG))
}

/// The cached thumbnail file of an image, made (and cached under `libdir/thumbs/`) when missing or
/// when the file changed since. Works for any image file, in the library or not.
pub fn thumbnail(libdir: &Path, path: &Path) -> Result<PathBuf> {
    let cached = cache_path(libdir, path)?;
    if cached.is_file() {
        return Ok(cached);
    }
    let bytes = render_thumbnail(path)?;
    let dir = cached.parent().expect("cache paths have a folder");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Write then rename: a reader never sees half a thumbnail, and two writers both succeed.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(&bytes).map_err(|e| Error::io(dir, e))?;
    tmp.persist(&cached)
        .map_err(|e| Error::io(&cached, e.error))?;
    Ok(cached)
}

/// The image a viewer shows full size: the original bytes when a web view can show them (it applies
/// EXIF orientation itself), else an upright JPEG rendered with its long side at most `max_side`.
pub fn display_image(path: &Path, max_side: u32) -> Result<ImageBytes> {
    display_image_as(path, crate::decode::extension(path).as_deref(), max_side)
}

/// [`display_image`] of a file reached by a path without its extension (`/proc/self/fd/N`):
/// `ext` is its real name's, so a camera RAW is rendered as one.
pub fn display_image_as(path: &Path, ext: Option<&str>, max_side: u32) -> Result<ImageBytes> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if let Some(mime) = web_mime(path) {
        if md.len() <= MAX_SERVED_ORIGINAL {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            return Ok(ImageBytes { bytes, mime });
        }
    }
    let d = crate::decode::decode_file_as(path, ext, max_side / 2)
        .map_err(|r| decode_error(path, r))?;
    Ok(ImageBytes {
        bytes: encode_jpeg(&fit(d.image, max_side, max_side))?,
        mime: "image/jpeg",
    })
}

/// Everything the photo view shows about a library photo.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoDetails {
    pub path: String,
    pub name: String,
    /// The folder the file is in.
    pub folder: String,
    pub size_bytes: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// EXIF capture time, when the file has one.
    pub taken_at: Option<String>,
    /// The date search filters and sorts by: capture time, else file time.
    pub date: String,
    /// Time zone offset of `taken_at` ('+01:00'), when the camera wrote one.
    pub taken_offset: Option<String>,
    /// Where it was taken (from its GPS position), when known.
    pub place: Option<crate::places::PlaceInfo>,
    /// Camera make and model, when known.
    pub camera: Option<String>,
    /// The camera RAW file shot with this JPEG (same folder and name), when there is one.
    pub original: Option<String>,
    /// The caption from the configured captioning model, once made.
    pub caption: Option<String>,
    pub tags: Vec<Tag>,
    /// The text read in it (OCR), when any was found.
    pub text: Option<String>,
}

/// What [`Library::prune_thumbnails`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Thumbnails of current library photos, kept.
    pub kept: usize,
    /// Thumbnails of files that are gone, changed since, or not in the library (dropped files).
    pub removed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32) {
        let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x % 256) as u8, 40, 90]));
        img.save(path).unwrap();
    }

    #[test]
    fn thumbnails_are_small_upright_cached_and_follow_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("lib");
        let photo = tmp.path().join("wide.png");
        write_png(&photo, 1200, 600);
        let t = thumbnail(&lib, &photo).unwrap();
        assert!(t.starts_with(thumbs_dir(&lib)));
        let img = image::open(&t).unwrap();
        assert_eq!((img.width(), img.height()), (512, 256));
        // Cached: the same file again gives the same thumbnail without rendering.
        let mtime = std::fs::metadata(&t).unwrap().modified().unwrap();
        assert_eq!(thumbnail(&lib, &photo).unwrap(), t);
        assert_eq!(std::fs::metadata(&t).unwrap().modified().unwrap(), mtime);
        // A changed file gets a new thumbnail.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_png(&photo, 300, 900);
        let t2 = thumbnail(&lib, &photo).unwrap();
        assert_ne!(t2, t);
        let img = image::open(&t2).unwrap();
        assert_eq!((img.width(), img.height()), (256, 768));
        // Small images are not enlarged.
        write_png(&photo, 100, 50);
        let img = image::open(thumbnail(&lib, &photo).unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (100, 50));
    }

    #[test]
    fn broken_files_are_decode_errors_and_display_serves_originals() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.jpg");
        std::fs::write(&bad, b"not a jpeg").unwrap();
        let e = thumbnail(tmp.path(), &bad).unwrap_err();
        assert_eq!(e.code(), "decode");
        let png = tmp.path().join("a.png");
        write_png(&png, 64, 32);
        let d = display_image(&png, 2048).unwrap();
        assert_eq!(d.mime, "image/png");
        assert_eq!(d.bytes, std::fs::read(&png).unwrap());
        let tif = tmp.path().join("a.tif");
        image::RgbImage::from_pixel(64, 32, image::Rgb([1, 2, 3]))
            .save(&tif)
            .unwrap();
        let d = display_image(&tif, 2048).unwrap();
        assert_eq!(d.mime, "image/jpeg");
        assert_eq!(image::load_from_memory(&d.bytes).unwrap().width(), 64);
    }
}
