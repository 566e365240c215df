//! Tests: the probe report — parsing, clear errors, and the measured device an estimate uses.

use headroom_core::CoreError;
use headroom_core::report::{ProbeReport, SCHEMA_VERSION, Stage, Status};

/// A `headroom probe --quick` report from lavapipe (Mesa's CPU Vulkan driver).
const LAVAPIPE: &str = include_str!("data/reports/lavapipe-report.json");

fn lavapipe() -> ProbeReport {
    ProbeReport::from_json(LAVAPIPE).unwrap_or_else(|e| panic!("fixture does not parse: {e}"))
}

#[test]
fn fixture_parses_and_round_trips() {
    let report = lavapipe();
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert!(report.complete);
    let again = ProbeReport::from_json(&report.to_json()).expect("round trip");
    assert_eq!(again, report);
}

#[test]
fn measured_device_takes_the_best_verified_figures() {
    let report = lavapipe();
    let device = report.measured_device();
    let adapter = report.adapter().expect("selected adapter");
    assert_eq!(device.name, adapter.name);
    assert!(
        device.unified_memory,
        "lavapipe is a CPU adapter: unified memory"
    );
    let best = |prefix: &str| {
        report
            .ok_measurements()
            .filter(|m| m.name.to_string().starts_with(prefix))
            .filter_map(|m| m.flops_per_s)
            .fold(0.0f64, f64::max)
    };
    assert_eq!(device.fp32_flops, Some(best("gemm.f32")));
    assert_eq!(device.fp16_flops, Some(best("gemm.f16")));
    let read = report
        .ok_measurements()
        .find(|m| m.name.to_string() == "bandwidth.read")
        .and_then(|m| m.bytes_per_s);
    assert_eq!(device.read_bandwidth_bytes_per_s, read);
    let allocation = report
        .stage(Stage::Allocation)
        .and_then(|s| s.allocation.as_ref())
        .expect("allocation stage");
    // The quick run's allocation stage stopped at its 64 MiB budget: a lower bound, not the
    // usable memory of a 24 GB machine.
    assert_eq!(
        allocation.stop_reason,
        headroom_core::report::AllocationStopReason::Budget
    );
    assert_eq!(device.usable_bytes, None);
    let why = device.usable_basis.as_deref().unwrap_or_default();
    assert!(why.contains("lower bound"), "{why}");
    assert_eq!(device.memory_bytes, report.host.ram_bytes);
    let q4 = report
        .ok_measurements()
        .find(|m| m.name.to_string() == "decode.q4_0")
        .and_then(|m| m.tokens_per_s);
    assert_eq!(device.decode_simulation_tokens_per_s, q4);
}

#[test]
fn regression_a_budget_capped_sweep_is_not_usable_memory() {
    // Issue: a `--budget 1GiB` sweep (or the browser's cap) became "usable 1.0 GiB" on a 24 GB
    // machine. Only a sweep stopped by the device itself measures usable memory.
    use headroom_core::report::AllocationStopReason;
    let mut report = lavapipe();
    let set_stop = |report: &mut ProbeReport, reason: AllocationStopReason| {
        for record in &mut report.stages {
            if let Some(a) = record.allocation.as_mut() {
                a.stop_reason = reason;
            }
        }
    };
    let clean = report
        .stage(Stage::Allocation)
        .and_then(|s| s.allocation.as_ref())
        .map(|a| a.largest_clean_bytes)
        .expect("allocation stage");
    for reason in [
        AllocationStopReason::Budget,
        AllocationStopReason::TimeLimit,
    ] {
        set_stop(&mut report, reason);
        assert_eq!(report.measured_device().usable_bytes, None, "{reason:?}");
    }
    for reason in [AllocationStopReason::Error, AllocationStopReason::Swapping] {
        set_stop(&mut report, reason);
        let device = report.measured_device();
        assert_eq!(device.usable_bytes, Some(clean), "{reason:?}");
        assert!(
            device
                .usable_basis
                .as_deref()
                .is_some_and(|b| b.contains("allocation stage")),
            "{:?}",
            device.usable_basis
        );
    }
}

#[test]
fn failed_measurements_never_count() {
    let mut report = lavapipe();
    for stage in &mut report.stages {
        for m in &mut stage.measurements {
            if m.name.to_string() == "gemm.f32" {
                m.status = Status::Failed;
            }
        }
    }
    assert_eq!(report.measured_device().fp32_flops, None);
}

#[test]
fn malformed_json_names_the_file_kind_and_position() {
    let err = ProbeReport::from_json("{\"schema_version\": 1,").expect_err("truncated");
    let text = err.to_string();
    assert!(matches!(err, CoreError::MalformedJson { .. }), "{text}");
    assert!(
        text.contains("probe report") && text.contains("line 1"),
        "{text}"
    );
}

#[test]
fn missing_or_future_schema_version_says_what_to_do() {
    let err = ProbeReport::from_json("{}").expect_err("no version");
    assert!(
        matches!(&err, CoreError::BadField { field, .. } if field == "schema_version"),
        "{err}"
    );
    let future = LAVAPIPE.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1);
    let err = ProbeReport::from_json(&future).expect_err("future version");
    let text = err.to_string();
    assert!(
        text.contains("99") && text.contains("update headroom"),
        "{text}"
    );
}

#[test]
fn a_missing_field_is_named() {
    let mut value: serde_json::Value = serde_json::from_str(LAVAPIPE).expect("json");
    value.as_object_mut().expect("object").remove("host");
    let err = ProbeReport::from_json(&value.to_string()).expect_err("no host");
    assert!(err.to_string().contains("`host`"), "{err}");
}

/// The full `headroom probe` on an NVIDIA H200 through Vulkan (driver 580.159.04).
const H200: &str = include_str!("data/reports/h200-report.json");

#[test]
fn h200_full_run_ran_end_to_end() {
    let report = ProbeReport::from_json(H200).unwrap_or_else(|e| panic!("H200 fixture: {e}"));
    assert!(report.complete);
    // The fixture predates the host_bandwidth and transfer stages (a report without them still
    // reads: the offload figures fall back to their stated assumptions).
    let newer = [Stage::HostBandwidth, Stage::Transfer];
    for stage in newer {
        assert!(
            report.stage(stage).is_none(),
            "{stage}: regenerate the test"
        );
    }
    for stage in Stage::ALL.into_iter().filter(|s| !newer.contains(s)) {
        let record = report
            .stage(stage)
            .unwrap_or_else(|| panic!("no {stage} stage"));
        assert_eq!(record.status, Status::Ok, "{stage}: {:?}", record.reason);
    }
    let device = report.measured_device();
    assert!(!device.unified_memory);
    // Datasheet: 141 GB HBM3e, 4.8 TB/s, 67 TFLOPS fp32 (FACTS.md); measured figures must sit
    // below those and within reach of them.
    let memory = device.memory_bytes.expect("device-local memory");
    assert!(
        memory > 130_000_000_000 && memory < 160_000_000_000,
        "{memory}"
    );
    let read = device.read_bandwidth_bytes_per_s.expect("read bandwidth");
    assert!(read > 2.0e12 && read < 4.8e12, "{read}");
    let fp32 = device.fp32_flops.expect("fp32");
    assert!(fp32 > 10e12 && fp32 < 67e12, "{fp32}");
    // Its allocation stage stopped at the 90% budget: the usable memory is the adapter's
    // device-local memory, and the answer says where it came from.
    assert_eq!(device.usable_bytes, None);
    let spec = headroom_core::devices::DeviceSpec::from_measured(&device);
    let usable = headroom_core::usable_memory::usable_memory(
        &spec,
        headroom_core::runtime::Runtime::TransformersCuda,
        None,
    );
    assert_eq!(usable.usable_bytes, memory);
    assert!(usable.basis.contains("device-local"), "{}", usable.basis);
    assert!(usable.basis.contains("lower bound"), "{}", usable.basis);
    let coop = report
        .ok_measurements()
        .find(|m| m.name.to_string() == "gemm.coop.f16.acc_f32")
        .expect("cooperative-matrix GEMM ran");
    assert_eq!(coop.accumulator.as_deref(), Some("f32"));
}

/// The parameters the front ends read (problem shapes, the decode simulation's model) read back
/// typed from real reports: what the probe writes under `report::params::key` is what
/// `Measurement::problem_shape` and `Measurement::decode_model` read.
#[test]
fn measurement_parameters_read_back_typed() {
    use headroom_core::report::params::ProblemShape;
    for (name, json) in [("lavapipe", LAVAPIPE), ("H200", H200)] {
        let report = ProbeReport::from_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut seen = [0usize; 3];
        for m in report.ok_measurements() {
            match m.name.stage() {
                Stage::Gemm => {
                    assert!(
                        matches!(m.problem_shape(), Some(ProblemShape::Gemm { m, .. }) if m > 0),
                        "{name} {}: {:?}",
                        m.name,
                        m.params
                    );
                    seen[0] += 1;
                }
                Stage::Attention => {
                    assert!(
                        matches!(m.problem_shape(), Some(ProblemShape::Attention { seq, head_dim, .. }) if seq > 0 && head_dim > 0),
                        "{name} {}: {:?}",
                        m.name,
                        m.params
                    );
                    seen[1] += 1;
                }
                Stage::Decode => {
                    let model = m
                        .decode_model()
                        .unwrap_or_else(|| panic!("{name} {}: {:?}", m.name, m.params));
                    assert!(model.model_params > 0 && model.hidden.is_some());
                    seen[2] += 1;
                }
                _ => {}
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{name}: {seen:?}");
    }
}

/// The full `headroom probe` on an NVIDIA H200 (Vulkan, driver 580.159.04) with the
/// host_bandwidth and transfer stages, and PyTorch's figures for the same machine in the same
/// lease (`tests/measure/host_reference.py`: a float32 sum over 2 GiB on 16 threads, and 2 GiB
/// copies between host and device, median of 5).
const H200_HOST: &str = include_str!("data/reports/h200-host-report.json");
const H200_HOST_REFERENCE: &str = include_str!("data/measured/h200-host-reference.json");

#[test]
fn host_bandwidth_and_transfer_held_to_pytorch_on_the_same_machine() {
    let report = ProbeReport::from_json(H200_HOST).unwrap_or_else(|e| panic!("fixture: {e}"));
    assert!(report.complete);
    for stage in Stage::ALL {
        let record = report
            .stage(stage)
            .unwrap_or_else(|| panic!("no {stage} stage"));
        assert_eq!(record.status, Status::Ok, "{stage}: {:?}", record.reason);
    }
    let reference: serde_json::Value =
        serde_json::from_str(H200_HOST_REFERENCE).unwrap_or_else(|e| panic!("reference: {e}"));
    let torch = |key: &str| {
        reference[key]["median"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in the reference"))
    };
    let device = report.measured_device();
    let host = device.host_read_bandwidth_bytes_per_s.expect("host read");
    let up = device.host_to_device_bytes_per_s.expect("upload");
    let down = device.device_to_host_bytes_per_s.expect("download");
    let ratio = host / torch("host_read_bytes_per_s");
    println!(
        "host read: probe {:.1} GB/s, torch {:.1} GB/s (ratio {ratio:.2}); upload: probe {:.1} \
         GB/s, torch pageable {:.1}, pinned {:.1}; download: probe {:.1} GB/s, torch pageable \
         {:.1}, pinned {:.1}",
        host / 1e9,
        torch("host_read_bytes_per_s") / 1e9,
        up / 1e9,
        torch("h2d_pageable_bytes_per_s") / 1e9,
        torch("h2d_pinned_bytes_per_s") / 1e9,
        down / 1e9,
        torch("d2h_pageable_bytes_per_s") / 1e9,
        torch("d2h_pinned_bytes_per_s") / 1e9,
    );
    // The host read is the same kind of all-core streaming sum: within 20% of PyTorch's.
    assert!((0.8..=1.2).contains(&ratio), "host read ratio {ratio}");
    // wgpu's upload and map-read go through a staging copy from pageable memory: below what
    // PyTorch reaches from pageable memory, far below its pinned copies (what llama.cpp's CUDA
    // backend uses for host weights).
    assert!(up <= torch("h2d_pageable_bytes_per_s"), "{up}");
    assert!(down <= torch("d2h_pageable_bytes_per_s"), "{down}");
    assert!(up < 0.2 * torch("h2d_pinned_bytes_per_s"), "{up}");
}

/// A report's host RAM (beside a discrete GPU) is the offload verdict's host memory when the
/// question gives none; a figure the question gives wins.
#[test]
fn a_reports_host_ram_is_the_offload_host_memory() {
    use headroom_core::answer::{Question, request};
    use headroom_core::devices::DeviceSpec;
    let report = ProbeReport::from_json(H200_HOST).unwrap_or_else(|e| panic!("fixture: {e}"));
    let ram = report
        .host
        .ram_bytes
        .expect("the report has the host's RAM");
    let measured = report.measured_device();
    assert_eq!(measured.host_ram_bytes, Some(ram));
    let device = DeviceSpec::from_measured(&measured);
    assert_eq!(device.host.ram_bytes, Some(ram));
    let model =
        headroom_core::model_catalog::find("llama-3.1-8b").unwrap_or_else(|e| panic!("{e}"));
    let mut q = Question::new(model, device);
    let req = request(&q).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(req.host_memory_bytes, Some(ram));
    q.host_memory_bytes = Some(64 << 30);
    let req = request(&q).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(req.host_memory_bytes, Some(64 << 30));
    // Unified memory: the RAM is the device's memory, not a host to offload to.
    let lavapipe = lavapipe().measured_device();
    assert!(lavapipe.unified_memory);
    assert_eq!(lavapipe.host_ram_bytes, None);
}
