//! Models: where their files come from (hub or local folder), checked weight loading,
//! image preprocessing, generation, and the model implementations (CLIP / OpenCLIP / SigLIP, BLIP,
//! ViT-GPT2, sentence encoders).

pub mod attention;
pub mod batch;
pub mod bert;
pub mod blip;
pub mod caption;
pub mod checked;
pub mod clip;
pub mod generate;
pub mod hub;
pub mod linear;
pub mod menu;
pub mod parallel;
pub mod preprocess;
pub mod q8;
pub mod text;
pub mod towers;
pub mod vitgpt2;
pub mod weights;

use candle_core::Device;

use crate::error::{Error, Result};

/// How the encoders' matrices are held and multiplied on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 weights, f32 products: the reference implementation's numbers.
    #[default]
    F32,
    /// int8 weights (one scale per output row) and int8 products on the CPU (see [`q8`]):
    /// a quarter of the memory, several times the speed where the CPU has int8 dot products.
    /// Other devices run f32 whatever this says.
    Q8,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "q8" => Ok(Precision::Q8),
            other => Err(Error::UnknownValue {
                what: "precision",
                value: other.to_string(),
                expected: "f32, q8",
            }),
        }
    }
}

impl Precision {
    /// The name [`Precision::from_str`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Q8 => "q8",
        }
    }
}

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
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "metal" => Ok(DeviceChoice::Metal),
            other => Err(Error::UnknownValue {
                what: "device",
                value: other.to_string(),
                expected: "auto, cpu, cuda, metal",
            }),
        }
    }
}

impl DeviceChoice {
    /// The name [`DeviceChoice::from_str`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Metal => "metal",
        }
    }

    /// The candle device: `auto` takes CUDA or Metal when built in and present, else the CPU.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => Device::new_cuda(0).map_err(|e| Error::DeviceUnavailable {
                device: "cuda",
                reason: e.to_string(),
            }),
            DeviceChoice::Metal => Device::new_metal(0).map_err(|e| Error::DeviceUnavailable {
                device: "metal",
                reason: e.to_string(),
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
