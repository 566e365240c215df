//! Tests: advice. Verdicts for Llama-3.1-8B and 70B on an M2 16 GB, an M3 Max 64 GB, an RTX 4090
//! and an H100; longest context; best format; training settings; bad input.

use headroom_core::{
    CoreError,
    advice::{RowOutcome, best_format, longest_context, training_advice},
    answer::{ContextAsk, Question, answer},
    devices,
    error::Setting,
    estimate::{EstimateRequest, Verdict, estimate},
    limits::MAX_CONTEXT_TOKENS,
    quant::WeightFormat,
    runtime::Runtime,
    training::{FullSettings, LoraSettings, Mode},
    units::GIB,
};
use headroom_tests::fixture_model;

fn request(model: &str, format: &str, device: &str) -> EstimateRequest {
    let format: WeightFormat = format.parse().expect("format parses");
    let device = devices::find(device).expect("device in catalog");
    EstimateRequest::new(fixture_model(model), format, device)
}

fn verdict(model: &str, format: &str, device: &str) -> Verdict {
    estimate(&request(model, format, device))
        .expect("estimate")
        .verdict
}

#[test]
fn llama_3_1_8b_verdicts() {
    // bf16 weights are 8.03e9 · 2 B = 14.96 GiB: more than the M2's 10.67 GiB working set, and
    // more than working set + 3/4 of the remaining 5.33 GiB of RAM.
    assert_eq!(
        verdict("Llama-3.1-8B", "bf16", "m2 16gb"),
        Verdict::DoesNotFit
    );
    assert_eq!(
        verdict("Llama-3.1-8B", "bf16", "m3 max 64gb"),
        Verdict::Fits
    );
    assert_eq!(verdict("Llama-3.1-8B", "bf16", "rtx 4090"), Verdict::Fits);
    assert_eq!(verdict("Llama-3.1-8B", "bf16", "h100"), Verdict::Fits);
    for d in ["m2 16gb", "m3 max 64gb", "rtx 4090", "h100"] {
        assert_eq!(verdict("Llama-3.1-8B", "Q4_K_M", d), Verdict::Fits, "{d}");
    }
}

#[test]
fn llama_3_1_70b_verdicts() {
    for d in ["m2 16gb", "m3 max 64gb", "rtx 4090", "h100"] {
        assert_eq!(
            verdict("Llama-3.1-70B", "bf16", d),
            Verdict::DoesNotFit,
            "{d}"
        );
    }
    // Q4_K_M ≈ 39.6 GiB: fits the M3 Max's 48 GiB working set, spills past a 24 GiB 4090 into
    // host RAM, fits an H100.
    assert_eq!(
        verdict("Llama-3.1-70B", "Q4_K_M", "m2 16gb"),
        Verdict::DoesNotFit
    );
    assert_eq!(
        verdict("Llama-3.1-70B", "Q4_K_M", "m3 max 64gb"),
        Verdict::Fits
    );
    assert_eq!(
        verdict("Llama-3.1-70B", "Q4_K_M", "rtx 4090"),
        Verdict::NeedsOffload
    );
    assert_eq!(verdict("Llama-3.1-70B", "Q4_K_M", "h100"), Verdict::Fits);
}

#[test]
fn seventy_b_bf16_needs_two_h100s() {
    let mut req = request("Llama-3.1-70B", "bf16", "h100");
    let one = estimate(&req).unwrap();
    assert_eq!(one.devices_needed, Some(2));
    req.device_count = 2;
    let two = estimate(&req).unwrap();
    assert!(two.fits, "{:?}", two.verdict);
    // Each device carries half the shared bytes plus its own CUDA context.
    let overhead_each = two.overhead_bytes / 2;
    assert_eq!(
        two.per_device_bytes,
        (two.total_bytes - two.overhead_bytes).div_ceil(2) + overhead_each
    );
    // The total is the sum of its components, exactly.
    assert_eq!(
        two.total_bytes,
        two.weights_bytes
            + two.kv_cache_bytes
            + two.activation_bytes
            + two.overhead_bytes
            + two.training_bytes
    );
}

#[test]
fn longest_context_is_the_edge_of_fitting() {
    let req = request("Llama-3.1-8B", "Q4_K_M", "m2 16gb");
    let longest = longest_context(&req).unwrap().expect("some context fits");
    assert!(
        longest > 4096 && longest < req.model.max_context,
        "{longest}"
    );
    let mut at = req.clone();
    at.context = Some(longest);
    assert!(estimate(&at).unwrap().fits);
    at.context = Some(longest + 1);
    assert!(!estimate(&at).unwrap().fits);
    // An H100 holds the 8B model at its full 128K context.
    let h = request("Llama-3.1-8B", "bf16", "h100");
    assert_eq!(longest_context(&h).unwrap(), Some(h.model.max_context));
    // Nothing fits: no context.
    let none = request("Llama-3.1-70B", "bf16", "m2 16gb");
    assert_eq!(longest_context(&none).unwrap(), None);
}

#[test]
fn best_format_is_the_highest_precision_that_fits() {
    // On a 16 GB M2 the 16-bit 8B model does not fit; 8-bit (8.5 GiB) does.
    let b = best_format(&request("Llama-3.1-8B", "bf16", "m2 16gb"), None)
        .unwrap()
        .expect("a format fits");
    assert_eq!(b.format, "Q8_0");
    assert_eq!(b.runtime, "llama.cpp");
    assert_eq!(b.verdict, Verdict::Fits);
    // An H100 holds the 8B model in fp32.
    let h = best_format(&request("Llama-3.1-8B", "bf16", "h100"), None)
        .unwrap()
        .unwrap();
    assert_eq!(h.format, "fp32");
    // Nothing fits the 70B model on a 16 GB Mac.
    assert!(
        best_format(&request("Llama-3.1-70B", "bf16", "m2 16gb"), None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn full_fine_tune_of_8b_does_not_fit_one_h100() {
    // 16 B/param × 8.03e9 = 120 GiB of weights, grads, master and moments alone.
    let mut req = request("Llama-3.1-8B", "bf16", "h100");
    req.mode = Mode::Full(FullSettings::default_settings());
    req.context = Some(2048);
    let e = estimate(&req).unwrap();
    assert!(e.weights_bytes + e.training_bytes > 119 * GIB);
    assert!(!e.fits);
    assert_eq!(e.kv_cache_bytes, 0);
}

#[test]
fn qlora_on_a_4090_and_its_settings() {
    let mut req = request("Llama-3.1-8B", "bf16", "rtx 4090");
    req.mode = Mode::Qlora(LoraSettings {
        gradient_checkpointing: true,
        ..LoraSettings::default_settings()
    });
    req.context = Some(2048);
    let e = estimate(&req).unwrap();
    assert!(e.fits, "{:?} {}", e.verdict, e.total_bytes);
    // The base is NF4 with double quantization, about a quarter of bf16.
    assert!(e.weights_bytes < 6 * GIB, "{}", e.weights_bytes);
    let t = training_advice(&req).unwrap().expect("training advice");
    assert!(t.fits_as_given);
    let max_batch = t.max_batch.expect("batch 1 fits");
    assert!(max_batch >= 1);
    let mut over = req.clone();
    over.batch = max_batch + 1;
    if max_batch < 1024 {
        assert!(!estimate(&over).unwrap().fits);
    }
    assert!(t.max_lora_rank.unwrap() >= 16);
    assert_eq!(t.lora_targets.unwrap().len(), 7);
}

#[test]
fn lora_needs_checkpointing_at_long_sequences() {
    // Llama-3.2-1B LoRA at 4096 tokens on a 16 GB card: 2.3 GiB bf16 base + 16 layers of kept
    // activations incl. peft's fp32 input copies (≈ 10.6 GiB) + the loss (4096 · 128256 · 14 B
    // ≈ 6.8 GiB) do not fit; recomputing the layers (keeping only their inputs) does.
    let mut req = request("Llama-3.2-1B", "bf16", "rtx-4060-ti-16gb");
    req.mode = Mode::Lora(LoraSettings::default_settings());
    req.context = Some(4096);
    req.batch = 1;
    let t = training_advice(&req).unwrap().unwrap();
    assert!(!t.fits_as_given);
    assert!(t.fits_with_checkpointing);
}

fn question(model: &str, format: &str, device: &str) -> Question {
    let mut q = Question::new(
        fixture_model(model),
        devices::find(device).expect("device in catalog"),
    );
    q.format = Some(format.parse().expect("format parses"));
    q
}

#[test]
fn answer_bundles_everything() {
    let a = answer(&question("Llama-3.1-8B", "Q4_K_M", "m2 16gb")).unwrap();
    assert!(a.longest_context.is_some());
    assert!(a.best_format.is_some());
    assert!(a.training.is_none());
    assert!(a.estimate.decode_tokens_per_s > 1.0 && a.estimate.prefill_tokens_per_s > 10.0);
    let assumptions = &a.estimate.assumptions;
    assert!(assumptions.iter().any(|s| s.contains("decode")));
    assert!(assumptions.iter().any(|s| s.contains("prefill")));
    assert!(assumptions.iter().any(|s| s.contains("working set")));
    assert!(assumptions.iter().any(|s| s.starts_with("longest context")));
    assert_eq!(a.formats.len(), WeightFormat::all().len());
    assert_eq!(a.request.runtime, Runtime::LlamaCpp);
}

#[test]
fn answer_defaults_follow_the_mode() {
    // A full fine-tune of an MXFP4 checkpoint trains bf16 weights in PyTorch (the CLI and the site
    // once disagreed here: the site refused).
    let mut q = Question::new(
        fixture_model("gpt-oss-20b"),
        devices::find("h100").expect("device"),
    );
    q.mode = "full".parse().expect("mode");
    let a = answer(&q).unwrap();
    assert_eq!(a.request.format, WeightFormat::Bf16);
    assert_eq!(a.request.runtime, Runtime::TransformersCuda);
    // Training on a Mac defaults to PyTorch's MPS backend, not MLX.
    let mut q = Question::new(
        fixture_model("Llama-3.2-1B"),
        devices::find("m3 max 64gb").expect("device"),
    );
    q.mode = "lora".parse().expect("mode");
    assert_eq!(
        answer(&q).unwrap().request.runtime,
        Runtime::TransformersMps
    );
    // QLoRA: the table holds the bitsandbytes 4-bit bases only, the rest skipped with one reason
    // (not the same nf4+dq row once per format).
    q.mode = "qlora".parse().expect("mode");
    let a = answer(&q).unwrap();
    let estimated: Vec<&str> = a
        .formats
        .iter()
        .filter(|r| r.estimate().is_some())
        .map(|r| r.format.as_str())
        .collect();
    assert_eq!(estimated, ["nf4", "nf4+dq"]);
    assert!(a.formats.iter().all(|r| match &r.outcome {
        RowOutcome::Estimated(e) => e.quant == r.format,
        RowOutcome::Skipped(why) => why.contains("QLoRA"),
    }));
}

#[test]
fn answer_table_keeps_rows_a_kv_type_cannot_serve() {
    // q8_0 KV exists in llama.cpp only: transformers rows use their own KV type and say so,
    // instead of disappearing.
    let mut q = question("Llama-3.1-8B", "Q4_K_M", "rtx 4090");
    q.kv_dtype = Some("q8_0".parse().expect("kv"));
    q.context = ContextAsk::Tokens(8192);
    let a = answer(&q).unwrap();
    let bf16 = a
        .formats
        .iter()
        .find(|r| r.format == "bf16")
        .expect("bf16 row");
    assert_eq!(bf16.runtime, "transformers");
    assert_eq!(bf16.kv_cache_dtype, "bf16");
    assert!(bf16.estimate().is_some());
    let q4 = a
        .formats
        .iter()
        .find(|r| r.format == "Q4_K_M")
        .expect("row");
    assert_eq!(q4.kv_cache_dtype, "q8_0");
    // The context beyond the model's maximum is flagged, not refused.
    q.context = ContextAsk::Tokens(200_000);
    assert!(answer(&q).unwrap().context_beyond_model_max);
}

#[test]
fn speed_follows_bandwidth_and_active_parameters() {
    // Decode reads the active weights: Q4_K_M (4.58 GiB) + 0.5 GiB KV on an H100, whose memory
    // gives 0.86 × 3.35 TB/s but where llama.cpp's matrix-vector kernels read at most 132 SMs ×
    // 1.98 GHz × 5.75 B ≈ 1.5 TB/s: ≈ 3.6 ms per token, plus 32 layers × 25 µs of kernel work
    // besides: ≈ 1 / 4.4 ms ≈ 225 tokens/s (published: 281 for a 7B Q4_0).
    let e = estimate(&request("Llama-3.1-8B", "Q4_K_M", "h100")).unwrap();
    assert!(
        (200.0..300.0).contains(&e.decode_tokens_per_s),
        "{}",
        e.decode_tokens_per_s
    );
    // MoE: Qwen3-30B-A3B decodes like a 3B model, far faster than its 30B total suggests.
    let moe = estimate(&request("Qwen3-30B-A3B", "Q4_K_M", "m3 max 64gb")).unwrap();
    let dense = estimate(&request("Llama-3.1-8B", "Q4_K_M", "m3 max 64gb")).unwrap();
    assert!(moe.decode_tokens_per_s > dense.decode_tokens_per_s);
    // A measured bandwidth replaces the datasheet and drops the efficiency factor.
    let mut req = request("Llama-3.1-8B", "Q4_K_M", "m2 16gb");
    req.device.bandwidth_bytes_per_s = 50e9;
    req.device.bandwidth_measured = true;
    let slow = estimate(&req).unwrap();
    assert!(slow.decode_tokens_per_s < 10.0);
    assert!(
        slow.assumptions
            .iter()
            .any(|s| s.contains("measured bandwidth"))
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let setting_of = |r: &EstimateRequest| match estimate(r) {
        Err(CoreError::Setting { setting, .. }) => Some(setting),
        _ => None,
    };
    let base = request("Llama-3.1-8B", "bf16", "h100");
    let mut r = base.clone();
    r.context = Some(0);
    assert_eq!(setting_of(&r), Some(Setting::Context));
    r.context = Some(MAX_CONTEXT_TOKENS + 1);
    assert_eq!(setting_of(&r), Some(Setting::Context));
    let mut r = base.clone();
    r.batch = 0;
    assert_eq!(setting_of(&r), Some(Setting::Batch));
    r.batch = 2_000_000;
    assert_eq!(setting_of(&r), Some(Setting::Batch));
    let mut r = base.clone();
    r.device_count = 0;
    assert_eq!(setting_of(&r), Some(Setting::DeviceCount));
    // GGUF needs llama.cpp; MLX needs a Mac; q8_0 KV needs llama.cpp.
    let mut r = request("Llama-3.1-8B", "Q4_K_M", "h100");
    r.runtime = Runtime::TransformersCuda;
    assert_eq!(setting_of(&r), Some(Setting::Runtime));
    let mut r = base.clone();
    r.runtime = Runtime::Mlx;
    assert_eq!(setting_of(&r), Some(Setting::Runtime));
    let mut r = base.clone();
    r.kv_dtype = headroom_core::kv_cache::KvDtype::Q8_0;
    assert_eq!(setting_of(&r), Some(Setting::KvDtype));
    // A full fine-tune of a quantized model is refused with a way out, in no front end's words.
    let mut r = request("Llama-3.1-8B", "nf4", "h100");
    r.mode = Mode::Full(FullSettings::default_settings());
    match estimate(&r) {
        Err(e @ CoreError::Setting { .. }) => {
            let text = e.to_string();
            assert!(text.contains("try format bf16"), "{text}");
            assert!(!text.contains("--"), "core names no CLI flag: {text}");
            let cli = e.worded(|s| format!("--{s}"), |s, v| format!("--{s} {v}"));
            assert!(
                cli.contains("--format `nf4`") && cli.contains("try --format bf16"),
                "{cli}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn regression_deserialized_zero_group_size_is_an_error_not_a_panic() {
    // `FromStr` refuses group 0, but a request deserialized from JSON (the site's URL state) can
    // carry it; MLX's per-group arithmetic divided by it.
    let mut r = request("Llama-3.1-8B", "mlx-4bit-g64", "m2 16gb");
    r.format = WeightFormat::Mlx {
        bits: 4,
        group_size: 0,
    };
    match estimate(&r) {
        Err(CoreError::Setting {
            setting, problem, ..
        }) => {
            assert_eq!(setting, Setting::Format);
            assert!(problem.contains("group"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    // The byte count itself never divides by zero either: with no usable group every matrix
    // stays 16-bit, 2 bytes per parameter.
    let m = r.model.clone();
    let p = headroom_core::params::param_counts(&m).total;
    assert_eq!(headroom_core::quant::weights_bytes(&m, &r.format), 2 * p);
    let mut g = request("Llama-3.1-8B", "gptq", "h100");
    g.format = WeightFormat::Gptq {
        bits: 0,
        group_size: 128,
    };
    assert!(matches!(estimate(&g), Err(CoreError::Setting { .. })));
}

#[test]
fn moe_decode_reads_active_not_total_weights() {
    // Qwen3-30B-A3B in bf16 on an H200 (transformers, 4096 tokens, batch 1), by hand:
    // active weights without the input embedding 3,041,867,776 (param_counts.json) + one
    // embedding row of 2048, × 2 B = 6,083,739,648 B; KV 48 layers · 2 · 4 heads · 128 · 2 B ·
    // 4096 tokens = 402,653,184 B. Decode = 4.12 TB/s achieved (4.8 × 4.12/4.8) ÷ 6,486,392,832 B
    // ≈ 635.2 tokens/s. Counting all 30.5B parameters would give ≈ 67.
    let mut r = request("Qwen3-30B-A3B", "bf16", "h200");
    r.context = Some(4096);
    let e = estimate(&r).unwrap();
    let expected = 4.12e12 / (2.0 * (3_041_867_776.0 + 2048.0) + 402_653_184.0);
    assert!(
        (e.decode_tokens_per_s / expected - 1.0).abs() < 0.005,
        "{} vs {expected}",
        e.decode_tokens_per_s
    );
}

#[test]
fn prefill_is_flops_over_the_matrix_rate() {
    // Llama-3.1-8B bf16 on an H100 SXM at 4096 tokens, by hand: 2 FLOPs × (8,030,261,248 −
    // 128,256 · 4096 input embedding = 7,504,924,672 params) = 15,009,849,344; attention
    // 32 layers · 2 · 32 heads · (128 + 128) · 2048 average keys = 1,073,741,824; rate
    // 989 TFLOPS × 790/989 = 790 TFLOPS → 790e12 / 16,083,591,168 ≈ 49,118 tokens/s.
    let mut r = request("Llama-3.1-8B", "bf16", "h100");
    r.context = Some(4096);
    let e = estimate(&r).unwrap();
    let expected = 790e12 / (15_009_849_344.0 + 1_073_741_824.0);
    assert!(
        (e.prefill_tokens_per_s / expected - 1.0).abs() < 0.001,
        "{} vs {expected}",
        e.prefill_tokens_per_s
    );
}

#[test]
fn verdict_thresholds_at_their_edges() {
    // One request, per-device need P bytes; a discrete device's usable memory is its memory.
    // fits ⇔ P ≤ ⌊0.9 · U⌋; fits tightly ⇔ P ≤ U; needs offload ⇔ a split holds the rest in
    // ¾ · host RAM.
    let base = request("Llama-3.2-1B", "bf16", "rtx 4090");
    let p = estimate(&base).unwrap().per_device_bytes;
    let with = |usable: u64, host: u64| {
        let mut r = base.clone();
        r.device.memory_bytes = usable;
        r.host_memory_bytes = Some(host);
        estimate(&r).unwrap().verdict
    };
    // Smallest U with ⌊0.9 U⌋ ≥ P: U = ⌈10 P / 9⌉.
    let u90 = (p * 10).div_ceil(9);
    assert!(u90 * 9 / 10 >= p && (u90 - 1) * 9 / 10 < p);
    assert_eq!(with(u90, 0), Verdict::Fits);
    assert_eq!(with(u90 - 1, 0), Verdict::FitsTightly);
    assert_eq!(with(p, 0), Verdict::FitsTightly);
    // One byte short: the offload split (whole layers, see tests/offload.rs) puts the last layer
    // and the head in host RAM when there is room for them, and there is none without RAM.
    assert_eq!(with(p - 1, GIB), Verdict::NeedsOffload);
    assert_eq!(with(p - 1, 0), Verdict::DoesNotFit);
}

/// The usual engine per device and format: MLX only on Apple silicon and only for what MLX loads.
#[test]
fn default_runtime_follows_device_vendor_and_format() {
    use headroom_core::{devices, quant::WeightFormat, runtime::Runtime};
    let m2 = devices::find("m2-10c-16gb").expect("catalog device");
    let h100 = devices::find("h100-sxm").expect("catalog device");
    let fmt = |s: &str| s.parse::<WeightFormat>().expect("known format");
    assert_eq!(Runtime::default_for(&m2, &fmt("bf16")), Runtime::Mlx);
    assert_eq!(
        Runtime::default_for(&m2, &fmt("mlx-4bit-g64")),
        Runtime::Mlx
    );
    assert_eq!(Runtime::default_for(&m2, &fmt("Q4_K_M")), Runtime::LlamaCpp);
    assert_eq!(
        Runtime::default_for(&m2, &fmt("gptq-4bit-g128")),
        Runtime::TransformersMps
    );
    assert_eq!(
        Runtime::default_for(&h100, &fmt("bf16")),
        Runtime::TransformersCuda
    );
    // A measured non-Apple adapter that shares host memory (an integrated GPU, lavapipe).
    let mut igpu = m2.clone();
    igpu.vendor = "measured".into();
    // (Its adapter name must not be Apple's: a measured "Apple M2" is Apple silicon.)
    igpu.name = "Intel(R) Iris(R) Xe Graphics".into();
    assert_eq!(Runtime::default_for(&igpu, &fmt("bf16")), Runtime::LlamaCpp);
}

/// "Use this device" with a measured non-Apple unified adapter (lavapipe, a browser benchmark)
/// gives a verdict in the checkpoint's own format, not a runtime error.
#[test]
fn measured_non_apple_unified_device_gets_a_verdict_in_bf16() {
    use headroom_core::{
        devices::DeviceSpec, estimate, model_catalog, quant::WeightFormat, report::ProbeReport,
    };
    let text = include_str!("data/reports/lavapipe-report.json");
    let report = ProbeReport::from_json(text).expect("lavapipe report parses");
    let device = DeviceSpec::from_measured(&report.measured_device());
    let model = model_catalog::find("qwen2.5-0.5b").expect("catalog model");
    let req = estimate::EstimateRequest::new(model, WeightFormat::Bf16, device);
    let est = estimate::estimate(&req).expect("a verdict, not an error");
    assert!(est.total_bytes > 0);
}

#[test]
fn regression_a_probe_report_alone_gives_an_estimate() {
    // `headroom fit MODEL --probe report.json` without --device builds the device from the
    // report alone (vendor "measured"). The default runtime for such a unified-memory device was
    // transformers-on-CUDA, which validate() refuses on unified memory: no estimate at all.
    use headroom_core::{devices::DeviceSpec, report::MeasuredDevice};
    let measured = |name: &str| MeasuredDevice {
        name: name.into(),
        unified_memory: true,
        memory_bytes: Some(16 * GIB),
        memory_basis: None,
        usable_bytes: Some(10 * GIB),
        usable_basis: None,
        read_bandwidth_bytes_per_s: Some(90e9),
        fp32_flops: Some(3.0e12),
        fp16_flops: Some(3.0e12),
        max_buffer_bytes: Some(8 * GIB),
        decode_simulation_tokens_per_s: None,
        host_read_bandwidth_bytes_per_s: None,
        host_to_device_bytes_per_s: None,
        device_to_host_bytes_per_s: None,
        host_ram_bytes: None,
    };
    for name in [
        "Apple M2",
        "Intel(R) Iris(R) Xe Graphics",
        "llvmpipe (LLVM 17.0.6, 256 bits)",
    ] {
        let device = DeviceSpec::from_measured(&measured(name));
        for format in ["bf16", "Q4_K_M", "gptq-4bit-g128"] {
            let r = EstimateRequest::new(
                fixture_model("Llama-3.2-1B"),
                format.parse().unwrap(),
                device.clone(),
            );
            let e = estimate(&r).unwrap_or_else(|e| panic!("{name} {format}: {e}"));
            // The measured working set is the usable memory.
            assert_eq!(e.usable_bytes, 10 * GIB, "{name} {format}");
        }
    }
    // A probe report of an Apple GPU still gets the Apple engines.
    let apple = DeviceSpec::from_measured(&measured("Apple M2"));
    assert_eq!(
        Runtime::default_for(&apple, &"bf16".parse().unwrap()),
        Runtime::Mlx
    );
}

#[test]
fn geforce_prefill_in_pytorch_uses_the_fp32_accumulate_rate() {
    // RTX 4090: 330 TFLOPS fp16 with fp16 accumulate, 165 with fp32 accumulate (Ada whitepaper);
    // PyTorch's bf16 GEMM accumulates in fp32. Llama-3.1-8B at 4096 tokens needs 16,083,591,168
    // FLOPs per token (worked in prefill_is_flops_over_the_matrix_rate), so transformers gets
    // 165e12 × 790/989 ÷ 16,083,591,168 ≈ 8,195 tokens/s; llama.cpp (f16 accumulate) twice that.
    let flops_per_token = 15_009_849_344.0 + 1_073_741_824.0;
    let mut r = request("Llama-3.1-8B", "bf16", "rtx 4090");
    r.context = Some(4096);
    assert_eq!(r.runtime, Runtime::TransformersCuda);
    let pt = estimate(&r).unwrap().prefill_tokens_per_s;
    let expected = 165e12 * (790.0 / 989.0) / flops_per_token;
    assert!((pt / expected - 1.0).abs() < 0.001, "{pt} vs {expected}");
    let mut l = r.clone();
    l.runtime = Runtime::LlamaCpp;
    l.kv_dtype = headroom_core::kv_cache::KvDtype::F16;
    let pl = estimate(&l).unwrap().prefill_tokens_per_s;
    assert!((pl / pt - 2.0).abs() < 0.001, "{pl} vs {pt}");
    // Datacenter GPUs run both at the same rate: no split for the H100.
    assert!(
        devices::find("h100")
            .unwrap()
            .fp16_fp32_accumulate_flops
            .is_none()
    );
}

#[test]
fn lora_advice_suggests_the_last_k_layers_when_all_do_not_fit() {
    // Llama-3.1-8B LoRA (bf16 base, r = 16, all seven projections) at 2048 tokens on an RTX
    // 4090: every layer's activations do not fit without checkpointing; adapting only the last
    // k layers keeps activations for k layers and does.
    let mut req = request("Llama-3.1-8B", "bf16", "rtx 4090");
    req.mode = Mode::Lora(LoraSettings::default_settings());
    req.context = Some(2048);
    let t = training_advice(&req).unwrap().unwrap();
    assert!(!t.fits_as_given);
    let k = t.max_lora_last_layers.expect("a subset fits");
    assert!((1..32).contains(&k), "{k}");
    assert!(!t.lora_last_layers_need_checkpointing);
    // The largest such k: k fits, k + 1 does not.
    let with_last = |k: u64| {
        let mut r = req.clone();
        r.mode = Mode::Lora(LoraSettings {
            layers: Some(LoraSettings::last_layers(32, k)),
            ..LoraSettings::default_settings()
        });
        estimate(&r).unwrap().fits
    };
    assert!(with_last(k));
    assert!(!with_last(k + 1));
    let s = t
        .suggestions
        .iter()
        .find(|s| s.contains(&format!("last:{k}")))
        .expect("a last-k suggestion");
    assert!(s.contains("stay as pretrained"), "{s}");
    // A request that fits as given gets no subset and no suggestions.
    let mut small = req.clone();
    small.context = Some(256);
    let t = training_advice(&small).unwrap().unwrap();
    assert!(t.fits_as_given);
    assert_eq!(t.max_lora_last_layers, None);
    assert!(t.suggestions.is_empty());
}

#[test]
fn mtp_layers_load_on_request_and_add_exactly_their_component() {
    // DeepSeek-V3 ships one MTP layer that transformers does not load: by default it is a
    // component outside the total; loaded for speculative decoding it adds exactly that
    // component's parameters, its bytes and its KV cache.
    for name in ["DeepSeek-V3", "GLM-5"] {
        let model = fixture_model(name);
        let mtp = headroom_core::components::components(&model)
            .into_iter()
            .find(|c| c.kind == headroom_core::model::ComponentKind::Mtp)
            .unwrap_or_else(|| panic!("{name} has MTP layers"));
        assert!(!mtp.in_total);
        let mut q = Question::new(model, devices::find("h100").expect("device"));
        q.format = Some(WeightFormat::Bf16);
        q.device_count = 8;
        let base = answer(&q).expect("answer");
        q.with_mtp = true;
        let with = answer(&q).expect("answer with MTP");
        assert!(with.with_mtp && !base.with_mtp);
        assert_eq!(
            with.estimate.params_total,
            base.estimate.params_total + mtp.params,
            "{name}"
        );
        // bf16: two bytes per parameter, plus the MTP layer's stored buffers (DeepSeek-V3's router
        // correction bias, 256 values), which are not parameters.
        let added = with.estimate.weights_bytes - base.estimate.weights_bytes;
        assert!(
            (2 * mtp.params..=2 * mtp.params + 4096).contains(&added),
            "{name}: {added} bytes added for {} parameters",
            mtp.params
        );
        assert!(
            with.estimate.kv_cache_bytes > base.estimate.kv_cache_bytes,
            "{name}"
        );
        assert!(!with.components.iter().any(|c| !c.in_total), "{name}");
    }
    // A model without MTP layers is unchanged, and the answer does not claim they were loaded.
    let mut q = question("Llama-3.1-8B", "bf16", "h100");
    let base = answer(&q).expect("answer");
    q.with_mtp = true;
    let same = answer(&q).expect("answer");
    assert!(!same.with_mtp);
    assert_eq!(same.estimate.total_bytes, base.estimate.total_bytes);
}

#[test]
fn regression_qlora_checkpoints_by_default_as_peft_does() {
    // Issue: llama-3.1-8b, QLoRA, RTX 4090, 4k said "does not fit — 49.56 GiB" because
    // checkpointing was assumed off; peft's prepare_model_for_kbit_training turns it on.
    let mut q = Question::new(
        fixture_model("Llama-3.1-8B"),
        devices::find("rtx-4090").expect("device"),
    );
    q.mode = "qlora".parse().expect("mode");
    q.context = ContextAsk::Tokens(4096);
    assert!(q.mode.gradient_checkpointing());
    let a = answer(&q).unwrap();
    assert!(
        a.estimate.fits,
        "{:?} {}",
        a.estimate.verdict, a.estimate.total_bytes
    );
    // Turning it off is still possible, and the mode text says so and parses back.
    q.mode = "qlora:no-ckpt".parse().expect("mode");
    assert!(!q.mode.gradient_checkpointing());
    let off = answer(&q).unwrap();
    assert!(!off.estimate.fits);
    assert!(
        off.estimate.mode.contains(":no-ckpt"),
        "{}",
        off.estimate.mode
    );
    let again: Mode = off.estimate.mode.parse().expect("mode text parses back");
    assert_eq!(again, q.mode);
    // LoRA and full keep transformers' default (off).
    for mode in ["lora", "full"] {
        assert!(
            !mode.parse::<Mode>().unwrap().gradient_checkpointing(),
            "{mode}"
        );
    }
}

#[test]
fn regression_no_speed_for_what_cannot_run_and_offload_is_slower() {
    // Issue: models that do not fit got tokens/s, offload rows showed full-GPU speed and a
    // laptop needed "13 devices".
    let m2 = answer(&question("Llama-3.1-70B", "bf16", "m2 16gb")).unwrap();
    assert_eq!(m2.estimate.verdict, Verdict::DoesNotFit);
    assert_eq!(m2.estimate.decode_tokens_per_s, 0.0);
    assert_eq!(m2.estimate.prefill_tokens_per_s, 0.0);
    assert_eq!(m2.estimate.devices_needed, None, "a laptop is one device");
    for row in m2.formats.iter().filter_map(|r| r.estimate()) {
        if row.verdict == Verdict::DoesNotFit {
            assert_eq!(row.decode_tokens_per_s, 0.0, "{}", row.quant);
        }
    }
    // An 8B model in bf16 on an 8 GB card spills to host memory: slower than the Q4 that fits.
    let offload = answer(&question("Llama-3.1-8B", "bf16", "rtx-4060")).unwrap();
    assert_eq!(offload.estimate.verdict, Verdict::NeedsOffload);
    let e = &offload.estimate;
    let mut all_on_gpu = request("Llama-3.1-8B", "bf16", "rtx-4060");
    all_on_gpu.device.memory_bytes = 64 * GIB;
    let fast = estimate(&all_on_gpu).unwrap();
    assert_eq!(fast.verdict, Verdict::Fits);
    assert!(
        e.decode_tokens_per_s > 0.0 && e.decode_tokens_per_s < fast.decode_tokens_per_s / 2.0,
        "offload {} vs on the GPU {}",
        e.decode_tokens_per_s,
        fast.decode_tokens_per_s
    );
    assert!(e.assumptions.iter().any(|a| a.starts_with("offload")));
    // Discrete GPUs still say how many it takes.
    let h100 = answer(&question("Llama-3.1-70B", "bf16", "h100")).unwrap();
    assert_eq!(h100.estimate.devices_needed, Some(2));
}
