//! BERT and DistilBERT encoders as transformers computes them (post-norm layers, exact GELU,
//! masked keys at the dtype's minimum): the backbones of the sentence encoders (all-MiniLM-L6-v2)
//! and of multilingual query encoders (sentence-transformers/clip-ViT-B-32-multilingual-v1).
//!
//! One implementation for both layouts (they differ in tensor names and BERT's token-type
//! embedding), on Shoebox's own linear layers and attention kernel, so both run at the `q8`
//! precision too. candle-transformers' DistilBERT computes the tanh approximation of GELU where
//! transformers uses the exact one, which moves every embedding.

use candle_core::{Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::linear::{self, Act, Linear};
use super::Precision;
use crate::error::{Error, Result};

/// The fields of a DistilBERT config.json this model reads.
#[derive(Debug, Clone, Deserialize)]
pub struct DistilBertConfig {
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

/// The fields of a BERT config.json this model reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "d_position")]
    pub position_embedding_type: String,
}

fn d_act() -> String {
    "gelu".into()
}
fn d_types() -> usize {
    2
}
fn d_eps() -> f64 {
    1e-12
}
fn d_position() -> String {
    "absolute".into()
}

/// What both layouts come down to.
#[derive(Debug, Clone, Copy)]
struct Shape {
    dim: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    vocab: usize,
    positions: usize,
    /// BERT's token-type vocabulary (0: DistilBERT, none).
    types: usize,
    relu: bool,
    eps: f64,
    precision: Precision,
}

impl Shape {
    fn check(&self, what: &str, act: &str) -> Result<()> {
        if !matches!(act, "gelu" | "relu") {
            return Err(Error::Model(format!(
                "{what} activation \"{act}\" is not computed here (gelu, relu)"
            )));
        }
        if self.heads == 0 || self.dim % self.heads != 0 {
            return Err(Error::Model(format!(
                "{what} hidden size {} is not a multiple of its {} attention heads",
                self.dim, self.heads
            )));
        }
        Ok(())
    }
}

/// Where a layer's tensors live, below the layer's prefix.
struct Names {
    layers: &'static str,
    q: &'static str,
    k: &'static str,
    v: &'static str,
    out: &'static str,
    sa_ln: &'static str,
    lin1: &'static str,
    lin2: &'static str,
    out_ln: &'static str,
}

const DISTILBERT: Names = Names {
    layers: "transformer.layer",
    q: "attention.q_lin",
    k: "attention.k_lin",
    v: "attention.v_lin",
    out: "attention.out_lin",
    sa_ln: "sa_layer_norm",
    lin1: "ffn.lin1",
    lin2: "ffn.lin2",
    out_ln: "output_layer_norm",
};

const BERT: Names = Names {
    layers: "encoder.layer",
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    out: "attention.output.dense",
    sa_ln: "attention.output.LayerNorm",
    lin1: "intermediate.dense",
    lin2: "output.dense",
    out_ln: "output.LayerNorm",
};

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
    fn new(s: &Shape, names: &Names, vb: VarBuilder) -> candle_core::Result<Self> {
        let lin = |i, o, name: &str| linear::linear(i, o, vb.pp(name))?.with_precision(s.precision);
        Ok(Layer {
            q: lin(s.dim, s.dim, names.q)?,
            k: lin(s.dim, s.dim, names.k)?,
            v: lin(s.dim, s.dim, names.v)?,
            out: lin(s.dim, s.dim, names.out)?,
            sa_ln: candle_nn::layer_norm(s.dim, s.eps, vb.pp(names.sa_ln))?,
            lin1: lin(s.dim, s.hidden, names.lin1)?,
            lin2: lin(s.hidden, s.dim, names.lin2)?,
            out_ln: candle_nn::layer_norm(s.dim, s.eps, vb.pp(names.out_ln))?,
            heads: s.heads,
            relu: s.relu,
        })
    }

    /// `mask_add`: (b, 1, 1, n), 0 over tokens and the dtype's minimum over padding.
    fn forward(&self, xs: &Tensor, mask_add: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = xs.dims3()?;
        let hd = d / self.heads;
        let q = (xs.apply(&self.q)? / (hd as f64).sqrt())?;
        let k = xs.apply(&self.k)?;
        let v = xs.apply(&self.v)?;
        let ctx = match super::attention::attend(&q, &k, &v, self.heads, Some(mask_add))? {
            Some(ctx) => ctx,
            None => {
                let split = |t: Tensor| -> candle_core::Result<Tensor> {
                    t.reshape((b, n, self.heads, hd))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let (q, k, v) = (split(q)?, split(k)?, split(v)?);
                let w = q.matmul(&k.t()?)?.broadcast_add(mask_add)?;
                candle_nn::ops::softmax_last_dim(&w)?
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((b, n, d))?
            }
        };
        let sa = (ctx.apply(&self.out)? + xs)?.apply(&self.sa_ln)?;
        let h = if self.relu {
            sa.apply(&self.lin1)?.relu()?
        } else {
            self.lin1.forward_act(&sa, Act::GeluErf)?
        };
        (h.apply(&self.lin2)? + sa)?.apply(&self.out_ln)
    }
}

/// A BERT or DistilBERT encoder: token ids and attention mask → last hidden states.
pub struct Encoder {
    words: Embedding,
    positions: Tensor,
    /// BERT's token-type 0 row (every text here is one segment).
    token_type: Option<Tensor>,
    ln: LayerNorm,
    layers: Vec<Layer>,
    dim: usize,
    max_positions: usize,
    pad_id: u32,
}

impl Encoder {
    /// A DistilBERT from `vb` at the model's root (`embeddings.*`, `transformer.layer.N.*`).
    pub fn distilbert(
        c: &DistilBertConfig,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<candle_core::Result<Self>> {
        if c.sinusoidal_pos_embds {
            return Err(Error::Model(
                "sinusoidal DistilBERT position embeddings are not supported".into(),
            ));
        }
        let s = Shape {
            dim: c.dim,
            hidden: c.hidden_dim,
            layers: c.n_layers,
            heads: c.n_heads,
            vocab: c.vocab_size,
            positions: c.max_position_embeddings,
            types: 0,
            relu: c.activation == "relu",
            eps: 1e-12,
            precision,
        };
        s.check("DistilBERT", &c.activation)?;
        Ok(Self::new(&s, &DISTILBERT, c.pad_token_id as u32, vb))
    }

    /// A BERT from `vb` at the model's root (`embeddings.*`, `encoder.layer.N.*`).
    pub fn bert(
        c: &BertConfig,
        precision: Precision,
        vb: VarBuilder,
    ) -> Result<candle_core::Result<Self>> {
        if c.position_embedding_type != "absolute" {
            return Err(Error::Model(format!(
                "BERT position_embedding_type \"{}\" is not supported (absolute)",
                c.position_embedding_type
            )));
        }
        let s = Shape {
            dim: c.hidden_size,
            hidden: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            vocab: c.vocab_size,
            positions: c.max_position_embeddings,
            types: c.type_vocab_size.max(1),
            relu: c.hidden_act == "relu",
            eps: c.layer_norm_eps,
            precision,
        };
        s.check("BERT", &c.hidden_act)?;
        Ok(Self::new(&s, &BERT, c.pad_token_id as u32, vb))
    }

    fn new(s: &Shape, names: &Names, pad_id: u32, vb: VarBuilder) -> candle_core::Result<Self> {
        let e = vb.pp("embeddings");
        let t = vb.pp(names.layers);
        let token_type = match s.types {
            0 => None,
            n => Some(
                e.get((n, s.dim), "token_type_embeddings.weight")?
                    .narrow(0, 0, 1)?,
            ),
        };
        Ok(Encoder {
            words: candle_nn::embedding(s.vocab, s.dim, e.pp("word_embeddings"))?,
            positions: e.get((s.positions, s.dim), "position_embeddings.weight")?,
            token_type,
            ln: candle_nn::layer_norm(s.dim, s.eps, e.pp("LayerNorm"))?,
            layers: (0..s.layers)
                .map(|i| Layer::new(s, names, t.pp(i)))
                .collect::<candle_core::Result<_>>()?,
            dim: s.dim,
            max_positions: s.positions,
            pad_id,
        })
    }

    /// Width of the hidden states.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Positions the model has embeddings for.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The padding token id from config.json.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// `ids`, `mask`: (b, n) u32, the mask 1 over tokens and 0 over padding → (b, n, dim).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let n = ids.dim(D::Minus1)?;
        let mut xs = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, n)?)?;
        if let Some(t) = &self.token_type {
            xs = xs.broadcast_add(t)?;
        }
        let xs = xs.apply(&self.ln)?;
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
