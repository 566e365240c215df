//! Golden tests: parameter counts from `config.json` equal the checkpoints', to the parameter, for
//! every fixture in `tests/data/hf-configs` (expected values in `param_counts.json`).

use headroom_core::{
    CoreError,
    config::model_from_config_json,
    model::{Architecture, LayerAttention},
    params::param_counts,
    tensors::{TensorRole, tensors},
};
use headroom_tests::{expected_param_counts, fixture_model, fixture_names};

#[test]
fn every_expected_count_has_its_config() {
    // The checkpoint-counted fixtures are the names in param_counts.json; each needs its config.
    let names = fixture_names();
    assert!(names.len() >= 16, "fixtures missing: {names:?}");
    for name in &names {
        let path = headroom_tests::data_dir()
            .join("hf-configs")
            .join(format!("{name}.json"));
        assert!(path.is_file(), "{name} has a count but no config");
    }
}

#[test]
fn totals_and_active_equal_the_checkpoints() {
    let expected = expected_param_counts();
    let mut failures = Vec::new();
    for name in fixture_names() {
        let model = fixture_model(&name);
        let counts = param_counts(&model);
        let want = &expected[&name];
        let total = want["params_total"].as_u64().expect("params_total");
        if counts.total != total {
            failures.push(format!(
                "{name}: total {} != {total} (diff {})",
                counts.total,
                counts.total as i128 - total as i128
            ));
        }
        match want.get("params_active").and_then(|v| v.as_u64()) {
            Some(active) => {
                assert!(
                    model.moe.is_some(),
                    "{name}: active given for a dense model"
                );
                if counts.active != active {
                    failures.push(format!("{name}: active {} != {active}", counts.active));
                }
                let excl = want["params_active_excluding_input_embedding"]
                    .as_u64()
                    .expect("params_active_excluding_input_embedding");
                if counts.active_excluding_input_embedding != excl {
                    failures.push(format!(
                        "{name}: active excluding embedding {} != {excl}",
                        counts.active_excluding_input_embedding
                    ));
                }
            }
            None => {
                assert!(
                    model.moe.is_none(),
                    "{name}: MoE fixture without active count"
                );
                if counts.active != counts.total {
                    failures.push(format!("{name}: dense active {} != total", counts.active));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tensor_names_follow_gguf() {
    let model = fixture_model("Llama-3.1-8B");
    let list = tensors(&model);
    // 1 embedding + 32 layers × 9 + output norm + output.
    assert_eq!(list.len(), 1 + 32 * 9 + 2);
    assert_eq!(list[0].name, "token_embd.weight");
    assert_eq!(list[0].shape, vec![128_256, 4096]);
    assert_eq!(list[0].active_elements, 4096, "one embedding row per token");
    let v = list
        .iter()
        .find(|t| t.name == "blk.7.attn_v.weight")
        .expect("attn_v");
    assert_eq!(v.shape, vec![8 * 128, 4096]);
    assert_eq!(v.role, TensorRole::AttnV);
    assert_eq!(v.layer, Some(7));
    assert!(list.iter().any(|t| t.name == "output.weight"));
    assert!(list.iter().any(|t| t.name == "output_norm.weight"));

    let mixtral = fixture_model("Mixtral-8x7B-v0.1");
    let down = tensors(&mixtral)
        .into_iter()
        .find(|t| t.name == "blk.0.ffn_down_exps.weight")
        .expect("ffn_down_exps");
    assert_eq!(down.shape, vec![8, 4096, 14336]);
    assert_eq!(down.active_elements, 2 * 4096 * 14336, "2 of 8 experts");
}

#[test]
fn tied_embedding_has_no_output_tensor() {
    let model = fixture_model("Llama-3.2-1B");
    assert!(model.tie_word_embeddings);
    let list = tensors(&model);
    assert!(list.iter().all(|t| t.role != TensorRole::Output));
    let counts = param_counts(&model);
    assert_eq!(counts.active, counts.total);
    // The tied table is the output head too: it stays in the per-token count.
    assert_eq!(counts.active_excluding_input_embedding, counts.total);
}

#[test]
fn sliding_window_layouts() {
    let window_count = |name: &str| {
        let m = fixture_model(name);
        assert_eq!(m.layer_attention.len() as u64, m.num_layers);
        m.layer_attention
            .iter()
            .filter(|a| matches!(a, LayerAttention::Sliding { .. }))
            .count()
    };
    assert_eq!(window_count("Mistral-7B-v0.1"), 32);
    assert_eq!(window_count("Mixtral-8x7B-v0.1"), 0, "sliding_window null");
    assert_eq!(window_count("Qwen2.5-7B"), 0, "use_sliding_window false");
    assert_eq!(window_count("gemma-2-9b"), 21, "even layers local");
    // 26 layers, every 6th global: layers 5, 11, 17, 23 are global.
    assert_eq!(window_count("gemma-3-1b-it"), 22);
    let g3 = fixture_model("gemma-3-1b-it");
    assert_eq!(g3.layer_attention[5], LayerAttention::Full);
    assert_eq!(
        g3.layer_attention[0],
        LayerAttention::Sliding { window: 512 }
    );
    assert_eq!(window_count("gpt-oss-20b"), 12, "layer_types");
    assert_eq!(window_count("Llama-3.1-8B"), 0);
}

#[test]
fn config_details() {
    let ds = fixture_model("DeepSeek-V2-Lite");
    let mla = ds.mla.as_ref().expect("MLA");
    assert_eq!(mla.q_lora_rank, None);
    assert_eq!(mla.kv_lora_rank, 512);
    let moe = ds.moe.as_ref().expect("MoE");
    assert_eq!(moe.dense_layers, vec![0], "first_k_dense_replace = 1");
    assert_eq!(moe.num_shared_experts, 2);
    assert_eq!(moe.shared_intermediate_size, 2 * 1408);
    let gemma = fixture_model("gemma-2-9b");
    assert_eq!(gemma.head_dim, 256, "explicit head_dim, not 3584/16");
    assert!(gemma.tie_word_embeddings, "Gemma ties by default");
    let oss = fixture_model("gpt-oss-20b");
    assert_eq!(oss.checkpoint_quantization.as_deref(), Some("mxfp4"));
    assert_eq!(oss.max_context, 131_072);
    assert_eq!(
        fixture_model("Llama-2-7b-hf").torch_dtype.as_deref(),
        Some("float16")
    );
}

#[test]
fn multimodal_text_config_is_used() {
    let json = r#"{"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
        "num_hidden_layers": 34, "sliding_window": 1024},
        "vision_config": {"hidden_size": 1152}}"#;
    let m = model_from_config_json("gemma-3-4b-it", json).expect("parses");
    assert_eq!(m.architecture, Architecture::Gemma3);
    assert_eq!(m.num_layers, 34);
    // Gemma3TextConfig defaults fill what the 4B config leaves out.
    assert_eq!(
        (m.num_attention_heads, m.num_kv_heads, m.head_dim),
        (8, 4, 256)
    );
    assert_eq!(m.vocab_size, 262_208);
    assert_eq!(
        m.layer_attention[0],
        LayerAttention::Sliding { window: 1024 }
    );
}

#[test]
fn unknown_model_type_with_generic_fields_is_approximate() {
    let json = r#"{"model_type": "futurenet", "hidden_size": 4096, "num_hidden_layers": 32,
        "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 100352,
        "max_position_embeddings": 4096, "some_new_field": [1, 2]}"#;
    let m = model_from_config_json("olmo", json).expect("approximate");
    assert!(m.approximate);
    assert_eq!(m.architecture, Architecture::Other("futurenet".into()));
    assert!(param_counts(&m).total > 6_000_000_000);
}

#[test]
fn unknown_model_type_without_fields_lists_supported() {
    // `d_model` is an alias transformers accepts for hidden_size; the other shape fields are
    // what is missing.
    let err = model_from_config_json("x", r#"{"model_type": "futuressm", "d_model": 768}"#)
        .expect_err("unsupported");
    let CoreError::UnsupportedArchitecture {
        model_type,
        missing,
        supported,
    } = &err
    else {
        panic!("wrong error {err:?}");
    };
    assert_eq!(model_type, "futuressm");
    assert!(missing.contains("num_hidden_layers"), "{missing}");
    assert!(!missing.contains("hidden_size"), "{missing}");
    assert!(supported.contains("deepseek_v3") && supported.contains("gpt_oss"));
    // A recurrent family headroom knows is not attention + MLP is refused, never guessed.
    let err = model_from_config_json(
        "x",
        r#"{"model_type": "mamba", "d_model": 768, "n_layer": 24, "num_attention_heads": 1,
        "intermediate_size": 1536, "vocab_size": 50280, "max_position_embeddings": 2048}"#,
    )
    .expect_err("refused");
    assert!(matches!(err, CoreError::Unsupported(_)), "{err:?}");
}

#[test]
fn malformed_json_reports_line_and_column() {
    let err = model_from_config_json("bad", "{\n  \"hidden_size\": 4096,\n  oops\n}")
        .expect_err("malformed");
    let CoreError::MalformedJson { detail, .. } = &err else {
        panic!("wrong error {err:?}");
    };
    assert!(detail.contains("line 3"), "{detail}");
    assert!(model_from_config_json("bad", "[1, 2]").is_err());
}

#[test]
fn bad_fields_are_named() {
    let base = r#"{"model_type": "llama", "hidden_size": HS, "num_hidden_layers": NL,
        "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
        "max_position_embeddings": 4096}"#;
    let field_of = |hs: &str, nl: &str| {
        let json = base.replace("HS", hs).replace("NL", nl);
        match model_from_config_json("m", &json) {
            Err(CoreError::BadField { field, problem, .. }) => (field, problem),
            other => panic!("expected BadField for hs={hs} nl={nl}, got {other:?}"),
        }
    };
    assert_eq!(field_of("\"4096\"", "32").0, "hidden_size");
    assert_eq!(field_of("4096", "0").0, "num_hidden_layers");
    assert_eq!(field_of("0", "32").0, "hidden_size");
    let (field, problem) = field_of("100000000", "32");
    assert_eq!(field, "hidden_size");
    assert!(problem.contains("maximum"), "{problem}");
    assert_eq!(field_of("4096", "-3").0, "num_hidden_layers");
    // A missing field.
    let err = model_from_config_json("m", r#"{"model_type": "llama", "hidden_size": 4096}"#)
        .expect_err("missing");
    assert!(matches!(err, CoreError::BadField { .. }), "{err:?}");
}

#[test]
fn absurd_but_in_range_sizes_are_rejected_without_overflow() {
    // Each field is within its own limit, but together they describe 10^20+ parameters.
    let json = r#"{"model_type": "mixtral", "hidden_size": 9000000, "num_hidden_layers": 9000,
        "num_attention_heads": 1, "intermediate_size": 9000000, "vocab_size": 9000000,
        "num_local_experts": 900000, "num_experts_per_tok": 2, "max_position_embeddings": 4096}"#;
    let err = model_from_config_json("huge", json).expect_err("absurd");
    assert!(matches!(err, CoreError::OutOfRange { .. }), "{err:?}");
}

#[test]
fn unknown_moe_model_is_approximated_with_its_experts() {
    // OLMoE-1B-7B's config fields under a model_type headroom does not know.
    let json = r#"{"model_type": "futuremoe", "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 1024,
        "vocab_size": 50304, "num_experts": 64, "num_experts_per_tok": 8,
        "max_position_embeddings": 4096, "tie_word_embeddings": false}"#;
    let m = model_from_config_json("olmoe", json).expect("approximate");
    assert!(m.approximate);
    let moe = m.moe.as_ref().expect("experts recognised");
    assert_eq!((moe.num_experts, moe.experts_per_token), (64, 8));
    // By hand, llama-like: embeddings 2 × 50304 × 2048; per layer q/k/v/o 4 × 2048², router
    // 64 × 2048, experts 64 × 3 × 2048 × 1024, two norms; final norm.
    let per_layer = 4 * 2048 * 2048 + 64 * 2048 + 64 * 3 * 2048 * 1024 + 2 * 2048;
    let total = 2 * 50304 * 2048 + 16 * per_layer + 2048;
    assert_eq!(param_counts(&m).total, total);
    assert_eq!(total, 6_919_096_320);
}

/// The field a `BadField` error names, or a panic describing what came back instead.
fn bad_field(json: &str) -> String {
    match model_from_config_json("m", json) {
        Err(CoreError::BadField { field, .. }) => field,
        other => panic!("expected a BadField error for {json}, got {other:?}"),
    }
}

#[test]
fn malformed_configs_name_the_field() {
    let llama = |extra: &str| {
        format!(
            r#"{{"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
            "intermediate_size": 14336, "vocab_size": 128256,
            "max_position_embeddings": 131072, {extra}}}"#
        )
    };
    let cases: &[(&str, &str)] = &[
        (r#""num_attention_heads": 0"#, "num_attention_heads"),
        // 4096 / 24 is not whole: the per-head width must be given.
        (
            r#""num_attention_heads": 24, "num_key_value_heads": 8"#,
            "head_dim",
        ),
        // More KV heads than query heads.
        (
            r#""num_attention_heads": 32, "num_key_value_heads": 64"#,
            "num_key_value_heads",
        ),
        (r#""num_attention_heads": -32"#, "num_attention_heads"),
        (r#""num_attention_heads": 32.5"#, "num_attention_heads"),
        (r#""num_attention_heads": "32""#, "num_attention_heads"),
        (r#""num_attention_heads": 32, "head_dim": 0"#, "head_dim"),
        (
            r#""num_attention_heads": 32, "tie_word_embeddings": "no""#,
            "tie_word_embeddings",
        ),
    ];
    for (extra, field) in cases {
        assert_eq!(bad_field(&llama(extra)), *field, "{extra}");
    }
    // A huge vocabulary is refused by name (above 10^7 entries), not overflowed.
    let huge_vocab = llama(r#""num_attention_heads": 32"#).replace("128256", "100000000000");
    assert_eq!(bad_field(&huge_vocab), "vocab_size");

    let mixtral = |experts: u64, k: u64| {
        format!(
            r#"{{"model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
            "max_position_embeddings": 100, "num_local_experts": {experts},
            "num_experts_per_tok": {k}}}"#
        )
    };
    assert_eq!(bad_field(&mixtral(4, 5)), "num_experts_per_tok");
    assert_eq!(bad_field(&mixtral(4, 0)), "num_experts_per_tok");
    assert_eq!(bad_field(&mixtral(0, 1)), "num_local_experts");
}

#[test]
fn regression_huge_shared_expert_counts_are_errors_not_overflows() {
    // n_shared_experts × moe_intermediate_size overflowed u64 (a panic in debug builds, a wrapped
    // and wrong count in release) before it was range-checked.
    let deepseek = r#"{"model_type": "deepseek_v2", "hidden_size": 2048, "num_hidden_layers": 27,
        "num_attention_heads": 16, "intermediate_size": 10944, "vocab_size": 102400,
        "max_position_embeddings": 163840, "n_routed_experts": 64, "num_experts_per_tok": 6,
        "moe_intermediate_size": 1408, "n_shared_experts": 18446744073709551615,
        "first_k_dense_replace": 1, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128, "v_head_dim": 128}"#;
    assert_eq!(bad_field(deepseek), "n_shared_experts");
    // The same in an unknown family approximated from its generic fields.
    let other = r#"{"model_type": "foo", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
        "max_position_embeddings": 100, "num_experts": 4, "num_experts_per_tok": 2,
        "n_shared_experts": 18446744073709551615}"#;
    assert_eq!(bad_field(other), "n_shared_experts");
    // Qwen2-MoE's shared expert width is named too (it used to surface only as a saturated
    // parameter count).
    let qwen = r#"{"model_type": "qwen2_moe", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
        "max_position_embeddings": 100, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 64, "shared_expert_intermediate_size": 18446744073709551615}"#;
    assert_eq!(bad_field(qwen), "shared_expert_intermediate_size");
}

#[test]
fn regression_gemma3_zero_sliding_window_is_an_error() {
    // A zero window used to be accepted and made every local layer's KV cache 0 bytes.
    let json = r#"{"model_type": "gemma3_text", "sliding_window": 0}"#;
    assert_eq!(bad_field(json), "sliding_window");
    // The defaults (Gemma3TextConfig) still give a model.
    let ok = model_from_config_json("g", r#"{"model_type": "gemma3_text"}"#).expect("defaults");
    assert!(
        ok.layer_attention
            .contains(&LayerAttention::Sliding { window: 4096 })
    );
}
