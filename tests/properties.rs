//! Tests: properties. Over grids of models, runtimes, devices and settings: memory never falls
//! when context or batch grow; formats keep their order; totals are exact sums; a 2T-parameter
//! model at 1M context never overflows.

use headroom_core::{
    CoreError, devices,
    estimate::{EstimateRequest, Verdict, estimate},
    kv_cache::{KvDtype, kv_cache_bytes},
    limits::{MAX_BATCH, MAX_CONTEXT_TOKENS},
    model::{Architecture, LayerAttention, ModelSpec, MoeSpec},
    quant::{WeightFormat, weights_bytes},
    runtime::Runtime,
    training::{LoraSettings, Mode},
};
use headroom_tests::{fixture_model, fixture_names};

const CONTEXTS: &[u64] = &[
    1, 2, 100, 511, 512, 513, 1000, 2047, 4095, 4096, 4097, 8192, 32768, 131072,
];
const BATCHES: &[u64] = &[1, 2, 3, 8, 64];

/// (format, device, runtime) combinations that are valid together.
fn setups() -> Vec<(&'static str, &'static str, Runtime)> {
    vec![
        ("bf16", "h100", Runtime::TransformersCuda),
        ("bf16", "h100", Runtime::vllm_default()),
        ("Q4_K_M", "rtx 4090", Runtime::LlamaCpp),
        ("Q8_0", "m2 16gb", Runtime::LlamaCpp),
        ("mlx-4bit-g64", "m3 max 64gb", Runtime::Mlx),
        ("bf16", "m3 max 64gb", Runtime::TransformersMps),
    ]
}

fn req(model: &ModelSpec, format: &str, device: &str, runtime: Runtime) -> EstimateRequest {
    let mut r = EstimateRequest::new(
        model.clone(),
        format.parse().expect("format"),
        devices::find(device).expect("device"),
    );
    r.runtime = runtime;
    r
}

#[test]
fn memory_is_monotonic_in_context() {
    for name in fixture_names() {
        let model = fixture_model(&name);
        for (format, device, runtime) in setups() {
            let mut r = req(&model, format, device, runtime);
            let mut last = 0u64;
            for &c in CONTEXTS {
                r.context = Some(c);
                let e = estimate(&r).unwrap_or_else(|e| panic!("{name} {runtime}: {e}"));
                assert!(
                    e.total_bytes >= last,
                    "{name} {format} {runtime}: total fell from {last} to {} at context {c}",
                    e.total_bytes
                );
                last = e.total_bytes;
            }
        }
    }
}

#[test]
fn memory_is_monotonic_in_batch() {
    for name in fixture_names() {
        let model = fixture_model(&name);
        for (format, device, runtime) in setups() {
            for &c in &[512u64, 4096, 32768] {
                let mut r = req(&model, format, device, runtime);
                r.context = Some(c);
                let mut last = 0u64;
                for &b in BATCHES {
                    r.batch = b;
                    let e = estimate(&r).unwrap_or_else(|e| panic!("{name} {runtime}: {e}"));
                    assert!(
                        e.total_bytes >= last,
                        "{name} {format} {runtime} ctx {c}: total fell from {last} to {} at batch {b}",
                        e.total_bytes
                    );
                    last = e.total_bytes;
                }
            }
        }
    }
}

#[test]
fn training_memory_is_monotonic_in_sequence_and_batch() {
    let model = fixture_model("Qwen2.5-0.5B");
    for mode in [
        "lora",
        "lora:ckpt",
        "qlora:r=64",
        "full",
        "full:fp32:sgd:ckpt",
    ] {
        let mut r = req(&model, "bf16", "h100", Runtime::TransformersCuda);
        r.mode = mode.parse::<Mode>().unwrap();
        let mut last = 0;
        for &c in &[16u64, 256, 1024, 4096] {
            r.context = Some(c);
            r.batch = 1;
            let t = estimate(&r).unwrap().total_bytes;
            assert!(t >= last, "{mode}: fell at sequence {c}");
            last = t;
        }
        let mut last = 0;
        for &b in BATCHES {
            r.context = Some(1024);
            r.batch = b;
            let t = estimate(&r).unwrap().total_bytes;
            assert!(t >= last, "{mode}: fell at batch {b}");
            last = t;
        }
    }
}

#[test]
fn kv_is_monotonic_and_linear_in_batch_for_every_dtype_and_engine() {
    for name in fixture_names() {
        let model = fixture_model(&name);
        for rt in Runtime::all() {
            for dtype in KvDtype::all() {
                let mut last = 0;
                for &c in CONTEXTS {
                    let kv = kv_cache_bytes(&model, c, 1, dtype, rt);
                    assert!(kv.total_bytes >= last, "{name} {rt} {dtype} at {c}");
                    assert!(kv.steady_bytes <= kv.total_bytes);
                    assert_eq!(kv.per_layer_bytes.iter().sum::<u64>(), kv.total_bytes);
                    last = kv.total_bytes;
                }
                // Without llama.cpp's shared SWA padding, batch scales the cache exactly.
                if rt != Runtime::LlamaCpp {
                    let one = kv_cache_bytes(&model, 4096, 1, dtype, rt).total_bytes;
                    let four = kv_cache_bytes(&model, 4096, 4, dtype, rt).total_bytes;
                    assert_eq!(four, 4 * one, "{name} {rt} {dtype}");
                }
            }
        }
    }
}

#[test]
fn kv_dtypes_are_ordered() {
    for name in fixture_names() {
        let model = fixture_model(&name);
        let kv = |d| kv_cache_bytes(&model, 8192, 2, d, Runtime::LlamaCpp).total_bytes;
        assert_eq!(kv(KvDtype::F16), kv(KvDtype::Bf16));
        assert!(kv(KvDtype::F16) > kv(KvDtype::Q8_0), "{name}");
        assert!(kv(KvDtype::Q8_0) > kv(KvDtype::Q4_0), "{name}");
        assert!(kv(KvDtype::Q8_0) > kv(KvDtype::Fp8), "{name}");
    }
}

#[test]
fn formats_are_ordered_by_size() {
    let order = [
        "fp32", "bf16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K", "IQ2_XXS",
    ];
    for name in fixture_names() {
        let model = fixture_model(&name);
        let sizes: Vec<u64> = order
            .iter()
            .map(|f| weights_bytes(&model, &f.parse::<WeightFormat>().unwrap()))
            .collect();
        for (i, pair) in sizes.windows(2).enumerate() {
            assert!(
                pair[0] > pair[1],
                "{name}: {} ({}) should exceed {} ({})",
                order[i],
                pair[0],
                order[i + 1],
                pair[1]
            );
        }
        // And the verdicts follow: a smaller format never fits worse.
        let mut r = req(&model, "bf16", "rtx 4090", Runtime::LlamaCpp);
        let mut last_total = u64::MAX;
        for f in &order[2..] {
            r.format = f.parse().unwrap();
            let e = estimate(&r).unwrap();
            assert!(e.total_bytes < last_total, "{name} {f}");
            last_total = e.total_bytes;
        }
    }
}

#[test]
fn totals_are_exact_sums() {
    for name in fixture_names() {
        let model = fixture_model(&name);
        for (format, device, runtime) in setups() {
            let e = estimate(&req(&model, format, device, runtime)).unwrap();
            assert_eq!(
                e.total_bytes,
                e.weights_bytes
                    + e.kv_cache_bytes
                    + e.activation_bytes
                    + e.overhead_bytes
                    + e.training_bytes,
                "{name} {runtime}"
            );
            assert!(!e.assumptions.is_empty());
            // A setup that cannot run has no speed; every other one has a positive one.
            let runs = e.verdict != Verdict::DoesNotFit;
            assert!(e.decode_tokens_per_s.is_finite() && (e.decode_tokens_per_s > 0.0) == runs);
            assert!(e.prefill_tokens_per_s.is_finite() && (e.prefill_tokens_per_s > 0.0) == runs);
        }
    }
}

/// A 2-trillion-parameter MoE: 160 layers, hidden 16384, 512 experts of 8192.
fn two_trillion() -> ModelSpec {
    let layers = 160;
    ModelSpec {
        name: "synthetic-2T".into(),
        architecture: Architecture::Mixtral,
        approximate: false,
        hidden_size: 16384,
        num_layers: layers,
        num_attention_heads: 128,
        num_kv_heads: 16,
        head_dim: 128,
        vocab_size: 256_000,
        intermediate_size: 65536,
        tie_word_embeddings: false,
        max_context: 1 << 20,
        layer_attention: vec![LayerAttention::Full; layers as usize],
        moe: Some(MoeSpec {
            num_experts: 64,
            experts_per_token: 8,
            expert_intermediate_size: 16384,
            num_shared_experts: 0,
            shared_intermediate_size: 0,
            dense_layers: vec![],
        }),
        mla: None,
        torch_dtype: Some("bfloat16".into()),
        checkpoint_quantization: None,
        attention_bias: false,
        mlp_bias: false,
        layers: Vec::new(),
        norm_bias: false,
        encoders: Vec::new(),
        projectors: Vec::new(),
        mtp: None,
        approximations: Vec::new(),
        embedding_extra_rows: 0,
        per_layer_embedding: None,
        extra_weights: Vec::new(),
    }
}

#[test]
fn two_trillion_parameters_at_a_million_tokens_never_overflow() {
    let model = two_trillion();
    let params = headroom_core::params::param_counts(&model).total;
    assert!(params > 1_900_000_000_000, "{params}");
    for (format, device, runtime) in setups() {
        for &(c, b) in &[(1u64 << 20, 1u64), (1 << 20, 64), (100_000_000, 1)] {
            let mut r = req(&model, format, device, runtime);
            r.context = Some(c);
            r.batch = b;
            r.device_count = 8;
            match estimate(&r) {
                Ok(e) => {
                    assert_eq!(
                        e.total_bytes,
                        e.weights_bytes
                            + e.kv_cache_bytes
                            + e.activation_bytes
                            + e.overhead_bytes
                            + e.training_bytes
                    );
                    assert!(!e.fits);
                }
                Err(CoreError::OutOfRange { .. } | CoreError::Setting { .. }) => {}
                Err(other) => panic!("unexpected error {other}"),
            }
        }
    }
    // The largest accepted request (2^24 tokens × 2^16 sequences): an exact sum or the overflow
    // error, never a wrapped number.
    let mut r = req(&model, "bf16", "h100", Runtime::TransformersCuda);
    r.context = Some(MAX_CONTEXT_TOKENS);
    r.batch = MAX_BATCH;
    match estimate(&r) {
        Ok(e) => {
            let parts = [
                e.weights_bytes,
                e.kv_cache_bytes,
                e.activation_bytes,
                e.overhead_bytes,
                e.training_bytes,
            ];
            assert_eq!(
                parts.iter().try_fold(0u64, |a, b| a.checked_add(*b)),
                Some(e.total_bytes)
            );
        }
        Err(CoreError::OutOfRange { field, .. }) => assert_eq!(field, "memory estimate"),
        Err(other) => panic!("unexpected error {other}"),
    }
    // One past the limits is refused by setting.
    r.context = Some(MAX_CONTEXT_TOKENS + 1);
    assert!(matches!(estimate(&r), Err(CoreError::Setting { .. })));
    // Training the 2T model does not overflow either.
    r.batch = 1;
    r.context = Some(1 << 20);
    r.mode = Mode::Lora(LoraSettings::default_settings());
    let _ = estimate(&r);
}

#[test]
fn regression_deserialized_absurd_model_is_an_error_not_an_overflow() {
    // The site reads a ModelSpec from a link with serde, bypassing the config parser's limits.
    // `num_attention_heads · head_dim` overflowed u64 in the tensor list (a panic in debug
    // builds, a wrapped count in release); estimate now refuses such a model by field.
    let base = fixture_model("Llama-3.1-8B");
    let device = devices::find("h100").expect("device");
    type Edit = Box<dyn Fn(&mut ModelSpec)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("head_dim", Box::new(|m| m.head_dim = u64::MAX)),
        ("hidden_size", Box::new(|m| m.hidden_size = u64::MAX / 2)),
        (
            "num_attention_heads",
            Box::new(|m| m.num_attention_heads = 0),
        ),
        (
            "num_key_value_heads",
            Box::new(|m| m.num_kv_heads = 1 << 40),
        ),
        ("vocab_size", Box::new(|m| m.vocab_size = 0)),
        (
            "sliding_window",
            Box::new(|m| m.layer_attention[0] = LayerAttention::Sliding { window: 0 }),
        ),
        (
            "num_experts_per_tok",
            Box::new(|m| {
                m.moe = Some(MoeSpec {
                    num_experts: 8,
                    experts_per_token: 9,
                    expert_intermediate_size: 14336,
                    num_shared_experts: 0,
                    shared_intermediate_size: 0,
                    dense_layers: vec![],
                })
            }),
        ),
    ];
    for (field, edit) in cases {
        let mut m = base.clone();
        edit(&mut m);
        // The tensor list and counts themselves saturate instead of panicking.
        let _ = headroom_core::params::param_counts(&m);
        let r = EstimateRequest::new(m, WeightFormat::Bf16, device.clone());
        match estimate(&r) {
            Err(CoreError::BadField { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected a BadField error, got {other:?}"),
        }
    }
    // Each width in range, together 10^20 parameters: refused as a count.
    let mut m = base.clone();
    m.hidden_size = 9_000_000;
    m.intermediate_size = 9_000_000;
    let r = EstimateRequest::new(m, WeightFormat::Bf16, device);
    assert!(matches!(estimate(&r), Err(CoreError::OutOfRange { .. })));
}
