//! One way for the captioners to ask for weights from either a checked safetensors file (f32) or a
//! quantized GGUF file (matrices stay quantized; the rest is dequantized), plus the command that
//! writes such a GGUF file.

use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Module, Shape, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};
use candle_transformers::quantized_nn;
use candle_transformers::quantized_var_builder::VarBuilder as QVarBuilder;

use super::Precision;
use crate::error::{Error, Result};

/// Where weights come from.
#[derive(Clone)]
pub enum Weights {
    /// A safetensors file; linear layers held at this precision (`q8`: quantized at load).
    F32(VarBuilder<'static>, Precision),
    Quantized(QVarBuilder),
}

/// A linear layer, plain or over quantized weights.
#[derive(Debug, Clone)]
pub enum Lin {
    F32(super::linear::Linear),
    Quantized(quantized_nn::Linear),
}

impl Module for Lin {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Lin::F32(l) => l.forward(x),
            Lin::Quantized(l) => l.forward(x),
        }
    }
}

impl Weights {
    pub fn pp(&self, s: impl ToString) -> Self {
        match self {
            Weights::F32(vb, p) => Weights::F32(vb.pp(s), *p),
            Weights::Quantized(vb) => Weights::Quantized(vb.pp(s)),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Weights::F32(vb, _) => vb.device().clone(),
            Weights::Quantized(vb) => vb.device().clone(),
        }
    }

    /// A tensor as f32 (dequantized when stored quantized).
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> candle_core::Result<Tensor> {
        match self {
            Weights::F32(vb, _) => vb.get(shape, name),
            Weights::Quantized(vb) => vb.get(shape, name)?.dequantize(vb.device()),
        }
    }

    /// A linear layer `[out, in]` + bias.
    pub fn linear(&self, n_in: usize, n_out: usize) -> candle_core::Result<Lin> {
        match self {
            Weights::F32(vb, p) => Ok(Lin::F32(
                super::linear::linear(n_in, n_out, vb.clone())?.with_precision(*p)?,
            )),
            Weights::Quantized(vb) => Ok(Lin::Quantized(quantized_nn::linear(
                n_in,
                n_out,
                vb.clone(),
            )?)),
        }
    }

    /// A linear layer over an existing `[out, in]` weight (a tied head) and this bias.
    pub fn tied(&self, weight: Tensor, bias: &str, n_out: usize) -> candle_core::Result<Lin> {
        Ok(Lin::F32(super::linear::Linear::new(
            weight,
            Some(self.get(n_out, bias)?),
        )))
    }

    pub fn layer_norm(&self, d: usize, eps: f64) -> candle_core::Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(d, "weight")?,
            self.get(d, "bias")?,
            eps,
        ))
    }

    pub fn embedding(&self, n: usize, d: usize) -> candle_core::Result<Embedding> {
        Ok(Embedding::new(self.get((n, d), "weight")?, d))
    }

    /// A square-kernel convolution with bias (patch embeddings).
    pub fn conv2d(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
    ) -> candle_core::Result<Conv2d> {
        let w = self.get((c_out, c_in, k, k), "weight")?;
        let b = self.get(c_out, "bias")?;
        Ok(Conv2d::new(w, Some(b), cfg))
    }

    /// The f32 builder, for layers taken from candle that only accept one.
    pub fn f32_builder(&self) -> Option<&VarBuilder<'static>> {
        match self {
            Weights::F32(vb, _) => Some(vb),
            Weights::Quantized(_) => None,
        }
    }
}

/// Open a GGUF file for quantized loading.
pub fn gguf_weights(path: &Path, device: &Device) -> Result<Weights> {
    QVarBuilder::from_gguf(path, device)
        .map(Weights::Quantized)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))
}

/// Quantization types `models quantize` writes.
pub fn parse_qtype(s: &str) -> Result<GgmlDType> {
    match s.to_ascii_lowercase().as_str() {
        "q8_0" | "q8" => Ok(GgmlDType::Q8_0),
        "q4k" | "q4_k" => Ok(GgmlDType::Q4K),
        "q5k" | "q5_k" => Ok(GgmlDType::Q5K),
        "f16" => Ok(GgmlDType::F16),
        other => Err(Error::Invalid(format!(
            "unknown quantization {other:?} (q8_0, q5k, q4k, f16)"
        ))),
    }
}

/// Write `src` (safetensors) as GGUF: every 2-D `*.weight` matrix whose rows fit the type's block
/// size is quantized, everything else kept f32. Returns (quantized, kept) tensor counts.
pub fn quantize_safetensors(src: &Path, dest: &Path, dtype: GgmlDType) -> Result<(usize, usize)> {
    let tensors = candle_core::safetensors::load(src, &Device::Cpu)
        .map_err(|e| Error::Model(format!("{}: {e}", src.display())))?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut q = Vec::with_capacity(names.len());
    let (mut quantized, mut kept) = (0, 0);
    for name in &names {
        let t = tensors[*name].to_dtype(DType::F32)?;
        let dims = t.dims().to_vec();
        let quantize = name.ends_with("weight")
            && dims.len() == 2
            && dims[1] % dtype.block_size() == 0
            && !name.contains("LayerNorm")
            && !name.contains("layer_norm")
            && !name.contains(".ln");
        let qt = if quantize {
            quantized += 1;
            QTensor::quantize(&t, dtype)?
        } else {
            kept += 1;
            QTensor::quantize(&t, GgmlDType::F32)?
        };
        q.push(qt);
    }
    let pairs: Vec<(&str, &QTensor)> = names.iter().map(|n| n.as_str()).zip(q.iter()).collect();
    let tmp = dest.with_extension("gguf.partial");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    gguf_file::write(&mut f, &[], &pairs)?;
    drop(f);
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    Ok((quantized, kept))
}
