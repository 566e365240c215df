//! A GGUF header's metadata as a [`ModelSpec`]: llama.cpp's `{arch}.*` keys mapped onto
//! headroom's model, and `general.file_type` as a llama.cpp file type name.

use crate::model::{Architecture, LayerAttention, ModelSpec, MoeSpec};

use super::{FileError, gguf_header::GgufHeader};

/// llama.cpp's `general.file_type` numbers (`enum llama_ftype` in `include/llama.h`) and the
/// names `llama-quantize` uses for them. Ids 4–6 and 33–35 are retired.
const LLAMA_FTYPES: &[(u64, &str)] = &[
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (19, "IQ2_XXS"),
    (20, "IQ2_XS"),
    (21, "Q2_K_S"),
    (22, "IQ3_XS"),
    (23, "IQ3_XXS"),
    (24, "IQ1_S"),
    (25, "IQ4_NL"),
    (26, "IQ3_S"),
    (27, "IQ3_M"),
    (28, "IQ2_S"),
    (29, "IQ2_M"),
    (30, "IQ4_XS"),
    (31, "IQ1_M"),
    (32, "BF16"),
    (36, "TQ1_0"),
    (37, "TQ2_0"),
    (38, "MXFP4_MOE"),
];

/// The llama.cpp file type name for a `general.file_type` number.
pub fn llama_ftype_name(id: u64) -> Option<&'static str> {
    LLAMA_FTYPES.iter().find(|f| f.0 == id).map(|f| f.1)
}

/// What a GGUF header says about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufModel {
    /// The model's shape from the metadata.
    pub spec: ModelSpec,
    /// `general.file_type` as a format name, e.g. `Q4_K_M`.
    pub file_type: Option<String>,
    /// Notes on what the header could not say.
    pub notes: Vec<String>,
}

/// GGUF `general.architecture` values and the families headroom knows.
fn architecture(arch: &str, has_experts: bool) -> Architecture {
    match arch {
        "llama" if has_experts => Architecture::Mixtral,
        "llama" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        "qwen2moe" => Architecture::Qwen2Moe,
        "qwen3" => Architecture::Qwen3,
        "qwen3moe" => Architecture::Qwen3Moe,
        "gemma" => Architecture::Gemma,
        "gemma2" => Architecture::Gemma2,
        "gemma3" => Architecture::Gemma3,
        "phi3" => Architecture::Phi3,
        "gpt-oss" => Architecture::GptOss,
        other => Architecture::Other(other.to_string()),
    }
}

fn bad(field: &str, problem: String) -> FileError {
    FileError::BadField {
        format: "GGUF",
        field: field.to_owned(),
        problem,
    }
}

/// Build a [`ModelSpec`] from a GGUF header's metadata (`{arch}.block_count`,
/// `{arch}.embedding_length`, `{arch}.attention.head_count[_kv]`, `{arch}.attention.key_length`,
/// `{arch}.feed_forward_length`, `{arch}.context_length`, `{arch}.expert_*`) and its tensors
/// (vocabulary from `token_embd.weight`, tied output when `output.weight` is absent).
///
/// `{arch}.block_count` must not exceed the number of tensors (every layer stores at least one),
/// so a corrupt count is an error before anything per layer is allocated.
pub fn spec_from_gguf(h: &GgufHeader, file_name: &str) -> Result<GgufModel, FileError> {
    let arch = h.string("general.architecture").ok_or_else(|| {
        bad(
            "general.architecture",
            "is missing: the file does not say which model it holds; re-convert it with a \
             current llama.cpp"
                .into(),
        )
    })?;
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| {
        h.uint(&key(k)).ok_or_else(|| {
            bad(
                &key(k),
                "is missing; headroom needs it for the estimate".into(),
            )
        })
    };
    let num_layers = need("block_count")?;
    let hidden_size = need("embedding_length")?;
    let heads = need("attention.head_count")?;
    if heads == 0 || hidden_size == 0 || num_layers == 0 {
        return Err(bad(
            &format!(
                "{}, {} and {}",
                key("block_count"),
                key("embedding_length"),
                key("attention.head_count")
            ),
            format!("must be non-zero in {file_name}"),
        ));
    }
    let tensor_count = h.tensors.len() as u64;
    if num_layers > tensor_count {
        return Err(bad(
            &key("block_count"),
            format!(
                "= {num_layers}, but the file has only {tensor_count} tensors and every layer \
                 stores at least one: the metadata is corrupt"
            ),
        ));
    }
    let layers = usize::try_from(num_layers)
        .map_err(|_| bad(&key("block_count"), format!("= {num_layers} is too large")))?;
    let kv_heads = h.uint(&key("attention.head_count_kv")).unwrap_or(heads);
    let head_dim = h
        .uint(&key("attention.key_length"))
        .unwrap_or(hidden_size / heads);
    let vocab_size = h
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .and_then(|t| t.shape.first().copied())
        .ok_or_else(|| {
            bad(
                "token_embd.weight",
                "is missing: the file has no embedding tensor, so the vocabulary is unknown".into(),
            )
        })?;
    let has_tensor = |name: &str| h.tensors.iter().any(|t| t.name == name);
    let expert_count = h.uint(&key("expert_count")).unwrap_or(0);
    let mut notes = Vec::new();
    let moe = (expert_count > 0).then(|| MoeSpec {
        num_experts: expert_count,
        experts_per_token: h.uint(&key("expert_used_count")).unwrap_or(1),
        expert_intermediate_size: h
            .uint(&key("expert_feed_forward_length"))
            .or_else(|| h.uint(&key("feed_forward_length")))
            .unwrap_or(0),
        num_shared_experts: h.uint(&key("expert_shared_count")).unwrap_or(0),
        shared_intermediate_size: h
            .uint(&key("expert_shared_feed_forward_length"))
            .unwrap_or(0),
        dense_layers: Vec::new(),
    });
    let architecture = architecture(arch, moe.is_some());
    let approximate = matches!(architecture, Architecture::Other(_));
    if approximate {
        notes.push(format!(
            "architecture `{arch}` is not one headroom knows exactly: KV cache and activations are approximate"
        ));
    }
    if let Some(window) = h.uint(&key("attention.sliding_window")) {
        notes.push(format!(
            "the file declares a {window}-token sliding window; its per-layer layout is not in the \
             GGUF metadata, so every layer is counted with full attention (KV cache is an upper bound)"
        ));
    }
    let spec = ModelSpec {
        name: file_name.to_string(),
        architecture,
        approximate,
        hidden_size,
        num_layers,
        num_attention_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        vocab_size,
        intermediate_size: h.uint(&key("feed_forward_length")).unwrap_or(0),
        tie_word_embeddings: !has_tensor("output.weight"),
        max_context: h.uint(&key("context_length")).unwrap_or(0).max(1),
        layer_attention: vec![LayerAttention::Full; layers],
        moe,
        mla: None,
        torch_dtype: None,
        checkpoint_quantization: None,
        attention_bias: has_tensor("blk.0.attn_output.bias"),
        mlp_bias: has_tensor("blk.0.ffn_up.bias"),
        layers: Vec::new(),
        norm_bias: false,
        encoders: Vec::new(),
        projectors: Vec::new(),
        mtp: None,
        approximations: Vec::new(),
        embedding_extra_rows: 0,
        per_layer_embedding: None,
        extra_weights: Vec::new(),
    };
    Ok(GgufModel {
        spec,
        file_type: h
            .uint("general.file_type")
            .and_then(llama_ftype_name)
            .map(str::to_string),
        notes,
    })
}
