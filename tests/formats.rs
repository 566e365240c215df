//! Weight formats: published GGUF sizes, hand-worked bytes, ordering, llama.cpp's per-tensor rules
//! and the format names the CLI and site accept.

use headroom_core::{
    CoreError,
    gguf::{GgmlType, LlamaFileType, use_more_bits},
    quant::{WeightFormat, active_weights_bytes, bits_per_weight, tensor_formats, weights_bytes},
    units::GIB,
};
use headroom_tests::{fixture_model, fixture_names};

fn fmt(name: &str) -> WeightFormat {
    name.parse()
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

fn dtype_of(model: &str, format: &str, tensor: &str) -> String {
    tensor_formats(&fixture_model(model), &fmt(format))
        .into_iter()
        .find(|(t, _)| t.name == tensor)
        .unwrap_or_else(|| panic!("{model} has no {tensor}"))
        .1
        .dtype
}

/// FACTS.md: Llama-3.1-8B Q4_K_M = 4.58 GiB, 4.8944 bits per weight (llama.cpp's printout).
#[test]
fn llama_3_1_8b_q4_k_m_matches_published_size() {
    let model = fixture_model("Llama-3.1-8B");
    let q = fmt("Q4_K_M");
    let gib = weights_bytes(&model, &q) as f64 / GIB as f64;
    assert!((gib / 4.58 - 1.0).abs() < 0.01, "{gib} GiB vs 4.58");
    let bpw = bits_per_weight(&model, &q);
    assert!((bpw - 4.8944).abs() < 0.0005, "{bpw} bpw vs 4.8944");
}

/// Q4_K_M of Llama-3.1-8B worked by hand from llama.cpp's rules.
#[test]
fn llama_3_1_8b_q4_k_m_by_hand() {
    // token_embd (untied, Q4_K): 128256 × 4096 = 525,336,576 × 144/256 = 295,501,824
    // output (Q6_K):             525,336,576 × 210/256                 = 430,940,160
    // q, k, o, gate, up (Q4_K): (2·16,777,216 + 4,194,304 + 2·58,720,256) × 32 layers
    //                           = 4,966,055,936 × 144/256               = 2,793,406,464
    // attn_v + ffn_down: 62,914,560 per layer; use_more_bits picks 16 of 32 layers:
    //   Q6_K: 1,006,632,960 × 210/256 = 825,753,600;  Q4_K: × 144/256 = 566,231,040
    // norms (F32): (32 · 2 + 1) × 4096 × 4 = 1,064,960
    let expected =
        295_501_824u64 + 430_940_160 + 2_793_406_464 + 825_753_600 + 566_231_040 + 1_064_960;
    assert_eq!(expected, 4_912_898_048);
    assert_eq!((0..32).filter(|i| use_more_bits(*i, 32)).count(), 16);
    let model = fixture_model("Llama-3.1-8B");
    assert_eq!(weights_bytes(&model, &fmt("q4_k_m")), expected);
}

#[test]
fn hand_worked_bytes() {
    let llama = fixture_model("Llama-3.1-8B");
    // 8,030,261,248 parameters of which 266,240 are norms (65 × 4096).
    let matrices = 8_030_261_248u64 - 266_240;
    // Q8_0: 34 bytes per 32 weights, norms F32.
    assert_eq!(
        weights_bytes(&llama, &fmt("Q8_0")),
        matrices / 32 * 34 + 266_240 * 4
    );
    // MLX 4-bit g64: 4 + 32/64 = 4.5 bits for every matrix (embedding and head too), norms 16-bit.
    assert_eq!(
        weights_bytes(&llama, &fmt("mlx-4bit-g64")),
        matrices / 16 * 9 + 266_240 * 2
    );
    // bf16: 2 bytes each.
    assert_eq!(weights_bytes(&llama, &fmt("bf16")), 8_030_261_248 * 2);
    // nf4 (no double quant): block linears 218,103,808 × 32 = 6,979,321,856 weights at
    // 0.5 byte + 4 bytes per 64; embedding, head and norms 16-bit.
    let linear = 6_979_321_856u64;
    assert_eq!(
        weights_bytes(&llama, &fmt("nf4")),
        linear / 2 + linear / 64 * 4 + (2 * 525_336_576 + 266_240) * 2
    );

    let q_proj = |format: &str| {
        tensor_formats(&llama, &fmt(format))
            .into_iter()
            .find(|(t, _)| t.name == "blk.0.attn_q.weight")
            .expect("attn_q")
            .1
            .bytes
    };
    // GPTQ 4-bit g128 of a 4096 × 4096 matrix: packed 8,388,608 + scales 32 × 4096 × 2
    // + zeros 32 × 4096 / 2 + g_idx 4096 × 4.
    assert_eq!(
        q_proj("gptq-4bit-g128"),
        8_388_608 + 262_144 + 65_536 + 16_384
    );
    // AWQ: the same without g_idx.
    assert_eq!(q_proj("awq-4bit-g128"), 8_388_608 + 262_144 + 65_536);
    // nf4 + double quant: 262,144 blocks → 1 byte each + fp32 per 256 blocks.
    assert_eq!(q_proj("nf4-dq"), 8_388_608 + 262_144 + 1024 * 4);
    // int8: one byte per weight + fp32 per output row.
    assert_eq!(q_proj("int8"), 16_777_216 + 4096 * 4);
    // fp8 block-wise: one fp32 per 128 × 128 block.
    assert_eq!(q_proj("fp8"), 16_777_216 + 32 * 32 * 4);

    // gpt-oss-20b as published (MXFP4 experts, bf16 rest): experts 24 layers × 32 × 3 × 2880²
    // = 19,110,297,600 weights × 17/32, the other 1,804,459,584 parameters × 2.
    let oss = fixture_model("gpt-oss-20b");
    assert_eq!(WeightFormat::default_for(&oss), WeightFormat::Mxfp4);
    assert_eq!(
        weights_bytes(&oss, &WeightFormat::Mxfp4),
        19_110_297_600 / 32 * 17 + 1_804_459_584 * 2
    );
}

#[test]
fn bitsandbytes_leaves_fused_gpt_oss_experts_alone() {
    assert_eq!(
        dtype_of("gpt-oss-20b", "nf4", "blk.0.ffn_down_exps.weight"),
        "bf16"
    );
    assert_eq!(dtype_of("gpt-oss-20b", "nf4", "blk.0.attn_q.weight"), "nf4");
    assert_eq!(
        dtype_of("Mixtral-8x7B-v0.1", "nf4", "blk.0.ffn_down_exps.weight"),
        "nf4"
    );
}

#[test]
fn active_bytes_read_per_token() {
    // Mixtral bf16: every active weight except the input table, plus one embedding row.
    let mixtral = fixture_model("Mixtral-8x7B-v0.1");
    assert_eq!(
        active_weights_bytes(&mixtral, &WeightFormat::Bf16),
        (12_748_853_248 + 4096) * 2
    );
    // Dense, tied (Llama-3.2-1B): the table is the output head, read in full.
    let small = fixture_model("Llama-3.2-1B");
    assert_eq!(
        active_weights_bytes(&small, &WeightFormat::Bf16),
        weights_bytes(&small, &WeightFormat::Bf16)
    );
    for name in fixture_names() {
        let m = fixture_model(&name);
        for f in [fmt("bf16"), fmt("q4_k_m"), fmt("nf4")] {
            assert!(
                active_weights_bytes(&m, &f) <= weights_bytes(&m, &f),
                "{name} {f}"
            );
        }
    }
}

#[test]
fn formats_are_ordered_by_size() {
    let order = [
        "f32", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k",
    ];
    for name in fixture_names() {
        let model = fixture_model(&name);
        let sizes: Vec<u64> = order
            .iter()
            .map(|f| weights_bytes(&model, &fmt(f)))
            .collect();
        for (pair, names) in sizes.windows(2).zip(order.windows(2)) {
            assert!(
                pair[0] > pair[1],
                "{name}: {} ({}) should exceed {} ({})",
                names[0],
                pair[0],
                names[1],
                pair[1]
            );
        }
    }
}

#[test]
fn llama_cpp_per_tensor_rules() {
    // Q4_K_M: attn_v on layer 0 (first eighth) Q6_K, layer 4 not, layer 6 ((6-4)%3 == 2) yes.
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q4_K_M", "blk.0.attn_v.weight"),
        "Q6_K"
    );
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q4_K_M", "blk.4.attn_v.weight"),
        "Q4_K"
    );
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q4_K_M", "blk.6.ffn_down.weight"),
        "Q6_K"
    );
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q4_K_M", "blk.5.ffn_down.weight"),
        "Q4_K"
    );
    assert_eq!(dtype_of("Llama-3.1-8B", "Q4_K_M", "output.weight"), "Q6_K");
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q4_K_M", "token_embd.weight"),
        "Q4_K"
    );
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q4_K_M", "blk.0.attn_norm.weight"),
        "F32"
    );
    // Tied embedding gets the output head's type.
    assert_eq!(
        dtype_of("Llama-3.2-1B", "Q4_K_M", "token_embd.weight"),
        "Q6_K"
    );
    // 8-expert models: attn_v and attn_k to Q8_0; the router is never quantized.
    assert_eq!(
        dtype_of("Mixtral-8x7B-v0.1", "Q4_K_M", "blk.9.attn_v.weight"),
        "Q8_0"
    );
    assert_eq!(
        dtype_of("Mixtral-8x7B-v0.1", "Q4_K_M", "blk.9.attn_k.weight"),
        "Q8_0"
    );
    assert_eq!(
        dtype_of("Mixtral-8x7B-v0.1", "Q4_K_M", "blk.9.ffn_gate_inp.weight"),
        "F32"
    );
    // Rows of 2880 are not a multiple of 256: Q4_K falls back to Q5_0, Q6_K to Q8_0.
    assert_eq!(
        dtype_of("gpt-oss-20b", "Q4_K_M", "blk.1.attn_q.weight"),
        "Q5_0"
    );
    assert_eq!(dtype_of("gpt-oss-20b", "Q4_K_M", "output.weight"), "Q8_0");
    // DeepSeek-V2-Lite experts have rows of 1408 = 5.5 × 256.
    // Layer 4 of 27 is not a use_more_bits layer (Q4_K → Q5_0), layer 5 is (Q6_K → Q8_0).
    assert_eq!(
        dtype_of("DeepSeek-V2-Lite", "Q4_K_M", "blk.4.ffn_down_exps.weight"),
        "Q5_0"
    );
    assert_eq!(
        dtype_of("DeepSeek-V2-Lite", "Q4_K_M", "blk.5.ffn_down_exps.weight"),
        "Q8_0"
    );
    assert_eq!(
        dtype_of("DeepSeek-V2-Lite", "Q4_K_M", "blk.5.ffn_gate_exps.weight"),
        "Q4_K"
    );
    // MXFP4_MOE: stacked experts MXFP4, everything else Q8_0.
    assert_eq!(
        dtype_of("gpt-oss-20b", "MXFP4_MOE", "blk.3.ffn_up_exps.weight"),
        "MXFP4"
    );
    assert_eq!(
        dtype_of("gpt-oss-20b", "MXFP4_MOE", "blk.3.attn_k.weight"),
        "Q8_0"
    );
    // Q3_K_M: the first two attn_v Q5_K, then Q4_K; attn_output Q4_K.
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q3_K_M", "blk.1.attn_v.weight"),
        "Q5_K"
    );
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q3_K_M", "blk.2.attn_v.weight"),
        "Q4_K"
    );
    assert_eq!(
        dtype_of("Llama-3.1-8B", "Q3_K_M", "blk.2.attn_output.weight"),
        "Q4_K"
    );
    // 70B: attn_v outside use_more_bits (layer 11 of 80) bumped from Q4_K to Q5_K.
    assert_eq!(
        dtype_of("Llama-2-70b-hf", "Q4_K_M", "blk.11.attn_v.weight"),
        "Q5_K"
    );
    // One block type everywhere.
    assert_eq!(
        dtype_of("Llama-3.1-8B", "gguf-q4_k", "output.weight"),
        "Q4_K"
    );
}

#[test]
fn block_sizes_match_facts() {
    let table = [
        ("Q4_0", 18, 32),
        ("Q4_1", 20, 32),
        ("Q5_0", 22, 32),
        ("Q5_1", 24, 32),
        ("Q8_0", 34, 32),
        ("Q2_K", 84, 256),
        ("Q3_K", 110, 256),
        ("Q4_K", 144, 256),
        ("Q5_K", 176, 256),
        ("Q6_K", 210, 256),
        ("Q8_K", 292, 256),
        ("IQ1_S", 50, 256),
        ("IQ1_M", 56, 256),
        ("IQ2_XXS", 66, 256),
        ("IQ2_XS", 74, 256),
        ("IQ2_S", 82, 256),
        ("IQ3_XXS", 98, 256),
        ("IQ3_S", 110, 256),
        ("IQ4_NL", 18, 32),
        ("IQ4_XS", 136, 256),
        ("TQ1_0", 54, 256),
        ("TQ2_0", 66, 256),
        ("MXFP4", 17, 32),
    ];
    for (name, bytes, elements) in table {
        let t = GgmlType::from_name(name).expect(name);
        assert_eq!(t.block(), (bytes, elements), "{name}");
        // Every block type is usable on its own.
        assert_eq!(fmt(&format!("gguf-{name}")), WeightFormat::GgufPure(t));
    }
}

#[test]
fn ggml_ids_are_unique_and_round_trip() {
    let mut ids: Vec<u32> = GgmlType::ALL.iter().map(|t| t.ggml_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), GgmlType::ALL.len());
    for t in GgmlType::ALL {
        assert_eq!(GgmlType::from_ggml_id(t.ggml_id()), Some(t));
    }
    // A few from ggml.h's enum.
    assert_eq!(GgmlType::Q4_K.ggml_id(), 12);
    assert_eq!(GgmlType::BF16.ggml_id(), 30);
    assert_eq!(GgmlType::from_ggml_id(4), None, "removed Q4_2");
}

#[test]
fn names_parse_and_round_trip() {
    let cases = [
        ("fp16", WeightFormat::F16),
        ("F16", WeightFormat::F16),
        ("bf16", WeightFormat::Bf16),
        ("fp32", WeightFormat::F32),
        ("fp8", WeightFormat::Fp8),
        ("int8", WeightFormat::BnbInt8),
        (
            "nf4",
            WeightFormat::BnbNf4 {
                double_quant: false,
            },
        ),
        ("nf4-dq", WeightFormat::BnbNf4 { double_quant: true }),
        (
            "fp4",
            WeightFormat::BnbFp4 {
                double_quant: false,
            },
        ),
        (
            "gptq-4bit",
            WeightFormat::Gptq {
                bits: 4,
                group_size: 128,
            },
        ),
        (
            "gptq-4bit-g32",
            WeightFormat::Gptq {
                bits: 4,
                group_size: 32,
            },
        ),
        (
            "GPTQ 8-bit g128",
            WeightFormat::Gptq {
                bits: 8,
                group_size: 128,
            },
        ),
        (
            "awq-4bit-g128",
            WeightFormat::Awq {
                bits: 4,
                group_size: 128,
            },
        ),
        (
            "mlx-4bit-g64",
            WeightFormat::Mlx {
                bits: 4,
                group_size: 64,
            },
        ),
        (
            "mlx-8bit",
            WeightFormat::Mlx {
                bits: 8,
                group_size: 64,
            },
        ),
        ("q4_k_m", WeightFormat::Gguf(LlamaFileType::Q4_K_M)),
        ("Q8_0", WeightFormat::Gguf(LlamaFileType::Q8_0)),
        ("iq4_xs", WeightFormat::Gguf(LlamaFileType::IQ4_XS)),
        ("gguf-q4_k", WeightFormat::GgufPure(GgmlType::Q4_K)),
        ("mxfp4_moe", WeightFormat::Gguf(LlamaFileType::MXFP4_MOE)),
    ];
    for (name, want) in cases {
        assert_eq!(fmt(name), want, "{name}");
    }
    assert_eq!(fmt("Q4_K_M").to_string(), "Q4_K_M");
    assert_eq!(fmt("nf4-dq").to_string(), "nf4+dq");
    assert_eq!(fmt("gptq-4bit").to_string(), "GPTQ 4-bit g128");
    let mut all = WeightFormat::all();
    all.extend(LlamaFileType::ALL.map(WeightFormat::Gguf));
    for f in all {
        assert_eq!(fmt(&f.to_string()), f, "{f} does not parse back");
    }
    assert!(WeightFormat::all().len() >= 20);
    assert!(fmt("q4_k_m").is_gguf() && !fmt("bf16").is_gguf());
}

#[test]
fn unknown_names_list_valid_ones() {
    for bad in ["q4_k_x", "gptq-5bit", "mlx-4bit-g0", "", "awq-4bit-gx"] {
        match bad.parse::<WeightFormat>() {
            Err(CoreError::Unknown { kind, hint, .. }) => {
                assert_eq!(kind, "format");
                assert!(!hint.is_empty());
            }
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    let Err(CoreError::Unknown { hint, .. }) = "q9".parse::<WeightFormat>() else {
        panic!("q9 parsed");
    };
    assert!(hint.contains("Q4_K_M") && hint.contains("nf4"), "{hint}");
}

#[test]
fn default_format_follows_torch_dtype() {
    assert_eq!(
        WeightFormat::default_for(&fixture_model("Llama-2-7b-hf")),
        WeightFormat::F16
    );
    assert_eq!(
        WeightFormat::default_for(&fixture_model("Llama-3.1-8B")),
        WeightFormat::Bf16
    );
}
