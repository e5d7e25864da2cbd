//! GPU settings: how many layers to offload, flash attention and the KV-cache types.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// `model.gpu_layers`: "auto" fits as many layers as free VRAM allows (leaving room for the KV
/// cache), "all" offloads everything, a number offloads that many, 0 keeps the model on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLayers {
    Auto,
    All,
    Count(u32),
}

impl FromStr for GpuLayers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(GpuLayers::Auto),
            "all" | "-1" => Ok(GpuLayers::All),
            n => n
                .parse()
                .map(GpuLayers::Count)
                .map_err(|_| format!("expected auto, all or a number of layers, not {n:?}")),
        }
    }
}

impl fmt::Display for GpuLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuLayers::Auto => f.write_str("auto"),
            GpuLayers::All => f.write_str("all"),
            GpuLayers::Count(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for GpuLayers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GpuLayers::Count(n) => s.serialize_u32(*n),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for GpuLayers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(-1) => Ok(GpuLayers::All),
            Raw::Int(n) if n >= 0 && n <= u32::MAX as i64 => Ok(GpuLayers::Count(n as u32)),
            Raw::Int(n) => Err(serde::de::Error::custom(format!("expected auto, all or a number of layers, not {n}"))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `model.flash_attn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashAttn {
    Auto,
    On,
    Off,
}

impl FromStr for FlashAttn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(FlashAttn::Auto),
            "on" => Ok(FlashAttn::On),
            "off" => Ok(FlashAttn::Off),
            o => Err(format!("expected auto, on or off, not {o:?}")),
        }
    }
}

impl fmt::Display for FlashAttn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlashAttn::Auto => "auto",
            FlashAttn::On => "on",
            FlashAttn::Off => "off",
        })
    }
}

/// KV-cache element types worth offering: smaller types fit longer contexts in VRAM.
pub const CACHE_TYPES: &[&str] = &["f16", "bf16", "f32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_layers_read_words_numbers_and_the_old_minus_one() {
        #[derive(Deserialize)]
        struct T {
            g: GpuLayers,
        }
        let read = |s: &str| toml::from_str::<T>(s).map(|t| t.g);
        assert_eq!(read("g = \"auto\"").unwrap(), GpuLayers::Auto);
        assert_eq!(read("g = \"all\"").unwrap(), GpuLayers::All);
        assert_eq!(read("g = -1").unwrap(), GpuLayers::All);
        assert_eq!(read("g = 12").unwrap(), GpuLayers::Count(12));
        assert_eq!(read("g = \"12\"").unwrap(), GpuLayers::Count(12));
        assert!(read("g = \"most\"").unwrap_err().to_string().contains("auto, all"));
        assert!(read("g = -5").is_err());
    }
}
