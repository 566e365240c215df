//! GGUF block types and llama.cpp's file types (mixtures chosen tensor by tensor).
//!
//! A GGUF "file type" such as `Q4_K_M` is not one bits-per-weight figure: `llama-quantize` picks a
//! block type for every tensor from its name, its layer and the model's shape. [`tensor_type`]
//! reproduces `llama_tensor_get_type` of llama.cpp's `src/llama-quant.cpp` (ggml-org/llama.cpp,
//! read in 2026): which tensors may be quantized at all, the output / token-embedding rules, the
//! `attn_v` and `ffn_down` bumps with the `use_more_bits` layer rule, the 8-expert and 70B
//! special cases, and the fallback when a row length is not a multiple of the block size.
//!
//! Assumptions, stated once:
//! * No `--pure`, no `--tensor-type` overrides, `--output-tensor-type` and
//!   `--token-embedding-type` left at their defaults.
//! * An importance matrix is used exactly for the file types that require one (IQ1_S, IQ1_M,
//!   IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ3_XXS, Q2_K_S); it only changes IQ3_XXS, IQ4_NL/XS and
//!   Q4_0/Q5_0 choices.
//! * Tensors llama.cpp never quantizes (1-D norms and biases, MoE routers `ffn_gate_inp`, gpt-oss
//!   expert biases) are stored as F32, as `convert_hf_to_gguf.py` writes them.
//! * DeepSeek's MLA keeps one `attn_kv_b` tensor (older conversions; newer ones split it into
//!   `attn_k_b`/`attn_v_b`, which changes which tensor counts as `attn_v`).

use serde::{Deserialize, Serialize};

use crate::{
    model::{Architecture, ModelSpec},
    tensors::{Tensor, shape_matrices, shape_row_len, shape_rows, tensors},
};

/// A ggml tensor element type: full-precision floats and every GGUF block type in FACTS.md.
///
/// Variant names are llama.cpp's own (`Q4_K`, `IQ2_XXS`), so they are not camel case.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit, blocks of 32 with an f16 scale: 18 bytes / 32.
    Q4_0,
    /// 4-bit with scale and min: 20 / 32.
    Q4_1,
    /// 5-bit: 22 / 32.
    Q5_0,
    /// 5-bit with min: 24 / 32.
    Q5_1,
    /// 8-bit: 34 / 32.
    Q8_0,
    /// k-quant 2-bit: 84 / 256.
    Q2_K,
    /// k-quant 3-bit: 110 / 256.
    Q3_K,
    /// k-quant 4-bit: 144 / 256.
    Q4_K,
    /// k-quant 5-bit: 176 / 256.
    Q5_K,
    /// k-quant 6-bit: 210 / 256.
    Q6_K,
    /// k-quant 8-bit (intermediate type for dot products): 292 / 256.
    Q8_K,
    /// i-quant 1.56 bpw: 50 / 256.
    IQ1_S,
    /// i-quant 1.75 bpw: 56 / 256.
    IQ1_M,
    /// i-quant 2.06 bpw: 66 / 256.
    IQ2_XXS,
    /// i-quant 2.31 bpw: 74 / 256.
    IQ2_XS,
    /// i-quant 2.56 bpw: 82 / 256.
    IQ2_S,
    /// i-quant 3.06 bpw: 98 / 256.
    IQ3_XXS,
    /// i-quant 3.44 bpw: 110 / 256.
    IQ3_S,
    /// non-linear 4-bit, blocks of 32: 18 / 32.
    IQ4_NL,
    /// non-linear 4.25 bpw: 136 / 256.
    IQ4_XS,
    /// ternary 1.69 bpw: 54 / 256.
    TQ1_0,
    /// ternary 2.06 bpw: 66 / 256.
    TQ2_0,
    /// OCP microscaling FP4 (E2M1 + one E8M0 scale per 32): 17 / 32.
    MXFP4,
}

impl GgmlType {
    /// Every type, full precision first.
    pub const ALL: [GgmlType; 26] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q8_K,
        GgmlType::Q6_K,
        GgmlType::Q5_1,
        GgmlType::Q5_0,
        GgmlType::Q5_K,
        GgmlType::Q4_1,
        GgmlType::Q4_0,
        GgmlType::IQ4_NL,
        GgmlType::Q4_K,
        GgmlType::MXFP4,
        GgmlType::IQ4_XS,
        GgmlType::Q3_K,
        GgmlType::IQ3_S,
        GgmlType::IQ3_XXS,
        GgmlType::Q2_K,
        GgmlType::IQ2_S,
        GgmlType::IQ2_XS,
        GgmlType::IQ2_XXS,
        GgmlType::TQ2_0,
        GgmlType::IQ1_M,
        GgmlType::TQ1_0,
        GgmlType::IQ1_S,
    ];

    /// `(bytes per block, elements per block)`, from ggml's block structs (FACTS.md table).
    pub const fn block(self) -> (u64, u64) {
        match self {
            GgmlType::F32 => (4, 1),
            GgmlType::F16 | GgmlType::BF16 => (2, 1),
            GgmlType::Q4_0 => (18, 32),
            GgmlType::Q4_1 => (20, 32),
            GgmlType::Q5_0 => (22, 32),
            GgmlType::Q5_1 => (24, 32),
            GgmlType::Q8_0 => (34, 32),
            GgmlType::Q2_K => (84, 256),
            GgmlType::Q3_K => (110, 256),
            GgmlType::Q4_K => (144, 256),
            GgmlType::Q5_K => (176, 256),
            GgmlType::Q6_K => (210, 256),
            GgmlType::Q8_K => (292, 256),
            GgmlType::IQ1_S => (50, 256),
            GgmlType::IQ1_M => (56, 256),
            GgmlType::IQ2_XXS => (66, 256),
            GgmlType::IQ2_XS => (74, 256),
            GgmlType::IQ2_S => (82, 256),
            GgmlType::IQ3_XXS => (98, 256),
            GgmlType::IQ3_S => (110, 256),
            GgmlType::IQ4_NL => (18, 32),
            GgmlType::IQ4_XS => (136, 256),
            GgmlType::TQ1_0 => (54, 256),
            GgmlType::TQ2_0 => (66, 256),
            GgmlType::MXFP4 => (17, 32),
        }
    }

    /// Elements per block (1 for floats).
    pub const fn block_elements(self) -> u64 {
        self.block().1
    }

    /// Bits per weight of the block layout.
    pub fn bits_per_weight(self) -> f64 {
        let (bytes, elements) = self.block();
        (bytes * 8) as f64 / elements as f64
    }

    /// True for block-quantized types (not F32/F16/BF16).
    pub const fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Bytes of a row of `row_len` elements, or `None` when `row_len` is not a whole number of
    /// blocks (llama.cpp then falls back to another type).
    pub const fn row_bytes(self, row_len: u64) -> Option<u64> {
        let (bytes, elements) = self.block();
        if row_len.is_multiple_of(elements) {
            Some(row_len / elements * bytes)
        } else {
            None
        }
    }

    /// llama.cpp's name, e.g. `Q4_K`.
    pub const fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
            GgmlType::IQ1_S => "IQ1_S",
            GgmlType::IQ1_M => "IQ1_M",
            GgmlType::IQ2_XXS => "IQ2_XXS",
            GgmlType::IQ2_XS => "IQ2_XS",
            GgmlType::IQ2_S => "IQ2_S",
            GgmlType::IQ3_XXS => "IQ3_XXS",
            GgmlType::IQ3_S => "IQ3_S",
            GgmlType::IQ4_NL => "IQ4_NL",
            GgmlType::IQ4_XS => "IQ4_XS",
            GgmlType::TQ1_0 => "TQ1_0",
            GgmlType::TQ2_0 => "TQ2_0",
            GgmlType::MXFP4 => "MXFP4",
        }
    }

    /// The `ggml_type` number stored in GGUF tensor headers (ggml.h's `enum ggml_type`; ids 4, 5
    /// and 31–33 belong to removed types, 9 is Q8_1 and 24–28 are integer/f64 types, none of
    /// which a model's weights use).
    pub const fn ggml_id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::IQ2_XXS => 16,
            GgmlType::IQ2_XS => 17,
            GgmlType::IQ3_XXS => 18,
            GgmlType::IQ1_S => 19,
            GgmlType::IQ4_NL => 20,
            GgmlType::IQ3_S => 21,
            GgmlType::IQ2_S => 22,
            GgmlType::IQ4_XS => 23,
            GgmlType::IQ1_M => 29,
            GgmlType::BF16 => 30,
            GgmlType::TQ1_0 => 34,
            GgmlType::TQ2_0 => 35,
            GgmlType::MXFP4 => 39,
        }
    }

    /// The type with `ggml_type` number `id`, if it is one of these.
    pub fn from_ggml_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// Look a type up by name, case-insensitively.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GgmlType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

/// llama.cpp's file types (`llama-quantize` presets): a default block type plus per-tensor rules.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LlamaFileType {
    /// All F32.
    F32,
    /// F16 except 1-D tensors.
    F16,
    /// BF16 except 1-D tensors.
    BF16,
    /// Q8_0.
    Q8_0,
    /// Q6_K.
    Q6_K,
    /// Q5_K_M.
    Q5_K_M,
    /// Q5_K_S.
    Q5_K_S,
    /// Q5_1.
    Q5_1,
    /// Q5_0.
    Q5_0,
    /// Q4_K_M.
    Q4_K_M,
    /// Q4_K_S.
    Q4_K_S,
    /// Q4_1.
    Q4_1,
    /// Q4_0.
    Q4_0,
    /// IQ4_NL.
    IQ4_NL,
    /// IQ4_XS.
    IQ4_XS,
    /// MXFP4 for expert tensors, Q8_0 for the rest (gpt-oss).
    MXFP4_MOE,
    /// Q3_K_L.
    Q3_K_L,
    /// Q3_K_M.
    Q3_K_M,
    /// Q3_K_S.
    Q3_K_S,
    /// IQ3_M.
    IQ3_M,
    /// IQ3_S.
    IQ3_S,
    /// IQ3_XS.
    IQ3_XS,
    /// IQ3_XXS.
    IQ3_XXS,
    /// Q2_K.
    Q2_K,
    /// Q2_K_S.
    Q2_K_S,
    /// IQ2_M.
    IQ2_M,
    /// IQ2_S.
    IQ2_S,
    /// IQ2_XS.
    IQ2_XS,
    /// IQ2_XXS.
    IQ2_XXS,
    /// TQ2_0 (ternary).
    TQ2_0,
    /// IQ1_M.
    IQ1_M,
    /// TQ1_0 (ternary).
    TQ1_0,
    /// IQ1_S.
    IQ1_S,
}

impl LlamaFileType {
    /// Every file type, roughly highest precision first.
    pub const ALL: [LlamaFileType; 33] = [
        LlamaFileType::F32,
        LlamaFileType::F16,
        LlamaFileType::BF16,
        LlamaFileType::Q8_0,
        LlamaFileType::Q6_K,
        LlamaFileType::Q5_K_M,
        LlamaFileType::Q5_K_S,
        LlamaFileType::Q5_1,
        LlamaFileType::Q5_0,
        LlamaFileType::Q4_K_M,
        LlamaFileType::Q4_K_S,
        LlamaFileType::Q4_1,
        LlamaFileType::Q4_0,
        LlamaFileType::IQ4_NL,
        LlamaFileType::IQ4_XS,
        LlamaFileType::MXFP4_MOE,
        LlamaFileType::Q3_K_L,
        LlamaFileType::Q3_K_M,
        LlamaFileType::IQ3_M,
        LlamaFileType::IQ3_S,
        LlamaFileType::Q3_K_S,
        LlamaFileType::IQ3_XS,
        LlamaFileType::IQ3_XXS,
        LlamaFileType::Q2_K,
        LlamaFileType::Q2_K_S,
        LlamaFileType::IQ2_M,
        LlamaFileType::IQ2_S,
        LlamaFileType::IQ2_XS,
        LlamaFileType::IQ2_XXS,
        LlamaFileType::TQ2_0,
        LlamaFileType::IQ1_M,
        LlamaFileType::TQ1_0,
        LlamaFileType::IQ1_S,
    ];

    /// The name `llama-quantize` accepts, e.g. `Q4_K_M`.
    pub const fn name(self) -> &'static str {
        match self {
            LlamaFileType::F32 => "F32",
            LlamaFileType::F16 => "F16",
            LlamaFileType::BF16 => "BF16",
            LlamaFileType::Q8_0 => "Q8_0",
            LlamaFileType::Q6_K => "Q6_K",
            LlamaFileType::Q5_K_M => "Q5_K_M",
            LlamaFileType::Q5_K_S => "Q5_K_S",
            LlamaFileType::Q5_1 => "Q5_1",
            LlamaFileType::Q5_0 => "Q5_0",
            LlamaFileType::Q4_K_M => "Q4_K_M",
            LlamaFileType::Q4_K_S => "Q4_K_S",
            LlamaFileType::Q4_1 => "Q4_1",
            LlamaFileType::Q4_0 => "Q4_0",
            LlamaFileType::IQ4_NL => "IQ4_NL",
            LlamaFileType::IQ4_XS => "IQ4_XS",
            LlamaFileType::MXFP4_MOE => "MXFP4_MOE",
            LlamaFileType::Q3_K_L => "Q3_K_L",
            LlamaFileType::Q3_K_M => "Q3_K_M",
            LlamaFileType::Q3_K_S => "Q3_K_S",
            LlamaFileType::IQ3_M => "IQ3_M",
            LlamaFileType::IQ3_S => "IQ3_S",
            LlamaFileType::IQ3_XS => "IQ3_XS",
            LlamaFileType::IQ3_XXS => "IQ3_XXS",
            LlamaFileType::Q2_K => "Q2_K",
            LlamaFileType::Q2_K_S => "Q2_K_S",
            LlamaFileType::IQ2_M => "IQ2_M",
            LlamaFileType::IQ2_S => "IQ2_S",
            LlamaFileType::IQ2_XS => "IQ2_XS",
            LlamaFileType::IQ2_XXS => "IQ2_XXS",
            LlamaFileType::TQ2_0 => "TQ2_0",
            LlamaFileType::IQ1_M => "IQ1_M",
            LlamaFileType::TQ1_0 => "TQ1_0",
            LlamaFileType::IQ1_S => "IQ1_S",
        }
    }

    /// Look a file type up by name, case-insensitively. `Q4_K`, `Q5_K` and `Q3_K` are
    /// `llama-quantize`'s aliases of the `_M` variants.
    pub fn from_name(name: &str) -> Option<LlamaFileType> {
        let upper = name.to_ascii_uppercase();
        let alias = match upper.as_str() {
            "Q4_K" => Some(LlamaFileType::Q4_K_M),
            "Q5_K" => Some(LlamaFileType::Q5_K_M),
            "Q3_K" => Some(LlamaFileType::Q3_K_M),
            "MXFP4" => Some(LlamaFileType::MXFP4_MOE),
            _ => None,
        };
        alias.or_else(|| LlamaFileType::ALL.into_iter().find(|t| t.name() == upper))
    }

    /// The block type most tensors get (`llama_ftype_get_default_type`).
    pub const fn default_type(self) -> GgmlType {
        use GgmlType as G;
        match self {
            LlamaFileType::F32 => G::F32,
            LlamaFileType::F16 => G::F16,
            LlamaFileType::BF16 => G::BF16,
            LlamaFileType::Q8_0 => G::Q8_0,
            LlamaFileType::Q6_K => G::Q6_K,
            LlamaFileType::Q5_K_M | LlamaFileType::Q5_K_S => G::Q5_K,
            LlamaFileType::Q5_1 => G::Q5_1,
            LlamaFileType::Q5_0 => G::Q5_0,
            LlamaFileType::Q4_K_M | LlamaFileType::Q4_K_S => G::Q4_K,
            LlamaFileType::Q4_1 => G::Q4_1,
            LlamaFileType::Q4_0 => G::Q4_0,
            LlamaFileType::IQ4_NL => G::IQ4_NL,
            LlamaFileType::IQ4_XS => G::IQ4_XS,
            LlamaFileType::MXFP4_MOE => G::MXFP4,
            LlamaFileType::Q3_K_L | LlamaFileType::Q3_K_M | LlamaFileType::Q3_K_S => G::Q3_K,
            LlamaFileType::IQ3_M | LlamaFileType::IQ3_S | LlamaFileType::IQ3_XS => G::IQ3_S,
            LlamaFileType::IQ3_XXS => G::IQ3_XXS,
            LlamaFileType::Q2_K | LlamaFileType::Q2_K_S => G::Q2_K,
            LlamaFileType::IQ2_M => G::IQ2_S,
            LlamaFileType::IQ2_S | LlamaFileType::IQ2_XS => G::IQ2_XS,
            LlamaFileType::IQ2_XXS => G::IQ2_XXS,
            LlamaFileType::TQ2_0 => G::TQ2_0,
            LlamaFileType::IQ1_M => G::IQ1_M,
            LlamaFileType::TQ1_0 => G::TQ1_0,
            LlamaFileType::IQ1_S => G::IQ1_S,
        }
    }

    /// Whether `llama-quantize` requires an importance matrix for this type (assumed present).
    pub const fn uses_imatrix(self) -> bool {
        matches!(
            self,
            LlamaFileType::IQ1_S
                | LlamaFileType::IQ1_M
                | LlamaFileType::IQ2_XXS
                | LlamaFileType::IQ2_XS
                | LlamaFileType::IQ2_S
                | LlamaFileType::IQ2_M
                | LlamaFileType::IQ3_XXS
                | LlamaFileType::Q2_K_S
        )
    }
}

/// The broad category llama.cpp derives from a tensor name (`tensor_get_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

pub(crate) fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" {
        Category::TokenEmbd
    } else {
        category_by_pattern(name)
    }
}

/// The category of a per-layer tensor from its name without the `blk.N.` prefix: the same as
/// [`category`] of the whole name, because a `blk.`-prefixed name never equals `output.weight` or
/// `token_embd.weight`, and no pattern below can start inside the prefix (none starts with `.`,
/// a digit or a tail of `blk`). Checked for every catalog model by a test.
pub(crate) fn layer_category(suffix: &str) -> Category {
    category_by_pattern(suffix)
}

/// The substring rules of `tensor_get_category`, in llama.cpp's order.
fn category_by_pattern(name: &str) -> Category {
    if name.contains("attn_qkv.weight") {
        Category::AttnQkv
    } else if name.contains("attn_kv_b.weight") {
        Category::AttnKvB
    } else if name.contains("attn_v.weight") {
        Category::AttnV
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else if name.contains("attn_q.weight") {
        Category::AttnQ
    } else if name.contains("attn_output.weight") {
        Category::AttnOutput
    } else if name.contains("ffn_up") {
        Category::FfnUp
    } else if name.contains("ffn_gate") {
        Category::FfnGate
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

pub(crate) fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// Whether llama.cpp quantizes this tensor at all (`tensor_allows_quantization`): 2-D and 3-D
/// tensors whose name ends in `weight`, except norms and MoE routers.
pub fn allows_quantization(tensor: &Tensor) -> bool {
    name_allows_quantization(&tensor.name, tensor.shape.len())
}

/// [`allows_quantization`] of a tensor named `name` with `ndims` dimensions. Also right for a
/// per-layer name without its `blk.N.` prefix: the suffix and `_norm`/`ffn_gate_inp` tests cannot
/// start inside the prefix.
pub(crate) fn name_allows_quantization(name: &str, ndims: usize) -> bool {
    ndims >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
}

/// Model facts the rules look at.
pub(crate) struct Context {
    n_gqa: u64,
    n_expert: u64,
    n_layer: u64,
    /// attn_v-like tensors in the file (`n_attn_v` of `quantize_state_impl`).
    n_attn_v: u64,
    tied: bool,
    is_70b: bool,
    has_imatrix: bool,
}

impl Context {
    /// `tied`: the file has no `output.weight`; `n_attn_v`: its attn_v-like tensors (every one,
    /// quantizable or not, as llama.cpp counts them).
    pub(crate) fn new(
        model: &ModelSpec,
        tied: bool,
        n_attn_v: u64,
        ftype: LlamaFileType,
    ) -> Context {
        let n_expert = model.moe.as_ref().map_or(0, |m| m.num_experts);
        // llama.cpp's LLM_TYPE_70B: 80-layer Llama with grouped-query attention, 80-layer Qwen2.
        let is_70b = model.num_layers == 80
            && match model.architecture {
                Architecture::Llama => model.num_kv_heads != model.num_attention_heads,
                Architecture::Qwen2 => true,
                _ => false,
            };
        Context {
            n_gqa: model.num_attention_heads / model.num_kv_heads.max(1),
            n_expert,
            n_layer: model.num_layers,
            n_attn_v,
            tied,
            is_70b,
            has_imatrix: ftype.uses_imatrix(),
        }
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third layer in
/// between get the larger type.
pub fn use_more_bits(i_layer: u64, n_layers: u64) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Where a tensor stands in llama.cpp's running counters of `quantize_state_impl`: what its
/// category's counter holds when the tensor is reached (`i_attn_v`, `i_ffn_down`, `i_ffn_gate` or
/// `i_ffn_up`), and the layer `layer_info` derives from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// The category's counter before this tensor (0 for categories without one).
    counter: u64,
    /// `layer_info`: the layer from the name for MoE models, else the counter.
    layer: u64,
}

/// The running counters, in file order (llama.cpp sorts tensors by layer).
///
/// The counters do not depend on the file type: llama.cpp advances a category's counter each time
/// `llama_tensor_get_type_impl` sees a quantizable tensor of it, in every branch that reads that
/// counter. The branches that skip the increment (the output/embedding rules, `MXFP4_MOE`, and
/// `ffn_gate`/`ffn_up` under the low IQ types) never read the counter either, so counting every
/// quantizable tensor of the category gives what each read sees.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    moe: bool,
    i_attn_v: u64,
    i_ffn_down: u64,
    i_ffn_gate: u64,
    i_ffn_up: u64,
}

impl Counters {
    /// Counters at the start of a file of `model`.
    pub(crate) fn new(model: &ModelSpec) -> Counters {
        Counters {
            // `layer_info` takes the layer from the name when n_expert > 1.
            moe: model.moe.as_ref().map_or(0, |m| m.num_experts) > 1,
            ..Counters::default()
        }
    }

    /// The position of the next tensor in file order (call once per tensor, in order).
    pub(crate) fn next(&mut self, cat: Category, allowed: bool, layer: Option<u64>) -> Position {
        if !allowed {
            return Position::default();
        }
        let counter = match cat {
            Category::AttnV | Category::AttnQkv | Category::AttnKvB => &mut self.i_attn_v,
            Category::FfnDown => &mut self.i_ffn_down,
            Category::FfnGate => &mut self.i_ffn_gate,
            Category::FfnUp => &mut self.i_ffn_up,
            _ => return Position::default(),
        };
        let at = *counter;
        *counter += 1;
        Position {
            counter: at,
            layer: if self.moe { layer.unwrap_or(0) } else { at },
        }
    }
}

/// The type `llama_tensor_get_type_impl` picks before the shape fallback.
///
/// `nx` is the row length, `matrices` the stacked matrices (experts) and `pos` where the tensor
/// stands in the running counters. Every test this makes on `pos` must also be in [`rule_class`].
// The branches mirror llama.cpp's if/else chain one for one (so it can be compared line by line),
// including the ones that give the same type.
#[allow(clippy::if_same_then_else)]
fn pick(
    ctx: &Context,
    ftype: LlamaFileType,
    cat: Category,
    nx: u64,
    matrices: u64,
    pos: Position,
) -> GgmlType {
    use GgmlType as G;
    use LlamaFileType as F;
    let default = ftype.default_type();
    let mut t = default;
    let n_layer = ctx.n_layer;
    let low_iq = matches!(
        ftype,
        F::IQ2_XXS | F::IQ2_XS | F::IQ1_S | F::IQ2_S | F::IQ2_M | F::IQ1_M
    );

    if cat == Category::Output || (ctx.tied && cat == Category::TokenEmbd) {
        if ftype == F::MXFP4_MOE || !nx.is_multiple_of(default.block_elements()) {
            t = G::Q8_0;
        } else if matches!(
            ftype,
            F::IQ2_XXS | F::IQ2_XS | F::IQ3_XXS | F::IQ1_S | F::IQ2_S | F::IQ2_M | F::IQ1_M
        ) {
            t = G::Q5_K;
        } else if t != G::Q8_0 {
            t = G::Q6_K;
        }
    } else if ftype == F::MXFP4_MOE {
        // Stacked expert tensors (3-D) get MXFP4, everything else Q8_0.
        t = if matrices > 1 { G::MXFP4 } else { G::Q8_0 };
    } else if cat == Category::TokenEmbd {
        t = match ftype {
            F::IQ2_XXS | F::IQ2_XS | F::IQ1_S | F::IQ1_M => G::Q2_K,
            F::IQ2_S | F::IQ2_M | F::IQ3_XXS => G::IQ3_S,
            F::TQ1_0 | F::TQ2_0 => G::Q4_K,
            _ => t,
        };
    } else if low_iq {
        let iq3_or_q2 = if matches!(ftype, F::IQ2_S | F::IQ2_M) {
            G::IQ3_S
        } else {
            G::Q2_K
        };
        if is_attn_v_like(cat) {
            t = if ctx.n_gqa >= 4 || ctx.n_expert >= 4 {
                G::Q4_K
            } else {
                iq3_or_q2
            };
        } else if ctx.n_expert == 8 && cat == Category::AttnK {
            t = G::Q4_K;
        } else if cat == Category::FfnDown {
            // llama.cpp compares the running ffn_down counter (not the layer) here.
            if pos.counter < n_layer / 8 {
                t = iq3_or_q2;
            }
        } else if cat == Category::AttnOutput {
            if ctx.n_expert == 8 {
                t = G::Q5_K;
            } else if matches!(ftype, F::IQ1_S | F::IQ1_M) {
                t = G::IQ2_XXS;
            } else if matches!(ftype, F::IQ2_S | F::IQ2_M) {
                t = G::IQ3_S;
            }
        }
    } else if is_attn_v_like(cat) {
        let (i_attn_v, n_attn_v) = (pos.counter, ctx.n_attn_v);
        if ftype == F::Q2_K {
            t = if ctx.n_gqa >= 4 { G::Q4_K } else { G::Q3_K };
        } else if ftype == F::Q2_K_S && ctx.n_gqa >= 4 {
            t = G::Q4_K;
        } else if ftype == F::IQ3_XXS {
            t = if ctx.n_gqa >= 4 {
                G::Q4_K
            } else if !ctx.has_imatrix {
                G::IQ3_S
            } else {
                G::IQ3_XXS
            };
        } else if matches!(ftype, F::IQ3_XS | F::IQ3_S) && ctx.n_gqa >= 4 {
            t = G::Q4_K;
        } else if ftype == F::IQ3_M {
            t = G::Q4_K;
        } else if ftype == F::Q3_K_M {
            t = if i_attn_v < 2 { G::Q5_K } else { G::Q4_K };
        } else if ftype == F::Q3_K_L {
            t = G::Q5_K;
        } else if matches!(ftype, F::IQ4_NL | F::IQ4_XS) && ctx.n_gqa >= 4 {
            t = G::Q5_K;
        } else if matches!(ftype, F::Q4_K_M | F::Q5_K_M) && use_more_bits(i_attn_v, n_attn_v) {
            t = G::Q6_K;
        } else if ftype == F::Q4_K_S && i_attn_v < 4 {
            t = G::Q5_K;
        }
        // 70B: attn_v is 8× smaller than attn_q, so more bits cost almost nothing.
        if ctx.is_70b && matches!(t, G::Q3_K | G::Q4_K) {
            t = G::Q5_K;
        }
        if ctx.n_expert == 8 {
            t = G::Q8_0;
        }
    } else if cat == Category::AttnK {
        if ctx.n_expert == 8 {
            t = G::Q8_0;
        } else if ftype == F::IQ3_XS {
            t = G::IQ3_XXS;
        } else if ftype == F::IQ3_XXS {
            t = G::IQ2_S;
        }
    } else if cat == Category::AttnQ {
        if ftype == F::IQ3_XS {
            t = G::IQ3_XXS;
        } else if ftype == F::IQ3_XXS {
            t = G::IQ2_S;
        }
    } else if cat == Category::FfnDown {
        let i_layer = pos.layer;
        let more = use_more_bits(i_layer, n_layer);
        if ftype == F::Q2_K {
            t = G::Q3_K;
        } else if ftype == F::Q2_K_S {
            if i_layer < n_layer / 8 {
                t = G::Q4_K;
            }
        } else if ftype == F::IQ3_XXS && !ctx.has_imatrix {
            t = if i_layer < n_layer / 8 {
                G::Q4_K
            } else {
                G::Q3_K
            };
        } else if ftype == F::Q3_K_M {
            // `arch != FALCON || use_more_bits` is always true outside Falcon.
            t = if i_layer < n_layer / 16 {
                G::Q5_K
            } else {
                G::Q4_K
            };
        } else if ftype == F::IQ3_M && (i_layer < n_layer / 8 || (ctx.n_expert == 8 && more)) {
            t = G::Q4_K;
        } else if ftype == F::Q3_K_L {
            t = G::Q5_K;
        } else if ftype == F::Q4_K_M {
            if more {
                t = G::Q6_K;
            }
        } else if i_layer < n_layer / 8
            && matches!(ftype, F::IQ4_NL | F::IQ4_XS)
            && !ctx.has_imatrix
        {
            t = G::Q5_K;
        } else if ftype == F::Q5_K_M && more {
            t = G::Q6_K;
        } else if ftype == F::Q4_K_S && i_layer < n_layer / 8 {
            t = G::Q5_K;
        } else if matches!(ftype, F::Q4_0 | F::Q5_0) && ctx.has_imatrix && i_layer < n_layer / 8 {
            t = if ftype == F::Q4_0 { G::Q4_1 } else { G::Q5_1 };
        }
    } else if cat == Category::AttnOutput {
        if ctx.n_expert == 8 {
            if matches!(
                ftype,
                F::Q2_K
                    | F::IQ3_XS
                    | F::IQ3_XXS
                    | F::Q3_K_S
                    | F::Q3_K_M
                    | F::IQ4_NL
                    | F::Q4_K_S
                    | F::Q4_K_M
                    | F::IQ3_S
                    | F::IQ3_M
                    | F::IQ4_XS
            ) {
                t = G::Q5_K;
            }
        } else {
            t = match ftype {
                F::Q2_K => G::Q3_K,
                F::IQ3_XXS => G::IQ3_S,
                F::Q3_K_M | F::IQ3_M => G::Q4_K,
                F::Q3_K_L => G::Q5_K,
                _ => t,
            };
        }
    } else if cat == Category::AttnQkv {
        // Unreachable in llama.cpp too (attn_qkv is attn_v-like and handled above); kept in order.
        t = match ftype {
            F::Q3_K_M | F::Q3_K_L | F::IQ3_M => G::Q4_K,
            F::Q4_K_M => G::Q5_K,
            F::Q5_K_M => G::Q6_K,
            _ => t,
        };
    } else if matches!(cat, Category::FfnGate | Category::FfnUp) {
        let i_layer = pos.layer;
        if ftype == F::IQ3_XS && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8 {
            t = G::IQ3_XXS;
        }
    }
    t
}

/// Every test [`pick`] makes on a tensor's [`Position`], as bits: two tensors of the same category,
/// row length and stacking whose classes are equal get the same type in every file type, so the
/// rules run once per class, not once per tensor. Below [`RULE_CLASSES`].
pub(crate) fn rule_class(ctx: &Context, cat: Category, pos: Position) -> usize {
    let n = ctx.n_layer;
    let bits = |tests: &[bool]| {
        tests
            .iter()
            .enumerate()
            .fold(0usize, |acc, (i, &b)| acc | (usize::from(b) << i))
    };
    let (c, l) = (pos.counter, pos.layer);
    if is_attn_v_like(cat) {
        bits(&[c < 2, c < 4, use_more_bits(c, ctx.n_attn_v)])
    } else if cat == Category::FfnDown {
        bits(&[c < n / 8, l < n / 8, l < n / 16, use_more_bits(l, n)])
    } else if matches!(cat, Category::FfnGate | Category::FfnUp) {
        bits(&[l >= n / 8, l < 7 * n / 8])
    } else {
        0
    }
}

/// Distinct values of [`rule_class`] (four tests at most).
pub(crate) const RULE_CLASSES: usize = 16;

/// `tensor_type_fallback`: a type whose block does not divide the row length is replaced.
/// Where even the fallback does not fit (rows not a multiple of 32) llama.cpp uses F16.
pub fn fallback(t: GgmlType, row_len: u64) -> GgmlType {
    use GgmlType as G;
    if row_len.is_multiple_of(t.block_elements()) {
        return t;
    }
    let f = match t {
        G::IQ1_S
        | G::IQ1_M
        | G::IQ2_XXS
        | G::IQ2_XS
        | G::IQ2_S
        | G::IQ3_XXS
        | G::IQ3_S
        | G::IQ4_XS => G::IQ4_NL,
        G::Q2_K | G::Q3_K | G::TQ1_0 | G::TQ2_0 => G::Q4_0,
        G::Q4_K => G::Q5_0,
        G::Q5_K => G::Q5_1,
        G::Q6_K => G::Q8_0,
        // llama.cpp aborts for the 32-element types here; headroom reports F16 instead.
        _ => G::F16,
    };
    if row_len.is_multiple_of(f.block_elements()) {
        f
    } else {
        G::F16
    }
}

/// The block type of every tensor of `model` in a `ftype` file, in file order.
///
/// Tensor by tensor, from the names: the reference the calculator's grouped totals
/// ([`crate::quant::weight_totals`]) are tested against.
pub fn file_tensor_types(model: &ModelSpec, ftype: LlamaFileType) -> Vec<(Tensor, GgmlType)> {
    let list = tensors(model);
    let categories: Vec<Category> = list.iter().map(|t| category(&t.name)).collect();
    let n_attn_v = categories.iter().filter(|c| is_attn_v_like(**c)).count() as u64;
    let tied = !list.iter().any(|t| t.name == "output.weight");
    let ctx = Context::new(model, tied, n_attn_v, ftype);
    let mut counters = Counters::new(model);
    let default = ftype.default_type();
    list.into_iter()
        .zip(categories)
        .map(|(tensor, cat)| {
            let allowed = allows_quantization(&tensor);
            let pos = counters.next(cat, allowed, tensor.layer);
            let t = tensor_type(&ctx, ftype, default, cat, allowed, &tensor.shape, pos);
            (tensor, t)
        })
        .collect()
}

/// The type of one tensor (shape `shape`, category `cat`, quantizable or not, at `pos`) in a
/// `ftype` file whose default type is `default`: the rules, then the shape fallback.
pub(crate) fn tensor_type(
    ctx: &Context,
    ftype: LlamaFileType,
    default: GgmlType,
    cat: Category,
    allowed: bool,
    shape: &[u64],
    pos: Position,
) -> GgmlType {
    if !allowed {
        return GgmlType::F32;
    }
    if default.is_quantized() {
        let row_len = shape_row_len(shape);
        let picked = pick(ctx, ftype, cat, row_len, shape_matrices(shape), pos);
        fallback(picked, row_len)
    } else {
        default
    }
}

/// `--pure`-style: every quantizable tensor in one block type (with llama.cpp's shape fallback);
/// norms, biases and routers in F32.
pub fn pure_tensor_types(model: &ModelSpec, block: GgmlType) -> Vec<(Tensor, GgmlType)> {
    tensors(model)
        .into_iter()
        .map(|tensor| {
            let t = if allows_quantization(&tensor) {
                fallback(block, tensor.row_len())
            } else {
                GgmlType::F32
            };
            (tensor, t)
        })
        .collect()
}

/// Bytes of `tensor` stored as `t` (rows × row bytes; F16 if the row does not fit the block).
pub fn tensor_bytes(tensor: &Tensor, t: GgmlType) -> u64 {
    shape_bytes(&tensor.shape, t)
}

/// [`tensor_bytes`] of a tensor of shape `shape`.
pub(crate) fn shape_bytes(shape: &[u64], t: GgmlType) -> u64 {
    let row = shape_row_len(shape);
    let row_bytes = t
        .row_bytes(row)
        .unwrap_or_else(|| GgmlType::F16.block().0 * row);
    shape_rows(shape).saturating_mul(row_bytes)
}
