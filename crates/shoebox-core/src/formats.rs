//! Camera and phone formats beyond what the `image` crate reads: HEIC/HEIF and AVIF through
//! libheif (Debian's, through the libheif-rs binding; feature `heif`), and camera RAW through rawler
//! (the camera's own full-size JPEG preview when the file has one, else demosaiced). Each checks
//! the picture's size against the decode limits before it allocates, and reads capture time,
//! camera and GPS from the file's own metadata.

use image::DynamicImage;

use crate::decode::{ExifInfo, Permit, MAX_ALLOC, MAX_PIXELS};

/// RAW file extensions Shoebox reads (lower case).
pub const RAW_EXTENSIONS: &[&str] = &[
    "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "pef",
    "srw", "erf", "kdc", "mos", "mrw", "iiq", "3fr", "mef",
];

/// HEIF-family extensions (lower case).
pub const HEIF_EXTENSIONS: &[&str] = &["heic", "heif", "hif", "avif"];

/// Whether an extension (lower case) names a camera RAW format.
pub fn is_raw_ext(ext: &str) -> bool {
    RAW_EXTENSIONS.contains(&ext)
}

/// Whether the bytes are an ISO-BMFF still image libheif decodes (HEIC, HEIF, AVIF) by their
/// `ftyp` brand. Canon's CR3 is ISO-BMFF too, with its own brand: not this.
pub fn is_heif(bytes: &[u8]) -> bool {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    matches!(
        &bytes[8..12],
        b"heic"
            | b"heix"
            | b"hevc"
            | b"hevx"
            | b"heim"
            | b"heis"
            | b"mif1"
            | b"msf1"
            | b"avif"
            | b"avis"
            | b"mif2"
    )
}

fn check_pixels(what: &str, w: u64, h: u64) -> Result<(), String> {
    if w == 0 || h == 0 {
        return Err(format!("{what}: the image has no pixels ({w}×{h})"));
    }
    if w * h > MAX_PIXELS {
        return Err(format!(
            "{what} image is {w}×{h}, over the {MAX_PIXELS}-pixel limit"
        ));
    }
    Ok(())
}

/// Decode a HEIC/HEIF/AVIF file upright (libheif applies the file's rotation and mirroring itself).
#[cfg(feature = "heif")]
pub fn decode_heif(bytes: &[u8]) -> Result<(DynamicImage, u32, u32), String> {
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};
    let lib = LibHeif::new();
    let ctx = HeifContext::read_from_bytes(bytes)
        .map_err(|e| format!("corrupt or unsupported HEIF/AVIF file: {}", e.message))?;
    let handle = ctx
        .primary_image_handle()
        .map_err(|e| format!("HEIF/AVIF file without a primary image: {}", e.message))?;
    let (w, h) = (handle.width(), handle.height());
    check_pixels("HEIF/AVIF", w as u64, h as u64)?;
    let _permit = Permit::take((w as u64 * h as u64 * 4).min(MAX_ALLOC));
    let img = lib
        .decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None)
        .map_err(|e| {
            let m = e.message;
            if m.to_ascii_lowercase().contains("no decoding plugin")
                || m.to_ascii_lowercase().contains("unsupported codec")
            {
                format!(
                    "cannot decode this HEIF/AVIF file: the codec is missing from libheif ({m})"
                )
            } else {
                format!("corrupt or unsupported HEIF/AVIF file: {m}")
            }
        })?;
    let plane = img
        .planes()
        .interleaved
        .ok_or("HEIF/AVIF decoder returned no RGB plane")?;
    let (pw, ph, stride) = (plane.width, plane.height, plane.stride);
    let row = pw as usize * 3;
    let mut rgb = Vec::with_capacity(row * ph as usize);
    for y in 0..ph as usize {
        let start = y * stride;
        rgb.extend_from_slice(
            plane
                .data
                .get(start..start + row)
                .ok_or("HEIF/AVIF decoder returned a short plane")?,
        );
    }
    let img = image::RgbImage::from_raw(pw, ph, rgb).ok_or("HEIF/AVIF plane of the wrong size")?;
    Ok((DynamicImage::ImageRgb8(img), pw, ph))
}

/// Without libheif: say what is missing.
#[cfg(not(feature = "heif"))]
pub fn decode_heif(_bytes: &[u8]) -> Result<(DynamicImage, u32, u32), String> {
    Err("HEIC/HEIF/AVIF needs libheif, which this build of Shoebox lacks (feature `heif`)".into())
}

/// A RAW file decoded: its picture (the embedded full-size preview when there is one, else
/// demosaiced), the camera's dimensions, and what its metadata says.
pub struct RawPicture {
    pub image: DynamicImage,
    pub exif: ExifInfo,
}

fn raw_gps(g: &rawler::exif::ExifGPS) -> Option<(f64, f64)> {
    let degrees = |v: &Option<[rawler::formats::tiff::Rational; 3]>, r: &Option<String>| {
        let dms: Vec<(u32, u32)> = v.as_ref()?.iter().map(|x| (x.n, x.d)).collect();
        crate::decode::gps_degrees(&dms, r.as_deref())
    };
    crate::decode::gps_fix(
        degrees(&g.gps_latitude, &g.gps_latitude_ref)?,
        degrees(&g.gps_longitude, &g.gps_longitude_ref)?,
    )
}

fn raw_exif(md: &rawler::decoders::RawMetadata) -> ExifInfo {
    let e = &md.exif;
    let gps = e.gps.as_ref().and_then(raw_gps);
    let nonempty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    ExifInfo {
        orientation: e.orientation.filter(|o| (1..=8).contains(o)),
        taken_at: e
            .date_time_original
            .as_deref()
            .or(e.create_date.as_deref())
            .and_then(crate::decode::parse_exif_datetime),
        make: nonempty(&md.make),
        model: nonempty(&md.model),
        gps,
        taken_offset: e
            .offset_time_original
            .clone()
            .or_else(|| e.offset_time.clone())
            .filter(|o| crate::decode::parse_offset(o).is_some()),
    }
}

/// Decode a camera RAW file: the camera's own full-size JPEG preview when it has one (fast, and the
/// camera's rendering), else the sensor data demosaiced. The picture is as stored (not yet turned
/// upright): `exif.orientation` says how to turn it.
pub fn decode_raw(bytes: &[u8]) -> Result<RawPicture, String> {
    use rawler::decoders::RawDecodeParams;
    use rawler::rawsource::RawSource;
    let src = RawSource::new_from_slice(bytes);
    let decoder = rawler::get_decoder(&src)
        .map_err(|e| format!("not a RAW file this version can read, or a damaged one: {e}"))?;
    let params = RawDecodeParams::default();
    let exif = decoder
        .raw_metadata(&src, &params)
        .map(|md| raw_exif(&md))
        .unwrap_or_default();
    if let Ok(Some(preview)) = decoder.full_image(&src, &params) {
        let (w, h) = (preview.width(), preview.height());
        check_pixels("RAW preview", w as u64, h as u64)?;
        if w >= 640 || h >= 640 {
            return Ok(RawPicture {
                image: preview,
                exif,
            });
        }
    }
    let raw = decoder
        .raw_image(&src, &params, false)
        .map_err(|e| format!("damaged RAW file: {e}"))?;
    check_pixels("RAW", raw.width as u64, raw.height as u64)?;
    let _permit = Permit::take((raw.width as u64 * raw.height as u64 * 16).min(MAX_ALLOC));
    let developed = rawler::imgop::develop::RawDevelop::default()
        .develop_intermediate(&raw)
        .map_err(|e| format!("cannot develop this RAW file: {e}"))?
        .to_dynamic_image()
        .ok_or("cannot develop this RAW file")?;
    Ok(RawPicture {
        image: developed,
        exif,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heif_brands_are_recognized() {
        let mut b = vec![0, 0, 0, 24];
        b.extend_from_slice(b"ftypheic");
        b.extend_from_slice(&[0; 12]);
        assert!(is_heif(&b));
        b[8..12].copy_from_slice(b"avif");
        assert!(is_heif(&b));
        b[8..12].copy_from_slice(b"crx ");
        assert!(!is_heif(&b), "Canon CR3 is RAW");
        assert!(!is_heif(b"\xFF\xD8\xFF"));
        assert!(is_raw_ext("nef") && is_raw_ext("dng") && !is_raw_ext("jpg"));
    }

    #[test]
    fn broken_raw_is_a_reason_not_a_panic() {
        let mut tiff = b"II*\x00\x08\x00\x00\x00".to_vec();
        tiff.extend_from_slice(&[0xFF; 64]);
        assert!(decode_raw(&tiff).is_err());
        assert!(decode_raw(b"").is_err());
    }
}
