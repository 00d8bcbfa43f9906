//! Models: where their files come from (hub or local folder), checked weight loading,
//! image preprocessing, generation, and the model implementations (CLIP, BLIP, ViT-GPT2).

pub mod blip;
pub mod caption;
pub mod checked;
pub mod clip;
pub mod generate;
pub mod hub;
pub mod preprocess;
pub mod text;
pub mod vitgpt2;
pub mod weights;

use candle_core::Device;

use crate::error::{Error, Result};

/// Which compute device to run models on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "metal" => Ok(DeviceChoice::Metal),
            other => Err(Error::Invalid(format!(
                "unknown device {other:?} (auto, cpu, cuda, metal)"
            ))),
        }
    }
}

impl DeviceChoice {
    /// The candle device: `auto` takes CUDA or Metal when built in and present, else the CPU.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => Device::new_cuda(0).map_err(|e| {
                Error::Invalid(format!(
                    "--device cuda: {e} (build with `--features cuda` on a machine with CUDA)"
                ))
            }),
            DeviceChoice::Metal => Device::new_metal(0).map_err(|e| {
                Error::Invalid(format!(
                    "--device metal: {e} (build with `--features metal` on macOS)"
                ))
            }),
            DeviceChoice::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        return Ok(d);
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(d) = Device::new_metal(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}
