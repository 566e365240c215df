//! How each tensor is stored in each format: which tensors a quantizer leaves alone, group and
//! block sizes, scales and zero points ([`tensor_formats`]; GGUF's per-tensor types come from
//! [`crate::gguf`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{totals::active_share, *};
use crate::{
    gguf::{self, GgmlType},
    model::{Architecture, ModelSpec},
    tensors::{Tensor, TensorRole, shape_elements, shape_matrices, shape_row_len, shape_rows},
};

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
pub(super) struct Shaped<'a> {
    pub(super) role: TensorRole,
    pub(super) shape: &'a [u64],
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
pub(super) enum HfDtype {
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
pub(super) fn bnb_quantizes(model: &ModelSpec, t: Shaped<'_>) -> bool {
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
pub(super) fn storage_hf(
    model: &ModelSpec,
    t: Shaped<'_>,
    format: &WeightFormat,
) -> (HfDtype, u64) {
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
