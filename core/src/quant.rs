//! Weight formats (precisions and quantizations) and the bytes a model takes in each.
//!
//! Every byte count is computed tensor by tensor from the model's shapes ([`tensor_formats`]):
//! quantizers leave some tensors alone (norms, biases, often the embedding and output head), group
//! sizes and GGUF blocks must divide a row, and llama.cpp's file types mix block types by tensor
//! (see [`crate::gguf`]). A fixed bits-per-weight figure would be wrong by several percent.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    gguf::{self, GgmlType, LlamaFileType},
    model::{Architecture, ModelSpec},
    tensors::{
        MAX_DIMS, Tensor, TensorEntry, TensorRole, shape_elements, shape_matrices, shape_row_len,
        shape_rows, tensors, walk,
    },
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

/// How one tensor is stored in a format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorStorage {
    /// Storage type of this tensor, e.g. `Q6_K`, `bf16`, `nf4`.
    pub dtype: String,
    /// Bytes the tensor takes, scales and zero points included.
    pub bytes: u64,
    /// Bytes one token reads: routed experts in proportion `experts_per_token / num_experts`, one
    /// row of an untied token embedding, everything else in full.
    pub active_bytes: u64,
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

/// Name of the 16-bit type a checkpoint's unquantized tensors keep.
fn half_name(model: &ModelSpec) -> &'static str {
    if WeightFormat::default_for(model) == WeightFormat::F16 {
        "fp16"
    } else {
        "bf16"
    }
}

/// What the non-GGUF storage rules read of a tensor: its role and shape (no name).
#[derive(Clone, Copy)]
struct Shaped<'a> {
    role: TensorRole,
    shape: &'a [u64],
}

impl<'a> Shaped<'a> {
    fn of(t: &'a Tensor) -> Shaped<'a> {
        Shaped {
            role: t.role,
            shape: &t.shape,
        }
    }

    fn is_vector(&self) -> bool {
        self.shape.len() <= 1
    }

    fn elements(&self) -> u64 {
        shape_elements(self.shape)
    }

    fn row_len(&self) -> u64 {
        shape_row_len(self.shape)
    }

    fn rows(&self) -> u64 {
        shape_rows(self.shape)
    }

    fn matrices(&self) -> u64 {
        shape_matrices(self.shape)
    }
}

/// A storage type's name, built as a string only where it is shown ([`tensor_formats`]).
#[derive(Clone, Copy)]
enum HfDtype {
    /// A fixed name (`bf16`, `nf4+dq`).
    Named(&'static str),
    /// A family and its bits (`gptq4`, `mlx8`).
    Bits(&'static str, u8),
}

impl fmt::Display for HfDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HfDtype::Named(n) => f.write_str(n),
            HfDtype::Bits(family, bits) => write!(f, "{family}{bits}"),
        }
    }
}

/// Linear projections inside the blocks: what GPTQ, AWQ, bitsandbytes and FP8 quantize.
fn is_block_linear(t: Shaped<'_>) -> bool {
    use TensorRole as R;
    !t.is_vector()
        && matches!(
            t.role,
            R::AttnQ
                | R::AttnK
                | R::AttnV
                | R::AttnQkv
                | R::AttnOutput
                | R::AttnQA
                | R::AttnQB
                | R::AttnKvA
                | R::AttnKvB
                | R::FfnGate
                | R::FfnUp
                | R::FfnGateUp
                | R::FfnDown
                | R::FfnGateExperts
                | R::FfnUpExperts
                | R::FfnDownExperts
                | R::FfnGateShared
                | R::FfnUpShared
                | R::FfnDownShared
        )
}

/// Whether bitsandbytes quantizes `t`: it replaces every `nn.Linear` but the output head (routers
/// included); the embedding is an `nn.Embedding` and stays 16-bit. transformers stores gpt-oss
/// experts as fused parameters, not `nn.Linear` modules, so bitsandbytes leaves them 16-bit
/// (other MoE families are per-expert `nn.Linear` in transformers 4.x).
fn bnb_quantizes(model: &ModelSpec, t: Shaped<'_>) -> bool {
    let fused_experts = model.architecture == Architecture::GptOss
        && matches!(
            t.role,
            TensorRole::FfnGateExperts | TensorRole::FfnUpExperts | TensorRole::FfnDownExperts
        );
    (is_block_linear(t) || t.role == TensorRole::FfnRouter) && !t.is_vector() && !fused_experts
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// Per-matrix shape: `(matrices, rows = outputs, cols = inputs)`.
fn matrix_dims(t: Shaped<'_>) -> (u64, u64, u64) {
    let cols = t.row_len();
    let matrices = t.matrices();
    let rows = t.rows() / matrices.max(1);
    (matrices, rows, cols)
}

fn half(t: Shaped<'_>, name: &'static str) -> (HfDtype, u64) {
    (
        HfDtype::Named(name),
        t.elements().saturating_mul(HALF_BYTES),
    )
}

/// Storage of one tensor in a non-GGUF format.
fn storage_hf(model: &ModelSpec, t: Shaped<'_>, format: &WeightFormat) -> (HfDtype, u64) {
    let hname = half_name(model);
    let (m, rows, cols) = matrix_dims(t);
    let n = t.elements();
    match format {
        WeightFormat::F32 => (HfDtype::Named("fp32"), n.saturating_mul(F32_BYTES)),
        WeightFormat::F16 => half(t, "fp16"),
        WeightFormat::Bf16 => half(t, "bf16"),
        WeightFormat::Fp8 => {
            if !is_block_linear(t) {
                return half(t, hname);
            }
            let scales = m * ceil_div(rows, FP8_BLOCK) * ceil_div(cols, FP8_BLOCK) * F32_BYTES;
            (HfDtype::Named("fp8"), n + scales)
        }
        WeightFormat::BnbInt8 => {
            if !bnb_quantizes(model, t) {
                return half(t, hname);
            }
            (HfDtype::Named("int8"), n + m * rows * F32_BYTES)
        }
        WeightFormat::BnbNf4 { double_quant } | WeightFormat::BnbFp4 { double_quant } => {
            if !bnb_quantizes(model, t) {
                return half(t, hname);
            }
            let per_matrix = rows * cols;
            let blocks = ceil_div(per_matrix, BNB_4BIT_BLOCK);
            let absmax = if *double_quant {
                blocks + ceil_div(blocks, BNB_NESTED_BLOCK) * F32_BYTES
            } else {
                blocks * F32_BYTES
            };
            let name = match (matches!(format, WeightFormat::BnbNf4 { .. }), *double_quant) {
                (true, false) => "nf4",
                (true, true) => "nf4+dq",
                (false, false) => "fp4",
                (false, true) => "fp4+dq",
            };
            (HfDtype::Named(name), m * (ceil_div(per_matrix, 2) + absmax))
        }
        WeightFormat::Gptq { bits, group_size } | WeightFormat::Awq { bits, group_size } => {
            if !is_block_linear(t) {
                return half(t, hname);
            }
            let b = u64::from(*bits);
            let groups = ceil_div(cols, u64::from(*group_size));
            let packed = ceil_div(rows * cols * b, 8);
            let scales = groups * rows * HALF_BYTES;
            let zeros = groups * ceil_div(rows * b, 8);
            let gptq = matches!(format, WeightFormat::Gptq { .. });
            // GPTQ also stores g_idx: one int32 per input column.
            let g_idx = if gptq { cols * 4 } else { 0 };
            let name = HfDtype::Bits(if gptq { "gptq" } else { "awq" }, *bits);
            (name, m * (packed + scales + zeros + g_idx))
        }
        WeightFormat::Mlx { bits, group_size } => {
            // A group of 0 cannot come from `FromStr`, but a deserialized request can carry it:
            // never divide by it.
            let g = u64::from(*group_size).max(1);
            // mlx_lm quantizes every Linear and Embedding whose rows split into whole groups.
            if t.is_vector() || *group_size == 0 || cols % g != 0 {
                return half(t, hname);
            }
            let b = u64::from(*bits);
            let packed = ceil_div(rows * cols * b, 8);
            // fp16 scale + fp16 bias per group.
            let scales = rows * (cols / g) * 2 * HALF_BYTES;
            (HfDtype::Bits("mlx", *bits), m * (packed + scales))
        }
        WeightFormat::Mxfp4 => {
            let expert = matches!(
                t.role,
                TensorRole::FfnGateExperts | TensorRole::FfnUpExperts | TensorRole::FfnDownExperts
            );
            if !expert || cols % MXFP4_BLOCK != 0 {
                return half(t, "bf16");
            }
            let (bytes, elements) = GgmlType::MXFP4.block();
            (HfDtype::Named("mxfp4"), n / elements * bytes)
        }
        WeightFormat::Gguf(_) | WeightFormat::GgufPure(_) => {
            // Handled by `tensor_formats`.
            half(t, hname)
        }
    }
}

/// Every tensor of `model` with its storage in `format`, in checkpoint order.
pub fn tensor_formats(model: &ModelSpec, format: &WeightFormat) -> Vec<(Tensor, TensorStorage)> {
    let typed: Vec<(Tensor, String, u64)> = match format {
        WeightFormat::Gguf(ftype) => gguf::file_tensor_types(model, *ftype)
            .into_iter()
            .map(|(t, g)| {
                let bytes = gguf::tensor_bytes(&t, g);
                (t, g.name().to_string(), bytes)
            })
            .collect(),
        WeightFormat::GgufPure(block) => gguf::pure_tensor_types(model, *block)
            .into_iter()
            .map(|(t, g)| {
                let bytes = gguf::tensor_bytes(&t, g);
                (t, g.name().to_string(), bytes)
            })
            .collect(),
        _ => tensors(model)
            .into_iter()
            .map(|t| {
                let (name, bytes) = storage_hf(model, Shaped::of(&t), format);
                (t, name.to_string(), bytes)
            })
            .collect(),
    };
    typed
        .into_iter()
        .map(|(t, dtype, bytes)| {
            let active_bytes = active_share(t.elements(), t.active_elements, bytes);
            (
                t,
                TensorStorage {
                    dtype,
                    bytes,
                    active_bytes,
                },
            )
        })
        .collect()
}

/// Whole-model byte totals of `model` in `format`, from [`tensor_formats`] in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightTotals {
    /// Bytes of all weights ([`weights_bytes`]).
    pub weights_bytes: u64,
    /// Bytes read to decode one token ([`active_weights_bytes`]).
    pub active_weights_bytes: u64,
    /// Bytes of the largest single tensor (for single-buffer limits).
    pub largest_tensor_bytes: u64,
}

/// Tensors of a model that every byte rule treats alike, with how many there are.
///
/// Same role, shape, active elements, GGUF category, quantizability and [`gguf::rule_class`]:
/// every format stores each member in the same bytes, so totals are `count` × one member's.
/// DeepSeek-V3's 1,025 tensors make 40 groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TensorGroup {
    /// Role of the members.
    pub(crate) role: TensorRole,
    dims: [u64; MAX_DIMS],
    ndims: usize,
    /// Elements one token reads of one member ([`Tensor::active_elements`]).
    pub(crate) active_elements: u64,
    /// Members.
    pub(crate) count: u64,
    category: gguf::Category,
    allowed: bool,
    /// The first member's place in llama.cpp's counters (all members give the same type).
    position: gguf::Position,
}

impl TensorGroup {
    /// Shape of each member.
    pub(crate) fn shape(&self) -> &[u64] {
        &self.dims[..self.ndims]
    }

    fn shaped(&self) -> Shaped<'_> {
        Shaped {
            role: self.role,
            shape: self.shape(),
        }
    }
}

/// A model's tensors grouped for the byte rules ([`TensorGroup`]), built once per model for all
/// the formats asked about (kept by [`crate::facts::ModelFacts`] while a question is answered).
pub struct ModelTensors {
    /// The groups, in order of first member.
    pub(crate) groups: Vec<TensorGroup>,
    /// The file has no `output.weight` (llama.cpp's tied-embedding rules).
    tied: bool,
    /// attn_v-like tensors (llama.cpp's `n_attn_v`).
    n_attn_v: u64,
    /// Totals already computed, per format. Weights do not depend on context, batch, runtime or
    /// device, so the longest-context search and the format table ask for the same ones again.
    totals: std::cell::RefCell<Vec<(WeightFormat, WeightTotals)>>,
}

impl ModelTensors {
    /// `model`'s tensors, grouped.
    pub fn new(model: &ModelSpec) -> ModelTensors {
        group_tensors(model)
    }

    /// [`WeightTotals`] of `model` (the one these groups are of) in `format`, each format
    /// computed once.
    pub fn totals(&self, model: &ModelSpec, format: &WeightFormat) -> WeightTotals {
        if let Some((_, t)) = self.totals.borrow().iter().find(|(f, _)| f == format) {
            return *t;
        }
        let totals = compute_weight_totals(model, self, format);
        self.totals.borrow_mut().push((format.clone(), totals));
        totals
    }
}

/// One distinct (name, role, shape, active elements) of the walk, with its GGUF category and
/// quantizability (found from the name once, not per tensor) and its groups by rule class.
struct Kind {
    entry: TensorEntry,
    category: gguf::Category,
    allowed: bool,
    /// Group index for each rule class (`usize::MAX`: none yet).
    groups: [usize; gguf::RULE_CLASSES],
    /// The kind that followed this one last time: layers repeat, so the next tensor is almost
    /// always found on the first comparison.
    next: usize,
}

/// Whether `a` and `b` are the same tensor but for the layer.
fn same_kind(a: &TensorEntry, b: &TensorEntry) -> bool {
    a.suffix == b.suffix
        && a.component == b.component
        && a.role == b.role
        && a.ndims == b.ndims
        && a.dims == b.dims
        && a.active_elements == b.active_elements
        && a.layer.is_some() == b.layer.is_some()
}

/// Groups `model`'s tensors ([`crate::tensors::walk`], no names built) in two passes: kinds and
/// llama.cpp's counter positions in file order, then groups once the attn_v count is known.
fn group_tensors(model: &ModelSpec) -> ModelTensors {
    let mut kinds: Vec<Kind> = Vec::new();
    // (kind, position) of every tensor, in file order.
    let mut order: Vec<(usize, gguf::Position)> = Vec::new();
    let mut counters = gguf::Counters::new(model);
    let mut prev = usize::MAX;
    let mut tied = true;
    walk(model, |e| {
        let hint = kinds.get(prev).map_or(usize::MAX, |k| k.next);
        let k = if kinds.get(hint).is_some_and(|k| same_kind(&k.entry, &e)) {
            hint
        } else if let Some(k) = kinds.iter().position(|k| same_kind(&k.entry, &e)) {
            k
        } else {
            let category = if e.layer.is_some() {
                gguf::layer_category(e.suffix)
            } else {
                gguf::category(e.suffix)
            };
            kinds.push(Kind {
                entry: e,
                category,
                allowed: gguf::name_allows_quantization(e.suffix, e.ndims),
                groups: [usize::MAX; gguf::RULE_CLASSES],
                next: usize::MAX,
            });
            kinds.len() - 1
        };
        if let Some(p) = kinds.get_mut(prev) {
            p.next = k;
        }
        prev = k;
        if e.layer.is_none() && e.suffix == "output.weight" {
            tied = false;
        }
        let kind = &kinds[k];
        order.push((k, counters.next(kind.category, kind.allowed, e.layer)));
    });
    // llama.cpp counts every attn_v-like name, quantizable or not.
    let n_attn_v = order
        .iter()
        .filter(|(k, _)| gguf::is_attn_v_like(kinds[*k].category))
        .count() as u64;
    // The class tests do not depend on the file type; any one gives the model's facts.
    let ctx = gguf::Context::new(model, tied, n_attn_v, LlamaFileType::F16);
    let mut groups: Vec<TensorGroup> = Vec::new();
    for (k, position) in order {
        let kind = &mut kinds[k];
        let class = gguf::rule_class(&ctx, kind.category, position);
        match kind.groups.get(class).copied() {
            Some(g) if g != usize::MAX => groups[g].count += 1,
            slot => {
                if slot.is_some() {
                    kind.groups[class] = groups.len();
                }
                groups.push(TensorGroup {
                    role: kind.entry.role,
                    dims: kind.entry.dims,
                    ndims: kind.entry.ndims,
                    active_elements: kind.entry.active_elements,
                    count: 1,
                    category: kind.category,
                    allowed: kind.allowed,
                    position,
                });
            }
        }
    }
    ModelTensors {
        groups,
        tied,
        n_attn_v,
        totals: std::cell::RefCell::new(Vec::new()),
    }
}

/// The same sums as over [`tensor_formats`] (same per-tensor rules), once per group of tensors the
/// rules treat alike: sums of non-negative terms saturate the same either way.
fn compute_weight_totals(
    model: &ModelSpec,
    mt: &ModelTensors,
    format: &WeightFormat,
) -> WeightTotals {
    let gguf_rules = match format {
        WeightFormat::Gguf(ftype) => Some((
            gguf::Context::new(model, mt.tied, mt.n_attn_v, *ftype),
            *ftype,
        )),
        _ => None,
    };
    let mut totals = WeightTotals {
        weights_bytes: 0,
        active_weights_bytes: 0,
        largest_tensor_bytes: 0,
    };
    for g in &mt.groups {
        let shape = g.shape();
        let bytes = match (format, &gguf_rules) {
            (WeightFormat::Gguf(_), Some((ctx, ftype))) => {
                let t = gguf::tensor_type(
                    ctx,
                    *ftype,
                    ftype.default_type(),
                    g.category,
                    g.allowed,
                    shape,
                    g.position,
                );
                gguf::shape_bytes(shape, t)
            }
            (WeightFormat::GgufPure(block), _) => {
                let t = if g.allowed {
                    gguf::fallback(*block, shape_row_len(shape))
                } else {
                    GgmlType::F32
                };
                gguf::shape_bytes(shape, t)
            }
            _ => storage_hf(model, g.shaped(), format).1,
        };
        let active = active_share(shape_elements(shape), g.active_elements, bytes);
        totals.weights_bytes = totals
            .weights_bytes
            .saturating_add(g.count.saturating_mul(bytes));
        totals.active_weights_bytes = totals
            .active_weights_bytes
            .saturating_add(g.count.saturating_mul(active));
        totals.largest_tensor_bytes = totals.largest_tensor_bytes.max(bytes);
    }
    totals
}

/// Bytes one token reads of a tensor stored in `bytes`: storage is uniform per row and per
/// expert, so the active share is exact.
fn active_share(elements: u64, active_elements: u64, bytes: u64) -> u64 {
    let elements = elements.max(1);
    (u128::from(bytes) * u128::from(active_elements) / u128::from(elements)) as u64
}

/// [`WeightTotals`] of `model` in `format`: the same numbers as summing [`tensor_formats`],
/// computed once per group of alike tensors. An answer keeps them per format in
/// [`crate::facts::ModelFacts`].
pub fn weight_totals(model: &ModelSpec, format: &WeightFormat) -> WeightTotals {
    compute_weight_totals(model, &group_tensors(model), format)
}

/// Bytes of all of `model`'s weights in `format`.
pub fn weights_bytes(model: &ModelSpec, format: &WeightFormat) -> u64 {
    weight_totals(model, format).weights_bytes
}

/// Bytes of weights read to decode one token: active experts only and one row of an untied
/// token embedding (a tied one is read in full as the output head).
pub fn active_weights_bytes(model: &ModelSpec, format: &WeightFormat) -> u64 {
    weight_totals(model, format).active_weights_bytes
}

/// Average bits per stored parameter of `model` in `format` (what llama.cpp prints as "BPW").
pub fn bits_per_weight(model: &ModelSpec, format: &WeightFormat) -> f64 {
    let params = crate::params::param_counts(model).total.max(1);
    weights_bytes(model, format) as f64 * 8.0 / params as f64
}

#[cfg(test)]
mod weight_totals_tests {
    use super::*;

    /// The name-free walk gives the same tensors as the named list, and the category and
    /// quantizability found from a per-layer name's suffix equal those of the whole name.
    #[test]
    fn walk_matches_named_tensors() {
        for entry in crate::model_catalog::entries() {
            let Ok(model) = entry.model() else {
                panic!("catalog model {} does not parse", entry.id);
            };
            let named = tensors(&model);
            let mut entries = Vec::new();
            walk(&model, |e| entries.push(e));
            assert_eq!(named.len(), entries.len(), "{}", entry.id);
            for (t, e) in named.iter().zip(&entries) {
                assert_eq!(*t, e.to_tensor(), "{}", entry.id);
                let category = if e.layer.is_some() {
                    gguf::layer_category(e.suffix)
                } else {
                    gguf::category(e.suffix)
                };
                assert_eq!(category, gguf::category(&t.name), "{} {}", entry.id, t.name);
                assert_eq!(
                    gguf::name_allows_quantization(e.suffix, e.ndims),
                    gguf::allows_quantization(t),
                    "{} {}",
                    entry.id,
                    t.name
                );
            }
            // Every tensor is in exactly one group.
            let grouped: u64 = group_tensors(&model).groups.iter().map(|g| g.count).sum();
            assert_eq!(grouped, named.len() as u64, "{}", entry.id);
        }
    }

    /// The grouping is what makes a new model cheap: DeepSeek-V3's ~1,000 tensors fall into a
    /// few dozen groups.
    #[test]
    fn deepseek_v3_tensors_fall_into_few_groups() {
        let Ok(model) = crate::model_catalog::find("deepseek-v3") else {
            panic!("deepseek-v3 is in the catalog");
        };
        let groups = group_tensors(&model).groups.len();
        let tensors = tensors(&model).len();
        assert!(tensors > 1000, "{tensors} tensors");
        assert!(groups <= 64, "{groups} groups for {tensors} tensors");
    }

    /// The remembered one-pass totals equal the sums over the public per-tensor list, for every
    /// catalog model in every format.
    #[test]
    fn weight_totals_equal_tensor_formats_sums() {
        for entry in crate::model_catalog::entries() {
            let Ok(model) = entry.model() else {
                panic!("catalog model {} does not parse", entry.id);
            };
            for format in WeightFormat::all() {
                let list = tensor_formats(&model, &format);
                let expected = WeightTotals {
                    weights_bytes: list
                        .iter()
                        .fold(0u64, |a, (_, s)| a.saturating_add(s.bytes)),
                    active_weights_bytes: list
                        .iter()
                        .fold(0u64, |a, (_, s)| a.saturating_add(s.active_bytes)),
                    largest_tensor_bytes: list.iter().map(|(_, s)| s.bytes).max().unwrap_or(0),
                };
                assert_eq!(
                    weight_totals(&model, &format),
                    expected,
                    "{} {format}",
                    entry.id
                );
                // Asked again: the remembered answer.
                assert_eq!(
                    weight_totals(&model, &format),
                    expected,
                    "{} {format}",
                    entry.id
                );
            }
        }
    }
}
