//! Sentence embeddings on candle's BERT, matching sentence-transformers (mean pooling over the
//! attention mask, then L2 normalization) for all-MiniLM-L6-v2 and other BERT sentence encoders.

use candle_core::{DType, Device, D};
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::batch::{tokenize, tokenize_padded};
use super::checked::checked_var_builder;
use super::clip::to_normalized_rows;
use super::hub::ModelDir;
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

/// A loaded BERT sentence encoder with its tokenizer.
pub struct TextEncoder {
    name: String,
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    max_seq_length: usize,
    pad_id: u32,
}

impl TextEncoder {
    /// Load a resolved sentence-encoder folder onto `device`.
    pub fn load(dir: &ModelDir, device: &Device) -> Result<Self> {
        let cfg_path = dir.file("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config: Config = serde_json::from_str(&cfg_text)
            .map_err(|e| Error::Model(format!("config.json (BERT): {e}")))?;

        // sentence-transformers truncates at sentence_bert_config.json's max_seq_length (256 for
        // all-MiniLM-L6-v2), never beyond the position table.
        let positions = config.max_position_embeddings.min(MAX_LEN_CAP);
        let sbert_path = dir.file("sentence_bert_config.json");
        let max_seq_length = if sbert_path.is_file() {
            let text =
                std::fs::read_to_string(&sbert_path).map_err(|e| Error::io(&sbert_path, e))?;
            let sbert: SentenceBertConfig = serde_json::from_str(&text)
                .map_err(|e| Error::Model(format!("sentence_bert_config.json: {e}")))?;
            sbert
                .max_seq_length
                .unwrap_or(positions)
                .min(config.max_position_embeddings)
        } else {
            positions
        };
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

        // Checkpoints come with (BertModel) or without (sentence-transformers) a `bert.` prefix.
        // Every name the model asks for is mapped onto the file's layout, whatever prefix candle's
        // loader tries, so the checked builder names the tensor as the file would hold it.
        let weights = dir.file("model.safetensors");
        let prefixed = {
            let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(&weights) }
                .map_err(|e| Error::Model(format!("{}: {e}", weights.display())))?;
            st.get("embeddings.word_embeddings.weight").is_err()
                && st.get("bert.embeddings.word_embeddings.weight").is_ok()
        };
        let model = {
            let vb = checked_var_builder(&weights, DType::F32, device)?;
            let mapped = vb.builder().rename_f(move |name: &str| {
                let mut bare = name;
                while let Some(rest) = bare.strip_prefix("bert.") {
                    bare = rest;
                }
                if prefixed {
                    format!("bert.{bare}")
                } else {
                    bare.to_string()
                }
            });
            let model = BertModel::load(mapped, &config);
            vb.finish(model)?
        };

        Ok(TextEncoder {
            name: dir.name.clone(),
            model,
            tokenizer,
            device: device.clone(),
            dim: config.hidden_size,
            max_seq_length,
            pad_id: config.pad_token_id as u32,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding dimension (384 for all-MiniLM-L6-v2).
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
        let token_type_ids = input_ids.zeros_like()?;
        let hidden = self
            .model
            .forward(&input_ids, &token_type_ids, Some(&mask))?;
        // Mean over the real tokens only: padding must not enter the average.
        let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
        let mean = summed.broadcast_div(&counts)?;
        to_normalized_rows(&mean)
    }
}
