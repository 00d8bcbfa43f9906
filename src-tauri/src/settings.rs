//! App settings: the library folder and models come from the same environment variables as the CLI,
//! read by the engine (`shoebox_core::options`); what the user saves in the Settings view is kept in
//! the library folder (`app-settings.json`). Precedence: built-in defaults < saved settings <
//! environment.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoebox_core::library::{OcrMode, OcrOptions, ENV_OCR, ENV_OCR_LANGS};
use shoebox_core::models::{DeviceChoice, Precision};
use shoebox_core::options::{self, ModelOptions};
use shoebox_core::scan::RawMode;
use shoebox_core::LibraryOptions;

use crate::error::{ApiError, ApiResult};

/// What the Settings view edits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    /// CLIP model: hub id or local folder.
    pub clip_model: String,
    /// Captioning model (BLIP or ViT-GPT2): hub id or local folder.
    pub caption_model: String,
    /// Sentence encoder (caption tags, hybrid search): hub id or local folder.
    pub text_model: String,
    /// Query encoder trained into the CLIP model's space (multilingual queries): hub id or local
    /// folder; empty: the CLIP model's own text tower.
    pub query_model: String,
    /// auto, cpu, cuda or metal.
    pub device: String,
    /// f32 or q8 (int8 encoders on the CPU). `SHOEBOX_PRECISION` overrides it.
    pub precision: String,
    /// Caption photos in the background while the app is open.
    pub background_captions: bool,
    /// A RAW file beside a JPEG of the same name is a photo of its own (otherwise the JPEG is the
    /// photo and the RAW its original). `SHOEBOX_RAW` overrides it.
    pub raw_separate: bool,
    /// Which photos' text is read in the background: off, likely (those likely to hold text) or
    /// all. `SHOEBOX_OCR` overrides it.
    pub ocr: String,
    /// Tesseract languages joined by '+'. `SHOEBOX_OCR_LANGS` overrides it.
    pub ocr_langs: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_models(&ModelOptions::default(), false, false)
    }
}

/// The library folder: `$SHOEBOX_LIBRARY`, else the platform data dir (as the CLI).
pub fn library_dir_from_env() -> ApiResult<PathBuf> {
    Ok(options::library_dir(None)?)
}

/// Where saved settings live.
pub fn settings_file(libdir: &Path) -> PathBuf {
    libdir.join("app-settings.json")
}

impl Settings {
    /// Defaults, then the saved file, then the environment.
    pub fn load(libdir: &Path) -> Settings {
        let saved = std::fs::read_to_string(settings_file(libdir))
            .ok()
            .and_then(|t| serde_json::from_str::<Settings>(&t).ok())
            .unwrap_or_default();
        let mut m = saved.models();
        if let Err(e) = m.apply_env() {
            log::warn!("ignoring the environment's model settings: {e}");
            return saved;
        }
        let raw_separate = match options::env_raw_mode() {
            Ok(Some(mode)) => mode == RawMode::Separate,
            Ok(None) => saved.raw_separate,
            Err(e) => {
                log::warn!("ignoring SHOEBOX_RAW: {e}");
                saved.raw_separate
            }
        };
        let mut s = Settings::from_models(&m, saved.background_captions, raw_separate);
        s.ocr = saved.ocr.clone();
        s.ocr_langs = saved.ocr_langs.clone();
        if let Some(v) = options::env(ENV_OCR) {
            s.ocr = v.trim().to_ascii_lowercase();
        }
        if let Some(v) = options::env(ENV_OCR_LANGS) {
            s.ocr_langs = v.trim().to_string();
        }
        s
    }

    /// The OCR options these settings name (unknown values: the defaults).
    pub fn ocr_options(&self) -> OcrOptions {
        let d = OcrOptions::default();
        OcrOptions {
            mode: self.ocr.parse().unwrap_or(d.mode),
            langs: shoebox_core::ocr::parse_langs(&self.ocr_langs).unwrap_or(d.langs),
            ..d
        }
    }

    fn from_models(m: &ModelOptions, background_captions: bool, raw_separate: bool) -> Settings {
        Settings {
            clip_model: m.clip_model.clone(),
            caption_model: m.caption_model.clone(),
            text_model: m.text_model.clone(),
            query_model: m.query_model.clone().unwrap_or_default(),
            device: m.device.as_str().into(),
            precision: m.precision.as_str().into(),
            background_captions,
            raw_separate,
            ocr: OcrMode::default().as_str().into(),
            ocr_langs: shoebox_core::ocr::DEFAULT_LANGS.into(),
        }
    }

    /// What a RAW file beside a JPEG of the same name is.
    pub fn raw_mode(&self) -> RawMode {
        if self.raw_separate {
            RawMode::Separate
        } else {
            RawMode::Pair
        }
    }

    /// The engine's model options these settings name (an unknown device: auto).
    fn models(&self) -> ModelOptions {
        ModelOptions {
            clip_model: self.clip_model.trim().to_string(),
            caption_model: self.caption_model.trim().to_string(),
            text_model: self.text_model.trim().to_string(),
            query_model: Some(self.query_model.trim().to_string()).filter(|q| !q.is_empty()),
            device: self.device.parse().unwrap_or_default(),
            precision: self.precision.parse().unwrap_or_default(),
        }
    }

    /// Check values a person typed.
    pub fn validate(&self) -> ApiResult<()> {
        self.device.parse::<DeviceChoice>()?;
        self.precision.parse::<Precision>()?;
        self.ocr.parse::<OcrMode>()?;
        shoebox_core::ocr::parse_langs(&self.ocr_langs)?;
        for (what, v) in [
            ("CLIP model", &self.clip_model),
            ("caption model", &self.caption_model),
            ("text model", &self.text_model),
        ] {
            if v.trim().is_empty() {
                return Err(ApiError::new(
                    "invalid",
                    format!("the {what} cannot be empty: give a hub id or a model folder"),
                ));
            }
        }
        Ok(())
    }

    /// Write the settings file (atomically).
    pub fn save(&self, libdir: &Path) -> ApiResult<()> {
        std::fs::create_dir_all(libdir)
            .map_err(|e| ApiError::new("io", format!("{}: {e}", libdir.display())))?;
        let path = settings_file(libdir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("settings serialize");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| ApiError::new("io", format!("{}: {e}", path.display())))
    }

    /// How to open the library with these settings.
    pub fn library_options(&self, libdir: &Path) -> LibraryOptions {
        let m = self.models();
        LibraryOptions {
            dir: libdir.to_path_buf(),
            clip_model: m.clip_model,
            caption_model: m.caption_model,
            text_model: m.text_model,
            query_model: m.query_model,
            device: m.device,
            precision: m.precision,
            downloads: Default::default(),
        }
    }
}
