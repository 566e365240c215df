//! Tests: offload. The split between GPU and host when a model does not fit the GPU — llama.cpp's
//! `-ngl` and `--n-cpu-moe`, transformers' `device_map="auto"` — held to llama.cpp's placement
//! rules (the output layer is the first on the GPU, the token embedding never is), to the memory
//! on each side, to the speed ordering users report (experts on the host beat whole layers there
//! for a MoE), and the checks on the settings.

use headroom_core::{
    CoreError,
    answer::{Answer, ContextAsk, Question, answer},
    devices::{self, HostLink},
    error::Setting,
    estimate::Verdict,
    model_catalog,
    offload::{OffloadSettings, PlacementBytes, SplitKind},
    runtime::Runtime,
    units::GIB,
};

fn question(model: &str, format: &str, device: &str, host_gib: u64) -> Question {
    Question {
        format: Some(format.parse().unwrap_or_else(|e| panic!("{format}: {e}"))),
        context: ContextAsk::Tokens(4096),
        host_memory_bytes: Some(host_gib * GIB),
        ..Question::new(
            model_catalog::find(model).unwrap_or_else(|e| panic!("{model}: {e}")),
            devices::find(device).unwrap_or_else(|e| panic!("{device}: {e}")),
        )
    }
}

fn ask(q: &Question) -> Answer {
    answer(q).unwrap_or_else(|e| panic!("{}: {e}", q.model.name))
}

fn setting_error(q: &Question) -> Setting {
    match answer(q) {
        Err(CoreError::Setting { setting, .. }) => setting,
        Err(e) => panic!("expected a setting error, got {e}"),
        Ok(a) => panic!("expected a setting error, got {:?}", a.estimate.verdict),
    }
}

#[test]
fn a_moe_that_does_not_fit_an_8_gb_card_runs_with_its_experts_on_the_host() {
    let a = ask(&question("qwen3-30b-a3b", "Q4_K_M", "rtx-4060-ti-8gb", 64));
    assert_eq!(a.estimate.verdict, Verdict::NeedsOffload);
    let plan = a.offload.as_ref().expect("an offload plan");
    let c = &plan.chosen;
    let SplitKind::CpuMoe { n_cpu_moe } = c.split else {
        panic!("a MoE splits its experts first: {:?}", c.split)
    };
    assert!(c.fits && c.gpu_bytes <= c.gpu_capacity_bytes);
    // The largest GPU share: one layer's experts fewer on the host no longer fits the GPU.
    let fewer = ask(&Question {
        offload: OffloadSettings {
            n_cpu_moe: Some(n_cpu_moe - 1),
            gpu_layers: None,
        },
        ..question("qwen3-30b-a3b", "Q4_K_M", "rtx-4060-ti-8gb", 64)
    });
    let f = &fewer.offload.as_ref().expect("plan").chosen;
    assert!(
        f.gpu_bytes > f.gpu_capacity_bytes,
        "{n_cpu_moe} is not the smallest"
    );
    assert_eq!(fewer.estimate.verdict, Verdict::DoesNotFit);
    // Every byte is somewhere: GPU + host = the estimate's total.
    assert_eq!(c.gpu_bytes + c.host_bytes, a.estimate.total_bytes);
    // The alternative is -ngl, and it is slower: whole layers (attention, KV) read at host speed.
    let alt = plan.alternative.as_ref().expect("the -ngl alternative");
    assert!(matches!(alt.split, SplitKind::GpuLayers { .. }));
    assert!(
        c.decode_tokens_per_s > alt.decode_tokens_per_s * 1.2,
        "--n-cpu-moe {} vs {}",
        c.decode_tokens_per_s,
        alt.decode_tokens_per_s
    );
    assert_eq!(a.estimate.decode_tokens_per_s, c.decode_tokens_per_s);
    let launch = a.launch.as_ref().expect("a split that fits launches");
    assert!(
        launch
            .command
            .contains(&format!("-ngl 99 --n-cpu-moe {n_cpu_moe}")),
        "{}",
        launch.command
    );
}

#[test]
fn a_dense_model_that_does_not_fit_runs_with_its_first_layers_on_the_host() {
    let q = question("llama-3.1-70b", "Q4_K_M", "rtx-4090", 64);
    let a = ask(&q);
    assert_eq!(a.estimate.verdict, Verdict::NeedsOffload);
    let plan = a.offload.as_ref().expect("plan");
    assert!(plan.alternative.is_none(), "a dense model has no experts");
    let SplitKind::GpuLayers { n_gpu_layers } = plan.chosen.split else {
        panic!("{:?}", plan.chosen.split)
    };
    assert!(n_gpu_layers > 1 && n_gpu_layers < 81, "-ngl {n_gpu_layers}");
    assert!(
        a.launch
            .as_ref()
            .is_some_and(|l| l.command.contains(&format!("-ngl {n_gpu_layers} ")))
    );
    // One layer more on the GPU no longer fits it.
    let more = ask(&Question {
        offload: OffloadSettings {
            gpu_layers: Some(n_gpu_layers + 1),
            n_cpu_moe: None,
        },
        ..q.clone()
    });
    let m = &more.offload.as_ref().expect("plan").chosen;
    assert!(m.gpu_bytes > m.gpu_capacity_bytes);
    // Decode falls as layers move to the host; every split adds up to the total. (`-ngl 0` is
    // left out of the ordering: a step wholly on the CPU pays no split costs, so it can beat
    // `-ngl 1` by a few percent; `tests/llama_cpp_offload.rs` holds both to llama-bench.)
    let mut last = f64::INFINITY;
    for n in [n_gpu_layers, n_gpu_layers / 2, 1] {
        let a = ask(&Question {
            offload: OffloadSettings {
                gpu_layers: Some(n),
                n_cpu_moe: None,
            },
            ..q.clone()
        });
        let c = &a.offload.as_ref().expect("plan").chosen;
        assert!(c.decode_tokens_per_s < last, "-ngl {n}");
        last = c.decode_tokens_per_s;
        assert_eq!(
            c.gpu_bytes + c.host_bytes,
            a.estimate.total_bytes,
            "-ngl {n}"
        );
    }
}

#[test]
fn llama_cpp_places_the_output_layer_first_and_never_the_token_embedding() {
    let model = model_catalog::find("llama-3.1-8b").unwrap_or_else(|e| panic!("{e}"));
    let w = PlacementBytes::new(&model, &"Q4_K_M".parse().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(w.layer_bytes.len(), 32);
    assert!(w.input_bytes > 0 && w.output_bytes > 0 && !w.has_experts());
    let q = |n| Question {
        offload: OffloadSettings {
            gpu_layers: Some(n),
            n_cpu_moe: None,
        },
        ..question("llama-3.1-8b", "Q4_K_M", "rtx-4090", 64)
    };
    let host = |n| ask(&q(n)).offload.map(|p| p.chosen.host_bytes).unwrap_or(0);
    let kv_layer = 4096 * 2 * 8 * 128 * 2; // f16 keys and values of one layer at 4096 tokens
    // -ngl 1 is the output layer alone; -ngl 33 everything but the token embedding.
    assert_eq!(host(0) - host(1), w.output_bytes);
    assert_eq!(host(1) - host(2), w.layer_bytes[31] + kv_layer);
    assert_eq!(host(33), w.input_bytes);
    // Everything on the GPU keeps the fits verdict.
    assert!(ask(&q(33)).estimate.verdict.fits());
    assert_eq!(ask(&q(20)).estimate.verdict, Verdict::NeedsOffload);
}

#[test]
fn transformers_offload_is_bound_by_the_host_link() {
    let q = question("llama-3.1-70b", "bf16", "rtx-4090", 256);
    let a = ask(&q);
    assert_eq!(a.estimate.verdict, Verdict::NeedsOffload);
    let plan = a.offload.as_ref().expect("plan");
    assert!(matches!(plan.chosen.split, SplitKind::DeviceMap { .. }));
    let c = &plan.chosen;
    // Every host byte crosses the link each token: decode is at most link ÷ host bytes.
    let bound = plan.host_to_device_bytes_per_s / c.host_bytes as f64;
    assert!(
        c.decode_tokens_per_s < bound,
        "{} ≥ {bound}",
        c.decode_tokens_per_s
    );
    // A measured faster link is used and makes it faster.
    let mut fast = q.clone();
    fast.device.host = HostLink {
        host_to_device_bytes_per_s: Some(50e9),
        ..HostLink::default()
    };
    let f = ask(&fast);
    let fp = f.offload.as_ref().expect("plan");
    assert_eq!(fp.host_to_device_bytes_per_s, 50e9);
    assert!(fp.chosen.decode_tokens_per_s > c.decode_tokens_per_s * 1.5);
}

#[test]
fn a_measured_host_bandwidth_replaces_the_assumption() {
    let q = question("llama-3.1-70b", "Q4_K_M", "rtx-4090", 64);
    let slow = ask(&q);
    let mut measured = q.clone();
    measured.device.host = HostLink {
        read_bandwidth_bytes_per_s: Some(110e9),
        ..HostLink::default()
    };
    let fast = ask(&measured);
    let (s, f) = (
        slow.offload.as_ref().expect("plan"),
        fast.offload.as_ref().expect("plan"),
    );
    assert_eq!(f.host_bandwidth_bytes_per_s, 110e9);
    assert!(f.host_bandwidth_basis.contains("measured"));
    assert!(f.chosen.decode_tokens_per_s > s.chosen.decode_tokens_per_s * 1.5);
}

#[test]
fn offload_settings_are_checked() {
    let forced = |model: &str, format: &str, gpu_layers, n_cpu_moe| Question {
        offload: OffloadSettings {
            gpu_layers,
            n_cpu_moe,
        },
        ..question(model, format, "rtx-4090", 64)
    };
    // Layers beyond the model (80 layers + the output layer).
    assert_eq!(
        setting_error(&forced("llama-3.1-70b", "Q4_K_M", Some(82), None)),
        Setting::GpuLayers
    );
    assert!(answer(&forced("llama-3.1-70b", "Q4_K_M", Some(81), None)).is_ok());
    // Experts on the host of a dense model.
    assert_eq!(
        setting_error(&forced("llama-3.1-70b", "Q4_K_M", None, Some(4))),
        Setting::NCpuMoe
    );
    // More expert layers than layers; both splits at once.
    assert_eq!(
        setting_error(&forced("qwen3-30b-a3b", "Q4_K_M", None, Some(49))),
        Setting::NCpuMoe
    );
    assert_eq!(
        setting_error(&forced("qwen3-30b-a3b", "Q4_K_M", Some(10), Some(4))),
        Setting::NCpuMoe
    );
    // A llama.cpp split in another runtime.
    let mut t = forced("llama-3.1-70b", "bf16", Some(10), None);
    t.runtime = Some(Runtime::TransformersCuda);
    assert_eq!(setting_error(&t), Setting::GpuLayers);
    // Host memory smaller than the split keeps there.
    let mut small = forced("qwen3-30b-a3b", "Q4_K_M", None, Some(48));
    small.host_memory_bytes = Some(8 * GIB);
    assert_eq!(setting_error(&small), Setting::HostMemory);
    let mut enough = small.clone();
    enough.host_memory_bytes = Some(32 * GIB);
    assert!(answer(&enough).is_ok());
    // On unified memory the host's part is what the GPU's working set leaves of RAM: the split
    // is what to change, not a host memory setting.
    let mac = Question {
        offload: OffloadSettings {
            gpu_layers: Some(0),
            n_cpu_moe: None,
        },
        ..question("llama-3.1-8b", "Q8_0", "m2-10c-16gb", 64)
    };
    assert_eq!(setting_error(&mac), Setting::GpuLayers);
}

#[test]
fn too_little_host_memory_does_not_fit_even_split() {
    let a = ask(&question("llama-3.1-70b", "Q4_K_M", "rtx-4090", 16));
    assert_eq!(a.estimate.verdict, Verdict::DoesNotFit);
    assert!(a.launch.is_none());
    assert_eq!(a.estimate.decode_tokens_per_s, 0.0);
}

#[test]
fn placement_from_the_tensor_groups_is_the_tensor_by_tensor_placement() {
    for model in [
        "qwen3-30b-a3b",
        "deepseek-v3",
        "llama-3.1-70b",
        "gemma-3-27b",
        "gpt-oss-20b",
    ] {
        let spec = model_catalog::find(model).unwrap_or_else(|e| panic!("{model}: {e}"));
        let groups = headroom_core::quant::ModelTensors::new(&spec);
        for format in [
            "Q4_K_M",
            "Q2_K",
            "IQ4_XS",
            "Q8_0",
            "bf16",
            "fp8",
            "awq-4bit-g128",
        ] {
            let f = format.parse().unwrap_or_else(|e| panic!("{format}: {e}"));
            let slow = PlacementBytes::new(&spec, &f);
            assert_eq!(groups.placement(&spec, &f), slow, "{model} {format}");
            assert_eq!(
                slow.total_bytes(),
                headroom_core::quant::weights_bytes(&spec, &f),
                "{model} {format}"
            );
        }
    }
}
