//! CLIP on candle: load any Hugging Face CLIP folder (config.json → candle's ClipConfig, safetensors
//! with every tensor checked, tokenizer.json, preprocessor_config.json) and embed images and texts as
//! L2-normalized vectors.
//!
//! The two towers load separately, on first use: a search needs only the text tower (about 40 % of
//! ViT-B/32's weights), indexing mostly the vision tower.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use candle_transformers::models::clip::vision_model::ClipVisionTransformer;
use candle_transformers::models::clip::{self, text_model::Activation};
use image::RgbImage;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::batch::{pixel_batch, tokenize, tokenize_padded};
use super::checked::checked_var_builder;
use super::hub::ModelDir;
use super::preprocess::ImageProcessor;
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

#[derive(Debug, Deserialize)]
struct TextConfigJson {
    #[serde(default = "d_vocab")]
    vocab_size: usize,
    #[serde(default = "d_text_hidden")]
    hidden_size: usize,
    #[serde(default = "d_text_inter")]
    intermediate_size: usize,
    #[serde(default = "d_77")]
    max_position_embeddings: usize,
    #[serde(default = "d_12")]
    num_hidden_layers: usize,
    #[serde(default = "d_8")]
    num_attention_heads: usize,
    #[serde(default = "d_act")]
    hidden_act: String,
    #[serde(default = "d_eps")]
    layer_norm_eps: f64,
    eos_token_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct VisionConfigJson {
    #[serde(default = "d_vision_hidden")]
    hidden_size: usize,
    #[serde(default = "d_vision_inter")]
    intermediate_size: usize,
    #[serde(default = "d_12")]
    num_hidden_layers: usize,
    #[serde(default = "d_12")]
    num_attention_heads: usize,
    #[serde(default = "d_3")]
    num_channels: usize,
    #[serde(default = "d_224")]
    image_size: usize,
    #[serde(default = "d_32")]
    patch_size: usize,
    #[serde(default = "d_act")]
    hidden_act: String,
    #[serde(default = "d_eps")]
    layer_norm_eps: f64,
}

#[derive(Debug, Deserialize)]
struct ClipConfigJson {
    text_config: TextConfigJson,
    vision_config: VisionConfigJson,
    #[serde(default = "d_proj")]
    projection_dim: usize,
    #[serde(default = "d_logit")]
    logit_scale_init_value: f32,
}

fn d_vocab() -> usize {
    49408
}
fn d_text_hidden() -> usize {
    512
}
fn d_text_inter() -> usize {
    2048
}
fn d_vision_hidden() -> usize {
    768
}
fn d_vision_inter() -> usize {
    3072
}
fn d_77() -> usize {
    77
}
fn d_12() -> usize {
    12
}
fn d_8() -> usize {
    8
}
fn d_3() -> usize {
    3
}
fn d_224() -> usize {
    224
}
fn d_32() -> usize {
    32
}
fn d_proj() -> usize {
    512
}
fn d_logit() -> f32 {
    2.6592
}
fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}

fn check_supported(part: &str, act: &str, eps: f64) -> Result<()> {
    if act != "quick_gelu" {
        return Err(Error::Model(format!(
            "{part}.hidden_act is \"{act}\": candle's CLIP implements only quick_gelu (the OpenAI CLIP \
             checkpoints); this checkpoint would give wrong embeddings, so it is refused"
        )));
    }
    if (eps - 1e-5).abs() > 1e-12 {
        return Err(Error::Model(format!(
            "{part}.layer_norm_eps is {eps}: candle's CLIP hard-codes 1e-5; refused"
        )));
    }
    Ok(())
}

/// Map a Hugging Face CLIP config.json onto candle's ClipConfig (which has no Deserialize).
pub fn clip_config(json: &str) -> Result<(clip::ClipConfig, Option<u32>)> {
    let c: ClipConfigJson =
        serde_json::from_str(json).map_err(|e| Error::Model(format!("config.json: {e}")))?;
    check_supported(
        "text_config",
        &c.text_config.hidden_act,
        c.text_config.layer_norm_eps,
    )?;
    check_supported(
        "vision_config",
        &c.vision_config.hidden_act,
        c.vision_config.layer_norm_eps,
    )?;
    let t = &c.text_config;
    let v = &c.vision_config;
    let text_config = clip::text_model::ClipTextConfig {
        vocab_size: t.vocab_size,
        embed_dim: t.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: t.intermediate_size,
        max_position_embeddings: t.max_position_embeddings,
        pad_with: None,
        num_hidden_layers: t.num_hidden_layers,
        num_attention_heads: t.num_attention_heads,
        projection_dim: c.projection_dim,
    };
    let vision_config = clip::vision_model::ClipVisionConfig {
        embed_dim: v.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: v.intermediate_size,
        num_hidden_layers: v.num_hidden_layers,
        num_attention_heads: v.num_attention_heads,
        projection_dim: c.projection_dim,
        num_channels: v.num_channels,
        image_size: v.image_size,
        patch_size: v.patch_size,
    };
    Ok((
        clip::ClipConfig {
            text_config,
            vision_config,
            logit_scale_init_value: c.logit_scale_init_value,
            image_size: v.image_size,
        },
        t.eos_token_id,
    ))
}

/// One CLIP tower: an encoder and its projection into the shared embedding space.
struct Tower {
    encoder: Box<dyn Module + Send + Sync>,
    projection: Linear,
}

impl Tower {
    fn embed(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.forward(input)?.apply(&self.projection)?)
    }
}

/// A CLIP model with its tokenizer and image processor; each tower's weights load on first use.
pub struct Clip {
    name: String,
    weights: PathBuf,
    config: clip::ClipConfig,
    text: OnceLock<Tower>,
    vision: OnceLock<Tower>,
    tokenizer: Tokenizer,
    processor: ImageProcessor,
    device: Device,
    dim: usize,
    image_size: usize,
    logit_scale: f32,
}

impl Clip {
    /// Load a resolved CLIP folder onto `device`, both towers (every tensor checked now).
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        let clip = Self::open(dir, device)?;
        clip.load_text()?;
        clip.load_vision()?;
        Ok(clip)
    }

    /// Open a resolved CLIP folder: config, tokenizer and processor now, each tower's weights on
    /// first use (or [`Clip::load_text`] / [`Clip::load_vision`]).
    pub fn open(dir: &ModelDir, device: &Device) -> Result<Self> {
        let cfg_path = dir.file("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let (config, _eos) = clip_config(&cfg_text)?;
        let mut tokenizer = Tokenizer::from_file(dir.file("tokenizer.json"))
            .map_err(|e| Error::Model(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.text_config.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| Error::Model(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);
        let processor = ImageProcessor::from_file(
            &dir.file("preprocessor_config.json"),
            config.image_size as u32,
        )?;
        let (ph, pw) = processor.output_size(1000, 1000);
        if ph as usize != config.image_size || pw as usize != config.image_size {
            return Err(Error::Model(format!(
                "preprocessor_config.json produces {pw}×{ph} images but the model takes {0}×{0}",
                config.image_size
            )));
        }
        let weights = dir.file("model.safetensors");
        // logit_scale is a scalar parameter; read it once for zero-shot softmax.
        let logit_scale = {
            let vb = checked_var_builder(&weights, DType::F32, &Device::Cpu)?;
            let t = vb.builder().get_unchecked("logit_scale");
            vb.finish(t)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .first()
                .copied()
                .unwrap_or(config.logit_scale_init_value)
        };
        Ok(Clip {
            name: dir.name.clone(),
            weights,
            dim: config.text_config.projection_dim,
            image_size: config.image_size,
            config,
            text: OnceLock::new(),
            vision: OnceLock::new(),
            tokenizer,
            processor,
            device: device.clone(),
            logit_scale,
        })
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
        let c = &self.config.text_config;
        self.tower(&self.text, |b| {
            let encoder = ClipTextTransformer::new(b.pp("text_model"), c)?;
            let projection =
                candle_nn::linear_no_bias(c.embed_dim, c.projection_dim, b.pp("text_projection"))?;
            Ok(Tower {
                encoder: Box::new(encoder),
                projection,
            })
        })
    }

    fn vision_tower(&self) -> Result<&Tower> {
        let c = &self.config.vision_config;
        self.tower(&self.vision, |b| {
            let encoder = ClipVisionTransformer::new(b.pp("vision_model"), c)?;
            let projection = candle_nn::linear_no_bias(
                c.embed_dim,
                c.projection_dim,
                b.pp("visual_projection"),
            )?;
            Ok(Tower {
                encoder: Box::new(encoder),
                projection,
            })
        })
    }

    /// The tower in `cell`, built by `build` from the checked weights the first time.
    fn tower<'a>(
        &self,
        cell: &'a OnceLock<Tower>,
        build: impl FnOnce(&candle_nn::VarBuilder<'static>) -> candle_core::Result<Tower>,
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

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Input side in pixels (224 for ViT-B/32).
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// exp(logit_scale): the temperature for zero-shot softmax.
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale.exp()
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

    /// Token ids as the model sees them (truncated to max_position_embeddings, final end token kept).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        tokenize(&self.tokenizer, text)
    }

    /// Embed preprocessed images (each CHW, from [`Clip::preprocess`]); L2-normalized.
    pub fn embed_pixels(&self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let t = pixel_batch(batch, self.image_size, &self.device)?;
        let feats = self.vision_tower()?.embed(&t)?;
        to_normalized_rows(&feats)
    }

    /// Embed texts; L2-normalized.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Pad after the end token with 0: the causal mask hides padding from the text, and pooling
        // (argmax of ids) still finds the end token, the largest id.
        let batch = tokenize_padded(&self.tokenizer, texts, 0, &self.device)?;
        let feats = self.text_tower()?.embed(&batch.ids)?;
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
