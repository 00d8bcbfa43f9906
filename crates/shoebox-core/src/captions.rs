//! Captioning: any image file on demand (no library needed), and a library's photos as a
//! background job — resumable (the catalog records each caption as it is made) and interruptible.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::files::display_path;
use crate::models::caption::{
    Caption, CaptionOptions, Captioner, CAPTION_CONFIG_FILES, CAPTION_FILES,
};
use crate::models::hub::{self, DownloadProgress};
use crate::models::{DeviceChoice, Precision};

/// One file's caption (the `caption --json` element shape).
#[derive(Debug, Clone, Serialize)]
pub struct FileCaption {
    pub path: String,
    pub caption: String,
    pub model: String,
    pub took_ms: f64,
}

/// Progress of library captioning, reported after every photo.
#[derive(Debug, Clone, Copy)]
pub struct CaptionProgress {
    pub total: usize,
    pub done: usize,
    pub captioned: usize,
    pub failed: usize,
}

/// What a library captioning run did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CaptionReport {
    pub total: usize,
    pub captioned: usize,
    pub failed: usize,
    pub interrupted: bool,
    pub seconds: f64,
}

/// Resolve (fetching on first use) and load a captioning model.
pub fn load_captioner(
    spec: &str,
    device: DeviceChoice,
    precision: Precision,
    progress: &DownloadProgress,
) -> Result<Captioner> {
    let dir = if hub::is_local(spec) {
        let dir = hub::resolve(spec, CAPTION_CONFIG_FILES, progress)?;
        if !dir.file("model.safetensors").is_file() && !dir.file("model.gguf").is_file() {
            return Err(Error::ModelUnavailable(format!(
                "{} has neither model.safetensors nor model.gguf",
                dir.dir.display()
            )));
        }
        dir
    } else {
        hub::resolve(spec, CAPTION_FILES, progress)?
    };
    Captioner::load_with(&dir, &device.device()?, precision)
}

/// Make a quantized copy of a BLIP captioner: `dest` gets its config, tokenizer and processor files
/// and a `model.gguf` (matrices in `qtype`, e.g. q8_0). Returns (quantized, kept f32) tensor counts.
pub fn quantize_captioner(
    spec: &str,
    dest: &Path,
    qtype: &str,
    progress: &DownloadProgress,
) -> Result<(usize, usize)> {
    let dtype = crate::models::weights::parse_qtype(qtype)?;
    let dir = hub::resolve(spec, CAPTION_FILES, progress)?;
    let cfg = std::fs::read_to_string(dir.file("config.json"))
        .map_err(|e| Error::io(dir.file("config.json"), e))?;
    if !cfg.contains("\"blip\"") {
        return Err(Error::Invalid(format!(
            "{spec}: only BLIP captioners can be quantized (config.json model_type \"blip\")"
        )));
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for f in CAPTION_CONFIG_FILES
        .iter()
        .chain(&["generation_config.json", "tokenizer_config.json"])
    {
        let from = dir.file(f);
        if from.is_file() {
            std::fs::copy(&from, dest.join(f)).map_err(|e| Error::io(&from, e))?;
        }
    }
    crate::models::weights::quantize_safetensors(
        &dir.file("model.safetensors"),
        &dest.join("model.gguf"),
        dtype,
    )
}

/// Read and decode an image file (any format Shoebox decodes, EXIF orientation applied, at the size
/// the captioner needs) and caption it: the model sees only the pixels.
pub fn caption_image_file(cap: &Captioner, path: &Path, opts: &CaptionOptions) -> Result<Caption> {
    let d = decode_file(path, cap.decode_short_side()).map_err(|reason| Error::Decode {
        path: path.to_path_buf(),
        reason,
    })?;
    cap.caption_image(&d.image, opts)
}

/// Caption one image file, in the library or not.
pub fn caption_file(cap: &Captioner, path: &Path, opts: &CaptionOptions) -> Result<FileCaption> {
    let start = Instant::now();
    let c = caption_image_file(cap, path, opts)?;
    Ok(FileCaption {
        path: display_path(path),
        caption: c.text,
        model: cap.name().to_string(),
        took_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}
