//! Where a library and its models come from when a person does not say: the environment variables
//! both front ends read (`SHOEBOX_LIBRARY`, `SHOEBOX_CLIP_MODEL`, `SHOEBOX_CAPTION_MODEL`,
//! `SHOEBOX_TEXT_MODEL`, `SHOEBOX_QUERY_MODEL`, `SHOEBOX_DEVICE`, `SHOEBOX_PRECISION`) and the built-in defaults. Precedence everywhere: defaults
//! < saved settings (the app) < environment < command-line flags (the CLI).

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::models::caption::DEFAULT_CAPTION_MODEL;
use crate::models::clip::DEFAULT_CLIP_MODEL;
use crate::models::text::DEFAULT_TEXT_MODEL;
use crate::models::{DeviceChoice, Precision};

pub const ENV_LIBRARY: &str = "SHOEBOX_LIBRARY";
pub const ENV_CLIP_MODEL: &str = "SHOEBOX_CLIP_MODEL";
pub const ENV_CAPTION_MODEL: &str = "SHOEBOX_CAPTION_MODEL";
pub const ENV_TEXT_MODEL: &str = "SHOEBOX_TEXT_MODEL";
/// A text encoder trained into the CLIP model's space, for queries in other languages.
pub const ENV_QUERY_MODEL: &str = "SHOEBOX_QUERY_MODEL";
pub const ENV_DEVICE: &str = "SHOEBOX_DEVICE";
/// `f32` or `q8`: how the encoders hold and multiply their weights on the CPU.
pub const ENV_PRECISION: &str = "SHOEBOX_PRECISION";
/// `pair` (a RAW beside a JPEG of the same name is that JPEG's original) or `separate`.
pub const ENV_RAW: &str = "SHOEBOX_RAW";

/// The RAW mode the environment asks for, if any (an unknown value is an error).
pub fn env_raw_mode() -> crate::Result<Option<crate::scan::RawMode>> {
    env(ENV_RAW).map(|v| v.parse()).transpose()
}

/// A variable's value, when set to something other than blanks.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The library folder: `explicit` when given, else `$SHOEBOX_LIBRARY`, else `shoebox` in the
/// platform's data folder (e.g. ~/.local/share/shoebox).
pub fn library_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = explicit.or_else(|| env(ENV_LIBRARY).map(PathBuf::from)) {
        return Ok(d);
    }
    dirs::data_dir()
        .map(|d| d.join("shoebox"))
        .ok_or(Error::NoLibraryFolder)
}

/// Which models a library runs and on what device.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// CLIP model: hub id or local folder.
    pub clip_model: String,
    /// Captioning model (BLIP or ViT-GPT2): hub id or local folder.
    pub caption_model: String,
    /// Sentence encoder (caption tags, hybrid search): hub id or local folder.
    pub text_model: String,
    /// Query encoder for search texts and classify labels (multilingual queries): hub id or local
    /// folder; none: the CLIP model's own text tower.
    pub query_model: Option<String>,
    pub device: DeviceChoice,
    pub precision: Precision,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            clip_model: DEFAULT_CLIP_MODEL.into(),
            caption_model: DEFAULT_CAPTION_MODEL.into(),
            text_model: DEFAULT_TEXT_MODEL.into(),
            query_model: None,
            device: DeviceChoice::Auto,
            precision: Precision::default(),
        }
    }
}

impl ModelOptions {
    /// The defaults with the environment applied.
    pub fn from_env() -> Result<Self> {
        let mut m = ModelOptions::default();
        m.apply_env()?;
        Ok(m)
    }

    /// Let the environment override these (a device name it cannot parse is an error).
    pub fn apply_env(&mut self) -> Result<()> {
        self.apply_env_models();
        if let Some(d) = env_device()? {
            self.device = d;
        }
        if let Some(p) = env_precision()? {
            self.precision = p;
        }
        Ok(())
    }

    /// Let the environment override the models only.
    pub fn apply_env_models(&mut self) {
        if let Some(v) = env(ENV_CLIP_MODEL) {
            self.clip_model = v.trim().to_string();
        }
        if let Some(v) = env(ENV_CAPTION_MODEL) {
            self.caption_model = v.trim().to_string();
        }
        if let Some(v) = env(ENV_TEXT_MODEL) {
            self.text_model = v.trim().to_string();
        }
        if let Some(v) = env(ENV_QUERY_MODEL) {
            self.query_model = Some(v.trim().to_string());
        }
    }
}

/// The precision `$SHOEBOX_PRECISION` names, if set (an unknown name is an error).
pub fn env_precision() -> Result<Option<Precision>> {
    env(ENV_PRECISION).map(|v| v.parse()).transpose()
}

/// The device `$SHOEBOX_DEVICE` names, if set (an unknown name is an error).
pub fn env_device() -> Result<Option<DeviceChoice>> {
    env(ENV_DEVICE).map(|v| v.parse()).transpose()
}
