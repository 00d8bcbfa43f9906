//! Captioners: load a BLIP or ViT-GPT2 Hugging Face folder (architecture read from config.json),
//! preprocess as its image processor does, encode the image once and generate a caption with the
//! text decoder (greedy or beam search).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use serde_json::Value;
use tokenizers::Tokenizer;

use super::batch::pixel_batch;
use super::blip::{BlipConfig, BlipTextDecoder, BlipVision};
use super::checked::checked_var_builder;
use super::generate::{generate, Decoder, Generation, Sequence};
use super::hub::ModelDir;
use super::preprocess::ImageProcessor;
use super::vitgpt2::{Gpt2Decoder, VitEncoder, VitGpt2Config};
use super::weights::{gguf_weights, Weights};
use super::Precision;
use crate::error::{Error, Result};

/// The files a captioning model folder must hold.
pub const CAPTION_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "preprocessor_config.json",
    "model.safetensors",
];

/// The files of a local captioning folder besides its weights (`model.safetensors`, or a quantized
/// `model.gguf` for BLIP).
pub const CAPTION_CONFIG_FILES: &[&str] =
    &["config.json", "tokenizer.json", "preprocessor_config.json"];

/// The default captioner.
pub const DEFAULT_CAPTION_MODEL: &str = "Salesforce/blip-image-captioning-base";

/// How to caption.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptionOptions {
    /// 1 = greedy.
    pub beams: usize,
    /// Most new tokens per caption.
    pub max_tokens: usize,
    /// Never repeat an n-gram of this size (0 = off): stops "a dog with a dog with a dog".
    pub no_repeat_ngram_size: usize,
    /// Cache cross-attention keys/values per image (off only to measure what it saves).
    pub cache_cross: bool,
}

impl Default for CaptionOptions {
    fn default() -> Self {
        CaptionOptions {
            beams: 1,
            max_tokens: 20,
            no_repeat_ngram_size: 3,
            cache_cross: true,
        }
    }
}

/// A caption and the sequence it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub text: String,
    pub tokens: Vec<u32>,
    pub score: f32,
}

enum Arch {
    Blip {
        vision: BlipVision,
        text: BlipTextDecoder,
    },
    VitGpt2 {
        encoder: VitEncoder,
        decoder: Gpt2Decoder,
    },
}

/// A loaded captioning model.
pub struct Captioner {
    name: String,
    arch: Arch,
    tokenizer: Tokenizer,
    processor: ImageProcessor,
    device: Device,
    image_size: usize,
    start: u32,
    eos: Vec<u32>,
    length_penalty: f32,
    repetition_penalty: f32,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Model(format!("{}: {e}", path.display())))
}

fn has_tensor(path: &Path, name: &str) -> Result<bool> {
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    Ok(st.get(name).is_ok())
}

impl Captioner {
    /// Load a resolved captioning folder onto `device` (f32).
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, Precision::F32)
    }

    /// Load a resolved captioning folder onto `device`; a BLIP's linear layers (but the tied
    /// word head) at `precision`. ViT-GPT2 and quantized `model.gguf` folders load as they are.
    pub fn load_with(dir: &ModelDir, device: &Device, precision: Precision) -> Result<Self> {
        let cfg_path = dir.file("config.json");
        let cfg = read_json(&cfg_path)?;
        let cfg_text = cfg.to_string();
        let weights = dir.file("model.safetensors");
        let gguf = dir.file("model.gguf");
        let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
        if !weights.is_file() && gguf.is_file() {
            return Self::load_gguf(dir, &cfg, &gguf, device);
        }
        let vb = checked_var_builder(&weights, DType::F32, device)?;
        let (arch, image_size, start, eos) = match model_type {
            "blip" => {
                let c = BlipConfig::parse(&cfg_text)?;
                let enc_hidden = c
                    .text_config
                    .encoder_hidden_size
                    .unwrap_or(c.vision_config.hidden_size);
                let tied = !has_tensor(&weights, "text_decoder.cls.predictions.decoder.weight")?;
                let w = Weights::F32(vb.builder(), precision);
                let built = (|| {
                    let vision = BlipVision::new(&c.vision_config, w.pp("vision_model"))?;
                    let text = BlipTextDecoder::new(
                        &c.text_config,
                        enc_hidden,
                        tied,
                        w.pp("text_decoder"),
                    )?;
                    Ok(Arch::Blip { vision, text })
                })();
                let arch = vb.finish(built)?;
                // transformers' BLIP generate: decoder input [bos], ends at [SEP].
                (
                    arch,
                    c.vision_config.image_size,
                    c.text_config.bos_token_id,
                    vec![c.text_config.sep_token_id],
                )
            }
            "vision-encoder-decoder" => {
                let c = VitGpt2Config::parse(&cfg_text)?;
                let built = (|| {
                    let encoder = VitEncoder::new(&c.encoder, vb.builder().pp("encoder"))?;
                    let decoder =
                        Gpt2Decoder::new(&c.decoder, c.encoder.hidden_size, vb.builder())?;
                    Ok(Arch::VitGpt2 { encoder, decoder })
                })();
                let arch = vb.finish(built)?;
                let eos = c.eos_token_id.unwrap_or(50256);
                (
                    arch,
                    c.encoder.image_size,
                    c.decoder_start_token_id.unwrap_or(eos),
                    vec![eos],
                )
            }
            other => {
                return Err(Error::Model(format!(
                    "config.json model_type {other:?}: captioning supports \"blip\" \
                     (BlipForConditionalGeneration) and \"vision-encoder-decoder\" (ViT-GPT2)"
                )))
            }
        };
        Self::finish(dir, arch, image_size, start, eos, device)
    }

    /// A BLIP folder whose weights are a quantized `model.gguf` (see [`super::weights`]).
    fn load_gguf(dir: &ModelDir, cfg: &Value, gguf: &Path, device: &Device) -> Result<Self> {
        if cfg.get("model_type").and_then(Value::as_str) != Some("blip") {
            return Err(Error::Model(
                "quantized (model.gguf) captioners must be BLIP; ViT-GPT2 loads from model.safetensors"
                    .into(),
            ));
        }
        let c = BlipConfig::parse(&cfg.to_string())?;
        let w = gguf_weights(gguf, device)?;
        let enc_hidden = c
            .text_config
            .encoder_hidden_size
            .unwrap_or(c.vision_config.hidden_size);
        let tied = match &w {
            Weights::Quantized(q) => !q.contains_key("text_decoder.cls.predictions.decoder.weight"),
            Weights::F32(..) => false,
        };
        let built = (|| -> candle_core::Result<Arch> {
            let vision = BlipVision::new(&c.vision_config, w.pp("vision_model"))?;
            let text =
                BlipTextDecoder::new(&c.text_config, enc_hidden, tied, w.pp("text_decoder"))?;
            Ok(Arch::Blip { vision, text })
        })()
        .map_err(|e| Error::Model(format!("{}: {e}", gguf.display())))?;
        Self::finish(
            dir,
            built,
            c.vision_config.image_size,
            c.text_config.bos_token_id,
            vec![c.text_config.sep_token_id],
            device,
        )
    }

    fn finish(
        dir: &ModelDir,
        arch: Arch,
        image_size: usize,
        start: u32,
        eos: Vec<u32>,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(dir.file("tokenizer.json"))
            .map_err(|e| Error::Model(format!("tokenizer.json: {e}")))?;
        let processor =
            ImageProcessor::from_file(&dir.file("preprocessor_config.json"), image_size as u32)?;
        let (ph, pw) = processor.output_size(1000, 700);
        if ph as usize != image_size || pw as usize != image_size {
            return Err(Error::Model(format!(
                "preprocessor_config.json produces {pw}×{ph} images but the model takes {0}×{0}",
                image_size
            )));
        }
        let gen_cfg = read_json(&dir.file("generation_config.json")).unwrap_or(Value::Null);
        let f = |k: &str, d: f64| gen_cfg.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
        Ok(Captioner {
            name: dir.name.clone(),
            arch,
            tokenizer,
            processor,
            device: device.clone(),
            image_size,
            start,
            eos,
            length_penalty: f("length_penalty", 1.0),
            repetition_penalty: f("repetition_penalty", 1.0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The short side a reduced-size decode must keep (as for CLIP: 3× the model input).
    pub fn decode_short_side(&self) -> u32 {
        3 * self.processor.min_input_short_side()
    }

    /// Preprocess an upright RGB image into CHW pixel values.
    pub fn preprocess(&self, img: &RgbImage) -> Result<Vec<f32>> {
        self.processor.preprocess(img)
    }

    /// Run the vision encoder on preprocessed images: `[b, tokens, hidden]`.
    pub fn encode(&self, batch: &[Vec<f32>]) -> Result<Tensor> {
        let t = pixel_batch(batch, self.image_size, &self.device)?;
        match &self.arch {
            Arch::Blip { vision, .. } => vision.forward(&t),
            Arch::VitGpt2 { encoder, .. } => encoder.forward(&t),
        }
    }

    fn decoder(&self) -> &dyn Decoder {
        match &self.arch {
            Arch::Blip { text, .. } => text,
            Arch::VitGpt2 { decoder, .. } => decoder,
        }
    }

    fn generation(&self, o: &CaptionOptions) -> Generation {
        Generation {
            start: self.start,
            eos: self.eos.clone(),
            max_new_tokens: o.max_tokens,
            num_beams: o.beams.max(1),
            length_penalty: self.length_penalty,
            repetition_penalty: self.repetition_penalty,
            no_repeat_ngram_size: o.no_repeat_ngram_size,
            cache_cross: o.cache_cross,
        }
    }

    /// Generate from one image's encoder output (`[1, tokens, hidden]`): sequences best first.
    pub fn generate(&self, encoded: Tensor, o: &CaptionOptions) -> Result<Vec<Caption>> {
        let seqs = generate(self.decoder(), encoded, &self.generation(o))?;
        seqs.into_iter()
            .map(|Sequence { tokens, score, .. }| {
                Ok(Caption {
                    text: self.text(&tokens)?,
                    tokens,
                    score,
                })
            })
            .collect()
    }

    /// Caption preprocessed images; one best caption per image.
    pub fn caption_pixels(&self, batch: &[Vec<f32>], o: &CaptionOptions) -> Result<Vec<Caption>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self.encode(batch)?;
        (0..batch.len())
            .map(|i| {
                let mut c = self.generate(enc.narrow(0, i, 1)?, o)?;
                Ok(c.remove(0))
            })
            .collect()
    }

    /// Caption an upright RGB image.
    pub fn caption_image(&self, img: &RgbImage, o: &CaptionOptions) -> Result<Caption> {
        let px = self.preprocess(img)?;
        Ok(self.caption_pixels(&[px], o)?.remove(0))
    }

    /// Caption text for generated tokens: special tokens dropped, trimmed.
    pub fn text(&self, tokens: &[u32]) -> Result<String> {
        let ids: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|t| *t != self.start && !self.eos.contains(t))
            .collect();
        let s = self
            .tokenizer
            .decode(&ids, true)
            .map_err(|e| Error::Model(format!("detokenize: {e}")))?;
        Ok(s.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}
