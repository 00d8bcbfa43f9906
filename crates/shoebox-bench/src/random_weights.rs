//! Models with random weights in real architectures (`--random-weights`): every model is first
//! built through a recording VarBuilder that only notes the name and shape of each tensor it asks
//! for; those tensors are then written, filled with random values (LayerNorm weights 1), as a
//! Hugging Face folder with the real config.json, and loaded through the same loaders users run
//! (`Clip::load`, `Captioner::load`, `TextEncoder::load`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use serde_json::{json, Value};
use shoebox_core::models::bert::{BertConfig, Encoder};
use shoebox_core::models::blip::{BlipConfig, BlipTextDecoder, BlipVision};
use shoebox_core::models::caption::DEFAULT_CAPTION_MODEL;
use shoebox_core::models::clip::{ImageTextConfig, DEFAULT_CLIP_MODEL};
use shoebox_core::models::hub::ModelDir;
use shoebox_core::models::vitgpt2::{Gpt2Decoder, VitEncoder, VitGpt2Config};
use shoebox_core::models::weights::Weights;
use shoebox_core::models::Precision;
use shoebox_core::{Error, Result};

use crate::configs::{
    BERT_TOKENIZER, BLIP_BASE_CONFIG, BLIP_BASE_PREPROCESSOR, CLIP_B32_CONFIG,
    CLIP_B32_PREPROCESSOR, CLIP_TOKENIZER, GPT2_TOKENIZER, MINILM_L6_CONFIG, VITGPT2_CONFIG,
    VITGPT2_PREPROCESSOR,
};
use crate::files::io;
use crate::vectors::Rng;

/// An architecture `--random-weights` can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// openai/clip-vit-base-patch32
    ClipVitB32,
    /// Salesforce/blip-image-captioning-base
    BlipBase,
    /// nlpconnect/vit-gpt2-image-captioning
    VitGpt2,
    /// sentence-transformers/all-MiniLM-L6-v2
    MiniLmL6,
}

impl Arch {
    pub const ALL: [Arch; 4] = [
        Arch::ClipVitB32,
        Arch::BlipBase,
        Arch::VitGpt2,
        Arch::MiniLmL6,
    ];

    /// The name `--random-weights` takes.
    pub fn name(self) -> &'static str {
        match self {
            Arch::ClipVitB32 => "clip-vit-b-32",
            Arch::BlipBase => "blip-base",
            Arch::VitGpt2 => "vit-gpt2",
            Arch::MiniLmL6 => "minilm-l6",
        }
    }

    /// The real model whose architecture (config.json) it is.
    pub fn hub_id(self) -> &'static str {
        match self {
            Arch::ClipVitB32 => DEFAULT_CLIP_MODEL,
            Arch::BlipBase => DEFAULT_CAPTION_MODEL,
            Arch::VitGpt2 => "nlpconnect/vit-gpt2-image-captioning",
            Arch::MiniLmL6 => "sentence-transformers/all-MiniLM-L6-v2",
        }
    }

    pub(crate) fn is_captioner(self) -> bool {
        matches!(self, Arch::BlipBase | Arch::VitGpt2)
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s.trim())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown architecture {s:?} for --random-weights ({})",
                    Arch::ALL.map(Arch::name).join(", ")
                ))
            })
    }
}

/// Notes the name and shape of every tensor a model asks for, handing out zero-cost stand-ins.
struct Recorder {
    shapes: Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims().to_vec();
        let mut m = self.shapes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = m.get(name) {
            if *prev != dims {
                candle_core::bail!("{name} asked for as {dims:?} and as {prev:?}");
            }
        }
        m.insert(name.to_string(), dims);
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name} asked for without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        // As models/checked.rs: the model asks for every optional tensor, so the file has them.
        true
    }
}

/// Build `arch` through a recording VarBuilder: the names and shapes of its tensors.
fn record_tensors(arch: Arch) -> Result<BTreeMap<String, Vec<usize>>> {
    let shapes = Arc::new(Mutex::new(BTreeMap::new()));
    let vb = VarBuilder::from_backend(
        Box::new(Recorder {
            shapes: shapes.clone(),
        }),
        DType::F32,
        Device::Cpu,
    );
    let built: candle_core::Result<()> = (|| {
        match arch {
            Arch::ClipVitB32 => {
                let cfg = ImageTextConfig::parse(CLIP_B32_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                cfg.text_tower(vb.clone())?;
                cfg.vision_tower(vb.clone())?;
                // logit_scale is read as a scalar, not by a tower.
                vb.get(&[], "logit_scale")?;
            }
            Arch::BlipBase => {
                let c = BlipConfig::parse(BLIP_BASE_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let enc = c
                    .text_config
                    .encoder_hidden_size
                    .unwrap_or(c.vision_config.hidden_size);
                BlipVision::new(
                    &c.vision_config,
                    Weights::F32(vb.pp("vision_model"), Precision::F32),
                )?;
                // Tied LM head, as the published checkpoint (no cls.predictions.decoder.weight).
                BlipTextDecoder::new(
                    &c.text_config,
                    enc,
                    true,
                    Weights::F32(vb.pp("text_decoder"), Precision::F32),
                )?;
            }
            Arch::VitGpt2 => {
                let c = VitGpt2Config::parse(VITGPT2_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                VitEncoder::new(&c.encoder, vb.pp("encoder"))?;
                Gpt2Decoder::new(&c.decoder, c.encoder.hidden_size, vb)?;
            }
            Arch::MiniLmL6 => {
                let cfg: BertConfig = serde_json::from_str(MINILM_L6_CONFIG)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                Encoder::bert(&cfg, Precision::F32, vb)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))??;
            }
        }
        Ok(())
    })();
    built.map_err(|e| {
        Error::Model(format!(
            "building {} to record its tensors: {e}",
            arch.name()
        ))
    })?;
    let m = shapes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(m)
}

/// Write a Hugging Face folder for `arch` with random weights under `work/models/` (kept when
/// already complete there) and return it.
pub fn random_model(arch: Arch, work: &Path) -> Result<ModelDir> {
    let dir = work.join("models").join(format!("{}-random", arch.name()));
    let weights = dir.join("model.safetensors");
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let (config, preprocessor, tokenizer): (&str, Option<&str>, &[u8]) = match arch {
        Arch::ClipVitB32 => (CLIP_B32_CONFIG, Some(CLIP_B32_PREPROCESSOR), CLIP_TOKENIZER),
        Arch::BlipBase => (
            BLIP_BASE_CONFIG,
            Some(BLIP_BASE_PREPROCESSOR),
            BERT_TOKENIZER,
        ),
        Arch::VitGpt2 => (VITGPT2_CONFIG, Some(VITGPT2_PREPROCESSOR), GPT2_TOKENIZER),
        Arch::MiniLmL6 => (MINILM_L6_CONFIG, None, BERT_TOKENIZER),
    };
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))
    };
    write("config.json", config.as_bytes())?;
    if let Some(p) = preprocessor {
        write("preprocessor_config.json", p.as_bytes())?;
    }
    write("tokenizer.json", tokenizer)?;
    if arch == Arch::MiniLmL6 {
        write(
            "sentence_bert_config.json",
            br#"{"max_seq_length": 256, "do_lower_case": false}"#,
        )?;
    }
    write(
        "README.md",
        format!(
            "Random weights in the architecture of {} (config.json as published), written by \
             `shoebox bench --random-weights {}`: for speed measurements only.\n",
            arch.hub_id(),
            arch.name()
        )
        .as_bytes(),
    )?;
    if !weights.is_file() {
        let tensors = record_tensors(arch)?;
        write_random_safetensors(&weights, &tensors, arch as u64 + 17)?;
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| io(&dir, e))?;
    Ok(ModelDir {
        name: dir.to_string_lossy().into_owned(),
        dir,
    })
}

/// Write f32 tensors of the given shapes as safetensors, streaming: N(0, 0.02) everywhere except
/// 1-D `*weight` tensors (LayerNorm scales: 1) and `logit_scale` (ln(1/0.07), CLIP's init).
fn write_random_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, Vec<usize>>,
    seed: u64,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| Error::Model(format!("safetensors header: {e}")))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let tmp = path.with_extension("safetensors.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let write_err = |e| io(&tmp, e);
    w.write_all(&(h.len() as u64).to_le_bytes())
        .map_err(write_err)?;
    w.write_all(&h).map_err(write_err)?;
    let mut rng = Rng::new(seed);
    let mut chunk: Vec<u8> = Vec::with_capacity(1 << 18);
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let fill = if name == "logit_scale" || name.ends_with(".logit_scale") {
            Some(2.6592f32)
        } else if shape.len() == 1 && name.ends_with("weight") {
            Some(1.0)
        } else {
            None
        };
        let mut left = n;
        while left > 0 {
            let m = left.min(1 << 16);
            chunk.clear();
            for _ in 0..m {
                let v = fill.unwrap_or_else(|| rng.normal() * 0.02);
                chunk.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&chunk).map_err(write_err)?;
            left -= m;
        }
    }
    w.flush().map_err(write_err)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}
