//! Model files dropped on the page: only their headers are read (`File.slice`), never the
//! weights. A GGUF header gives the model's shape (its metadata) and the exact tensor list; a
//! safetensors header gives the exact tensor list (the shape then comes from a config).

pub mod gguf;
pub mod safetensors_header;

use headroom_core::model::{Architecture, LayerAttention, ModelSpec, MoeSpec};

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

/// Build a [`ModelSpec`] from a GGUF header's metadata (`{arch}.block_count`,
/// `{arch}.embedding_length`, `{arch}.attention.head_count[_kv]`, `{arch}.attention.key_length`,
/// `{arch}.feed_forward_length`, `{arch}.context_length`, `{arch}.expert_*`) and its tensors
/// (vocabulary from `token_embd.weight`, tied output when `output.weight` is absent).
pub fn spec_from_gguf(h: &gguf::GgufHeader, file_name: &str) -> Result<GgufModel, String> {
    let arch = h
        .string("general.architecture")
        .ok_or("the GGUF metadata has no general.architecture")?;
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| {
        h.uint(&key(k)).ok_or_else(|| {
            format!(
                "the GGUF metadata lacks {} (needed for the estimate)",
                key(k)
            )
        })
    };
    let num_layers = need("block_count")?;
    let hidden_size = need("embedding_length")?;
    let heads = need("attention.head_count")?;
    if heads == 0 || hidden_size == 0 || num_layers == 0 {
        return Err(format!(
            "{file_name}: block_count, embedding_length and head_count must be non-zero"
        ));
    }
    let kv_heads = h.uint(&key("attention.head_count_kv")).unwrap_or(heads);
    let head_dim = h
        .uint(&key("attention.key_length"))
        .unwrap_or(hidden_size / heads);
    let vocab_size = h
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .and_then(|t| t.shape.first().copied())
        .ok_or("the GGUF has no token_embd.weight tensor")?;
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
        tie_word_embeddings: !h.tensors.iter().any(|t| t.name == "output.weight"),
        max_context: h.uint(&key("context_length")).unwrap_or(0).max(1),
        layer_attention: vec![LayerAttention::Full; num_layers as usize],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_metadata_gives_a_spec() {
        let bytes = gguf::writer::header(
            "llama",
            &[
                ("llama.block_count", 2),
                ("llama.embedding_length", 64),
                ("llama.attention.head_count", 4),
                ("llama.attention.head_count_kv", 2),
                ("llama.feed_forward_length", 128),
                ("llama.context_length", 2048),
                ("general.file_type", 15),
            ],
            &[("token_embd.weight", &[100, 64], 0)],
        );
        let h = gguf::parse(&bytes).unwrap();
        let m = spec_from_gguf(&h, "tiny.gguf").unwrap();
        assert_eq!(m.spec.architecture, Architecture::Llama);
        assert_eq!(m.spec.head_dim, 16);
        assert_eq!(m.spec.num_kv_heads, 2);
        assert_eq!(m.spec.vocab_size, 100);
        assert!(m.spec.tie_word_embeddings);
        assert_eq!(m.file_type.as_deref(), Some("Q4_K_M"));
        let no_layers = gguf::writer::header("llama", &[], &[]);
        let err = spec_from_gguf(&gguf::parse(&no_layers).unwrap(), "x").unwrap_err();
        assert!(err.contains("llama.block_count"), "{err}");
    }
}
