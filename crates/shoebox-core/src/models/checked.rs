//! A VarBuilder over a safetensors file that refuses to invent weights: every tensor a model asks
//! for must exist in the file, and the first missing one is named in the error.
//!
//! candle's models probe optional tensors with `contains_tensor` and fill missing ones with random
//! or default values (CLIP's class_embedding, logit_scale); we answer "present" to every probe so
//! the model asks for the tensor, and fail loudly if it is not there.
//!
//! Tensors are read one by one with positioned reads (through the page cache) into memory the model
//! owns. candle's CPU tensors own their data, so loading through a memory map copies every tensor
//! anyway — and the mapped pages it touched stay resident until the map goes: twice the model in
//! the process's peak RSS (measured: 1.18 GB for CLIP ViT-B/32 loaded through a map).

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use safetensors::tensor::Metadata;

use crate::error::{Error, Result};

/// A safetensors file: its header, and positioned reads of one tensor at a time.
struct TensorFile {
    file: std::fs::File,
    /// Offset of the data section in the file.
    data_start: u64,
    header: Metadata,
}

impl TensorFile {
    fn open(path: &Path) -> std::result::Result<Self, String> {
        let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n)
            .map_err(|_| "not a safetensors file (too short)".to_string())?;
        let n = u64::from_le_bytes(n);
        if n > 100_000_000 || 8 + n > file_len {
            return Err("not a safetensors file (bad header length)".into());
        }
        let mut bytes = vec![0u8; n as usize];
        file.read_exact(&mut bytes).map_err(|e| e.to_string())?;
        let header: Metadata =
            serde_json::from_slice(&bytes).map_err(|e| format!("safetensors header: {e}"))?;
        let data_len = file_len - 8 - n;
        for (name, info) in header.tensors() {
            let (a, b) = info.data_offsets;
            if a > b || b as u64 > data_len {
                return Err(format!("tensor {name} lies outside the file (truncated?)"));
            }
        }
        Ok(TensorFile {
            file,
            data_start: 8 + n,
            header,
        })
    }

    fn contains(&self, name: &str) -> bool {
        self.header.info(name).is_some()
    }

    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?;
        let (a, b) = info.data_offsets;
        let mut buf = vec![0u8; b - a];
        read_at(&self.file, &mut buf, self.data_start + a as u64)?;
        let view = safetensors::tensor::TensorView::new(info.dtype, info.shape.clone(), &buf)
            .map_err(|e| candle_core::Error::Msg(format!("tensor {name}: {e}")))?;
        candle_core::safetensors::Load::load(&view, dev)
    }
}

#[cfg(unix)]
fn read_at(f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

struct Checked {
    inner: TensorFile,
    missing: Arc<Mutex<Option<String>>>,
}

impl Checked {
    fn note_missing(&self, name: &str) -> candle_core::Error {
        let mut m = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_none() {
            *m = Some(name.to_string());
        }
        candle_core::Error::Msg(format!("missing tensor {name}"))
    }
}

impl SimpleBackend for Checked {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.inner.contains(name) {
            return Err(self.note_missing(name));
        }
        let t = self.inner.load(name, dev)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt());
        }
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if !self.inner.contains(name) {
            return Err(self.note_missing(name));
        }
        self.inner.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A checked VarBuilder and the means to turn a model-construction result into a clear error.
pub struct CheckedVarBuilder {
    vb: VarBuilder<'static>,
    missing: Arc<Mutex<Option<String>>>,
    file: String,
}

/// Open `path` for checked loading.
pub fn checked_var_builder(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<CheckedVarBuilder> {
    let inner =
        TensorFile::open(path).map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    let missing = Arc::new(Mutex::new(None));
    let backend: Box<dyn SimpleBackend> = Box::new(Checked {
        inner,
        missing: missing.clone(),
    });
    Ok(CheckedVarBuilder {
        vb: VarBuilder::from_backend(backend, dtype, device.clone()),
        missing,
        file: path.display().to_string(),
    })
}

impl CheckedVarBuilder {
    pub fn builder(&self) -> VarBuilder<'static> {
        self.vb.clone()
    }

    /// Map the model's construction result, naming the first missing tensor if there was one.
    pub fn finish<T>(self, built: candle_core::Result<T>) -> Result<T> {
        let missing = self
            .missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (built, missing) {
            (_, Some(name)) => Err(Error::Model(format!(
                "{} lacks the tensor `{name}` the model needs (incomplete or wrong checkpoint)",
                self.file
            ))),
            (Ok(m), None) => Ok(m),
            (Err(e), None) => Err(Error::Model(format!("{}: {e}", self.file))),
        }
    }
}
