//! The layer model: hand-worked cache for every mixer kind (per token: attention full, sliding
//! and chunked, MLA latent with and without the indexer key; per sequence: Gated DeltaNet,
//! Mamba-2, short conv; nothing: cross-attention over encoder tokens, shared caches, no mixer),
//! layer patterns from the config fields that set them, and config reading (NaN / Infinity,
//! field aliases, architectures classes, tie defaults).

use headroom_core::{
    CoreError,
    components::{cache_components, components, layer_kinds},
    config::model_from_config_json,
    kv_cache::{KvDtype, kv_cache_bytes},
    model::{ComponentKind, LayerAttention, Mixer, Mlp, ModelSpec},
    params::param_counts,
    runtime::Runtime,
};
use headroom_tests::fixture_model;

const VLLM: Runtime = Runtime::Vllm {
    gpu_memory_utilization: 0.9,
};

fn parse(json: &str) -> ModelSpec {
    model_from_config_json("test", json).unwrap_or_else(|e| panic!("{e}"))
}

fn bad_field(json: &str) -> String {
    match model_from_config_json("test", json) {
        Err(CoreError::BadField { field, .. }) => field,
        other => panic!("expected a BadField error, got {other:?}"),
    }
}

/// A Llama-4 text model: layers 0–2 chunked (RoPE), layer 3 full (NoPE), every layer MoE.
const LLAMA4: &str = r#"{"model_type": "llama4_text", "hidden_size": 1024, "num_hidden_layers": 4,
    "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 1000,
    "intermediate_size": 512, "intermediate_size_mlp": 2048, "max_position_embeddings": 65536,
    "attention_chunk_size": 8192, "num_local_experts": 4, "num_experts_per_tok": 1,
    "interleave_moe_layer_step": 2}"#;

#[test]
fn chunked_attention_caches_at_most_a_chunk() {
    let m = parse(LLAMA4);
    let spans: Vec<_> = m
        .layers()
        .iter()
        .map(|l| match &l.mixer {
            Mixer::Attention(a) => a.span,
            other => panic!("{other:?}"),
        })
        .collect();
    let chunk = LayerAttention::Chunked { chunk: 8192 };
    assert_eq!(spans, vec![chunk, chunk, chunk, LayerAttention::Full]);
    // Per token per layer: K and V rows of 2 kv heads × 64 in bf16 = 512 B.
    let kv = kv_cache_bytes(&m, 16384, 1, KvDtype::Bf16, VLLM);
    assert_eq!(kv.bytes_per_token, 4 * 512);
    assert_eq!(kv.total_bytes, 3 * 8192 * 512 + 16384 * 512);
    assert!(kv.windowed);
    // interleave_moe_layer_step 2: layers 1 and 3 are MoE, 0 and 2 dense of intermediate_size_mlp.
    let kinds: Vec<bool> = m
        .layers()
        .iter()
        .map(|l| matches!(l.mlp, Mlp::Moe(_)))
        .collect();
    assert_eq!(kinds, vec![false, true, false, true]);
    // MoE layer: router 4×1024, experts 4 × 3 × 1024 × 512, shared expert 3 × 1024 × 512.
    let l1 = &m.layers()[1];
    let Mlp::Moe(moe) = &l1.mlp else {
        panic!("MoE")
    };
    assert_eq!(moe.shared_intermediate, 512);
}

#[test]
fn sliding_window_caches_at_most_the_window() {
    let m = fixture_model("Mistral-7B-v0.1");
    // 32 layers, window 4096, 8 kv heads × 128: 4096 B per token per layer in f16.
    let kv = kv_cache_bytes(&m, 8192, 1, KvDtype::F16, VLLM);
    assert_eq!(kv.total_bytes, 32 * 4096 * 4096);
    assert_eq!(kv.bytes_per_token, 32 * 4096);
}

/// A DeepSeek-V3.2-shaped model (MLA + indexer), 2 layers.
const DSV32: &str = r#"{"model_type": "deepseek_v32", "hidden_size": 1024, "num_hidden_layers": 2,
    "num_attention_heads": 16, "vocab_size": 1000, "intermediate_size": 2048,
    "max_position_embeddings": 4096, "q_lora_rank": 256, "kv_lora_rank": 512,
    "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 256,
    "n_shared_experts": 1, "first_k_dense_replace": 1, "index_n_heads": 4, "index_head_dim": 128,
    "index_topk": 64}"#;

#[test]
fn mla_caches_the_latent_and_the_indexer_key() {
    let m = parse(DSV32);
    // transformers 5 (measured for DeepSeek-V3.2): latent 512 + rope 64, indexer key 128, bf16:
    // 1408 B per token per layer.
    let kv = kv_cache_bytes(&m, 100, 1, KvDtype::Bf16, Runtime::TransformersCuda);
    assert_eq!(kv.bytes_per_token, 2 * 1408);
    assert_eq!(kv.total_bytes, 2 * 1408 * 100);
    assert!(kv.mla_latent);
    // Without the indexer (deepseek_v3): 1152 B.
    let v3 = parse(&DSV32.replace("deepseek_v32", "deepseek_v3"));
    let kv3 = kv_cache_bytes(&v3, 100, 1, KvDtype::Bf16, Runtime::TransformersCuda);
    assert_eq!(kv3.bytes_per_token, 2 * 1152);
    // The indexer's weights: wq_b 256 → 4×128, wk 1024 → 128, LayerNorm 128 (+ bias),
    // weights_proj 1024 → 4, in each layer.
    let indexer = 256 * 512 + 1024 * 128 + 2 * 128 + 1024 * 4;
    assert_eq!(
        param_counts(&m).total - param_counts(&v3).total,
        2 * indexer
    );
}

/// A Qwen3-Next-shaped model: 3 Gated DeltaNet layers and one gated attention layer.
const QWEN3_NEXT: &str = r#"{"model_type": "qwen3_next", "hidden_size": 2048, "num_hidden_layers": 4,
    "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "vocab_size": 1000,
    "intermediate_size": 5120, "max_position_embeddings": 4096, "linear_num_key_heads": 16,
    "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4, "num_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512}"#;

#[test]
fn gated_deltanet_keeps_a_state_per_sequence() {
    let m = parse(QWEN3_NEXT);
    let kinds: Vec<String> = layer_kinds(&m)
        .iter()
        .map(|k| format!("{}+{}×{}", k.mixer, k.mlp, k.layers))
        .collect();
    assert_eq!(kinds, vec!["linear_attention+moe×3", "attention+moe×1"]);
    // conv state: (2·16·128 + 32·128) channels × 4 taps × 2 B = 65,536 B;
    // recurrent state: 32 heads × 128 × 128 × 4 B (fp32) = 2,097,152 B.
    let per_layer_state = 8192 * 4 * 2 + 32 * 128 * 128 * 4;
    // The attention layer: 2 kv heads × 256, K and V, bf16 = 2048 B per token.
    let kv = kv_cache_bytes(&m, 1000, 3, KvDtype::Bf16, VLLM);
    assert_eq!(kv.state_bytes_per_sequence, 3 * per_layer_state);
    assert_eq!(kv.bytes_per_token, 2048);
    assert_eq!(kv.total_bytes, 3 * (3 * per_layer_state + 1000 * 2048));
    let cache = cache_components(&m, KvDtype::Bf16, VLLM);
    let linear = cache
        .iter()
        .find(|c| c.mixer == "linear_attention")
        .expect("linear");
    assert_eq!((linear.layers, linear.bytes_per_token), (3, 0));
    assert_eq!(
        linear.state_elements_per_sequence,
        (3 * 8192 * 4, 3 * 32 * 128 * 128)
    );
    // Charged as attention the same 3 layers would have cost 3 × 2048 B per token.
    assert!(kv.bytes_per_token < 4 * 2048);
}

/// A Nemotron-H-shaped model: Mamba, MoE, Mamba, attention, MLP.
const NEMOTRON_H: &str = r#"{"model_type": "nemotron_h", "hidden_size": 1024,
    "hybrid_override_pattern": "ME*-M", "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 128, "vocab_size": 1000, "intermediate_size": 3072,
    "max_position_embeddings": 4096, "mamba_num_heads": 64, "mamba_head_dim": 64,
    "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4, "n_routed_experts": 8,
    "num_experts_per_tok": 2, "moe_intermediate_size": 512,
    "moe_shared_expert_intermediate_size": 1024, "time_step_limit": [0.0, Infinity]}"#;

#[test]
fn mamba2_keeps_a_state_per_sequence_and_the_pattern_sets_every_layer() {
    let m = parse(NEMOTRON_H);
    assert_eq!(m.num_layers, 5, "depth from the pattern");
    let kinds: Vec<(String, String)> = m
        .layers()
        .iter()
        .map(|l| (l.mixer.name(), l.mlp.name()))
        .collect();
    let want = [
        ("mamba2", "none"),
        ("none", "moe"),
        ("attention", "none"),
        ("none", "ungated"),
        ("mamba2", "none"),
    ];
    assert_eq!(
        kinds,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    // Mamba-2: conv (4096 + 2·8·128 = 6144 channels × 4 taps × 2 B) + SSM (64·64·128 × 4 B).
    let mamba_state = 6144 * 4 * 2 + 64 * 64 * 128 * 4;
    let kv = kv_cache_bytes(&m, 4096, 1, KvDtype::Bf16, VLLM);
    assert_eq!(kv.state_bytes_per_sequence, 2 * mamba_state);
    // One attention layer: 2 × 128, K and V, bf16.
    assert_eq!(kv.bytes_per_token, 1024);
    assert_eq!(kv.total_bytes, 2 * mamba_state + 4096 * 1024);
    // Mamba-2 weights (one layer): in_proj 1024 → 2·4096 + 2·8·128 + 64, conv 6144 × 4 + bias,
    // dt_bias, A_log, D (64 each), gated norm 4096, out_proj 4096 → 1024, and the block's norm.
    let mamba_layer =
        1024 * (2 * 4096 + 2 * 8 * 128 + 64) + 6144 * 4 + 6144 + 3 * 64 + 4096 + 4096 * 1024 + 1024;
    // Attention layer: q 1024×1024, k and v 256×1024, o 1024×1024, norm.
    let attention_layer = 2 * 1024 * 1024 + 2 * 256 * 1024 + 1024;
    // MLP layer (relu², ungated): up and down, norm.
    let mlp_layer = 2 * 1024 * 3072 + 1024;
    // MoE layer: router, experts up/down (ungated), shared expert up/down, norm; the router's
    // correction bias is a buffer, not a parameter.
    let moe_layer = 8 * 1024 + 8 * 2 * 1024 * 512 + 2 * 1024 * 1024 + 1024;
    let decoder = 2 * mamba_layer + attention_layer + mlp_layer + moe_layer + 1024;
    let decoder_component = components(&m)
        .iter()
        .find(|c| c.kind == ComponentKind::Decoder)
        .map(|c| c.params)
        .expect("decoder");
    assert_eq!(decoder_component, decoder);
    assert_eq!(param_counts(&m).total, decoder + 2 * 1000 * 1024);
}

#[test]
fn short_conv_keeps_its_last_columns_per_sequence() {
    let m = parse(
        r#"{"model_type": "lfm2", "hidden_size": 2048, "num_hidden_layers": 3,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 1000,
        "intermediate_size": 8192, "max_position_embeddings": 4096, "conv_L_cache": 3,
        "full_attn_idxs": [2]}"#,
    );
    let kinds: Vec<String> = m.layers().iter().map(|l| l.mixer.name()).collect();
    assert_eq!(kinds, vec!["short_conv", "short_conv", "attention"]);
    // Conv state: 2048 channels × 3 columns × 2 B; attention: 8 × 64, K and V, bf16.
    let kv = kv_cache_bytes(&m, 10, 1, KvDtype::Bf16, VLLM);
    assert_eq!(kv.state_bytes_per_sequence, 2 * 2048 * 3 * 2);
    assert_eq!(kv.bytes_per_token, 2 * 8 * 64 * 2);
    // Tied by default (Lfm2Config: tie_embedding).
    assert!(m.tie_word_embeddings);
}

#[test]
fn cross_attention_shared_caches_and_empty_mixers_cache_no_prompt_tokens() {
    let mut m = fixture_model("Llama-3.2-1B");
    let mut layers = m.layers().into_owned();
    let Mixer::Attention(a) = layers[0].mixer.clone() else {
        panic!("attention")
    };
    layers[1].mixer = Mixer::CrossAttention(a.clone());
    let mut shared = a;
    shared.shares_cache = true;
    layers[2].mixer = Mixer::Attention(shared);
    layers[3].mixer = Mixer::None;
    m.layers = layers;
    // 16 layers of 8 kv heads × 64: 2048 B per token each in f16, 3 of them cache nothing.
    let kv = kv_cache_bytes(&m, 100, 1, KvDtype::F16, VLLM);
    assert_eq!(kv.bytes_per_token, 13 * 2048);
    assert_eq!(kv.per_layer_tokens[1], 0);
    assert_eq!(kv.per_layer_tokens[2], 0);
    assert_eq!(kv.per_layer_tokens[3], 0);
    assert_eq!(kv.state_bytes_per_sequence, 0);
}

#[test]
fn starcoder2_and_cohere_count_their_own_blocks() {
    // StarCoder2: LayerNorm with bias, ungated c_fc/c_proj with biases, biased attention, tied.
    let s = parse(
        r#"{"model_type": "starcoder2", "hidden_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
        "intermediate_size": 256, "max_position_embeddings": 4096}"#,
    );
    let attn = 64 * 64 + 64 + 2 * (32 * 64 + 32) + 64 * 64 + 64;
    let mlp = 64 * 256 + 256 + 256 * 64 + 64;
    let norms = 2 * 2 * 64;
    assert_eq!(
        param_counts(&s).total,
        100 * 64 + attn + mlp + norms + 2 * 64
    );
    // Cohere: one LayerNorm without bias per layer (parallel block), gated MLP, tied.
    let c = parse(
        r#"{"model_type": "cohere", "hidden_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "vocab_size": 100, "intermediate_size": 256,
        "max_position_embeddings": 4096}"#,
    );
    assert_eq!(
        param_counts(&c).total,
        100 * 64 + 4 * 64 * 64 + 3 * 64 * 256 + 64 + 64
    );
}

#[test]
fn non_finite_numbers_pass_where_they_shape_nothing_and_are_refused_by_name_where_they_do() {
    let m = parse(NEMOTRON_H);
    assert_eq!(m.num_layers, 5);
    let json = NEMOTRON_H.replace(r#""ssm_state_size": 128"#, r#""ssm_state_size": NaN"#);
    assert_eq!(bad_field(&json), "ssm_state_size");
    let json = NEMOTRON_H.replace(r#""hidden_size": 1024"#, r#""hidden_size": -Infinity"#);
    assert_eq!(bad_field(&json), "hidden_size");
    // Inside a string the words are text.
    let json = NEMOTRON_H.replace(r#""model_type""#, r#""note": "NaN Infinity", "model_type""#);
    assert_eq!(parse(&json).num_layers, 5);
}

#[test]
fn expert_count_aliases_are_read() {
    // transformers 5 saves Qwen3-MoE's num_experts as num_local_experts.
    let base = fixture_model("Qwen3-30B-A3B");
    let text = headroom_tests::fixture_config_text("Qwen3-30B-A3B")
        .replace("\"num_experts\"", "\"num_local_experts\"");
    let renamed = model_from_config_json("Qwen3-30B-A3B", &text).expect("alias accepted");
    assert_eq!(param_counts(&renamed), param_counts(&base));
}

#[test]
fn unknown_model_type_with_a_known_class_is_read_as_that_class() {
    let text = DSV32.replace("deepseek_v32", "kimi_future").replace(
        r#""model_type""#,
        r#""architectures": ["DeepseekV32ForCausalLM"], "model_type""#,
    );
    let m = parse(&text);
    assert!(m.exact());
    assert_eq!(param_counts(&m), param_counts(&parse(DSV32)));
}

#[test]
fn an_unknown_layer_kind_is_refused_by_name() {
    let json = QWEN3_NEXT.replace(
        r#""linear_conv_kernel_dim": 4"#,
        r#""linear_conv_kernel_dim": 4, "layer_types": ["linear_attention", "retention", "linear_attention", "full_attention"]"#,
    );
    assert_eq!(bad_field(&json), "layer_types");
    let json = NEMOTRON_H.replace("ME*-M", "ME*-X");
    assert_eq!(bad_field(&json), "hybrid_override_pattern");
}

#[test]
fn an_unknown_vision_tower_is_an_approximation_never_silent() {
    let json = r#"{"model_type": "futurevlm", "text_config": {"model_type": "llama",
        "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100,
        "intermediate_size": 128, "max_position_embeddings": 4096},
        "vision_config": {"model_type": "future_vit", "hidden_size": 32}}"#;
    let m = parse(json);
    assert!(!m.exact());
    assert!(
        m.approximations.iter().any(|a| a.contains("future_vit")),
        "{:?}",
        m.approximations
    );
}

#[test]
fn gemma3n_text_is_exact_and_its_shared_layers_keep_no_cache() {
    // Two layers, the second reading the first's cache; per-layer MLP widths.
    let json = r#"{"model_type": "gemma3n_text", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 100,
        "intermediate_size": [128, 256], "max_position_embeddings": 4096,
        "layer_types": ["sliding_attention", "full_attention"], "sliding_window": 8,
        "num_kv_shared_layers": 1, "hidden_size_per_layer_input": 8,
        "vocab_size_per_layer_input": 50, "altup_num_inputs": 4, "laurel_rank": 4}"#;
    let m = model_from_config_json("test", json).expect("gemma3n_text parses");
    assert!(m.exact(), "{:?}", m.approximations);
    // Only the first layer caches: 2 kv heads · (16 + 16) · 2 bytes.
    let kv = kv_cache_bytes(&m, 1, 1, KvDtype::Bf16, Runtime::TransformersCuda);
    assert_eq!(kv.bytes_per_token, 2 * 32 * 2);
}

#[test]
fn gemma3n_with_an_unknown_timm_tower_leaves_out_only_the_tower() {
    use headroom_core::config::VISION_TOWER_ONLY;
    let mut config: serde_json::Value =
        serde_json::from_str(&headroom_tests::fixture_config_text("default-gemma3n"))
            .expect("fixture parses");
    config["vision_config"]["architecture"] = "mobilenetv5_future".into();
    let m = model_from_config_json("test", &config.to_string()).expect("parses");
    assert!(!m.exact());
    assert!(
        m.approximations
            .iter()
            .all(|a| a.starts_with(VISION_TOWER_ONLY) && a.contains("mobilenetv5_future")),
        "{:?}",
        m.approximations
    );
    assert!(
        components(&m)
            .iter()
            .all(|c| c.kind != ComponentKind::VisionEncoder)
    );
}

#[test]
fn families_unlike_attention_plus_mlp_are_refused_not_guessed() {
    for t in ["jamba", "zamba2", "rwkv"] {
        let json = format!(
            r#"{{"model_type": "{t}", "hidden_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "vocab_size": 100, "intermediate_size": 128,
            "max_position_embeddings": 4096}}"#
        );
        match model_from_config_json("test", &json) {
            Err(CoreError::Unsupported(msg)) => assert!(msg.contains(t), "{msg}"),
            other => panic!("{t}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn every_committed_config_gets_a_whole_estimate_in_every_setup() {
    use headroom_core::{
        devices,
        estimate::{EstimateRequest, estimate},
    };
    // The answer runs on every family the layer model maps: bf16 with transformers and vLLM,
    // a GGUF mixture with llama.cpp, MLX on a Mac; each total is the exact sum of its parts.
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(headroom_tests::data_dir().join("transformers-counts.json"))
            .expect("transformers-counts.json"),
    )
    .expect("json");
    let setups: [(&str, &str, Runtime); 4] = [
        ("bf16", "h200", Runtime::TransformersCuda),
        ("bf16", "h200", Runtime::vllm_default()),
        ("Q4_K_M", "rtx 4090", Runtime::LlamaCpp),
        ("mlx-4bit-g64", "m3 max 64gb", Runtime::Mlx),
    ];
    let mut estimated = 0;
    for file in truth["models"].as_object().expect("models").keys() {
        let name = file.trim_end_matches(".json");
        let Ok(model) = model_from_config_json(name, &headroom_tests::fixture_config_text(name))
        else {
            continue;
        };
        for (format, device, runtime) in setups {
            let mut r = EstimateRequest::new(
                model.clone(),
                format.parse().expect("format"),
                devices::find(device).expect("device"),
            );
            r.runtime = runtime;
            r.context = Some(8192);
            let e = estimate(&r).unwrap_or_else(|err| panic!("{name} {format}: {err}"));
            assert_eq!(
                e.total_bytes,
                e.weights_bytes
                    + e.kv_cache_bytes
                    + e.activation_bytes
                    + e.overhead_bytes
                    + e.training_bytes,
                "{name} {format}"
            );
            assert!(e.kv_cache_bytes > 0, "{name}: no cache at all");
            estimated += 1;
        }
    }
    assert!(estimated >= 4 * 60, "only {estimated} estimates");
}

#[test]
fn shape_field_aliases_are_read() {
    // transformers' attribute_maps: n_embd / n_layer / n_head / n_inner (GPT-2 style),
    // num_kv_heads; an unknown family named with them gets the same count as the canonical names.
    let canonical = parse(
        r#"{"model_type": "futurenet", "hidden_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 512,
        "vocab_size": 1000, "max_position_embeddings": 2048}"#,
    );
    let aliased = parse(
        r#"{"model_type": "futurenet", "n_embd": 256, "n_layer": 2, "n_head": 8,
        "num_kv_heads": 2, "n_inner": 512, "vocab_size": 1000, "n_positions": 2048}"#,
    );
    assert_eq!(param_counts(&aliased), param_counts(&canonical));
    assert_eq!(aliased.num_kv_heads, 2);
    assert!(!aliased.exact(), "an unknown family stays approximate");
}
