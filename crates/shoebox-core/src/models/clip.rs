//! Image–text models on candle: load a Hugging Face CLIP, OpenCLIP or SigLIP folder (config.json
//! → [`ImageTextConfig`], safetensors with every tensor checked, tokenizer.json,
//! preprocessor_config.json) and embed images and texts as L2-normalized vectors in one space.
//!
//! The two towers load separately, on first use: a search needs only the text tower (about 40 % of
//! ViT-B/32's weights), indexing mostly the vision tower.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::batch::{pixel_batch, tokenize, tokenize_padded};
use super::checked::checked_var_builder;
use super::hub::ModelDir;
use super::preprocess::ImageProcessor;
use super::towers::{
    Activation, ClipText, ClipVision, EosPooling, SiglipText, SiglipVision, StackConfig,
    VisionGeometry,
};
use super::Precision;
use crate::error::{Error, Result};

/// The files a CLIP model folder must hold.
pub const CLIP_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "preprocessor_config.json",
    "model.safetensors",
];

/// The default model: OpenAI's ViT-B/32.
pub const DEFAULT_CLIP_MODEL: &str = "openai/clip-vit-base-patch32";

/// Which family an image–text folder belongs to (config.json's `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI CLIP and OpenCLIP checkpoints in transformers' CLIPModel format.
    Clip,
    /// SigLIP and the fixed-resolution SigLIP 2 checkpoints (transformers' SiglipModel).
    Siglip,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Clip => "clip",
            Family::Siglip => "siglip",
        }
    }
}

/// One tower's fields of config.json; what is absent takes the family's default.
#[derive(Debug, Default, Deserialize)]
struct TowerJson {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    eos_token_id: Option<u32>,
    pad_token_id: Option<u32>,
    projection_size: Option<usize>,
    num_channels: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    vision_use_head: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ConfigJson {
    model_type: Option<String>,
    #[serde(default)]
    text_config: TowerJson,
    #[serde(default)]
    vision_config: TowerJson,
    projection_dim: Option<usize>,
    logit_scale_init_value: Option<f32>,
}

/// An image–text model's architecture, read from its config.json.
#[derive(Debug, Clone)]
pub struct ImageTextConfig {
    pub family: Family,
    pub text: StackConfig,
    pub vision: StackConfig,
    pub vocab: usize,
    /// Text positions: the longest input (CLIP truncates to it, SigLIP pads to it).
    pub positions: usize,
    pub geometry: VisionGeometry,
    /// Embedding dimension.
    pub dim: usize,
    /// CLIP: where the text tower pools.
    pub pooling: EosPooling,
    /// SigLIP: the id texts are padded with, to `positions`.
    pub pad_id: u32,
    pub logit_scale_init: f32,
}

impl ImageTextConfig {
    /// Parse config.json; a family or a setting Shoebox does not compute exactly is refused with
    /// the reason.
    pub fn parse(json: &str) -> Result<Self> {
        let c: ConfigJson =
            serde_json::from_str(json).map_err(|e| Error::Model(format!("config.json: {e}")))?;
        let family =
            match c.model_type.as_deref() {
                None | Some("clip") => Family::Clip,
                Some("siglip") => Family::Siglip,
                Some("siglip2") => return Err(Error::Model(
                    "config.json: model_type \"siglip2\" is SigLIP 2's NaFlex variant (any aspect \
                     ratio, patch count chosen per image), which Shoebox does not run; the \
                     fixed-resolution SigLIP 2 checkpoints (e.g. google/siglip2-base-patch16-224) \
                     are SiglipModel folders and load"
                        .into(),
                )),
                Some(other) => {
                    return Err(Error::Model(format!(
                    "config.json: model_type \"{other}\" is not an image–text model Shoebox runs \
                     (clip, siglip)"
                )))
                }
            };
        let (t, v) = (&c.text_config, &c.vision_config);
        let clip = family == Family::Clip;
        let (act_default, eps_default) = if clip {
            ("quick_gelu", 1e-5)
        } else {
            ("gelu_pytorch_tanh", 1e-6)
        };
        let stack = |part: &str, j: &TowerJson, hidden: usize, inter: usize, heads: usize| {
            let s = StackConfig {
                hidden: j.hidden_size.unwrap_or(hidden),
                intermediate: j.intermediate_size.unwrap_or(inter),
                layers: j.num_hidden_layers.unwrap_or(12),
                heads: j.num_attention_heads.unwrap_or(heads),
                act: Activation::parse(part, j.hidden_act.as_deref().unwrap_or(act_default))?,
                eps: j.layer_norm_eps.unwrap_or(eps_default),
                precision: Precision::F32,
            };
            s.check(part)?;
            Ok::<_, Error>(s)
        };
        let text = if clip {
            stack("text_config", t, 512, 2048, 8)?
        } else {
            stack("text_config", t, 768, 3072, 12)?
        };
        let vision = stack("vision_config", v, 768, 3072, 12)?;
        let geometry = VisionGeometry {
            channels: v.num_channels.unwrap_or(3),
            image_size: v.image_size.unwrap_or(224),
            patch: v.patch_size.unwrap_or(if clip { 32 } else { 16 }),
        };
        if geometry.patch == 0 || geometry.image_size % geometry.patch != 0 {
            return Err(Error::Model(format!(
                "vision_config: image_size {} is not a multiple of patch_size {}",
                geometry.image_size, geometry.patch
            )));
        }
        let dim = if clip {
            c.projection_dim.unwrap_or(512)
        } else {
            if v.vision_use_head == Some(false) {
                return Err(Error::Model(
                    "vision_config.vision_use_head is false: this SigLIP has no pooling head, so \
                     it gives no image embedding"
                        .into(),
                ));
            }
            let text_out = t.projection_size.unwrap_or(text.hidden);
            if text_out != vision.hidden {
                return Err(Error::Model(format!(
                    "text embeddings have {text_out} dimensions but image embeddings {}",
                    vision.hidden
                )));
            }
            vision.hidden
        };
        Ok(ImageTextConfig {
            family,
            text,
            vision,
            vocab: t.vocab_size.unwrap_or(if clip { 49408 } else { 32000 }),
            positions: t
                .max_position_embeddings
                .unwrap_or(if clip { 77 } else { 64 }),
            geometry,
            dim,
            pooling: match t.eos_token_id {
                None | Some(2) => EosPooling::Argmax,
                Some(id) => EosPooling::First(id),
            },
            pad_id: t.pad_token_id.unwrap_or(1),
            logit_scale_init: c.logit_scale_init_value.unwrap_or(2.6592),
        })
    }

    /// The text tower, from `vb` at the model's root.
    pub fn text_tower(&self, vb: VarBuilder) -> candle_core::Result<Tower> {
        Ok(match self.family {
            Family::Clip => Box::new(ClipText::new(
                &self.text,
                self.vocab,
                self.positions,
                self.dim,
                self.pooling,
                vb,
            )?),
            Family::Siglip => Box::new(SiglipText::new(
                &self.text,
                self.vocab,
                self.positions,
                self.dim,
                vb,
            )?),
        })
    }

    /// The vision tower, from `vb` at the model's root.
    pub fn vision_tower(&self, vb: VarBuilder) -> candle_core::Result<Tower> {
        Ok(match self.family {
            Family::Clip => Box::new(ClipVision::new(&self.vision, self.geometry, self.dim, vb)?),
            Family::Siglip => Box::new(SiglipVision::new(&self.vision, self.geometry, vb)?),
        })
    }
}

/// A tower: input (token ids or pixel values) → one unnormalized embedding per row.
pub type Tower = Box<dyn Module + Send + Sync>;

/// An image–text model (CLIP, OpenCLIP, SigLIP) with its tokenizer and image processor; each
/// tower's weights load on first use.
pub struct Clip {
    name: String,
    weights: PathBuf,
    config: ImageTextConfig,
    text: OnceLock<Tower>,
    vision: OnceLock<Tower>,
    tokenizer: Tokenizer,
    processor: ImageProcessor,
    device: Device,
    logit_scale: f32,
    logit_bias: f32,
    canon: Canon,
    /// SigLIP: padding goes before the text.
    pad_left: bool,
}

/// What a family's tokenizer does to a text before its tokenizer.json sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canon {
    /// Nothing (CLIP's tokenizer.json lower-cases and cleans itself).
    None,
    /// Lower case (SigLIP 2 was trained on lower-cased text: transformers' Siglip2Tokenizer).
    Lower,
    /// Lower case, ASCII punctuation removed, whitespace collapsed (transformers' SiglipTokenizer,
    /// after big_vision's prompt canonicalization).
    LowerNoPunct,
}

impl Canon {
    /// SigLIP's text rules from tokenizer_config.json, as transformers applies them: the
    /// canonicalization of its `tokenizer_class` (and `do_lower_case`), and whether padding goes
    /// before the text (`padding_side`; Gemma's and Siglip2Tokenizer's default is left, so the
    /// pooled last position holds the text's last token).
    fn for_folder(dir: &ModelDir, family: Family) -> (Canon, bool) {
        if family != Family::Siglip {
            return (Canon::None, false);
        }
        let cfg: serde_json::Value = std::fs::read_to_string(dir.file("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let lower = cfg["do_lower_case"].as_bool().unwrap_or(true);
        let class = cfg["tokenizer_class"].as_str().unwrap_or("");
        let siglip1 = class == "SiglipTokenizer";
        let canon = match (siglip1, lower) {
            (true, true) => Canon::LowerNoPunct,
            (true, false) => Canon::None,
            // Siglip2Tokenizer, and the Gemma tokenizer the SigLIP 2 checkpoints name: their texts
            // were lower-cased in training.
            (false, _) => Canon::Lower,
        };
        let pad_left = match cfg["padding_side"].as_str() {
            Some(side) => side == "left",
            None => !siglip1,
        };
        (canon, pad_left)
    }

    fn apply(self, text: &str) -> std::borrow::Cow<'_, str> {
        match self {
            Canon::None => text.into(),
            Canon::Lower => text.to_lowercase().into(),
            Canon::LowerNoPunct => {
                let kept: String = text
                    .to_lowercase()
                    .chars()
                    .filter(|c| !c.is_ascii_punctuation())
                    .collect();
                kept.split_whitespace().collect::<Vec<_>>().join(" ").into()
            }
        }
    }
}

/// A scalar parameter of the checkpoint (`logit_scale`, `logit_bias`).
fn scalar(weights: &std::path::Path, name: &str) -> Result<f32> {
    let vb = checked_var_builder(weights, DType::F32, &Device::Cpu)?;
    let t = vb.builder().get_unchecked(name);
    let v = vb
        .finish(t)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    v.first()
        .copied()
        .ok_or_else(|| Error::Model(format!("{name} is empty")))
}

impl Clip {
    /// Load a resolved model folder onto `device`, both towers (every tensor checked now).
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        let clip = Self::open(dir, device)?;
        clip.load_text()?;
        clip.load_vision()?;
        Ok(clip)
    }

    /// Open a resolved model folder: config, tokenizer and processor now, each tower's weights on
    /// first use (or [`Clip::load_text`] / [`Clip::load_vision`]).
    pub fn open(dir: &ModelDir, device: &Device) -> Result<Self> {
        let cfg_path = dir.file("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config = ImageTextConfig::parse(&cfg_text)?;
        let mut tokenizer = Tokenizer::from_file(dir.file("tokenizer.json"))
            .map_err(|e| Error::Model(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.positions,
                ..Default::default()
            }))
            .map_err(|e| Error::Model(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);
        let size = config.geometry.image_size;
        let processor =
            ImageProcessor::from_file(&dir.file("preprocessor_config.json"), size as u32)?;
        let (ph, pw) = processor.output_size(1000, 1000);
        if ph as usize != size || pw as usize != size {
            return Err(Error::Model(format!(
                "preprocessor_config.json produces {pw}×{ph} images but the model takes {size}×{size}"
            )));
        }
        let weights = dir.file("model.safetensors");
        // logit_scale (and SigLIP's logit_bias) are scalar parameters; read once for zero-shot.
        let logit_scale = scalar(&weights, "logit_scale")?;
        let logit_bias = match config.family {
            Family::Clip => 0.0,
            Family::Siglip => scalar(&weights, "logit_bias")?,
        };
        let (canon, pad_left) = Canon::for_folder(dir, config.family);
        Ok(Clip {
            name: dir.name.clone(),
            weights,
            canon,
            pad_left,
            config,
            text: OnceLock::new(),
            vision: OnceLock::new(),
            tokenizer,
            processor,
            device: device.clone(),
            logit_scale,
            logit_bias,
        })
    }

    /// Run both towers' transformer stacks at `precision` from now on (towers already loaded
    /// load again on next use).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        if precision != self.precision() {
            self.config.text.precision = precision;
            self.config.vision.precision = precision;
            self.text = OnceLock::new();
            self.vision = OnceLock::new();
        }
        self
    }

    /// The precision the towers run at.
    pub fn precision(&self) -> Precision {
        self.config.vision.precision
    }

    /// Load the text tower now (if not yet loaded).
    pub fn load_text(&self) -> Result<()> {
        self.text_tower().map(|_| ())
    }

    /// Load the vision tower now (if not yet loaded).
    pub fn load_vision(&self) -> Result<()> {
        self.vision_tower().map(|_| ())
    }

    fn text_tower(&self) -> Result<&Tower> {
        self.tower(&self.text, |b| self.config.text_tower(b.clone()))
    }

    fn vision_tower(&self) -> Result<&Tower> {
        self.tower(&self.vision, |b| self.config.vision_tower(b.clone()))
    }

    /// The tower in `cell`, built by `build` from the checked weights the first time.
    fn tower<'a>(
        &self,
        cell: &'a OnceLock<Tower>,
        build: impl FnOnce(&VarBuilder<'static>) -> candle_core::Result<Tower>,
    ) -> Result<&'a Tower> {
        if let Some(t) = cell.get() {
            return Ok(t);
        }
        let vb = checked_var_builder(&self.weights, DType::F32, &self.device)?;
        let tower = build(&vb.builder());
        let tower = vb.finish(tower)?;
        Ok(cell.get_or_init(|| tower))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's family (CLIP or SigLIP).
    pub fn family(&self) -> Family {
        self.config.family
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.config.dim
    }

    /// Input side in pixels (224 for ViT-B/32).
    pub fn image_size(&self) -> usize {
        self.config.geometry.image_size
    }

    /// exp(logit_scale): the temperature of zero-shot scores.
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale.exp()
    }

    /// SigLIP's logit bias (0 for CLIP): a label's probability is σ(scale·cos + bias).
    pub fn logit_bias(&self) -> f32 {
        self.logit_bias
    }

    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The short side a reduced-size decode must keep: 3× the model input. 2× is the minimum for
    /// resizing to have detail to use; 3× costs nothing more on 12 MP camera JPEGs (both land on the
    /// 1/4 DCT scale for 224 px models) and keeps embeddings at cosine ≥ 0.9999 with a full decode on
    /// the fixtures, where 2× fell to 0.995.
    pub fn decode_short_side(&self) -> u32 {
        3 * self.processor.min_input_short_side()
    }

    /// Preprocess an upright RGB image into the model's CHW pixel values.
    pub fn preprocess(&self, img: &RgbImage) -> Result<Vec<f32>> {
        self.processor.preprocess(img)
    }

    /// Token ids as the model sees them: truncated to the model's positions (final end token
    /// kept); SigLIP's padded to them.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = tokenize(&self.tokenizer, &self.canon.apply(text))?;
        if self.config.family == Family::Siglip {
            let pad = self.config.positions.saturating_sub(ids.len());
            if self.pad_left {
                ids.splice(0..0, std::iter::repeat_n(self.config.pad_id, pad));
            } else {
                ids.extend(std::iter::repeat_n(self.config.pad_id, pad));
            }
        }
        Ok(ids)
    }

    /// Embed preprocessed images (each CHW, from [`Clip::preprocess`]); L2-normalized.
    pub fn embed_pixels(&self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let vision = self.vision_tower()?;
        let run = |part: &[Vec<f32>]| -> Result<Vec<Vec<f32>>> {
            let t = pixel_batch(part, self.image_size(), &self.device)?;
            to_normalized_rows(&vision.forward(&t)?)
        };
        if self.device.is_cpu() {
            // Two or more images per part: the products stay large enough to run at speed.
            super::parallel::split_batch(batch, 2, run)
        } else {
            run(batch)
        }
    }

    /// Embed texts; L2-normalized.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = match self.config.family {
            // Pad after the end token with 0: the causal mask hides padding from the text, and
            // pooling still finds the end token.
            Family::Clip => tokenize_padded(&self.tokenizer, texts, 0, &self.device)?.ids,
            // SigLIP was trained on texts padded to its full length, every token attending to
            // the padding, pooled at the last position: pad exactly so.
            Family::Siglip => {
                let n = self.config.positions;
                let mut flat = Vec::with_capacity(texts.len() * n);
                for t in texts {
                    flat.extend(self.tokenize(t)?);
                }
                Tensor::from_vec(flat, (texts.len(), n), &self.device)?
            }
        };
        let feats = self.text_tower()?.forward(&ids)?;
        to_normalized_rows(&feats)
    }
}

/// Rows of a (n, d) tensor as L2-normalized vectors.
pub(crate) fn to_normalized_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows = t
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?;
    Ok(rows.into_iter().map(normalize).collect())
}

/// L2-normalize a vector (a zero vector stays zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}
