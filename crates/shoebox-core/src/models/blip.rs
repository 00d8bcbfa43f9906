//! BLIP captioning (BlipForConditionalGeneration): the ViT vision tower and the BERT-style text
//! decoder with cross-attention, written here so the decoder's caches are explicit — candle's
//! blip_text recomputes cross-attention keys/values over every image token at every step and
//! keeps its self-attention cache inside the model, which rules out beam search.

use candle_core::{Module, Tensor, D};
use candle_nn::{Activation, Embedding, LayerNorm};
use serde::Deserialize;

use super::generate::{attend, merge_heads, push_kv, split_heads, Decoder, DecoderState};
use super::weights::{Lin, Weights};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "d768")]
    pub hidden_size: usize,
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    #[serde(default = "d384")]
    pub image_size: usize,
    #[serde(default = "d16")]
    pub patch_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: Activation,
    #[serde(default = "eps_vision")]
    pub layer_norm_eps: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    #[serde(default = "d30524")]
    pub vocab_size: usize,
    #[serde(default = "d768")]
    pub hidden_size: usize,
    /// Missing from the real BLIP configs: it is the vision hidden size.
    pub encoder_hidden_size: Option<usize>,
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    #[serde(default = "d512")]
    pub max_position_embeddings: usize,
    #[serde(default = "gelu")]
    pub hidden_act: Activation,
    #[serde(default = "eps_text")]
    pub layer_norm_eps: f64,
    #[serde(default = "d30522")]
    pub bos_token_id: u32,
    #[serde(default = "d102")]
    pub sep_token_id: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlipConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
}

fn d768() -> usize {
    768
}
fn d3072() -> usize {
    3072
}
fn d12() -> usize {
    12
}
fn d384() -> usize {
    384
}
fn d16() -> usize {
    16
}
fn d512() -> usize {
    512
}
fn d30524() -> usize {
    30524
}
fn d30522() -> u32 {
    30522
}
fn d102() -> u32 {
    102
}
fn gelu() -> Activation {
    Activation::Gelu
}
fn eps_vision() -> f64 {
    1e-5
}
fn eps_text() -> f64 {
    1e-12
}

impl BlipConfig {
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Model(format!("BLIP config.json: {e}")))
    }
}

struct VisionLayer {
    ln1: LayerNorm,
    qkv: Lin,
    proj: Lin,
    ln2: LayerNorm,
    fc1: Lin,
    fc2: Lin,
    act: Activation,
    heads: usize,
}

impl VisionLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let h = self.heads;
        let qkv = self
            .ln1
            .forward(x)?
            .apply(&self.qkv)?
            .reshape((b, n, 3, h, d / h))?
            .permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let a = attend(&q, &k, &v, 1.0 / ((d / h) as f64).sqrt())?;
        let x = (x + merge_heads(&a)?.apply(&self.proj)?)?;
        let m = self
            .ln2
            .forward(&x)?
            .apply(&self.fc1)?
            .apply(&self.act)?
            .apply(&self.fc2)?;
        Ok((x + m)?)
    }
}

/// BLIP's vision transformer: image → `[b, 1 + patches, hidden]` (post-layernormed).
pub struct BlipVision {
    patch: candle_nn::Conv2d,
    class_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<VisionLayer>,
    post_layernorm: LayerNorm,
}

impl BlipVision {
    pub fn new(cfg: &VisionConfig, vb: Weights) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let patch = e.pp("patch_embedding").conv2d(
            3,
            d,
            cfg.patch_size,
            candle_nn::Conv2dConfig {
                stride: cfg.patch_size,
                ..Default::default()
            },
        )?;
        let n = (cfg.image_size / cfg.patch_size).pow(2) + 1;
        let class_embedding = e.get((1, 1, d), "class_embedding")?;
        let position_embedding = e.get((1, n, d), "position_embedding")?;
        let mut layers = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp("encoder.layers").pp(i);
            layers.push(VisionLayer {
                ln1: l.pp("layer_norm1").layer_norm(d, cfg.layer_norm_eps)?,
                qkv: l.pp("self_attn.qkv").linear(d, 3 * d)?,
                proj: l.pp("self_attn.projection").linear(d, d)?,
                ln2: l.pp("layer_norm2").layer_norm(d, cfg.layer_norm_eps)?,
                fc1: l.pp("mlp.fc1").linear(d, cfg.intermediate_size)?,
                fc2: l.pp("mlp.fc2").linear(cfg.intermediate_size, d)?,
                act: cfg.hidden_act,
                heads: cfg.num_attention_heads,
            });
        }
        let post_layernorm = vb.pp("post_layernorm").layer_norm(d, cfg.layer_norm_eps)?;
        Ok(BlipVision {
            patch,
            class_embedding,
            position_embedding,
            layers,
            post_layernorm,
        })
    }

    /// `pixels` `[b, 3, size, size]` → last hidden state `[b, tokens, hidden]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let x = self
            .patch
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let d = x.dim(D::Minus1)?;
        let cls = self.class_embedding.broadcast_as((b, 1, d))?;
        let mut x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.position_embedding)?;
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        Ok(self.post_layernorm.forward(&x)?)
    }
}

struct Attn {
    q: Lin,
    k: Lin,
    v: Lin,
    out: Lin,
    ln: LayerNorm,
}

impl Attn {
    fn new(d: usize, kv_in: usize, eps: f64, vb: Weights) -> candle_core::Result<Self> {
        Ok(Attn {
            q: vb.pp("self.query").linear(d, d)?,
            k: vb.pp("self.key").linear(kv_in, d)?,
            v: vb.pp("self.value").linear(kv_in, d)?,
            out: vb.pp("output.dense").linear(d, d)?,
            ln: vb.pp("output.LayerNorm").layer_norm(d, eps)?,
        })
    }
}

struct TextLayer {
    self_attn: Attn,
    cross: Attn,
    inter: Lin,
    out: Lin,
    ln: LayerNorm,
}

/// BLIP's text decoder (BERT with cross-attention and an LM head).
pub struct BlipTextDecoder {
    word: Embedding,
    position: Embedding,
    ln: LayerNorm,
    layers: Vec<TextLayer>,
    head_dense: Lin,
    head_ln: LayerNorm,
    head_out: Lin,
    act: Activation,
    heads: usize,
    max_positions: usize,
}

impl BlipTextDecoder {
    /// `vb` at `text_decoder`. `tied_head`: the checkpoint lacks `cls.predictions.decoder.weight`
    /// (it is tied to the word embeddings).
    pub fn new(
        cfg: &TextConfig,
        enc_hidden: usize,
        tied_head: bool,
        vb: Weights,
    ) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let e = vb.pp("bert.embeddings");
        let word = e.pp("word_embeddings").embedding(cfg.vocab_size, d)?;
        let position = e
            .pp("position_embeddings")
            .embedding(cfg.max_position_embeddings, d)?;
        let ln = e.pp("LayerNorm").layer_norm(d, eps)?;
        let mut layers = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp("bert.encoder.layer").pp(i);
            layers.push(TextLayer {
                self_attn: Attn::new(d, d, eps, l.pp("attention"))?,
                cross: Attn::new(d, enc_hidden, eps, l.pp("crossattention"))?,
                inter: l
                    .pp("intermediate.dense")
                    .linear(d, cfg.intermediate_size)?,
                out: l.pp("output.dense").linear(cfg.intermediate_size, d)?,
                ln: l.pp("output.LayerNorm").layer_norm(d, eps)?,
            });
        }
        let p = vb.pp("cls.predictions");
        let head_dense = p.pp("transform.dense").linear(d, d)?;
        let head_ln = p.pp("transform.LayerNorm").layer_norm(d, eps)?;
        let w = if tied_head {
            word.embeddings().clone()
        } else {
            p.get((cfg.vocab_size, d), "decoder.weight")?
        };
        let head_out = p.tied(w, "bias", cfg.vocab_size)?;
        Ok(BlipTextDecoder {
            word,
            position,
            ln,
            layers,
            head_dense,
            head_ln,
            head_out,
            act: cfg.hidden_act,
            heads: cfg.num_attention_heads,
            max_positions: cfg.max_position_embeddings,
        })
    }

    fn cross_kv(&self, layer: &TextLayer, enc: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&enc.apply(&layer.cross.k)?, self.heads)?,
            split_heads(&enc.apply(&layer.cross.v)?, self.heads)?,
        ))
    }
}

impl Decoder for BlipTextDecoder {
    fn start(&self, encoder: Tensor, cache_cross: bool) -> Result<DecoderState> {
        let cross_kv = if cache_cross {
            Some(
                self.layers
                    .iter()
                    .map(|l| self.cross_kv(l, &encoder))
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
        Ok(DecoderState {
            self_kv: vec![None; self.layers.len()],
            cross_kv,
            encoder,
            pos: 0,
        })
    }

    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
        if state.pos >= self.max_positions {
            return Err(Error::Invalid(format!(
                "caption longer than the model's {} positions",
                self.max_positions
            )));
        }
        let dev = state.encoder.device().clone();
        let ids = Tensor::new(tokens, &dev)?.unsqueeze(1)?;
        let pos = Tensor::new(&[state.pos as u32], &dev)?.unsqueeze(0)?;
        let mut x = self
            .word
            .forward(&ids)?
            .broadcast_add(&self.position.forward(&pos)?)?
            .apply(&self.ln)?;
        let dh = x.dim(D::Minus1)? / self.heads;
        let scale = 1.0 / (dh as f64).sqrt();
        for (i, l) in self.layers.iter().enumerate() {
            let a = &l.self_attn;
            let q = split_heads(&x.apply(&a.q)?, self.heads)?;
            let k = split_heads(&x.apply(&a.k)?, self.heads)?;
            let v = split_heads(&x.apply(&a.v)?, self.heads)?;
            let (k, v) = push_kv(&mut state.self_kv[i], k, v)?;
            let s = merge_heads(&attend(&q, &k, &v, scale)?)?;
            x = (s.apply(&a.out)? + &x)?.apply(&a.ln)?;
            let c = &l.cross;
            let q = split_heads(&x.apply(&c.q)?, self.heads)?;
            let (k, v) = match &state.cross_kv {
                Some(kv) => kv[i].clone(),
                None => self.cross_kv(l, &state.encoder)?,
            };
            let s = merge_heads(&attend(&q, &k, &v, scale)?)?;
            x = (s.apply(&c.out)? + &x)?.apply(&c.ln)?;
            let f = x.apply(&l.inter)?.apply(&self.act)?.apply(&l.out)?;
            x = (f + &x)?.apply(&l.ln)?;
        }
        state.pos += 1;
        let h = x
            .apply(&self.head_dense)?
            .apply(&self.act)?
            .apply(&self.head_ln)?;
        Ok(h.apply(&self.head_out)?.squeeze(1)?)
    }
}
