//! DistilBERT as transformers computes it (post-norm layers, exact GELU, LayerNorm eps 1e-12,
//! masked keys at the dtype's minimum): the backbone of multilingual query encoders such as
//! sentence-transformers/clip-ViT-B-32-multilingual-v1.
//!
//! candle-transformers' DistilBERT computes the tanh approximation of GELU where transformers uses
//! the exact one, which moves every embedding; hence this implementation.

use candle_core::{Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use super::linear::{self, Linear};
use serde::Deserialize;

use crate::error::{Error, Result};

const EPS: f64 = 1e-12;

/// The fields of a DistilBERT config.json this model reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    #[serde(default = "d_act")]
    pub activation: String,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

fn d_act() -> String {
    "gelu".into()
}

impl Config {
    pub fn check(&self) -> Result<()> {
        if !matches!(self.activation.as_str(), "gelu" | "relu") {
            return Err(Error::Model(format!(
                "DistilBERT activation \"{}\" is not computed here (gelu, relu)",
                self.activation
            )));
        }
        if self.n_heads == 0 || self.dim % self.n_heads != 0 {
            return Err(Error::Model(format!(
                "DistilBERT dim {} is not a multiple of n_heads {}",
                self.dim, self.n_heads
            )));
        }
        Ok(())
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    sa_ln: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    out_ln: LayerNorm,
    heads: usize,
    relu: bool,
}

impl Layer {
    fn new(c: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let a = vb.pp("attention");
        let f = vb.pp("ffn");
        Ok(Layer {
            q: linear::linear(c.dim, c.dim, a.pp("q_lin"))?,
            k: linear::linear(c.dim, c.dim, a.pp("k_lin"))?,
            v: linear::linear(c.dim, c.dim, a.pp("v_lin"))?,
            out: linear::linear(c.dim, c.dim, a.pp("out_lin"))?,
            sa_ln: candle_nn::layer_norm(c.dim, EPS, vb.pp("sa_layer_norm"))?,
            lin1: linear::linear(c.dim, c.hidden_dim, f.pp("lin1"))?,
            lin2: linear::linear(c.hidden_dim, c.dim, f.pp("lin2"))?,
            out_ln: candle_nn::layer_norm(c.dim, EPS, vb.pp("output_layer_norm"))?,
            heads: c.n_heads,
            relu: c.activation == "relu",
        })
    }

    /// `mask_add`: (b, 1, 1, n), 0 over tokens and the dtype's minimum over padding.
    fn forward(&self, xs: &Tensor, mask_add: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = xs.dims3()?;
        let hd = d / self.heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, n, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((xs.apply(&self.q)? / (hd as f64).sqrt())?)?;
        let k = split(xs.apply(&self.k)?)?;
        let v = split(xs.apply(&self.v)?)?;
        let w = q.matmul(&k.t()?)?.broadcast_add(mask_add)?;
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let ctx = w
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, n, d))?
            .apply(&self.out)?;
        let sa = (ctx + xs)?.apply(&self.sa_ln)?;
        let h = sa.apply(&self.lin1)?;
        let h = if self.relu { h.relu()? } else { h.gelu_erf()? };
        (h.apply(&self.lin2)? + sa)?.apply(&self.out_ln)
    }
}

/// A DistilBERT encoder: token ids and attention mask → last hidden states.
pub struct DistilBert {
    words: Embedding,
    positions: Tensor,
    ln: LayerNorm,
    layers: Vec<Layer>,
}

impl DistilBert {
    /// `vb` at the model's root (`embeddings.*`, `transformer.layer.N.*`).
    pub fn new(c: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        if c.sinusoidal_pos_embds {
            candle_core::bail!("sinusoidal DistilBERT position embeddings are not supported");
        }
        let e = vb.pp("embeddings");
        let t = vb.pp("transformer").pp("layer");
        Ok(DistilBert {
            words: candle_nn::embedding(c.vocab_size, c.dim, e.pp("word_embeddings"))?,
            positions: e.get(
                (c.max_position_embeddings, c.dim),
                "position_embeddings.weight",
            )?,
            ln: candle_nn::layer_norm(c.dim, EPS, e.pp("LayerNorm"))?,
            layers: (0..c.n_layers)
                .map(|i| Layer::new(c, t.pp(i)))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// `ids`, `mask`: (b, n) u32, the mask 1 over tokens and 0 over padding → (b, n, dim).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let n = ids.dim(D::Minus1)?;
        let xs = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, n)?)?
            .apply(&self.ln)?;
        // transformers fills masked scores with the dtype's minimum (not −∞).
        let keep = mask.to_dtype(xs.dtype())?.unsqueeze(1)?.unsqueeze(1)?;
        let mask_add = ((keep.ones_like()? - keep)? * f32::MIN as f64)?;
        let mut xs = xs;
        for l in &self.layers {
            xs = l.forward(&xs, &mask_add)?;
        }
        Ok(xs)
    }
}
