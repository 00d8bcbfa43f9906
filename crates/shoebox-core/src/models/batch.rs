//! Model inputs in batches: texts tokenized and padded to the longest, preprocessed images stacked.

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Token ids of one text as the model sees them (special tokens added, the tokenizer's truncation
/// applied), unpadded.
pub(crate) fn tokenize(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = tokenizer
        .encode(text, true)
        .map_err(|e| Error::Model(format!("tokenize: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

/// A batch of texts tokenized and padded after their last token to the longest one (at least one
/// token long): `ids` and `mask` are `(texts, len)` u32 tensors, the mask 1 over real tokens and
/// 0 over padding.
pub(crate) struct TokenBatch {
    pub ids: Tensor,
    pub mask: Tensor,
}

/// Tokenize texts with [`tokenize`] and pad each with `pad_id` to the batch's longest.
pub(crate) fn tokenize_padded(
    tokenizer: &Tokenizer,
    texts: &[&str],
    pad_id: u32,
    device: &Device,
) -> Result<TokenBatch> {
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenize(tokenizer, t))
        .collect::<Result<_>>()?;
    let n = ids.len();
    let len = ids.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut flat_ids = Vec::with_capacity(n * len);
    let mut flat_mask = Vec::with_capacity(n * len);
    for v in &ids {
        flat_ids.extend_from_slice(v);
        flat_ids.extend(std::iter::repeat_n(pad_id, len - v.len()));
        flat_mask.extend(std::iter::repeat_n(1u32, v.len()));
        flat_mask.extend(std::iter::repeat_n(0u32, len - v.len()));
    }
    Ok(TokenBatch {
        ids: Tensor::from_vec(flat_ids, (n, len), device)?,
        mask: Tensor::from_vec(flat_mask, (n, len), device)?,
    })
}

/// Preprocessed images (each CHW, `3 × size × size` values) stacked into a `[b, 3, size, size]`
/// tensor; a row of another length is refused.
pub(crate) fn pixel_batch(batch: &[Vec<f32>], size: usize, device: &Device) -> Result<Tensor> {
    let per = 3 * size * size;
    let mut flat = Vec::with_capacity(batch.len() * per);
    for px in batch {
        if px.len() != per {
            return Err(Error::Invalid(format!(
                "pixel tensor has {} values, expected {per}",
                px.len()
            )));
        }
        flat.extend_from_slice(px);
    }
    Ok(Tensor::from_vec(
        flat,
        (batch.len(), 3, size, size),
        device,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_rows_of_the_wrong_length_are_refused() {
        let ok = pixel_batch(&[vec![0.5; 12], vec![1.0; 12]], 2, &Device::Cpu).unwrap();
        assert_eq!(ok.dims(), [2, 3, 2, 2]);
        let err = pixel_batch(&[vec![0.5; 11]], 2, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("11 values, expected 12"), "{err}");
    }
}
