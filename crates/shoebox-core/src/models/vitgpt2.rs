//! ViT-GPT2 captioning (VisionEncoderDecoderModel, the nlpconnect/vit-gpt2-image-captioning
//! layout): candle's ViT as the encoder, and a GPT-2 decoder with cross-attention written here
//! (candle has none) with explicit self-attention and cross-attention caches.

use candle_core::{Module, Tensor, D};
use candle_nn::{layer_norm, Activation, Embedding, LayerNorm, VarBuilder};

use super::linear::{self, Linear};
use candle_transformers::models::vit;
use serde::Deserialize;

use super::generate::{attend, merge_heads, push_kv, split_heads, Decoder, DecoderState};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    #[serde(default = "d768")]
    pub hidden_size: usize,
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: Activation,
    #[serde(default = "eps12")]
    pub layer_norm_eps: f64,
    #[serde(default = "d224")]
    pub image_size: usize,
    #[serde(default = "d16")]
    pub patch_size: usize,
    #[serde(default = "d3")]
    pub num_channels: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "d50257")]
    pub vocab_size: usize,
    #[serde(default = "d1024")]
    pub n_positions: usize,
    #[serde(default = "d768")]
    pub n_embd: usize,
    #[serde(default = "d12")]
    pub n_layer: usize,
    #[serde(default = "d12")]
    pub n_head: usize,
    pub n_inner: Option<usize>,
    #[serde(default = "gelu_new")]
    pub activation_function: Activation,
    #[serde(default = "eps5")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub add_cross_attention: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VitGpt2Config {
    pub encoder: EncoderConfig,
    pub decoder: Gpt2Config,
    pub decoder_start_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

fn d768() -> usize {
    768
}
fn d12() -> usize {
    12
}
fn d3072() -> usize {
    3072
}
fn d224() -> usize {
    224
}
fn d16() -> usize {
    16
}
fn d3() -> usize {
    3
}
fn d50257() -> usize {
    50257
}
fn d1024() -> usize {
    1024
}
fn yes() -> bool {
    true
}
fn gelu() -> Activation {
    Activation::Gelu
}
fn gelu_new() -> Activation {
    Activation::NewGelu
}
fn eps12() -> f64 {
    1e-12
}
fn eps5() -> f64 {
    1e-5
}

impl VitGpt2Config {
    pub fn parse(json: &str) -> Result<Self> {
        let c: VitGpt2Config = serde_json::from_str(json)
            .map_err(|e| Error::Model(format!("VisionEncoderDecoder config.json: {e}")))?;
        if !c.decoder.add_cross_attention {
            return Err(Error::Model(
                "decoder.add_cross_attention is false: not an image-captioning GPT-2".into(),
            ));
        }
        if c.decoder.scale_attn_by_inverse_layer_idx {
            return Err(Error::Model(
                "decoder.scale_attn_by_inverse_layer_idx is not supported".into(),
            ));
        }
        Ok(c)
    }
}

/// The ViT encoder: image → `[b, 1 + patches, hidden]` with the final layernorm on every token.
pub struct VitEncoder {
    embeddings: vit::Embeddings,
    encoder: vit::Encoder,
    layernorm: LayerNorm,
}

impl VitEncoder {
    pub fn new(cfg: &EncoderConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let c = vit::Config {
            hidden_size: cfg.hidden_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: cfg.num_attention_heads,
            intermediate_size: cfg.intermediate_size,
            hidden_act: cfg.hidden_act,
            layer_norm_eps: cfg.layer_norm_eps,
            image_size: cfg.image_size,
            patch_size: cfg.patch_size,
            num_channels: cfg.num_channels,
            qkv_bias: cfg.qkv_bias,
        };
        Ok(VitEncoder {
            embeddings: vit::Embeddings::new(&c, false, vb.pp("embeddings"))?,
            encoder: vit::Encoder::new(&c, vb.pp("encoder"))?,
            layernorm: layer_norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("layernorm"))?,
        })
    }

    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let x = self.embeddings.forward(pixels, None, false)?;
        Ok(self.encoder.forward(&x)?.apply(&self.layernorm)?)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_cross: LayerNorm,
    q_attn: Linear,
    cross_kv: Linear,
    cross_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// GPT-2 with cross-attention and the LM head tied to the token embeddings.
pub struct Gpt2Decoder {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// Encoder → decoder projection when their hidden sizes differ.
    enc_to_dec: Option<Linear>,
    act: Activation,
    heads: usize,
    scale: f64,
    n_positions: usize,
}

impl Gpt2Decoder {
    /// `vb` at the root of the VisionEncoderDecoder checkpoint.
    pub fn new(cfg: &Gpt2Config, enc_hidden: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.n_embd;
        let eps = cfg.layer_norm_epsilon;
        let inner = cfg.n_inner.unwrap_or(4 * d);
        let t = vb.pp("decoder.transformer");
        let wte = candle_nn::embedding(cfg.vocab_size, d, t.pp("wte"))?;
        let wpe = candle_nn::embedding(cfg.n_positions, d, t.pp("wpe"))?;
        let mut blocks = Vec::new();
        for i in 0..cfg.n_layer {
            let b = t.pp("h").pp(i);
            blocks.push(Block {
                ln_1: layer_norm(d, eps, b.pp("ln_1"))?,
                c_attn: conv1d(&b.pp("attn.c_attn"), d, 3 * d)?,
                attn_proj: conv1d(&b.pp("attn.c_proj"), d, d)?,
                ln_cross: layer_norm(d, eps, b.pp("ln_cross_attn"))?,
                q_attn: conv1d(&b.pp("crossattention.q_attn"), d, d)?,
                cross_kv: conv1d(&b.pp("crossattention.c_attn"), d, 2 * d)?,
                cross_proj: conv1d(&b.pp("crossattention.c_proj"), d, d)?,
                ln_2: layer_norm(d, eps, b.pp("ln_2"))?,
                c_fc: conv1d(&b.pp("mlp.c_fc"), d, inner)?,
                mlp_proj: conv1d(&b.pp("mlp.c_proj"), inner, d)?,
            });
        }
        let ln_f = layer_norm(d, eps, t.pp("ln_f"))?;
        let enc_to_dec = if enc_hidden != d {
            Some(linear::linear(enc_hidden, d, vb.pp("enc_to_dec_proj"))?)
        } else {
            None
        };
        let dh = d / cfg.n_head;
        Ok(Gpt2Decoder {
            wte,
            wpe,
            blocks,
            ln_f,
            enc_to_dec,
            act: cfg.activation_function,
            heads: cfg.n_head,
            scale: if cfg.scale_attn_weights {
                1.0 / (dh as f64).sqrt()
            } else {
                1.0
            },
            n_positions: cfg.n_positions,
        })
    }

    fn cross_kv(&self, b: &Block, enc: &Tensor) -> Result<(Tensor, Tensor)> {
        let kv = enc.apply(&b.cross_kv)?;
        let d = kv.dim(D::Minus1)? / 2;
        Ok((
            split_heads(&kv.narrow(D::Minus1, 0, d)?, self.heads)?,
            split_heads(&kv.narrow(D::Minus1, d, d)?, self.heads)?,
        ))
    }
}

impl Decoder for Gpt2Decoder {
    fn start(&self, encoder: Tensor, cache_cross: bool) -> Result<DecoderState> {
        let encoder = match &self.enc_to_dec {
            Some(p) => encoder.apply(p)?,
            None => encoder,
        };
        let cross_kv = if cache_cross {
            Some(
                self.blocks
                    .iter()
                    .map(|b| self.cross_kv(b, &encoder))
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
        Ok(DecoderState {
            self_kv: vec![None; self.blocks.len()],
            cross_kv,
            encoder,
            pos: 0,
        })
    }

    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
        if state.pos >= self.n_positions {
            return Err(Error::Invalid(format!(
                "caption longer than the model's {} positions",
                self.n_positions
            )));
        }
        let dev = state.encoder.device().clone();
        let ids = Tensor::new(tokens, &dev)?.unsqueeze(1)?;
        let pos = Tensor::new(&[state.pos as u32], &dev)?.unsqueeze(0)?;
        let mut x = self
            .wte
            .forward(&ids)?
            .broadcast_add(&self.wpe.forward(&pos)?)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let h = x.apply(&b.ln_1)?.apply(&b.c_attn)?;
            let d = h.dim(D::Minus1)? / 3;
            let q = split_heads(&h.narrow(D::Minus1, 0, d)?, self.heads)?;
            let k = split_heads(&h.narrow(D::Minus1, d, d)?, self.heads)?;
            let v = split_heads(&h.narrow(D::Minus1, 2 * d, d)?, self.heads)?;
            let (k, v) = push_kv(&mut state.self_kv[i], k, v)?;
            let a = merge_heads(&attend(&q, &k, &v, self.scale)?)?.apply(&b.attn_proj)?;
            x = (x + a)?;
            let q = split_heads(&x.apply(&b.ln_cross)?.apply(&b.q_attn)?, self.heads)?;
            let (k, v) = match &state.cross_kv {
                Some(kv) => kv[i].clone(),
                None => self.cross_kv(b, &state.encoder)?,
            };
            let c = merge_heads(&attend(&q, &k, &v, self.scale)?)?.apply(&b.cross_proj)?;
            x = (x + c)?;
            let m = x
                .apply(&b.ln_2)?
                .apply(&b.c_fc)?
                .apply(&self.act)?
                .apply(&b.mlp_proj)?;
            x = (x + m)?;
        }
        state.pos += 1;
        let h = x.apply(&self.ln_f)?.squeeze(1)?;
        // The tied head streams the token embeddings once per step (a few rows: see `linear`).
        Ok(Linear::new(self.wte.embeddings().clone(), None).forward(&h)?)
    }
}

/// A Linear layer from GPT-2's Conv1D weights, stored `[in, out]`.
pub fn conv1d(
    vb: &candle_nn::VarBuilder,
    n_in: usize,
    n_out: usize,
) -> candle_core::Result<Linear> {
    let w = vb.get((n_in, n_out), "weight")?.t()?.contiguous()?;
    let b = vb.get(n_out, "bias")?;
    Ok(Linear::new(w, Some(b)))
}
