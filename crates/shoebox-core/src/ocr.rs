//! Text in photos: an image prepared for OCR (grey, small text enlarged, dark backgrounds turned
//! light, small rotations straightened) and read by Tesseract word by word, with confidences.
//!
//! Architecture Invariant: OCR sees the picture as displayed (EXIF orientation applied by the
//! decoder) and never the file; a failure is the photo's, not the run's.

use std::path::PathBuf;

use image::{GrayImage, Luma, RgbImage};
use serde::Serialize;

use crate::error::{Error, Result};

/// Languages read when the user does not say (Tesseract's names joined by '+', e.g. "eng+deu").
pub const DEFAULT_LANGS: &str = "eng";
/// Words read with less confidence (0–100) are kept in the word list but not searched ...
pub const MIN_WORD_CONFIDENCE: f32 = 50.0;
/// ... and a line is text only when it has an anchor: a word of at least 3 letters or digits read
/// with at least this confidence. In the fixtures every printed line has one (real words score
/// 85–97), while Tesseract's "words" in textures, foliage and faces score under 70, but for single
/// marks ("|", "A", "3") at up to 91.
pub const ANCHOR_CONFIDENCE: f32 = 80.0;
/// Pictures are scaled so that their long side is at least this (small text enlarged, up to
/// [`MAX_UPSCALE`]) ...
pub const OCR_MIN_LONG_SIDE: u32 = 2000;
/// ... and at most this (big photos are read faster, and their text is big).
pub const OCR_MAX_LONG_SIDE: u32 = 3600;
pub const MAX_UPSCALE: f32 = 3.0;
/// Rotations straightened: up to this many degrees either way, found in steps of [`SKEW_STEP`].
pub const MAX_SKEW_DEGREES: f32 = 8.0;
pub const SKEW_STEP: f32 = 0.25;
/// The short side the decoder keeps for OCR (JPEGs decode faster at a fraction of full size).
pub const OCR_DECODE_SHORT_SIDE: u32 = 1500;

/// One word Tesseract read, with its confidence (0–100).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub text: String,
    pub conf: f32,
}

/// What OCR read in a picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrText {
    /// The confident words, a line per text line (empty when none).
    pub text: String,
    /// Every word read, confident or not, in reading order.
    pub words: Vec<Word>,
    /// The rotation straightened before reading, degrees.
    pub deskew_degrees: f32,
}

/// Check a Tesseract language list ("eng", "eng+deu", "chi_sim"): names of letters, digits and '_'
/// joined by '+'. Returns it trimmed.
pub fn parse_langs(s: &str) -> Result<String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.split('+').all(|l| {
            !l.is_empty()
                && l.len() <= 32
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !ok {
        return Err(Error::UnknownValue {
            what: "OCR languages",
            value: s.to_string(),
            expected: "Tesseract language names joined by '+', e.g. eng or eng+deu",
        });
    }
    Ok(s.to_string())
}

/// Where Tesseract's language data is: `$TESSDATA_PREFIX`, else the first usual folder that
/// holds any `.traineddata`.
pub fn tessdata_dir() -> Option<PathBuf> {
    let has_data = |d: &PathBuf| {
        std::fs::read_dir(d).is_ok_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".traineddata")))
        })
    };
    if let Some(p) = std::env::var_os("TESSDATA_PREFIX") {
        let p = PathBuf::from(p);
        for d in [p.join("tessdata"), p] {
            if has_data(&d) {
                return Some(d);
            }
        }
    }
    [
        "/usr/share/tesseract-ocr/5/tessdata",
        "/usr/share/tesseract-ocr/4.00/tessdata",
        "/usr/share/tessdata",
        "/usr/local/share/tessdata",
        "/opt/homebrew/share/tessdata",
    ]
    .iter()
    .map(PathBuf::from)
    .find(has_data)
}

/// The languages whose data is installed.
pub fn installed_langs() -> Vec<String> {
    let Some(dir) = tessdata_dir() else {
        return Vec::new();
    };
    let mut langs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let lang = name.strip_suffix(".traineddata")?;
            (lang != "osd").then(|| lang.to_string())
        })
        .collect();
    langs.sort();
    langs
}

/// The picture as Tesseract reads it best: grey, long side in [`OCR_MIN_LONG_SIDE`,
/// `OCR_MAX_LONG_SIDE`] (small pictures enlarged at most [`MAX_UPSCALE`]×), dark text on a light
/// ground, straightened. Returns it and the rotation straightened (degrees).
pub fn prepare(img: &RgbImage) -> (GrayImage, f32) {
    let mut gray = image::DynamicImage::ImageRgb8(img.clone()).into_luma8();
    let (w, h) = gray.dimensions();
    let long = w.max(h).max(1) as f32;
    let scale = if long < OCR_MIN_LONG_SIDE as f32 {
        (OCR_MIN_LONG_SIDE as f32 / long).min(MAX_UPSCALE)
    } else if long > OCR_MAX_LONG_SIDE as f32 {
        OCR_MAX_LONG_SIDE as f32 / long
    } else {
        1.0
    };
    if (scale - 1.0).abs() > 0.02 {
        let nw = ((w as f32 * scale).round() as u32).max(1);
        let nh = ((h as f32 * scale).round() as u32).max(1);
        let filter = if scale > 1.0 {
            image::imageops::FilterType::CatmullRom
        } else {
            image::imageops::FilterType::Triangle
        };
        gray = image::imageops::resize(&gray, nw, nh, filter);
    }
    // Dark mode screenshots, signs with light letters: Tesseract reads dark on light best.
    if mean(&gray) < 110.0 {
        image::imageops::invert(&mut gray);
    }
    let angle = estimate_skew(&gray);
    if angle.abs() >= 0.5 {
        gray = rotate(&gray, angle);
    }
    (gray, angle)
}

fn mean(g: &GrayImage) -> f32 {
    let n = g.as_raw().len().max(1);
    g.as_raw().iter().map(|&v| v as u64).sum::<u64>() as f32 / n as f32
}

/// Otsu's threshold of a grey picture.
fn otsu(g: &GrayImage) -> u8 {
    let mut hist = [0u64; 256];
    for &v in g.as_raw() {
        hist[v as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0u64, 0f64, -1f64, 127u8);
    for t in 0..256 {
        w0 += hist[t];
        if w0 == 0 {
            continue;
        }
        let w1 = total - w0;
        if w1 == 0 {
            break;
        }
        sum0 += t as f64 * hist[t] as f64;
        let m0 = sum0 / w0 as f64;
        let m1 = (sum_all - sum0) / w1 as f64;
        let between = w0 as f64 * w1 as f64 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

/// The slope of text lines, degrees (positive: lines fall to the right, as y grows downwards):
/// the angle whose projection profile of dark pixels is sharpest. 0 when the picture has too
/// little or too much ink to tell, or no angle is clearly better than none.
pub fn estimate_skew(g: &GrayImage) -> f32 {
    let (w, h) = g.dimensions();
    let long = w.max(h);
    let small = if long > 800 {
        let s = 800.0 / long as f32;
        image::imageops::thumbnail(
            g,
            ((w as f32 * s) as u32).max(1),
            ((h as f32 * s) as u32).max(1),
        )
    } else {
        g.clone()
    };
    let t = otsu(&small);
    let (sw, sh) = small.dimensions();
    let ink: Vec<(f32, f32)> = small
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] <= t)
        .map(|(x, y, _)| (x as f32 - sw as f32 / 2.0, y as f32 - sh as f32 / 2.0))
        .collect();
    let n = (sw * sh) as usize;
    if ink.len() < 200 || ink.len() > n / 2 {
        return 0.0;
    }
    let bins = (sw + sh) as usize + 2;
    let offset = bins as f32 / 2.0;
    let sharpness = |deg: f32| -> f64 {
        let (s, c) = deg.to_radians().sin_cos();
        let mut profile = vec![0u32; bins];
        for &(x, y) in &ink {
            let r = (y * c - x * s + offset) as usize;
            profile[r.min(bins - 1)] += 1;
        }
        profile.iter().map(|&v| (v as f64) * (v as f64)).sum()
    };
    let level = sharpness(0.0);
    let steps = (MAX_SKEW_DEGREES / SKEW_STEP) as i32;
    let (mut best, mut best_deg) = (level, 0.0f32);
    for i in -steps..=steps {
        let deg = i as f32 * SKEW_STEP;
        let v = sharpness(deg);
        if v > best {
            best = v;
            best_deg = deg;
        }
    }
    // A page of text straightened is much sharper than skewed; noise is not.
    if best < level * 1.05 {
        0.0
    } else {
        best_deg
    }
}

/// Rotate by `deg` about the centre so lines of slope `deg` become level (bilinear; the corners
/// filled white).
pub fn rotate(g: &GrayImage, deg: f32) -> GrayImage {
    let (w, h) = g.dimensions();
    let (s, c) = deg.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = GrayImage::from_pixel(w, h, Luma([255]));
    for (xo, yo, px) in out.enumerate_pixels_mut() {
        let (dx, dy) = (xo as f32 + 0.5 - cx, yo as f32 + 0.5 - cy);
        let xi = dx * c - dy * s + cx - 0.5;
        let yi = dx * s + dy * c + cy - 0.5;
        if xi < 0.0 || yi < 0.0 || xi > (w - 1) as f32 || yi > (h - 1) as f32 {
            continue;
        }
        let (x0, y0) = (xi.floor() as u32, yi.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (xi - x0 as f32, yi - y0 as f32);
        let at = |x: u32, y: u32| g.get_pixel(x, y).0[0] as f32;
        let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
        let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
        px.0[0] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Words and lines from Tesseract's TSV output (level 5 rows are words: page, block, paragraph,
/// line, word, box, confidence, text). The text keeps the lines with an anchor word
/// ([`ANCHOR_CONFIDENCE`]) and, in them, the words with letters or digits read with at least
/// [`MIN_WORD_CONFIDENCE`].
pub fn parse_tsv(tsv: &str) -> (String, Vec<Word>) {
    let mut words = Vec::new();
    let mut lines: Vec<((u32, u32, u32, u32), Vec<Word>)> = Vec::new();
    for row in tsv.lines() {
        let f: Vec<&str> = row.splitn(12, '\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let text = f[11].trim();
        let Ok(conf) = f[10].parse::<f32>() else {
            continue;
        };
        if text.is_empty() || conf < 0.0 {
            continue;
        }
        let word = Word {
            text: text.to_string(),
            conf,
        };
        words.push(word.clone());
        if conf < MIN_WORD_CONFIDENCE || !text.chars().any(char::is_alphanumeric) {
            continue;
        }
        let key = (
            f[1].parse().unwrap_or(0),
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[4].parse().unwrap_or(0),
        );
        match lines.last_mut() {
            Some((k, ws)) if *k == key => ws.push(word),
            _ => lines.push((key, vec![word])),
        }
    }
    let anchored = |ws: &[Word]| {
        ws.iter().any(|w| {
            w.conf >= ANCHOR_CONFIDENCE
                && w.text.chars().filter(|c| c.is_alphanumeric()).count() >= 3
        })
    };
    let text = lines
        .into_iter()
        .filter(|(_, ws)| anchored(ws))
        .map(|(_, ws)| {
            ws.iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    (text, words)
}

/// A Tesseract reader for one set of languages. Not shared between threads: make one per thread.
pub struct OcrEngine {
    langs: String,
    #[cfg(feature = "ocr")]
    tess: Option<tesseract::Tesseract>,
}

impl OcrEngine {
    /// Start Tesseract for `langs` ("eng", "eng+deu"). A language without installed data is an
    /// error naming the package to install.
    pub fn new(langs: &str) -> Result<Self> {
        let langs = parse_langs(langs)?;
        let mut engine = OcrEngine {
            langs,
            #[cfg(feature = "ocr")]
            tess: None,
        };
        engine.start()?;
        Ok(engine)
    }

    pub fn langs(&self) -> &str {
        &self.langs
    }

    #[cfg(not(feature = "ocr"))]
    fn start(&mut self) -> Result<()> {
        Err(Error::Ocr(
            "this build has no OCR (built without the `ocr` feature, which needs Tesseract)".into(),
        ))
    }

    #[cfg(feature = "ocr")]
    fn start(&mut self) -> Result<()> {
        let Some(dir) = tessdata_dir() else {
            return Err(Error::Ocr(
                "Tesseract's language data is not installed (Debian/Ubuntu: apt install \
                 tesseract-ocr-eng; or set TESSDATA_PREFIX)"
                    .into(),
            ));
        };
        for l in self.langs.split('+') {
            if !dir.join(format!("{l}.traineddata")).is_file() {
                return Err(Error::Ocr(format!(
                    "no Tesseract data for language '{l}' in {} (Debian/Ubuntu: apt install \
                     tesseract-ocr-{}; installed: {})",
                    dir.display(),
                    l.replace('_', "-").to_lowercase(),
                    installed_langs().join(", ")
                )));
            }
        }
        let dir_str = dir.to_string_lossy().into_owned();
        let tess = tesseract::Tesseract::new(Some(&dir_str), Some(&self.langs))
            .map_err(|e| Error::Ocr(format!("cannot start Tesseract ({}): {e}", self.langs)))?;
        // Quiet: no "Estimating resolution" lines on stderr.
        let mut tess = tess
            .set_variable("debug_file", "/dev/null")
            .map_err(|e| Error::Ocr(format!("cannot configure Tesseract: {e}")))?;
        // The API's default is one uniform block of text (the command line's is automatic): a
        // heading on a coloured band, a sign in a photo or a screenshot's sidebar would be lost.
        tess.set_page_seg_mode(tesseract::PageSegMode::PsmAuto);
        self.tess = Some(tess);
        Ok(())
    }

    /// Read the text in a picture (upright, as displayed).
    #[cfg(feature = "ocr")]
    pub fn read(&mut self, img: &RgbImage) -> Result<OcrText> {
        one_openmp_thread();
        let (gray, deskew_degrees) = prepare(img);
        let (w, h) = gray.dimensions();
        if self.tess.is_none() {
            self.start()?;
        }
        // The binding's calls consume the reader; one that fails is dropped and started again
        // for the next picture.
        let tess = self.tess.take().expect("started above");
        let mut tess = tess
            .set_frame(gray.as_raw(), w as i32, h as i32, 1, w as i32)
            .map_err(|e| Error::Ocr(format!("cannot give Tesseract the picture: {e}")))?
            .set_source_resolution(300)
            .recognize()
            .map_err(|e| Error::Ocr(format!("Tesseract could not read the picture: {e}")))?;
        let tsv = tess
            .get_tsv_text(0)
            .map_err(|e| Error::Ocr(format!("Tesseract gave no text: {e}")))?;
        self.tess = Some(tess);
        let (text, words) = parse_tsv(&tsv);
        Ok(OcrText {
            text,
            words,
            deskew_degrees,
        })
    }

    #[cfg(not(feature = "ocr"))]
    pub fn read(&mut self, _img: &RgbImage) -> Result<OcrText> {
        self.start().map(|_| OcrText::default())
    }
}

/// Tesseract runs its loops on OpenMP where it was built so (Debian's is). OpenMP's worker threads
/// spin while they wait: beside decoders, other readers or another program they cost several times
/// what they save (a photo took 5.7 s instead of 1.1 s here with one other busy process). So each
/// reader asks for one thread in the thread it runs in, and Shoebox runs several readers instead.
/// Looked up at run time: a Tesseract without OpenMP leaves nothing to ask.
#[cfg(feature = "ocr")]
fn one_openmp_thread() {
    #[cfg(unix)]
    // SAFETY: dlsym with a NUL-terminated name; the symbol, when the process has it, is OpenMP's
    // `void omp_set_num_threads(int)`, which only sets the calling thread's team size.
    unsafe {
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"omp_set_num_threads".as_ptr());
        if !sym.is_null() {
            let set: extern "C" fn(libc::c_int) = std::mem::transmute(sym);
            set(1);
        }
    }
}

/// How many readers to run at once for `work` photos: one per core, at most 4.
pub fn readers(work: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
        .min(work)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dark bars of slope `deg` (lines of "text") on white.
    fn lines_at(deg: f32) -> GrayImage {
        let t = deg.to_radians().tan();
        GrayImage::from_fn(600, 400, |x, y| {
            let y0 = y as f32 - x as f32 * t;
            let in_bar = (y0 - 40.0).rem_euclid(30.0) < 8.0 && (60..540).contains(&x);
            Luma([if in_bar { 20 } else { 240 }])
        })
    }

    #[test]
    fn skew_is_found_and_straightened() {
        for deg in [-5.0f32, -2.0, 0.0, 3.0, 6.5] {
            let g = lines_at(deg);
            let found = estimate_skew(&g);
            assert!((found - deg).abs() <= 0.5, "{deg}° found as {found}°");
            let level = estimate_skew(&rotate(&g, found));
            assert!(level.abs() <= 0.5, "{deg}° left {level}° after rotating");
        }
        // Noise has no lines to straighten.
        let mut seed = 7u32;
        let noise = GrayImage::from_fn(300, 300, |_, _| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            Luma([if (seed >> 16) % 10 == 0 { 0 } else { 255 }])
        });
        assert_eq!(estimate_skew(&noise), 0.0);
    }

    #[test]
    fn prepared_pictures_are_grey_light_and_big_enough() {
        let dark = RgbImage::from_pixel(400, 300, image::Rgb([10, 10, 30]));
        let (g, _) = prepare(&dark);
        assert_eq!(
            g.dimensions(),
            (1200, 900),
            "small pictures enlarged at most 3×"
        );
        assert!(mean(&g) > 200.0, "dark grounds inverted");
        let big = RgbImage::from_pixel(7200, 100, image::Rgb([250, 250, 250]));
        assert_eq!(prepare(&big).0.width(), OCR_MAX_LONG_SIDE);
    }

    #[test]
    fn tsv_words_and_lines() {
        let tsv = "1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t96.5\tACME\n\
                   5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t91\tHARDWARE\n\
                   5\t1\t1\t1\t2\t1\t0\t0\t10\t10\t88\tTotal\n\
                   5\t1\t1\t1\t2\t2\t0\t0\t10\t10\t12\t~~\n\
                   5\t1\t1\t1\t2\t3\t0\t0\t10\t10\t77\t4.50\n\
                   5\t1\t1\t1\t3\t1\t0\t0\t10\t10\t91\t|\n\
                   5\t1\t1\t1\t3\t2\t0\t0\t10\t10\t88\tA\n\
                   5\t1\t1\t1\t3\t3\t0\t0\t10\t10\t64\tRSee\n";
        let (text, words) = parse_tsv(tsv);
        // The third line has no anchor: marks and a doubtful word are texture, not text.
        assert_eq!(text, "ACME HARDWARE\nTotal 4.50");
        assert_eq!(words.len(), 8);
        assert_eq!(
            words[3],
            Word {
                text: "~~".into(),
                conf: 12.0
            }
        );
    }

    #[test]
    fn languages_are_checked() {
        assert_eq!(parse_langs(" eng+deu ").unwrap(), "eng+deu");
        assert_eq!(parse_langs("chi_sim").unwrap(), "chi_sim");
        for bad in ["", "eng+", "../x", "eng deu"] {
            assert!(parse_langs(bad).is_err(), "{bad:?}");
        }
    }
}
