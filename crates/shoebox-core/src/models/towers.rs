//! The transformer towers of image–text models, written once for every family Shoebox loads:
//! CLIP (OpenAI's quick_gelu and OpenCLIP's exact GELU) and SigLIP / SigLIP 2 (tanh GELU, attention
//! pooling). Each tower maps its input (token ids or pixel values) to one unnormalized embedding
//! per row, in the shared image–text space.
//!
//! Tensor names follow transformers' `CLIPModel` and `SiglipModel`, so a Hugging Face folder loads
//! as it is. Every activation is computed exactly as transformers computes it: a cosine bound cannot
//! tell GELU from quick_gelu on a small model, the parity tests compare per component.

use candle_core::{IndexOp, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};

use super::linear::{self, Linear};
use super::Precision;

use crate::error::{Error, Result};

/// An MLP activation, by its transformers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `quick_gelu`: x·σ(1.702x) (OpenAI CLIP).
    QuickGelu,
    /// `gelu`: the exact, erf-based GELU (OpenCLIP checkpoints in CLIPModel format).
    Gelu,
    /// `gelu_pytorch_tanh` / `gelu_new`: the tanh approximation (SigLIP).
    GeluTanh,
}

impl Activation {
    /// The activation transformers' `ACT2FN[name]` computes; others are refused (a model computed
    /// with the wrong one gives plausible but wrong embeddings).
    pub fn parse(part: &str, name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            "gelu_pytorch_tanh" | "gelu_new" => Ok(Activation::GeluTanh),
            other => Err(Error::Model(format!(
                "{part}.hidden_act is \"{other}\": Shoebox computes quick_gelu, gelu and \
                 gelu_pytorch_tanh; this checkpoint would give wrong embeddings, so it is refused"
            ))),
        }
    }

    fn fused(self) -> linear::Act {
        match self {
            Activation::QuickGelu => linear::Act::QuickGelu,
            Activation::Gelu => linear::Act::GeluErf,
            Activation::GeluTanh => linear::Act::GeluTanh,
        }
    }
}

/// The shape of one transformer stack.
#[derive(Debug, Clone, Copy)]
pub struct StackConfig {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub act: Activation,
    pub eps: f64,
    /// How the stack's linear layers hold their weights (embeddings, norms and the final
    /// projection stay f32).
    pub precision: Precision,
}

impl StackConfig {
    pub(crate) fn check(&self, part: &str) -> Result<()> {
        if self.heads == 0 || self.hidden % self.heads != 0 {
            return Err(Error::Model(format!(
                "{part}: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden, self.heads
            )));
        }
        Ok(())
    }
}

/// Multi-head attention with separate q/k/v projections (`self_attn.{q,k,v,out}_proj`).
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn new(c: &StackConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = c.hidden;
        Ok(Attention {
            q: linear::linear(h, h, vb.pp("q_proj"))?.with_precision(c.precision)?,
            k: linear::linear(h, h, vb.pp("k_proj"))?.with_precision(c.precision)?,
            v: linear::linear(h, h, vb.pp("v_proj"))?.with_precision(c.precision)?,
            out: linear::linear(h, h, vb.pp("out_proj"))?.with_precision(c.precision)?,
            heads: c.heads,
            scale: ((h / c.heads) as f64).powf(-0.5),
        })
    }

    /// `q_in` attends over `kv_in`; `mask` (additive, broadcast to (b, heads, q, k)) hides keys.
    fn forward(
        &self,
        q_in: &Tensor,
        kv_in: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, nq, hidden) = q_in.dims3()?;
        let nk = kv_in.dim(1)?;
        let hd = hidden / self.heads;
        let split = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.reshape((b, n, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = (q_in.apply(&self.q)? * self.scale)?;
        let k = kv_in.apply(&self.k)?;
        let v = kv_in.apply(&self.v)?;
        if let Some(o) = super::attention::attend(&q, &k, &v, self.heads, mask)? {
            return o.apply(&self.out);
        }
        let (q, k, v) = (split(q, nq)?, split(k, nk)?, split(v, nk)?);
        let mut w = q.matmul(&k.t()?)?;
        if let Some(m) = mask {
            w = w.broadcast_add(m)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        w.matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, nq, hidden))?
            .apply(&self.out)
    }
}

/// `fc1` → activation → `fc2`.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    fn new(c: &StackConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Mlp {
            fc1: linear::linear(c.hidden, c.intermediate, vb.pp("fc1"))?
                .with_precision(c.precision)?,
            fc2: linear::linear(c.intermediate, c.hidden, vb.pp("fc2"))?
                .with_precision(c.precision)?,
            act: c.act,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.fc1.forward_act(xs, self.act.fused())?.apply(&self.fc2)
    }
}

/// One pre-norm encoder layer: x + attn(ln1(x)), then x + mlp(ln2(x)).
struct Layer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    mlp: Mlp,
}

impl Layer {
    fn new(c: &StackConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Layer {
            ln1: candle_nn::layer_norm(c.hidden, c.eps, vb.pp("layer_norm1"))?,
            attn: Attention::new(c, vb.pp("self_attn"))?,
            ln2: candle_nn::layer_norm(c.hidden, c.eps, vb.pp("layer_norm2"))?,
            mlp: Mlp::new(c, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let h = xs.apply(&self.ln1)?;
        let xs = (xs + self.attn.forward(&h, &h, mask)?)?;
        let h = self.mlp.forward(&xs.apply(&self.ln2)?)?;
        xs + h
    }
}

/// `encoder.layers.N`.
struct Stack {
    layers: Vec<Layer>,
}

impl Stack {
    fn new(c: &StackConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("layers");
        let layers = (0..c.layers)
            .map(|i| Layer::new(c, vb.pp(i)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Stack { layers })
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut xs = xs.clone();
        for l in &self.layers {
            xs = l.forward(&xs, mask)?;
        }
        Ok(xs)
    }
}

/// Token plus position embeddings (`embeddings.{token,position}_embedding`).
struct TextEmbeddings {
    token: Embedding,
    position: Tensor,
}

impl TextEmbeddings {
    fn new(
        vocab: usize,
        positions: usize,
        hidden: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(TextEmbeddings {
            token: candle_nn::embedding(vocab, hidden, vb.pp("token_embedding"))?,
            position: vb.get((positions, hidden), "position_embedding.weight")?,
        })
    }

    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let n = ids.dim(1)?;
        let max = self.position.dim(0)?;
        if n > max {
            candle_core::bail!("{n} tokens, but the model has {max} positions");
        }
        self.token
            .forward(ids)?
            .broadcast_add(&self.position.narrow(0, 0, n)?)
    }
}

/// Rows of `hidden` (b, n, d) at one position per row.
fn gather_rows(hidden: &Tensor, at: &[usize]) -> candle_core::Result<Tensor> {
    let rows = at
        .iter()
        .enumerate()
        .map(|(b, &i)| hidden.i((b, i)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::stack(&rows, 0)
}

/// How a CLIP text tower finds the token it pools.
#[derive(Debug, Clone, Copy)]
pub enum EosPooling {
    /// The largest id (transformers' rule when the config's eos_token_id is the legacy 2; with
    /// CLIP's BPE the end token is the largest id).
    Argmax,
    /// The first occurrence of this id.
    First(u32),
}

/// CLIP's text transformer: causal self-attention, pooled at the end token, projected.
pub struct ClipText {
    embeddings: TextEmbeddings,
    stack: Stack,
    final_ln: LayerNorm,
    projection: Linear,
    pooling: EosPooling,
}

impl ClipText {
    /// `vb` at the model's root (`text_model.*`, `text_projection`).
    pub fn new(
        c: &StackConfig,
        vocab: usize,
        positions: usize,
        projection: usize,
        pooling: EosPooling,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let t = vb.pp("text_model");
        Ok(ClipText {
            embeddings: TextEmbeddings::new(vocab, positions, c.hidden, t.pp("embeddings"))?,
            stack: Stack::new(c, t.pp("encoder"))?,
            final_ln: candle_nn::layer_norm(c.hidden, c.eps, t.pp("final_layer_norm"))?,
            projection: linear::linear_no_bias(c.hidden, projection, vb.pp("text_projection"))?,
            pooling,
        })
    }
}

impl Module for ClipText {
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (_, n) = ids.dims2()?;
        let rows = ids.to_device(&candle_core::Device::Cpu)?.to_vec2::<u32>()?;
        let at: Vec<usize> = rows
            .iter()
            .map(|r| match self.pooling {
                EosPooling::First(eos) => r.iter().position(|&t| t == eos).unwrap_or(n - 1),
                // First maximum, as torch's argmax on CPU.
                EosPooling::Argmax => {
                    r.iter()
                        .enumerate()
                        .fold(
                            (0, 0),
                            |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
                        )
                        .0
                }
            })
            .collect();
        let xs = self.embeddings.forward(ids)?;
        // Causal mask: a token sees itself and what comes before it (padding after the end token
        // therefore never reaches it).
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, n, n), xs.device())?.to_dtype(xs.dtype())?;
        let xs = self.stack.forward(&xs, Some(&mask))?;
        let xs = xs.apply(&self.final_ln)?;
        gather_rows(&xs, &at)?.apply(&self.projection)
    }
}

/// Patch embedding of a ViT: a stride-`patch` convolution, flattened to (b, patches, hidden).
fn patch_conv(
    channels: usize,
    hidden: usize,
    patch: usize,
    bias: bool,
    vb: VarBuilder,
) -> candle_core::Result<Conv2d> {
    let cfg = Conv2dConfig {
        stride: patch,
        ..Default::default()
    };
    if bias {
        candle_nn::conv2d(channels, hidden, patch, cfg, vb)
    } else {
        candle_nn::conv2d_no_bias(channels, hidden, patch, cfg, vb)
    }
}

fn patches(conv: &Conv2d, pixels: &Tensor) -> candle_core::Result<Tensor> {
    pixels.apply(conv)?.flatten_from(2)?.transpose(1, 2)
}

/// The vision side's geometry.
#[derive(Debug, Clone, Copy)]
pub struct VisionGeometry {
    pub channels: usize,
    pub image_size: usize,
    pub patch: usize,
}

impl VisionGeometry {
    pub fn patches(&self) -> usize {
        (self.image_size / self.patch).pow(2)
    }
}

/// CLIP's vision transformer: class token, pre- and post-norm, pooled at the class token, projected.
pub struct ClipVision {
    conv: Conv2d,
    class: Tensor,
    position: Tensor,
    pre_ln: LayerNorm,
    stack: Stack,
    post_ln: LayerNorm,
    projection: Linear,
}

impl ClipVision {
    /// `vb` at the model's root (`vision_model.*`, `visual_projection`).
    pub fn new(
        c: &StackConfig,
        g: VisionGeometry,
        projection: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let v = vb.pp("vision_model");
        let e = v.pp("embeddings");
        Ok(ClipVision {
            conv: patch_conv(
                g.channels,
                c.hidden,
                g.patch,
                false,
                e.pp("patch_embedding"),
            )?,
            class: e.get(c.hidden, "class_embedding")?,
            position: e.get((g.patches() + 1, c.hidden), "position_embedding.weight")?,
            pre_ln: candle_nn::layer_norm(c.hidden, c.eps, v.pp("pre_layrnorm"))?,
            stack: Stack::new(c, v.pp("encoder"))?,
            post_ln: candle_nn::layer_norm(c.hidden, c.eps, v.pp("post_layernorm"))?,
            projection: linear::linear_no_bias(c.hidden, projection, vb.pp("visual_projection"))?,
        })
    }
}

impl Module for ClipVision {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let b = pixels.dim(0)?;
        let p = patches(&self.conv, pixels)?;
        let d = self.class.dim(0)?;
        let class = self.class.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        let xs = Tensor::cat(&[&class.to_dtype(p.dtype())?, &p], 1)?
            .broadcast_add(&self.position)?
            .apply(&self.pre_ln)?;
        let xs = self.stack.forward(&xs, None)?;
        xs.i((.., 0))?.apply(&self.post_ln)?.apply(&self.projection)
    }
}

/// SigLIP's text transformer: bidirectional self-attention over the padded sequence, the last
/// token normed and passed through `head`.
pub struct SiglipText {
    embeddings: TextEmbeddings,
    stack: Stack,
    final_ln: LayerNorm,
    head: Linear,
}

impl SiglipText {
    /// `vb` at the model's root (`text_model.*`).
    pub fn new(
        c: &StackConfig,
        vocab: usize,
        positions: usize,
        projection: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let t = vb.pp("text_model");
        Ok(SiglipText {
            embeddings: TextEmbeddings::new(vocab, positions, c.hidden, t.pp("embeddings"))?,
            stack: Stack::new(c, t.pp("encoder"))?,
            final_ln: candle_nn::layer_norm(c.hidden, c.eps, t.pp("final_layer_norm"))?,
            head: linear::linear(c.hidden, projection, t.pp("head"))?,
        })
    }
}

impl Module for SiglipText {
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let xs = self.embeddings.forward(ids)?;
        let xs = self.stack.forward(&xs, None)?.apply(&self.final_ln)?;
        let n = xs.dim(1)?;
        xs.i((.., n - 1))?.contiguous()?.apply(&self.head)
    }
}

/// SigLIP's attention-pooling head: a learned probe attends over the patches (torch's
/// `nn.MultiheadAttention` with packed in-projections), then a residual MLP.
struct PoolingHead {
    probe: Tensor,
    attn: Attention,
    ln: LayerNorm,
    mlp: Mlp,
}

impl PoolingHead {
    fn new(c: &StackConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = c.hidden;
        let a = vb.pp("attention");
        let w = a.get((3 * h, h), "in_proj_weight")?;
        let bias = a.get(3 * h, "in_proj_bias")?;
        let part = |i: usize| -> candle_core::Result<Linear> {
            Ok(Linear::new(
                w.narrow(0, i * h, h)?.contiguous()?,
                Some(bias.narrow(0, i * h, h)?.contiguous()?),
            ))
        };
        let attn = Attention {
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            out: linear::linear(h, h, a.pp("out_proj"))?,
            heads: c.heads,
            scale: ((h / c.heads) as f64).powf(-0.5),
        };
        Ok(PoolingHead {
            probe: vb.get((1, 1, h), "probe")?,
            attn,
            ln: candle_nn::layer_norm(h, c.eps, vb.pp("layernorm"))?,
            mlp: Mlp::new(c, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, h) = xs.dims3()?;
        let probe = self.probe.broadcast_as((b, 1, h))?.contiguous()?;
        let pooled = self.attn.forward(&probe, xs, None)?;
        let out = (&pooled + self.mlp.forward(&pooled.apply(&self.ln)?)?)?;
        out.i((.., 0))
    }
}

/// SigLIP's vision transformer: patches plus positions (no class token), post-norm, attention
/// pooling. Its output is the image embedding (SigLIP has no separate projection).
pub struct SiglipVision {
    conv: Conv2d,
    position: Tensor,
    stack: Stack,
    post_ln: LayerNorm,
    head: PoolingHead,
}

impl SiglipVision {
    /// `vb` at the model's root (`vision_model.*`).
    pub fn new(c: &StackConfig, g: VisionGeometry, vb: VarBuilder) -> candle_core::Result<Self> {
        let v = vb.pp("vision_model");
        let e = v.pp("embeddings");
        Ok(SiglipVision {
            conv: patch_conv(g.channels, c.hidden, g.patch, true, e.pp("patch_embedding"))?,
            position: e.get((g.patches(), c.hidden), "position_embedding.weight")?,
            stack: Stack::new(c, v.pp("encoder"))?,
            post_ln: candle_nn::layer_norm(c.hidden, c.eps, v.pp("post_layernorm"))?,
            head: PoolingHead::new(c, v.pp("head"))?,
        })
    }
}

impl Module for SiglipVision {
    fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let xs = patches(&self.conv, pixels)?.broadcast_add(&self.position)?;
        let xs = self.stack.forward(&xs, None)?.apply(&self.post_ln)?;
        self.head.forward(&xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn activations_are_transformers_formulas() {
        let x = Tensor::new(&[-2.0f32, -0.5, 0.0, 0.7, 3.0], &Device::Cpu).unwrap();
        // Through a linear layer (identity weight, zero bias) on both of its CPU paths (a few
        // rows: the streaming kernel; many: the GEMM), which fuse the activation, and through
        // candle's ops (other devices): all three must give the formula.
        let dev = Device::Cpu;
        let id = linear::Linear::new(
            Tensor::eye(5, candle_core::DType::F32, &dev).unwrap(),
            Some(Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap()),
        );
        let paths = |a: Activation| -> Vec<Vec<f32>> {
            let mut out: Vec<Vec<f32>> = [1usize, 40]
                .iter()
                .map(|&rows| {
                    let xr = x.unsqueeze(0).unwrap().repeat((rows, 1)).unwrap();
                    let y = id.forward_act(&xr, a.fused()).unwrap();
                    y.i(rows - 1).unwrap().to_vec1::<f32>().unwrap()
                })
                .collect();
            out.push(a.fused().apply(&x).unwrap().to_vec1::<f32>().unwrap());
            out
        };
        let got = |a: Activation| {
            let p = paths(a);
            for other in &p[1..] {
                for (u, v) in p[0].iter().zip(other) {
                    assert!((u - v).abs() < 1e-6, "{a:?}: {u} vs {v}");
                }
            }
            p[0].clone()
        };
        let xs = [-2.0f64, -0.5, 0.0, 0.7, 3.0];
        let erf_gelu = |v: f64| 0.5 * v * (1.0 + libm_erf(v / 2f64.sqrt()));
        let tanh_gelu = |v: f64| {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        };
        let quick = |v: f64| v / (1.0 + (-1.702 * v).exp());
        for (i, &v) in xs.iter().enumerate() {
            assert!((got(Activation::Gelu)[i] as f64 - erf_gelu(v)).abs() < 1e-6);
            assert!((got(Activation::GeluTanh)[i] as f64 - tanh_gelu(v)).abs() < 1e-6);
            assert!((got(Activation::QuickGelu)[i] as f64 - quick(v)).abs() < 1e-6);
        }
        // The three differ where it matters (x = -0.5: erf −0.1543, tanh −0.1543, quick −0.1496).
        let d = (got(Activation::Gelu)[1] - got(Activation::QuickGelu)[1]).abs();
        assert!(d > 1e-3, "{d}");
        assert!(Activation::parse("text_config", "relu").is_err());
        assert_eq!(
            Activation::parse("v", "gelu_pytorch_tanh").unwrap(),
            Activation::GeluTanh
        );
    }

    /// erf by Abramowitz–Stegun 7.1.26 refined with a Taylor series near 0 (|error| < 1e-9 here).
    fn libm_erf(x: f64) -> f64 {
        // Series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1)), converges fast for |x| ≤ 3.
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 200.0 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }
}
