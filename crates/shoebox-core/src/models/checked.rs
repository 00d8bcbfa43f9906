//! A VarBuilder over mmaped safetensors that refuses to invent weights: every tensor a model asks
//! for must exist in the file, and the first missing one is named in the error.
//!
//! candle's models probe optional tensors with `contains_tensor` and fill missing ones with random
//! or default values (CLIP's class_embedding, logit_scale); we answer "present" to every probe so
//! the model asks for the tensor, and fail loudly if it is not there.

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::error::{Error, Result};

struct Checked {
    inner: MmapedSafetensors,
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
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if self.inner.get(name).is_err() {
            return Err(self.note_missing(name));
        }
        SimpleBackend::get(&self.inner, s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if self.inner.get(name).is_err() {
            return Err(self.note_missing(name));
        }
        SimpleBackend::get_unchecked(&self.inner, name, dtype, dev)
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

/// Open `path` (mmaped) for checked loading.
pub fn checked_var_builder(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<CheckedVarBuilder> {
    let inner = unsafe { MmapedSafetensors::new(path) }
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
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
