//! Sentence embeddings as sentence-transformers computes them: a BERT or DistilBERT backbone, the
//! folder's pooling (mean over the attention mask by default; CLS, max, mean/√len, last token), its
//! Dense layers, then L2 normalization. Serves all-MiniLM-L6-v2 (caption tags, hybrid search) and
//! multilingual query encoders trained into a CLIP space (`--query-model`, e.g.
//! sentence-transformers/clip-ViT-B-32-multilingual-v1: DistilBERT, mean pooling, Dense 768→512).
//!
//! A folder with modules.json is read as sentence-transformers lays it out (the Transformer module
//! at the root, `1_Pooling/config.json`, `2_Dense/{config.json, model.safetensors |
//! pytorch_model.bin}`, Normalize), in both the old config format and sentence-transformers 5's; a
//! folder without it is a plain BERT with mean pooling.

use std::path::Path;

use super::linear::Linear;
use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationParams};

use super::batch::{tokenize, tokenize_padded};
use super::bert::{BertConfig, DistilBertConfig, Encoder};
use super::checked::checked_var_builder;
use super::clip::to_normalized_rows;
use super::hub::{self, DownloadProgress, ModelDir};
use super::Precision;
use crate::error::{Error, Result};

/// The default sentence encoder.
pub const DEFAULT_TEXT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The files a sentence-encoder folder must hold (`sentence_bert_config.json` is read when present).
pub const TEXT_FILES: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];

/// The longest input when the folder does not say (BERT's position table is 512 long).
const MAX_LEN_CAP: usize = 512;

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// How token embeddings become one sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
    LastToken,
}

impl Pooling {
    /// From `1_Pooling/config.json`: sentence-transformers 5+ writes `pooling_mode`, older
    /// versions one `pooling_mode_*` flag per mode.
    fn from_config(v: &Value) -> Result<Self> {
        if let Some(m) = v["pooling_mode"].as_str() {
            return match m {
                "mean" => Ok(Pooling::Mean),
                "cls" => Ok(Pooling::Cls),
                "max" => Ok(Pooling::Max),
                "mean_sqrt_len_tokens" => Ok(Pooling::MeanSqrtLen),
                "lasttoken" => Ok(Pooling::LastToken),
                other => Err(Error::Model(format!(
                    "pooling mode \"{other}\" is not computed here (mean, cls, max, \
                     mean_sqrt_len_tokens, lasttoken)"
                ))),
            };
        }
        let on = |k: &str| v[k].as_bool().unwrap_or(false);
        let modes = [
            (on("pooling_mode_mean_tokens"), Pooling::Mean),
            (on("pooling_mode_cls_token"), Pooling::Cls),
            (on("pooling_mode_max_tokens"), Pooling::Max),
            (
                on("pooling_mode_mean_sqrt_len_tokens"),
                Pooling::MeanSqrtLen,
            ),
            (on("pooling_mode_lasttoken"), Pooling::LastToken),
            (on("pooling_mode_weightedmean_tokens"), Pooling::Mean),
        ];
        let chosen: Vec<_> = modes.iter().filter(|(b, _)| *b).collect();
        match chosen.as_slice() {
            [(_, _)] if on("pooling_mode_weightedmean_tokens") => Err(Error::Model(
                "weighted-mean pooling is not computed here".into(),
            )),
            [(_, p)] => Ok(*p),
            [] => Err(Error::Model(
                "1_Pooling/config.json names no pooling mode".into(),
            )),
            _ => Err(Error::Model(
                "1_Pooling/config.json concatenates several pooling modes; not computed here"
                    .into(),
            )),
        }
    }

    /// `hidden` (b, n, d) and `mask` (b, n) → (b, d).
    fn pool(self, hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
        match self {
            Pooling::Mean | Pooling::MeanSqrtLen => {
                // Over the real tokens only: padding must not enter the average.
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let counts = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
                if self == Pooling::Mean {
                    summed.broadcast_div(&counts)
                } else {
                    summed.broadcast_div(&counts.sqrt()?)
                }
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Max => {
                // Padding set to −1e9 first, as sentence-transformers does.
                let pad = ((m.ones_like()? - &m)? * -1e9)?;
                hidden.broadcast_add(&pad)?.max(1)
            }
            Pooling::LastToken => {
                let lens = mask.to_dtype(DType::F32)?.sum(1)?.to_vec1::<f32>()?;
                let rows = lens
                    .iter()
                    .enumerate()
                    .map(|(b, &l)| hidden.get(b)?.get((l as usize).max(1) - 1))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::stack(&rows, 0)
            }
        }
    }
}

/// A sentence-transformers Dense layer (`linear.weight`, `linear.bias`) and its activation.
struct Dense {
    linear: Linear,
    tanh: bool,
}

impl Dense {
    fn load(dir: &Path, device: &Device) -> Result<(Self, usize, usize)> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let cfg: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Model(format!("{}: {e}", cfg_path.display())))?;
        let (Some(i), Some(o)) = (cfg["in_features"].as_u64(), cfg["out_features"].as_u64()) else {
            return Err(Error::Model(format!(
                "{}: no in_features/out_features",
                cfg_path.display()
            )));
        };
        let (i, o) = (i as usize, o as usize);
        let bias = cfg["bias"].as_bool().unwrap_or(true);
        // sentence-transformers' Dense defaults to Tanh.
        let act = cfg["activation_function"]
            .as_str()
            .unwrap_or("torch.nn.modules.activation.Tanh");
        let tanh = match act.rsplit('.').next().unwrap_or(act) {
            "Identity" => false,
            "Tanh" => true,
            other => {
                return Err(Error::Model(format!(
                    "Dense activation {other} is not computed here (Identity, Tanh)"
                )))
            }
        };
        let safetensors = dir.join("model.safetensors");
        let (weight, b) = if safetensors.is_file() {
            let vb = checked_var_builder(&safetensors, DType::F32, device)?;
            let b = vb.builder();
            let got = (|| {
                let w = b.get((o, i), "linear.weight")?;
                let bb = if bias {
                    Some(b.get(o, "linear.bias")?)
                } else {
                    None
                };
                Ok((w, bb))
            })();
            vb.finish(got)?
        } else {
            // Older sentence-transformers folders hold a PyTorch pickle.
            let bin = dir.join("pytorch_model.bin");
            let tensors = candle_core::pickle::read_all(&bin)
                .map_err(|e| Error::Model(format!("{}: {e}", bin.display())))?;
            let find = |name: &str| {
                tensors
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t.to_dtype(DType::F32)?.to_device(device))
                    .transpose()?
                    .ok_or_else(|| Error::Model(format!("{} has no {name}", bin.display())))
            };
            let w = find("linear.weight")?;
            if w.dims() != [o, i] {
                return Err(Error::Model(format!(
                    "{}: linear.weight is {:?}, expected [{o}, {i}]",
                    bin.display(),
                    w.dims()
                )));
            }
            let bb = if bias {
                Some(find("linear.bias")?)
            } else {
                None
            };
            (w, bb)
        };
        Ok((
            Dense {
                linear: Linear::new(weight, b),
                tanh,
            },
            i,
            o,
        ))
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let y = xs.apply(&self.linear)?;
        if self.tanh {
            y.tanh()
        } else {
            Ok(y)
        }
    }
}

/// The layouts of token-embedding model Shoebox runs.
enum Layout {
    Bert,
    DistilBert,
}

/// The sentence-transformers modules of a folder (none: a plain BERT, mean pooling).
struct Modules {
    pooling: Pooling,
    /// Dense layer folders, in order.
    dense: Vec<String>,
}

fn read_modules(dir: &ModelDir) -> Result<Option<Modules>> {
    let path = dir.file("modules.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let list: Vec<Value> =
        serde_json::from_str(&text).map_err(|e| Error::Model(format!("modules.json: {e}")))?;
    let mut pooling = None;
    let mut dense = Vec::new();
    for m in &list {
        let ty = m["type"].as_str().unwrap_or("");
        let sub = m["path"].as_str().unwrap_or("");
        let kind = ty.rsplit('.').next().unwrap_or(ty);
        match kind {
            "Transformer" if sub.is_empty() => {}
            "Transformer" => {
                return Err(Error::Model(format!(
                    "modules.json: the Transformer module lies in {sub}/; Shoebox reads it at \
                     the folder's root"
                )))
            }
            "Pooling" => {
                let p = dir.dir.join(sub).join("config.json");
                let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| Error::Model(format!("{}: {e}", p.display())))?;
                pooling = Some(Pooling::from_config(&v)?);
            }
            "Dense" => dense.push(sub.to_string()),
            // Every embedding is L2-normalized anyway.
            "Normalize" => {}
            other => {
                return Err(Error::Model(format!(
                    "modules.json: module {other} is not computed here (Transformer, Pooling, \
                     Dense, Normalize)"
                )))
            }
        }
    }
    Ok(Some(Modules {
        pooling: pooling.unwrap_or(Pooling::Mean),
        dense,
    }))
}

/// Resolve a sentence encoder: a local folder as is, or a hub id with its sentence-transformers
/// module files (modules.json, pooling and Dense configs and weights) fetched beside the model.
pub fn resolve(spec: &str, progress: &DownloadProgress) -> Result<ModelDir> {
    let dir = hub::resolve(spec, TEXT_FILES, progress)?;
    if hub::is_local(spec) {
        return Ok(dir);
    }
    // Optional files: a plain BERT repository has none of them.
    for f in ["modules.json", "sentence_bert_config.json"] {
        let _ = hub::resolve(spec, &[f], progress);
    }
    let modules_json = dir.file("modules.json");
    let Ok(text) = std::fs::read_to_string(&modules_json) else {
        return Ok(dir);
    };
    let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
    for m in &list {
        let sub = m["path"].as_str().unwrap_or("");
        let kind = m["type"]
            .as_str()
            .unwrap_or("")
            .rsplit('.')
            .next()
            .unwrap_or("");
        if sub.is_empty() {
            continue;
        }
        let cfg = format!("{sub}/config.json");
        hub::resolve(spec, &[cfg.as_str()], progress)?;
        if kind == "Dense" {
            let st = format!("{sub}/model.safetensors");
            if hub::resolve(spec, &[st.as_str()], progress).is_err() {
                let bin = format!("{sub}/pytorch_model.bin");
                hub::resolve(spec, &[bin.as_str()], progress)?;
            }
        }
    }
    Ok(dir)
}

/// A loaded sentence encoder with its tokenizer.
pub struct TextEncoder {
    name: String,
    model: Encoder,
    pooling: Pooling,
    dense: Vec<Dense>,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    max_seq_length: usize,
    pad_id: u32,
}

impl TextEncoder {
    /// Load a resolved sentence-encoder folder onto `device` (f32).
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, Precision::F32)
    }

    /// Load a resolved sentence-encoder folder onto `device`, its transformer layers at
    /// `precision`.
    pub fn load_with(dir: &ModelDir, device: &Device, precision: Precision) -> Result<Self> {
        let cfg_path = dir.file("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let kind: Value = serde_json::from_str(&cfg_text)
            .map_err(|e| Error::Model(format!("config.json: {e}")))?;
        let model_type = kind["model_type"].as_str().unwrap_or("bert").to_string();
        let modules = read_modules(dir)?;
        let weights = dir.file("model.safetensors");

        let (prefix, model_type) = match model_type.as_str() {
            "bert" => ("bert", Layout::Bert),
            "distilbert" => ("distilbert", Layout::DistilBert),
            other => {
                return Err(Error::Model(format!(
                    "config.json: model_type \"{other}\" is not a sentence encoder Shoebox runs \
                     (bert, distilbert)"
                )))
            }
        };
        // Checkpoints come with (a task model's) or without (sentence-transformers) a
        // `bert.`/`distilbert.` prefix.
        let prefixed = has_prefix(&weights, &format!("{prefix}."))?;
        let vb = checked_var_builder(&weights, DType::F32, device)?;
        let root = if prefixed {
            vb.builder().pp(prefix)
        } else {
            vb.builder()
        };
        let model = match model_type {
            Layout::Bert => {
                let config: BertConfig = serde_json::from_str(&cfg_text)
                    .map_err(|e| Error::Model(format!("config.json (BERT): {e}")))?;
                Encoder::bert(&config, precision, root)?
            }
            Layout::DistilBert => {
                let config: DistilBertConfig = serde_json::from_str(&cfg_text)
                    .map_err(|e| Error::Model(format!("config.json (DistilBERT): {e}")))?;
                Encoder::distilbert(&config, precision, root)?
            }
        };
        let model = vb.finish(model)?;
        let (hidden, positions, pad_id) = (model.dim(), model.max_positions(), model.pad_id());

        // sentence-transformers truncates at sentence_bert_config.json's max_seq_length (256 for
        // all-MiniLM-L6-v2; newer folders leave it to the tokenizer's model_max_length), never
        // beyond the position table.
        let capped = positions.min(MAX_LEN_CAP);
        let sbert_path = dir.file("sentence_bert_config.json");
        let from_sbert = if sbert_path.is_file() {
            let text =
                std::fs::read_to_string(&sbert_path).map_err(|e| Error::io(&sbert_path, e))?;
            let sbert: SentenceBertConfig = serde_json::from_str(&text)
                .map_err(|e| Error::Model(format!("sentence_bert_config.json: {e}")))?;
            sbert.max_seq_length
        } else {
            None
        };
        let from_tokenizer = std::fs::read_to_string(dir.file("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["model_max_length"].as_u64())
            .map(|n| n as usize)
            .filter(|&n| n <= MAX_LEN_CAP);
        let max_seq_length = from_sbert
            .or(from_tokenizer)
            .unwrap_or(capped)
            .min(positions);
        if max_seq_length < 2 {
            return Err(Error::Model(format!(
                "max_seq_length {max_seq_length} leaves no room for [CLS] and [SEP]"
            )));
        }

        // The tokenizer.json of all-MiniLM-L6-v2 pads every input to 128 and truncates at 128:
        // replace both (we pad each batch to its longest sequence and mask the padding).
        let mut tokenizer = Tokenizer::from_file(dir.file("tokenizer.json"))
            .map_err(|e| Error::Model(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| Error::Model(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);

        let mut dim = hidden;
        let mut dense = Vec::new();
        let pooling = match &modules {
            Some(m) => {
                for sub in &m.dense {
                    let (d, i, o) = Dense::load(&dir.dir.join(sub), device)?;
                    if i != dim {
                        return Err(Error::Model(format!(
                            "{sub}: takes {i} dimensions but receives {dim}"
                        )));
                    }
                    dim = o;
                    dense.push(d);
                }
                m.pooling
            }
            None => Pooling::Mean,
        };

        Ok(TextEncoder {
            name: dir.name.clone(),
            model,
            pooling,
            dense,
            tokenizer,
            device: device.clone(),
            dim,
            max_seq_length,
            pad_id,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding dimension (384 for all-MiniLM-L6-v2; a Dense layer's output size when the folder
    /// has one).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The longest input in tokens, [CLS] and [SEP] included; longer texts are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Token ids as the model sees them: [CLS] … [SEP], truncated to `max_seq_length`, unpadded.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        tokenize(&self.tokenizer, text)
    }

    /// Embed texts as L2-normalized sentence vectors (one row per text; empty in, empty out).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = tokenize_padded(&self.tokenizer, texts, self.pad_id, &self.device)?;
        let (input_ids, mask) = (batch.ids, batch.mask);
        let hidden = self.model.forward(&input_ids, &mask)?;
        let mut mean = self.pooling.pool(&hidden, &mask)?;
        for d in &self.dense {
            mean = d.forward(&mean)?;
        }
        to_normalized_rows(&mean)
    }
}

/// Whether the weights name their tensors under `prefix` (a checkpoint saved from a task model).
fn has_prefix(weights: &Path, prefix: &str) -> Result<bool> {
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(weights) }
        .map_err(|e| Error::Model(format!("{}: {e}", weights.display())))?;
    let bare = "embeddings.word_embeddings.weight";
    Ok(st.get(bare).is_err() && st.get(&format!("{prefix}{bare}")).is_ok())
}
