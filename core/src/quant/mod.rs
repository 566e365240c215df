//! Weight formats (precisions and quantizations) and the bytes a model takes in each.
//!
//! Every byte count is computed tensor by tensor from the model's shapes ([`tensor_formats`]):
//! quantizers leave some tensors alone (norms, biases, often the embedding and output head), group
//! sizes and GGUF blocks must divide a row, and llama.cpp's file types mix block types by tensor
//! (see [`crate::gguf`]). A fixed bits-per-weight figure would be wrong by several percent.
//!
//! This file names the formats ([`WeightFormat`]: parsing, display, the every-format list);
//! `quant/storage.rs` holds the per-tensor storage rules of each format, `quant/totals.rs` the
//! whole-model sums computed once per group of alike tensors.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

mod storage;
mod totals;

pub use storage::{TensorStorage, tensor_formats};
pub use totals::{
    ModelTensors, WeightTotals, active_weights_bytes, bits_per_weight, weight_totals, weights_bytes,
};

use crate::{
    CoreError,
    gguf::{GgmlType, LlamaFileType},
    model::ModelSpec,
    tensors::tensors,
};

/// Bytes of a 16-bit float (fp16, bf16): the storage of tensors a quantizer leaves alone.
pub const HALF_BYTES: u64 = 2;
/// Bytes of an fp32 scale or statistic.
pub const F32_BYTES: u64 = 4;
/// Side of the square blocks that share one fp32 scale in block-wise FP8 checkpoints
/// (`weight_block_size: [128, 128]` in DeepSeek-V3's and Qwen3-FP8's `quantization_config`).
pub const FP8_BLOCK: u64 = 128;
/// bitsandbytes 4-bit block size (`blocksize=64` for nf4/fp4 weights).
pub const BNB_4BIT_BLOCK: u64 = 64;
/// bitsandbytes double quantization: absmax values are quantized to 8 bits in blocks of 256,
/// each block keeping one fp32 scale.
pub const BNB_NESTED_BLOCK: u64 = 256;
/// MXFP4 (OCP microscaling): 32 FP4 values share one 8-bit exponent: 17 bytes per 32 weights.
pub const MXFP4_BLOCK: u64 = 32;
/// Default GPTQ/AWQ group size.
pub const DEFAULT_GROUP_SIZE: u32 = 128;
/// Default MLX group size (`mlx_lm.convert --q-group-size`).
pub const DEFAULT_MLX_GROUP_SIZE: u32 = 64;

/// A weight format: how a checkpoint or runtime stores the weights.
///
/// # Names (`FromStr`, case-insensitive; spaces count as `-`)
///
/// | name | format |
/// |---|---|
/// | `fp32` `f32` `float32` | [`WeightFormat::F32`] |
/// | `fp16` `f16` `float16` | [`WeightFormat::F16`] |
/// | `bf16` `bfloat16` | [`WeightFormat::Bf16`] |
/// | `fp8` `fp8-e4m3` | [`WeightFormat::Fp8`] |
/// | `int8` `bnb-int8` `llm.int8` | [`WeightFormat::BnbInt8`] |
/// | `nf4` `fp4`, with `-dq` or `+dq` for double quantization, optional `bnb-` prefix | [`WeightFormat::BnbNf4`], [`WeightFormat::BnbFp4`] |
/// | `gptq-{2,3,4,8}bit[-g{G}]` (`gptq` = 4-bit g128) | [`WeightFormat::Gptq`] |
/// | `awq-4bit[-g{G}]` (`awq` = 4-bit g128) | [`WeightFormat::Awq`] |
/// | `mlx-{2,3,4,5,6,8}bit[-g{G}]` (`mlx` = 4-bit g64; G ∈ 32, 64, 128) | [`WeightFormat::Mlx`] |
/// | `mxfp4` | [`WeightFormat::Mxfp4`] (Hugging Face MXFP4 checkpoint, gpt-oss) |
/// | a llama.cpp file type: `q4_k_m`, `Q8_0`, `iq4_xs`, `MXFP4_MOE`, ... (`gguf-` prefix optional) | [`WeightFormat::Gguf`] |
/// | `gguf-{block type}`: `gguf-q4_k`, `gguf-iq2_xxs`, ... | [`WeightFormat::GgufPure`] |
///
/// `gptq-4bit-g128`, `GPTQ 4-bit g128` and `gptq-4-bit-g128` are the same format; [`Display`]
/// writes names that parse back to the same value.
///
/// [`Display`]: fmt::Display
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WeightFormat {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
    /// FP8 (e4m3) linear weights with one fp32 scale per 128 × 128 block (the block-wise layout of
    /// DeepSeek-V3 and Qwen3-FP8 checkpoints; a per-tensor scale would be smaller by < 0.01%).
    /// Embedding, output head, norms and routers stay 16-bit.
    Fp8,
    /// bitsandbytes LLM.int8: int8 linear weights plus one fp32 statistic per output row.
    /// bitsandbytes only replaces `nn.Linear` layers: the embedding, the output head and
    /// transformers' fused gpt-oss experts stay 16-bit.
    BnbInt8,
    /// bitsandbytes NF4: 4-bit linear weights, one fp32 absmax per 64 (8-bit absmax per 64 plus an
    /// fp32 per 256 absmax with double quantization).
    BnbNf4 {
        /// Double quantization (`bnb_4bit_use_double_quant`).
        double_quant: bool,
    },
    /// bitsandbytes FP4: same layout as NF4.
    BnbFp4 {
        /// Double quantization.
        double_quant: bool,
    },
    /// GPTQ (AutoGPTQ / optimum layout): packed `bits`-bit weights, per group of `group_size`
    /// inputs an fp16 scale and a packed zero point per output, plus an int32 `g_idx` per input.
    Gptq {
        /// Bits per weight (2, 3, 4 or 8).
        bits: u8,
        /// Inputs sharing one scale and zero.
        group_size: u32,
    },
    /// AWQ (AutoAWQ GEMM layout): packed weights, fp16 scales and packed zeros per group.
    Awq {
        /// Bits per weight (4).
        bits: u8,
        /// Inputs sharing one scale and zero.
        group_size: u32,
    },
    /// MLX affine quantization: `bits` per weight plus an fp16 scale and bias per group
    /// (b + 32/g bits; 4-bit g64 = 4.5). MLX also quantizes the embedding and output head.
    Mlx {
        /// Bits per weight (2, 3, 4, 5, 6 or 8).
        bits: u8,
        /// Weights per group.
        group_size: u32,
    },
    /// A Hugging Face MXFP4 checkpoint (gpt-oss): routed experts in MXFP4 (4.25 bits), everything
    /// else bf16.
    Mxfp4,
    /// A llama.cpp GGUF file type, mixed tensor by tensor (see [`crate::gguf`]).
    Gguf(LlamaFileType),
    /// GGUF with one block type for every quantizable tensor (`llama-quantize --pure`).
    GgufPure(GgmlType),
}

impl WeightFormat {
    /// The side-by-side list for `--quant all`, highest precision first.
    pub fn all() -> Vec<WeightFormat> {
        use LlamaFileType as F;
        vec![
            WeightFormat::F32,
            WeightFormat::Bf16,
            WeightFormat::F16,
            WeightFormat::Gguf(F::Q8_0),
            WeightFormat::Mlx {
                bits: 8,
                group_size: DEFAULT_MLX_GROUP_SIZE,
            },
            WeightFormat::BnbInt8,
            WeightFormat::Fp8,
            WeightFormat::Gguf(F::Q6_K),
            WeightFormat::Gguf(F::Q5_K_M),
            WeightFormat::Gguf(F::Q5_K_S),
            WeightFormat::Mlx {
                bits: 4,
                group_size: DEFAULT_MLX_GROUP_SIZE,
            },
            WeightFormat::BnbNf4 {
                double_quant: false,
            },
            WeightFormat::Gguf(F::Q4_K_M),
            WeightFormat::Gguf(F::Q4_K_S),
            WeightFormat::Gptq {
                bits: 4,
                group_size: DEFAULT_GROUP_SIZE,
            },
            WeightFormat::Awq {
                bits: 4,
                group_size: DEFAULT_GROUP_SIZE,
            },
            WeightFormat::Gguf(F::Q4_0),
            WeightFormat::Gguf(F::IQ4_XS),
            WeightFormat::BnbNf4 { double_quant: true },
            WeightFormat::Gguf(F::Q3_K_L),
            WeightFormat::Gguf(F::Q3_K_M),
            WeightFormat::Gguf(F::IQ3_M),
            WeightFormat::Gguf(F::Q3_K_S),
            WeightFormat::Gguf(F::IQ3_XXS),
            WeightFormat::Gguf(F::Q2_K),
            WeightFormat::Gguf(F::IQ2_M),
            WeightFormat::Gguf(F::IQ2_XXS),
            WeightFormat::Gguf(F::IQ1_M),
            WeightFormat::Gguf(F::IQ1_S),
        ]
    }

    /// Bits per weight of the layout most quantized matrices get, scales and zero points
    /// included: a GGUF file type's default block type (Q2_K: 2.625, IQ3_XXS: 3.06, Q4_K: 4.5),
    /// `bits` plus one fp16 scale (and zero or bias) per group for GPTQ, AWQ and MLX, NF4's 4 bits
    /// plus its absmax scale per 64. Unlike a model's average it does not depend on the model
    /// (a large embedding kept in more bits raises the average, not this).
    pub fn nominal_bits_per_weight(&self) -> f64 {
        match self {
            WeightFormat::F32 => 32.0,
            WeightFormat::F16 | WeightFormat::Bf16 => 16.0,
            WeightFormat::Fp8 | WeightFormat::BnbInt8 => 8.0,
            WeightFormat::BnbNf4 { double_quant } | WeightFormat::BnbFp4 { double_quant } => {
                // One absmax per 64 weights: fp32 (0.5 bits), or 8-bit with double quantization.
                if *double_quant { 4.127 } else { 4.5 }
            }
            WeightFormat::Gptq { bits, group_size } | WeightFormat::Awq { bits, group_size } => {
                f64::from(*bits) + (16.0 + f64::from(*bits)) / f64::from((*group_size).max(1))
            }
            WeightFormat::Mlx { bits, group_size } => {
                f64::from(*bits) + 32.0 / f64::from((*group_size).max(1))
            }
            WeightFormat::Mxfp4 => 4.25,
            WeightFormat::Gguf(f) => f.default_type().bits_per_weight(),
            WeightFormat::GgufPure(t) => t.bits_per_weight(),
        }
    }

    /// True for GGUF formats (llama.cpp).
    pub fn is_gguf(&self) -> bool {
        matches!(self, WeightFormat::Gguf(_) | WeightFormat::GgufPure(_))
    }

    /// True for formats that store weights below 16 bits (anything but fp32/fp16/bf16 and the
    /// GGUF F32/F16/BF16 file types).
    pub fn is_quantized(&self) -> bool {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Bf16 => false,
            WeightFormat::Gguf(f) => f.default_type().is_quantized(),
            WeightFormat::GgufPure(t) => t.is_quantized(),
            _ => true,
        }
    }

    /// The format a model's checkpoint is published in: its `quantization_config` (MXFP4, FP8)
    /// when it has one, fp16 when `torch_dtype` says `float16`, else bf16. An fp32 checkpoint
    /// (Gemma-2) maps to bf16 too: nobody runs inference in fp32, and the loaders cast on load.
    pub fn default_for(model: &ModelSpec) -> WeightFormat {
        match model.checkpoint_quantization.as_deref() {
            Some("mxfp4") => return WeightFormat::Mxfp4,
            Some("fp8") => return WeightFormat::Fp8,
            _ => {}
        }
        match model.torch_dtype.as_deref() {
            Some("float16") | Some("fp16") | Some("half") => WeightFormat::F16,
            _ => WeightFormat::Bf16,
        }
    }

    /// Every accepted canonical name, for error messages and help.
    pub fn valid_names() -> Vec<String> {
        let mut names: Vec<String> = vec![
            "fp32",
            "fp16",
            "bf16",
            "fp8",
            "int8",
            "nf4",
            "nf4+dq",
            "fp4",
            "fp4+dq",
            "gptq-4bit-g128",
            "gptq-8bit-g128",
            "awq-4bit-g128",
            "mlx-4bit-g64",
            "mlx-8bit-g64",
            "mxfp4",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        names.extend(LlamaFileType::ALL.iter().map(|f| f.name().to_string()));
        names.extend(
            GgmlType::ALL
                .iter()
                .filter(|t| t.is_quantized())
                .map(|t| format!("gguf-{}", t.name())),
        );
        names
    }
}

/// `b`-bit, `g`-group suffix parser: `4bit`, `4bit-g128`, `int4`, `4bit-128g`.
fn parse_bits_group(rest: &str, default_group: u32) -> Option<(u8, u32)> {
    if rest.is_empty() {
        return Some((4, default_group));
    }
    let mut parts = rest.split('-');
    let bits_part = parts.next()?;
    let bits_str = bits_part
        .strip_suffix("bit")
        .or_else(|| bits_part.strip_prefix("int"))
        .or_else(|| bits_part.strip_prefix("w"))?;
    let bits: u8 = bits_str.parse().ok()?;
    let group = match parts.next() {
        None => default_group,
        Some(g) => g
            .strip_prefix('g')
            .or_else(|| g.strip_suffix('g'))?
            .parse()
            .ok()?,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((bits, group))
}

impl FromStr for WeightFormat {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = |hint: String| CoreError::Unknown {
            kind: "format".into(),
            name: s.to_string(),
            hint,
        };
        let list_hint = || {
            format!(
                "valid formats: {} (see `WeightFormat` docs for the grammar)",
                WeightFormat::valid_names().join(", ")
            )
        };
        let n = s
            .trim()
            .to_ascii_lowercase()
            .replace(' ', "-")
            .replace("-bit", "bit");
        let n = n.as_str();
        let simple = match n {
            "fp32" | "f32" | "float32" => Some(WeightFormat::F32),
            "fp16" | "f16" | "float16" | "half" => Some(WeightFormat::F16),
            "bf16" | "bfloat16" => Some(WeightFormat::Bf16),
            "fp8" | "f8" | "fp8-e4m3" | "float8" => Some(WeightFormat::Fp8),
            "int8" | "bnb-int8" | "llm.int8" | "8bit" | "bnb-8bit" => Some(WeightFormat::BnbInt8),
            "nf4" | "bnb-nf4" => Some(WeightFormat::BnbNf4 {
                double_quant: false,
            }),
            "nf4-dq" | "nf4+dq" | "bnb-nf4-dq" | "bnb-nf4+dq" => {
                Some(WeightFormat::BnbNf4 { double_quant: true })
            }
            "fp4" | "bnb-fp4" => Some(WeightFormat::BnbFp4 {
                double_quant: false,
            }),
            "fp4-dq" | "fp4+dq" | "bnb-fp4-dq" | "bnb-fp4+dq" => {
                Some(WeightFormat::BnbFp4 { double_quant: true })
            }
            "mxfp4" => Some(WeightFormat::Mxfp4),
            _ => None,
        };
        if let Some(f) = simple {
            return Ok(f);
        }
        type Ctor = fn(u8, u32) -> WeightFormat;
        let families: [(&str, u32, &[u8], Ctor); 3] = [
            (
                "gptq",
                DEFAULT_GROUP_SIZE,
                &[2, 3, 4, 8],
                |bits, group_size| WeightFormat::Gptq { bits, group_size },
            ),
            ("awq", DEFAULT_GROUP_SIZE, &[4], |bits, group_size| {
                WeightFormat::Awq { bits, group_size }
            }),
            (
                "mlx",
                DEFAULT_MLX_GROUP_SIZE,
                &[2, 3, 4, 5, 6, 8],
                |bits, group_size| WeightFormat::Mlx { bits, group_size },
            ),
        ];
        for (prefix, default_group, bits_ok, ctor) in families {
            let Some(rest) = n.strip_prefix(prefix) else {
                continue;
            };
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let Some((bits, group)) = parse_bits_group(rest, default_group) else {
                return Err(unknown(format!(
                    "write {prefix}-<bits>bit[-g<group>], e.g. {prefix}-4bit-g{default_group}"
                )));
            };
            if !bits_ok.contains(&bits) {
                return Err(unknown(format!(
                    "{prefix} supports {bits_ok:?} bits, not {bits}"
                )));
            }
            if group == 0 || group > 1 << 20 {
                return Err(unknown(format!("group size {group} is not usable")));
            }
            return Ok(ctor(bits, group));
        }
        if let Some(rest) = n.strip_prefix("gguf-").or_else(|| n.strip_prefix("gguf:")) {
            if let Some(t) = GgmlType::from_name(rest) {
                return Ok(match t {
                    GgmlType::F32 => WeightFormat::Gguf(LlamaFileType::F32),
                    GgmlType::F16 => WeightFormat::Gguf(LlamaFileType::F16),
                    GgmlType::BF16 => WeightFormat::Gguf(LlamaFileType::BF16),
                    t => WeightFormat::GgufPure(t),
                });
            }
            if let Some(f) = LlamaFileType::from_name(rest) {
                return Ok(WeightFormat::Gguf(f));
            }
            return Err(unknown(list_hint()));
        }
        if let Some(f) = LlamaFileType::from_name(n) {
            return Ok(WeightFormat::Gguf(f));
        }
        Err(unknown(list_hint()))
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightFormat::F32 => write!(f, "fp32"),
            WeightFormat::F16 => write!(f, "fp16"),
            WeightFormat::Bf16 => write!(f, "bf16"),
            WeightFormat::Fp8 => write!(f, "fp8"),
            WeightFormat::BnbInt8 => write!(f, "int8"),
            WeightFormat::BnbNf4 { double_quant } => {
                write!(f, "nf4{}", if *double_quant { "+dq" } else { "" })
            }
            WeightFormat::BnbFp4 { double_quant } => {
                write!(f, "fp4{}", if *double_quant { "+dq" } else { "" })
            }
            WeightFormat::Gptq { bits, group_size } => write!(f, "GPTQ {bits}-bit g{group_size}"),
            WeightFormat::Awq { bits, group_size } => write!(f, "AWQ {bits}-bit g{group_size}"),
            WeightFormat::Mlx { bits, group_size } => write!(f, "MLX {bits}-bit g{group_size}"),
            WeightFormat::Mxfp4 => write!(f, "mxfp4"),
            // `F32`/`F16`/`BF16` alone name the unquantized formats; the GGUF files say so.
            WeightFormat::Gguf(t) if !t.default_type().is_quantized() => {
                write!(f, "gguf-{}", t.name())
            }
            WeightFormat::Gguf(t) => write!(f, "{}", t.name()),
            WeightFormat::GgufPure(t) => write!(f, "gguf-{}", t.name()),
        }
    }
}
