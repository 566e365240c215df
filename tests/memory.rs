//! Tests: memory. KV-cache bytes against figures worked by hand in the comments, per engine;
//! usable memory; activations; training bytes per parameter; the device catalog.

use headroom_core::{
    CoreError,
    activations::{ActivationOptions, prefill_activation_bytes},
    devices::{self, DeviceSpec, MemoryKind},
    error::Setting,
    kv_cache::{KvDtype, kv_cache_bytes},
    model::LayerAttention,
    params::param_counts,
    report::MeasuredDevice,
    runtime::Runtime,
    training::{
        FullSettings, LoraSettings, Mode, Optimizer, TrainingPrecision, lora_params,
        parse_lora_layers, training_memory,
    },
    units::{GIB, MIB},
    usable_memory::{apple_working_set_bytes, devices_needed, usable_memory},
};
use headroom_tests::fixture_model;

const VLLM: Runtime = Runtime::Vllm {
    gpu_memory_utilization: 0.9,
};

#[test]
fn llama_2_70b_gqa_kv_is_1_25_gib_at_4096_tokens() {
    // 80 layers · 2 (K and V) · 8 KV heads · 128 head_dim · 4096 tokens · 2 bytes = 1.25 GiB —
    // not the 10 GiB that hidden_size (8192) would give.
    let m = fixture_model("Llama-2-70b-hf");
    let expected = 80 * 2 * 8 * 128 * 4096 * 2;
    assert_eq!(expected, 5 * GIB / 4);
    for rt in [
        Runtime::TransformersCuda,
        Runtime::LlamaCpp,
        VLLM,
        Runtime::Mlx,
    ] {
        let kv = kv_cache_bytes(&m, 4096, 1, KvDtype::F16, rt);
        assert_eq!(kv.total_bytes, expected, "{rt}");
        assert_eq!(kv.per_layer_bytes.len(), 80);
    }
    // Batch multiplies the cache.
    let kv4 = kv_cache_bytes(&m, 4096, 4, KvDtype::F16, Runtime::LlamaCpp);
    assert_eq!(kv4.total_bytes, 4 * expected);
}

#[test]
fn llama_3_1_8b_quantized_kv_blocks() {
    // K row = 8 heads · 128 = 1024 elements = 32 q8_0 blocks of 34 B = 1088 B; V the same.
    // 32 layers · 4096 tokens · 2176 B = 285,212,672 B; f16 would be 32 · 4096 · 4096 = 512 MiB.
    let m = fixture_model("Llama-3.1-8B");
    let f16 = kv_cache_bytes(&m, 4096, 1, KvDtype::F16, Runtime::LlamaCpp);
    assert_eq!(f16.total_bytes, 512 * MIB);
    let q8 = kv_cache_bytes(&m, 4096, 1, KvDtype::Q8_0, Runtime::LlamaCpp);
    assert_eq!(q8.total_bytes, 32 * 4096 * 2 * 32 * 34);
    let q4 = kv_cache_bytes(&m, 4096, 1, KvDtype::Q4_0, Runtime::LlamaCpp);
    assert_eq!(q4.total_bytes, 32 * 4096 * 2 * 32 * 18);
    let fp8 = kv_cache_bytes(&m, 4096, 1, KvDtype::Fp8, VLLM);
    assert_eq!(fp8.total_bytes, 256 * MIB);
}

#[test]
fn mistral_sliding_window_per_engine() {
    // Mistral-7B-v0.1: 32 layers, all sliding with window 4096; 2 · 8 · 128 · 2 = 4096 B per
    // token per layer. At 8192 tokens:
    let m = fixture_model("Mistral-7B-v0.1");
    assert!(
        m.layer_attention
            .iter()
            .all(|a| *a == LayerAttention::Sliding { window: 4096 })
    );
    let per = 4096u64;
    // vLLM / MLX hold the window: 32 · 4096 · 4096 B = 512 MiB.
    let v = kv_cache_bytes(&m, 8192, 1, KvDtype::F16, VLLM);
    assert_eq!(v.total_bytes, 32 * 4096 * per);
    assert_eq!(v.total_bytes, 512 * MIB);
    assert!(v.windowed);
    // llama.cpp's SWA cache: min(8192, pad256(4096 + 512)) = 4608 cells.
    let l = kv_cache_bytes(&m, 8192, 1, KvDtype::F16, Runtime::LlamaCpp);
    assert_eq!(l.total_bytes, 32 * 4608 * per);
    // transformers holds the whole prompt after the prefill (a view keeps it alive), then
    // window − 1 = 4095 tokens.
    let t = kv_cache_bytes(&m, 8192, 1, KvDtype::F16, Runtime::TransformersCuda);
    assert_eq!(t.total_bytes, 32 * 8192 * per);
    assert_eq!(t.steady_bytes, 32 * 4095 * per);
    // Below the window nothing changes.
    let short = kv_cache_bytes(&m, 2048, 1, KvDtype::F16, VLLM);
    assert_eq!(short.total_bytes, 32 * 2048 * per);
}

#[test]
fn gemma_3_five_local_to_one_global() {
    // gemma-3-1b: 26 layers, 1 KV head, head_dim 256, window 512, pattern 6: layers 5, 11, 17,
    // 23 global (4), 22 local. 2 · 1 · 256 · 2 = 1024 B per token per layer.
    let m = fixture_model("gemma-3-1b-it");
    let globals = m
        .layer_attention
        .iter()
        .filter(|a| **a == LayerAttention::Full)
        .count();
    assert_eq!(globals, 4);
    let kv = kv_cache_bytes(&m, 32768, 1, KvDtype::Bf16, VLLM);
    // 4 · 32768 · 1024 + 22 · 512 · 1024 = 134,217,728 + 11,534,336.
    assert_eq!(kv.total_bytes, 134_217_728 + 11_534_336);
    // A calculator that ignores windows would say 26 · 32768 · 1024 = 832 MiB.
    let full = kv_cache_bytes(&m, 32768, 1, KvDtype::Bf16, Runtime::TransformersCuda);
    assert_eq!(full.total_bytes, 26 * 32768 * 1024);
    assert_eq!(full.steady_bytes, 4 * 32768 * 1024 + 22 * 511 * 1024);
}

#[test]
fn deepseek_v2_lite_mla_latent_vs_decompressed() {
    // 27 layers. Latent: (kv_lora_rank 512 + qk_rope_head_dim 64) · 2 B = 1152 B per token
    // per layer → 27 · 4096 · 1152 = 127,401,984 B (llama.cpp, vLLM).
    let m = fixture_model("DeepSeek-V2-Lite");
    let latent = kv_cache_bytes(&m, 4096, 1, KvDtype::F16, Runtime::LlamaCpp);
    assert_eq!(latent.total_bytes, 27 * 4096 * 1152);
    assert!(latent.mla_latent);
    assert_eq!(
        kv_cache_bytes(&m, 4096, 1, KvDtype::F16, VLLM).total_bytes,
        27 * 4096 * 1152
    );
    // transformers 5 caches the latent too (keys [b, 1, t, 512], values [b, 1, t, 64], measured).
    let t = kv_cache_bytes(&m, 4096, 1, KvDtype::Bf16, Runtime::TransformersCuda);
    assert_eq!(t.total_bytes, 27 * 4096 * 1152);
    // MLX (mlx-lm's DeepSeek-V2): 16 heads · (128 nope + 64 rope) keys + 16 · 128 values = 5120
    // elements = 10240 B per token per layer → 27 · 4096 · 10240 = 1,132,462,080 B.
    let full = kv_cache_bytes(&m, 4096, 1, KvDtype::Bf16, Runtime::Mlx);
    assert_eq!(full.total_bytes, 27 * 4096 * 10240);
    assert!(!full.mla_latent);
}

#[test]
fn gpt_oss_alternating_128_window() {
    // gpt-oss-20b: 24 layers alternating sliding (window 128) / full; 8 KV heads · 64 dims:
    // 2 · 8 · 64 · 2 = 2048 B per token per layer. At 8192 tokens (vLLM):
    // 12 · 8192 · 2048 + 12 · 128 · 2048 = 201,326,592 + 3,145,728 = 204,472,320 B.
    let m = fixture_model("gpt-oss-20b");
    let kv = kv_cache_bytes(&m, 8192, 1, KvDtype::Bf16, VLLM);
    assert_eq!(kv.total_bytes, 204_472_320);
    // llama.cpp: sliding layers hold pad256(128 + 512) = 768 cells.
    let l = kv_cache_bytes(&m, 8192, 1, KvDtype::F16, Runtime::LlamaCpp);
    assert_eq!(l.total_bytes, 12 * 8192 * 2048 + 12 * 768 * 2048);
}

#[test]
fn apple_working_set_rule() {
    // ggml_metal_init logs: 16 GB → 10922.67 MiB, 32 GB → 21845.34 MiB (2/3);
    // 64 GB → 49152 MiB, 192 GB → 147456 MiB (3/4).
    let close = |a: u64, b_mib: f64| ((a as f64 / MIB as f64) - b_mib).abs() < 0.02;
    assert!(close(apple_working_set_bytes(16 * GIB), 10922.67));
    assert!(close(apple_working_set_bytes(32 * GIB), 21845.34));
    assert_eq!(apple_working_set_bytes(64 * GIB), 49152 * MIB);
    assert_eq!(apple_working_set_bytes(192 * GIB), 147456 * MIB);
    assert!(close(apple_working_set_bytes(8 * GIB), 5461.34));
}

#[test]
fn usable_memory_overrides_and_vllm_share() {
    let m2 = devices::find("m2 16gb").unwrap();
    let u = usable_memory(&m2, Runtime::Mlx, None);
    assert!(u.usable_bytes < 11 * GIB && u.usable_bytes > 10 * GIB);
    assert_eq!(u.max_buffer_bytes, Some(8 * GIB));
    let raised = usable_memory(&m2, Runtime::Mlx, Some(14 * GIB));
    assert_eq!(raised.usable_bytes, 14 * GIB);
    // An override above RAM is capped at RAM.
    assert_eq!(
        usable_memory(&m2, Runtime::Mlx, Some(64 * GIB)).usable_bytes,
        16 * GIB
    );
    let h100 = devices::find("h100").unwrap();
    let v = usable_memory(
        &h100,
        Runtime::Vllm {
            gpu_memory_utilization: 0.5,
        },
        None,
    );
    assert_eq!(v.usable_bytes, h100.memory_bytes / 2);
    assert_eq!(
        usable_memory(&h100, Runtime::TransformersCuda, None).usable_bytes,
        h100.memory_bytes
    );
}

#[test]
fn devices_needed_counts_per_device_overhead() {
    // 100 GiB shared over 24 GiB cards with 1 GiB each of overhead: 23 GiB room → 5 cards.
    assert_eq!(devices_needed(100 * GIB, GIB, 24 * GIB, 64), Some(5));
    assert_eq!(devices_needed(100 * GIB, GIB, 24 * GIB, 4), None);
    assert_eq!(devices_needed(1, 30 * GIB, 24 * GIB, 64), None);
}

#[test]
fn device_catalog_is_complete_and_sourced() {
    let all = devices::catalog_result().expect("devices.json parses");
    assert!(all.len() >= 100, "{} devices", all.len());
    let mut ids = std::collections::HashSet::new();
    for d in &all {
        assert!(ids.insert(d.id.clone()), "duplicate id {}", d.id);
        assert!(!d.source.is_empty(), "{} has no source", d.id);
        assert!(d.memory_bytes >= 8 * GIB, "{}", d.id);
        assert!(d.bandwidth_bytes_per_s > 5e10, "{}", d.id);
        assert!(
            d.fp32_flops > 1e12 && d.fp16_flops >= d.fp32_flops * 0.99,
            "{}",
            d.id
        );
        assert_eq!(d.memory_kind == MemoryKind::Unified, d.vendor == "apple");
    }
    // Every configuration the issue names.
    for id in [
        "m1-8c-8gb",
        "m1-8c-16gb",
        "m1-pro-14c-16gb",
        "m1-pro-16c-32gb",
        "m1-max-24c-32gb",
        "m1-max-32c-64gb",
        "m1-ultra-48c-64gb",
        "m1-ultra-64c-128gb",
        "m2-8c-8gb",
        "m2-10c-24gb",
        "m2-pro-16c-16gb",
        "m2-pro-19c-32gb",
        "m2-max-30c-32gb",
        "m2-max-38c-96gb",
        "m2-ultra-60c-64gb",
        "m2-ultra-76c-192gb",
        "m3-8c-8gb",
        "m3-10c-24gb",
        "m3-pro-14c-18gb",
        "m3-pro-18c-36gb",
        "m3-max-30c-36gb",
        "m3-max-30c-96gb",
        "m3-max-40c-48gb",
        "m3-max-40c-128gb",
        "m3-ultra-60c-96gb",
        "m3-ultra-80c-512gb",
        "m4-10c-32gb",
        "m4-pro-16c-24gb",
        "m4-pro-20c-64gb",
        "m4-max-32c-36gb",
        "m4-max-40c-128gb",
        "m5-10c-16gb",
        "m5-10c-32gb",
        "rtx-3060",
        "rtx-3090-ti",
        "rtx-4060-ti-16gb",
        "rtx-4090",
        "rtx-5090",
        "a100-40gb",
        "a100-80gb",
        "h100-sxm",
        "h100-pcie",
        "h200",
        "b200",
        "l4",
        "l40s",
        "rx-7900-xtx",
        "rx-7900-xt",
        "rx-7900-gre",
        "mi300x",
        "arc-a770",
        "arc-a750",
        "arc-b580",
    ] {
        assert!(ids.contains(id), "catalog lacks {id}");
    }
    // Binned chips are scaled by GPU cores: M3 Max 30-core = 30/40 of the 40-core rate.
    let m3_30 = devices::find("m3-max-30c-36gb").unwrap();
    let m3_40 = devices::find("m3-max-40c-48gb").unwrap();
    assert!((m3_30.fp32_flops / m3_40.fp32_flops - 0.75).abs() < 0.01);
}

#[test]
fn device_lookup_is_forgiving() {
    assert_eq!(devices::find("rtx 4090").unwrap().id, "rtx-4090");
    assert_eq!(devices::find("rtx 4060").unwrap().id, "rtx-4060");
    assert_eq!(devices::find("m2 pro 32gb").unwrap().id, "m2-pro-19c-32gb");
    assert_eq!(devices::find("RTX4090").unwrap().id, "rtx-4090");
    assert_eq!(devices::find("h100").unwrap().id, "h100-sxm");
    assert_eq!(devices::find("H100 PCIe").unwrap().id, "h100-pcie");
    // Same memory, different GPU bins: the full chip.
    assert_eq!(devices::find("m2 16gb").unwrap().id, "m2-10c-16gb");
    assert_eq!(devices::find("M2 16 GB").unwrap().id, "m2-10c-16gb");
    assert_eq!(devices::find("m3 max 64gb").unwrap().id, "m3-max-40c-64gb");
    assert_eq!(
        devices::find("M3 Max 30-core 36GB").unwrap().id,
        "m3-max-30c-36gb"
    );
    assert_eq!(
        devices::find("Apple M2 (8-core GPU), 8 GB").unwrap().id,
        "m2-8c-8gb"
    );
    // Different memory sizes: ask, naming them.
    match devices::find("4060 ti") {
        Err(CoreError::Unknown { hint, .. }) => {
            assert!(hint.contains("rtx-4060-ti-8gb") && hint.contains("rtx-4060-ti-16gb"))
        }
        other => panic!("expected an ambiguity error, got {other:?}"),
    }
    match devices::find("rtx 9999") {
        Err(CoreError::Unknown { kind, hint, .. }) => {
            assert_eq!(kind, "device");
            assert!(hint.contains("rtx-"), "{hint}");
        }
        other => panic!("expected unknown, got {other:?}"),
    }
}

#[test]
fn measured_device_replaces_catalog_figures() {
    let m = MeasuredDevice {
        name: "Apple M2".into(),
        unified_memory: true,
        memory_bytes: Some(16 * GIB),
        memory_basis: None,
        usable_bytes: Some(12 * GIB),
        usable_basis: None,
        read_bandwidth_bytes_per_s: Some(90e9),
        fp32_flops: Some(3.0e12),
        fp16_flops: None,
        max_buffer_bytes: Some(8 * GIB),
        decode_simulation_tokens_per_s: None,
        host_read_bandwidth_bytes_per_s: None,
        host_to_device_bytes_per_s: None,
        device_to_host_bytes_per_s: None,
        host_ram_bytes: None,
    };
    let base = devices::find("m2-10c-16gb").unwrap();
    let d = base.clone().with_measurements(&m);
    assert_eq!(d.bandwidth_bytes_per_s, 90e9);
    assert!(d.bandwidth_measured && d.compute_measured);
    assert_eq!(d.fp16_flops, base.fp16_flops);
    assert_eq!(usable_memory(&d, Runtime::Mlx, None).usable_bytes, 12 * GIB);
    let alone = DeviceSpec::from_measured(&m);
    assert_eq!(alone.memory_kind, MemoryKind::Unified);
    assert_eq!(alone.memory_bytes, 16 * GIB);
    assert!(alone.source.contains("probe"));
}

#[test]
fn prefill_activations_follow_the_mechanisms() {
    let m = fixture_model("Llama-3.1-8B");
    let h100 = devices::find("h100").unwrap();
    let t = Runtime::TransformersCuda;
    let p = t.profile(&h100);
    let base = prefill_activation_bytes(&m, 4096, 1, t, &p, ActivationOptions::default());
    assert!(base.fused_attention && base.attention_scores_bytes == 0);
    // MLP phase: 4096 tokens · (2 · 4096 + 3 · 14336) elements, plus the embedding output
    // transformers keeps through the layer loop (4096), · 2 B.
    assert_eq!(base.layer_bytes, 4096 * (2 * 4096 + 3 * 14336 + 4096) * 2);
    // Logits for every position in bf16: 4096 · 128256 · 2 B ≈ 1 GiB.
    let all = prefill_activation_bytes(
        &m,
        4096,
        1,
        t,
        &p,
        ActivationOptions {
            logits_all_positions: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(all.logits_bytes, 4096 * 128_256 * 2);
    assert!(all.total_bytes > base.total_bytes);
    // Eager attention: 32 heads · 4096² scores, three bf16 copies and one fp32 = 10 B each,
    // plus a bf16 mask.
    let eager = prefill_activation_bytes(
        &m,
        4096,
        1,
        t,
        &p,
        ActivationOptions {
            fused_attention: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(eager.attention_scores_bytes, 32 * 4096 * 4096 * 10);
    assert_eq!(eager.mask_bytes, 4096 * 4096 * 2);
    // llama.cpp evaluates 512 tokens at a time in f32.
    let l = Runtime::LlamaCpp;
    let lp = l.profile(&h100);
    let la = prefill_activation_bytes(&m, 4096, 1, l, &lp, ActivationOptions::default());
    assert_eq!(la.chunk_tokens, 512);
    assert_eq!(la.layer_bytes, 512 * (2 * 4096 + 3 * 14336) * 4);
    // MoE decode through transformers' batched_mm gathers the selected experts' weights:
    // Mixtral, batch 4: 4 · 2 slots · 3 · 4096 · 14336 · 2 B per layer, unless prefill only.
    let mx = fixture_model("Mixtral-8x7B-v0.1");
    let generate = prefill_activation_bytes(&mx, 2048, 4, t, &p, ActivationOptions::default());
    assert_eq!(generate.decode_step_bytes, 4 * 2 * 3 * 4096 * 14336 * 2);
    assert_eq!(generate.total_bytes, generate.decode_step_bytes);
    let pre = prefill_activation_bytes(
        &mx,
        2048,
        4,
        t,
        &p,
        ActivationOptions {
            decode: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(pre.decode_step_bytes, 0);
    assert!(pre.total_bytes < generate.total_bytes);
    // vLLM reserves a profiling pass of its whole 8192-token budget, even for short requests.
    let v = VLLM;
    let va = prefill_activation_bytes(
        &m,
        100,
        1,
        v,
        &v.profile(&h100),
        ActivationOptions::default(),
    );
    assert_eq!(va.chunk_tokens, 8192);
}

#[test]
fn full_fine_tune_bytes_per_parameter() {
    let m = fixture_model("Llama-3.2-1B");
    let p = param_counts(&m).total;
    let full = |precision, optimizer| {
        let mode = Mode::Full(FullSettings {
            precision,
            optimizer,
            gradient_checkpointing: false,
        });
        let t = training_memory(&m, &mode, 0, 1, 16, true).unwrap();
        let states = t.gradients_bytes + t.master_weights_bytes + t.optimizer_bytes;
        (t.weights_bytes + states) / p
    };
    // bf16 mixed precision + AdamW: 2 + 2 + 4 + 8 = 16 B/param, not 8.
    assert_eq!(full(TrainingPrecision::Bf16Mixed, Optimizer::AdamW), 16);
    assert_eq!(full(TrainingPrecision::Fp32, Optimizer::AdamW), 16);
    assert_eq!(full(TrainingPrecision::Bf16, Optimizer::AdamW), 8);
    assert_eq!(full(TrainingPrecision::Bf16Mixed, Optimizer::Adam8bit), 10);
    assert_eq!(full(TrainingPrecision::Fp32, Optimizer::Sgd), 8);
}

#[test]
fn lora_trainable_params_exact_from_shapes() {
    // Llama-3.1-8B, r = 16 on q, k, v, o, gate, up, down: per layer
    // q 16·(4096+4096) + k 16·(4096+1024) + v same + o 16·(4096+4096)
    // + gate 16·(4096+14336) + up same + down same = 16 · 86016 · ... computed below; 32 layers.
    let m = fixture_model("Llama-3.1-8B");
    let per_layer = 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 3);
    let lp = lora_params(&m, &LoraSettings::default_settings()).unwrap();
    assert_eq!(lp.trainable_params, 32 * per_layer);
    assert_eq!(lp.trainable_params, 41_943_040);
    // q and v only, rank 8.
    let qv = LoraSettings {
        rank: 8,
        target_modules: vec!["q_proj".into(), "v_proj".into()],
        gradient_checkpointing: false,
        layers: None,
    };
    assert_eq!(
        lora_params(&m, &qv).unwrap().trainable_params,
        32 * 8 * ((4096 + 4096) + (4096 + 1024))
    );
    // Experts are adapted only when targeted: Mixtral has 8 experts of 3 matrices per layer.
    let mx = fixture_model("Mixtral-8x7B-v0.1");
    let experts = LoraSettings {
        rank: 8,
        target_modules: vec!["experts".into()],
        gradient_checkpointing: false,
        layers: None,
    };
    assert_eq!(
        lora_params(&mx, &experts).unwrap().trainable_params,
        32 * 8 * 8 * 3 * (4096 + 14336)
    );
    // peft's conversion on MoE models: gate/up/down land on the stacked experts (gate_up at rank
    // 2r, down at rank r, all 64 experts), dense and shared MLPs get none. DeepSeek-V2-Lite,
    // r 16 on q, o, gate, up, down: 27 · [16 · (2048 + 3072) + 16 · (2048 + 2048)] attention
    // + 26 MoE layers · [64 · 32 · (2048 + 2 · 1408) + 64 · 16 · (1408 + 2048)]. (The same
    // formula on the 4-layer model measured with peft 0.21 gives its 41,091,072 exactly.)
    let ds = fixture_model("DeepSeek-V2-Lite");
    let ds_lora = LoraSettings {
        rank: 16,
        target_modules: ["q_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        gradient_checkpointing: false,
        layers: None,
    };
    let p = lora_params(&ds, &ds_lora).unwrap();
    assert_eq!(
        p.trainable_params,
        27 * (16 * (2048 + 3072) + 16 * (2048 + 2048))
            + 26 * (64 * 32 * (2048 + 2 * 1408) + 64 * 16 * (1408 + 2048))
    );
    // W + ΔW of every expert, bf16, kept per MoE layer: 64 · 3 · 2048 · 1408 · 2 B.
    assert_eq!(
        p.materialized_expert_bytes_per_layer,
        64 * 3 * 2048 * 1408 * 2
    );
    assert!(matches!(
        lora_params(
            &m,
            &LoraSettings {
                rank: 8,
                target_modules: vec!["nonsense".into()],
                gradient_checkpointing: false,
                layers: None,
            }
        ),
        Err(CoreError::Unknown { .. })
    ));
}

#[test]
fn checkpointing_shrinks_training_activations() {
    let m = fixture_model("Llama-3.1-8B");
    let run = |ckpt| {
        let mode = Mode::Lora(LoraSettings {
            gradient_checkpointing: ckpt,
            ..LoraSettings::default_settings()
        });
        training_memory(&m, &mode, 0, 4, 2048, true)
            .unwrap()
            .activation_bytes
    };
    let (with, without) = (run(true), run(false));
    // Logits (4 · 2048 · 128256 · 10 B ≈ 10.5 GB) stay either way; layer activations shrink from
    // 32 full layers to 32 layer inputs + one layer.
    assert!(with * 3 < without, "{with} vs {without}");
}

#[test]
fn mode_and_runtime_names_parse() {
    assert_eq!("llama.cpp".parse::<Runtime>().unwrap(), Runtime::LlamaCpp);
    assert_eq!("llamacpp".parse::<Runtime>().unwrap(), Runtime::LlamaCpp);
    assert_eq!(
        "vllm:0.85".parse::<Runtime>().unwrap(),
        Runtime::Vllm {
            gpu_memory_utilization: 0.85
        }
    );
    assert!("vllm:1.5".parse::<Runtime>().is_err());
    assert!("tensorrt".parse::<Runtime>().is_err());
    for r in Runtime::all() {
        assert_eq!(r.to_string().parse::<Runtime>().unwrap(), r);
    }
    for s in [
        "inference",
        "lora:r=8:targets=q,v:ckpt",
        "qlora",
        "full:fp32:sgd:ckpt",
    ] {
        let m: Mode = s.parse().unwrap();
        assert_eq!(m.to_string().parse::<Mode>().unwrap(), m, "{s}");
    }
    assert!("lora:r=0".parse::<Mode>().is_err());
    assert!("full:adafactor".parse::<Mode>().is_err());
    for d in KvDtype::all() {
        assert_eq!(d.to_string().parse::<KvDtype>().unwrap(), d);
    }
}

#[test]
fn regression_wired_limit_zero_means_the_default_working_set() {
    // `sudo sysctl iogpu.wired_limit_mb=0` restores macOS' default; it used to make usable memory
    // 0 bytes, so nothing fit. 16 GiB M2: default working set 2/3 · 16 GiB = 10,922.67 MiB.
    let m2 = devices::find("m2 16gb").unwrap();
    let default = usable_memory(&m2, Runtime::Mlx, None);
    let zero = usable_memory(&m2, Runtime::Mlx, Some(0));
    assert_eq!(zero.usable_bytes, 16 * GIB / 3 * 2 + (16 * GIB % 3) * 2 / 3);
    assert_eq!(zero, default);
}

#[test]
fn catalog_covers_the_common_rtx_variants() {
    // Ti / Super / 50-series mid-range cards people run models on, each with figures recomputed
    // here from SMs × clock (FP32 = SMs · 128 · 2 · clock): RTX 4080 Super, 80 SMs at 2550 MHz
    // = 52.2 TFLOPS; RTX 3080 Ti, 80 SMs at 1665 MHz = 34.1 TFLOPS.
    let s = devices::find("rtx 4080 super").unwrap();
    assert_eq!(s.id, "rtx-4080-super");
    assert!((s.fp32_flops - 80.0 * 128.0 * 2.0 * 2.55e9).abs() < 0.1e12);
    assert_eq!(s.memory_bytes, 16 * GIB);
    assert_eq!(s.bandwidth_bytes_per_s, 736e9);
    let ti = devices::find("rtx 3080 ti").unwrap();
    assert!((ti.fp32_flops - 80.0 * 128.0 * 2.0 * 1.665e9).abs() < 0.1e12);
    // "super" is a tier word like "ti": a plain name still means the plain card.
    assert_eq!(devices::find("rtx 4080").unwrap().id, "rtx-4080");
    assert_eq!(devices::find("rtx 4070").unwrap().id, "rtx-4070");
    assert_eq!(devices::find("rtx 4070 ti").unwrap().id, "rtx-4070-ti");
    assert_eq!(
        devices::find("rtx 4070 ti super").unwrap().id,
        "rtx-4070-ti-super"
    );
    assert_eq!(devices::find("rtx 5060").unwrap().id, "rtx-5060");
    assert_eq!(devices::find("rtx 5070 ti").unwrap().id, "rtx-5070-ti");
    assert_eq!(
        devices::find("5060 ti 16gb").unwrap().id,
        "rtx-5060-ti-16gb"
    );
    assert_eq!(devices::find("rtx 3060").unwrap().id, "rtx-3060");
}

#[test]
fn regression_lora_targets_matching_nothing_are_an_error() {
    // Llama has no MLA q_a projection, and an empty list targets nothing: peft refuses both
    // ("Target modules ... not found"); headroom used to estimate 0 trainable parameters.
    let m = fixture_model("Llama-3.1-8B");
    for targets in [vec!["q_a".to_string()], vec![]] {
        let s = LoraSettings {
            rank: 16,
            target_modules: targets.clone(),
            gradient_checkpointing: false,
            layers: None,
        };
        match lora_params(&m, &s) {
            Err(CoreError::Unknown { kind, .. }) => assert_eq!(kind, "LoRA target module"),
            other => panic!("{targets:?}: {other:?}"),
        }
    }
    // Through the mode grammar and the estimate too.
    let mode: Mode = "lora:targets=q_a".parse().unwrap();
    assert!(training_memory(&m, &mode, 0, 1, 16, true).is_err());
}

/// LoRA with `layers` on Llama-3.1-8B, r = 16 on all seven projections.
fn lora_on(layers: Option<Vec<u64>>, ckpt: bool) -> Mode {
    Mode::Lora(LoraSettings {
        layers,
        gradient_checkpointing: ckpt,
        ..LoraSettings::default_settings()
    })
}

#[test]
fn lora_on_the_last_8_layers_trains_8_layers_of_adapters() {
    // Per layer (r = 16): q 16·(4096+4096) = 131,072; k and v 16·(4096+1024) = 81,920 each;
    // o 131,072; gate, up, down 16·(4096+14336) = 294,912 each; sum 1,310,720.
    let m = fixture_model("Llama-3.1-8B");
    let last8 = LoraSettings {
        layers: Some(LoraSettings::last_layers(32, 8)),
        ..LoraSettings::default_settings()
    };
    assert_eq!(last8.layers, Some((24..32).collect::<Vec<u64>>()));
    let lp = lora_params(&m, &last8).unwrap();
    assert_eq!(lp.trainable_params, 8 * 1_310_720);
    assert_eq!(lp.trainable_params, 10_485_760);
    assert_eq!(lp.adapted_matrices, 8 * 7);
    assert_eq!(lp.first_adapted_layer, 24);
    assert_eq!(lp.adapted_layers, 8);
    // An explicit, unsorted list with a repeat: layers 0 and 31.
    let ends = LoraSettings {
        layers: Some(vec![31, 0, 31]),
        ..LoraSettings::default_settings()
    };
    let lp = lora_params(&m, &ends).unwrap();
    assert_eq!(lp.trainable_params, 2 * 1_310_720);
    assert_eq!(lp.first_adapted_layer, 0);
    // Every layer listed is the same as none listed.
    let all = LoraSettings {
        layers: Some((0..32).collect()),
        ..LoraSettings::default_settings()
    };
    assert_eq!(
        lora_params(&m, &all).unwrap().trainable_params,
        lora_params(&m, &LoraSettings::default_settings())
            .unwrap()
            .trainable_params
    );
    // Layers outside the model, or none, are errors (peft would adapt nothing).
    for bad in [vec![32], vec![]] {
        let s = LoraSettings {
            layers: Some(bad.clone()),
            ..LoraSettings::default_settings()
        };
        match lora_params(&m, &s) {
            Err(CoreError::Setting { setting, .. }) => assert_eq!(setting, Setting::LoraLayers),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn lora_activations_grow_with_the_adapted_layers() {
    // Without checkpointing autograd keeps activations from the first adapted layer to the
    // loss. Llama-3.1-8B, per token of one adapted layer (bf16 activations, frozen base):
    // attention 2·4096 + 2·1024 and MLP 3·14336 = 53,248 elements = 106,496 B; two RMSNorm fp32
    // input copies 2·4·4096 = 32,768 B; peft's fp32 input copies and lora_A outputs
    // 4·(6·(4096+16) + (14336+16)) = 156,096 B. Sum 295,360 B per token.
    let m = fixture_model("Llama-3.1-8B");
    let act = |layers: Option<Vec<u64>>, ckpt: bool| {
        training_memory(&m, &lora_on(layers, ckpt), 0, 1, 1024, true)
            .unwrap()
            .activation_bytes
    };
    let mut previous = 0;
    for k in 1..=32 {
        let a = act(Some(LoraSettings::last_layers(32, k)), false);
        assert!(a > previous, "last {k}: {a} ≤ {previous}");
        if k > 1 {
            assert_eq!(a - previous, 1024 * 295_360, "last {k}");
        }
        previous = a;
    }
    // The last 32 of 32 layers is LoRA on every layer, to the byte.
    assert_eq!(previous, act(None, false));
    // Adapting layers 0 and 31 keeps every layer's base activations, but peft's fp32 copies
    // only in the two adapted layers: 30 layers · 1024 tokens · 156,096 B less than all.
    assert_eq!(
        act(None, false) - act(Some(vec![0, 31]), false),
        30 * 1024 * 156_096
    );
    // With checkpointing the embedding output requires grad (peft/transformers call
    // enable_input_require_grads): every layer keeps its input, and the recomputed layer is
    // an adapted one either way, so a subset saves no activations.
    assert_eq!(
        act(Some(LoraSettings::last_layers(32, 8)), true),
        act(None, true)
    );
    // Fewer trainable parameters too: the optimizer state follows the adapters.
    let t8 = training_memory(
        &m,
        &lora_on(Some((24..32).collect()), false),
        0,
        1,
        1024,
        true,
    )
    .unwrap();
    assert_eq!(t8.trainable_params, 10_485_760);
    assert_eq!(t8.optimizer_bytes, 10_485_760 * 8);
}

#[test]
fn lora_layer_specs_parse_against_the_layer_count() {
    assert_eq!(parse_lora_layers("all", 32).unwrap(), None);
    assert_eq!(
        parse_lora_layers("last:8", 32).unwrap(),
        Some((24..32).collect::<Vec<u64>>())
    );
    assert_eq!(parse_lora_layers("first:2", 32).unwrap(), Some(vec![0, 1]));
    assert_eq!(
        parse_lora_layers(" 0-3, 8,3 ", 32).unwrap(),
        Some(vec![0, 1, 2, 3, 8])
    );
    assert_eq!(
        parse_lora_layers("0-15", 32).unwrap(),
        Some((0..16).collect::<Vec<u64>>())
    );
    // The mode grammar carries an explicit list (the web calculator's `mode=` parameter), and
    // writes it back compactly.
    let m: Mode = "lora:r=8:layers=0,4,8-11".parse().unwrap();
    match &m {
        Mode::Lora(l) => assert_eq!(l.layers, Some(vec![0, 4, 8, 9, 10, 11])),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.to_string(),
        "lora:r=8:targets=q,k,v,o,gate,up,down:layers=0,4,8-11"
    );
    assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
    assert!("lora:layers=5-2".parse::<Mode>().is_err());
    assert!("lora:layers=0-99999999999".parse::<Mode>().is_err());
    for bad in [
        "last:0", "last:33", "32", "5-2", "x", "1,,2", "last:", "-1", "",
    ] {
        match parse_lora_layers(bad, 32) {
            Err(CoreError::Setting { setting, .. }) => {
                assert_eq!(setting, Setting::LoraLayers, "{bad}")
            }
            other => panic!("`{bad}` parsed: {other:?}"),
        }
    }
}

#[test]
fn qlora_after_kbit_preparation_keeps_what_autograd_keeps() {
    // peft's prepare_model_for_kbit_training leaves fp32 activations. Per token of one adapted
    // Llama-3.2-3B layer (h 3072, q 3072, kv 1024, I 8192, 24 heads over 8 key/value heads) at
    // 2048 tokens: SDPA falls back to its math path (fp32 with grouped heads), which keeps the
    // scaled query, the expanded scaled keys, the expanded values and the output copy
    // (4 · 3072) plus one fp32 softmax output of 24 · 2048; the MLP keeps gate, SiLU and up
    // (3 · 8192); all fp32: 4 · (12,288 + 24,576) + 4 · 49,152 = 344,064 B. The two RMSNorms
    // keep the fp32 residual stream (2 · 4 · 3072 = 24,576 B). peft's lora_A keeps the module
    // inputs themselves, no copies: the input norm's output once for q/k/v, the
    // post-attention norm's output once for gate/up, the down input (4 · (3072 + 3072 + 8192))
    // and seven rank-16 fp32 outputs (7 · 64): 57,792 B. Sum 426,432 B per token.
    let m = fixture_model("Llama-3.2-3B");
    let layers = m.num_layers;
    let qlora = |layers: Option<Vec<u64>>| {
        Mode::Qlora(LoraSettings {
            gradient_checkpointing: false,
            layers,
            ..LoraSettings::default_settings()
        })
    };
    let lp = lora_params(&m, &LoraSettings::default_settings()).unwrap();
    assert_eq!(lp.shared_input_activation_bytes_per_token_layer, 57_792);
    let act = |k: u64| {
        training_memory(
            &m,
            &qlora(Some(LoraSettings::last_layers(layers, k))),
            0,
            1,
            2048,
            true,
        )
        .unwrap()
        .activation_bytes
    };
    assert_eq!(act(5) - act(4), 2048 * 426_432);
    // Llama-2-7B has as many key/value heads as query heads: the memory-efficient kernel takes
    // fp32, so no probabilities are kept: q, k, v and the output (4 · 4096 · 4 B), the MLP
    // (3 · 11008 · 4 B), the norms' fp32 inputs (2 · 4 · 4096 B) and peft's inputs
    // (4 · (4096 + 4096 + 11008) + 7 · 64 B): 197,632 + 32,768 + 77,248 = 307,648 B.
    let mha = fixture_model("Llama-2-7b-hf");
    let act = |k: u64| {
        training_memory(
            &mha,
            &qlora(Some(LoraSettings::last_layers(mha.num_layers, k))),
            0,
            1,
            2048,
            true,
        )
        .unwrap()
        .activation_bytes
    };
    assert_eq!(act(5) - act(4), 2048 * 307_648);
}
