//! Regressions of hostile input (issue 17), each named after the bug: reports whose figures make
//! no physical sense, reports whose checks failed, configs and LoRA lists sized to exhaust
//! memory or time, and multi-device speeds that grew without bound.

use std::time::{Duration, Instant};

use headroom_core::answer::{Question, answer};
use headroom_core::config::model_from_config_json;
use headroom_core::limits::{MAX_CONFIG_JSON_BYTES, MAX_DEVICES, MAX_REPORT_JSON_BYTES};
use headroom_core::report::{BandwidthMetric, Metric, ProbeReport, Status, plausible};
use headroom_core::training::{MAX_LORA_LAYERS_SPEC_BYTES, parse_lora_layers};
use headroom_core::{CoreError, devices};
use serde_json::{Value, json};

const LAVAPIPE: &str = include_str!("data/reports/lavapipe-report.json");

/// Most time one hostile input may take to refuse (debug build, shared CI core).
const FAST: Duration = Duration::from_secs(2);

fn lavapipe_value() -> Value {
    serde_json::from_str(LAVAPIPE).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// The report `edit` makes of the lavapipe fixture, parsed.
fn edited(edit: impl FnOnce(&mut Value)) -> Result<ProbeReport, CoreError> {
    let mut value = lavapipe_value();
    edit(&mut value);
    ProbeReport::from_json(&value.to_string())
}

/// The first measurement named `name` in a report's JSON.
fn measurement<'a>(value: &'a mut Value, name: &str) -> &'a mut Value {
    value["stages"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .flat_map(|s| s["measurements"].as_array_mut().into_iter().flatten())
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the fixture"))
}

#[track_caller]
fn refused_naming(result: Result<ProbeReport, CoreError>, field: &str) {
    match result {
        Ok(_) => panic!("a report with an implausible `{field}` was accepted"),
        Err(err) => {
            let text = err.to_string();
            assert!(
                matches!(&err, CoreError::BadField { field: f, .. } if f.ends_with(field)),
                "{text}"
            );
            assert!(text.contains(field), "{text}");
        }
    }
}

#[test]
fn report_memory_of_2_pow_64_does_not_fit_everything() {
    refused_naming(
        edited(|v| v["adapters"][0]["device_local_memory_bytes"] = json!(u64::MAX)),
        "device_local_memory_bytes",
    );
    refused_naming(
        edited(|v| v["host"]["ram_bytes"] = json!(u64::MAX)),
        "host.ram_bytes",
    );
}

#[test]
fn report_bandwidth_of_1e308_or_zero_or_negative_is_refused() {
    for bad in [1e308, 0.0, -5.0e9, 1.0e15] {
        refused_naming(
            edited(|v| measurement(v, "bandwidth.read")["bytes_per_s"] = json!(bad)),
            "bytes_per_s",
        );
    }
    refused_naming(
        edited(|v| measurement(v, "gemm.f32")["flops_per_s"] = json!(1e300)),
        "flops_per_s",
    );
    // A failed measurement's figure is never used, so it is not judged either.
    let failed = edited(|v| {
        let m = measurement(v, "bandwidth.read");
        m["status"] = json!("failed");
        m["error"] = json!("wrong result");
        m["bytes_per_s"] = json!(0.0);
    });
    assert!(failed.is_ok(), "{failed:?}");
}

#[test]
fn fit_probe_ignores_a_measurement_whose_check_failed() {
    let fake = 4.0e12;
    let report = edited(|v| {
        let m = measurement(v, "bandwidth.read");
        m["verification"]["passed"] = json!(false);
        m["bytes_per_s"] = json!(fake);
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let device = report.measured_device();
    assert_ne!(device.read_bandwidth_bytes_per_s, Some(fake));
    let ignored: Vec<Metric> = report.unverified_measurements().map(|m| m.name).collect();
    assert_eq!(ignored, [Metric::Bandwidth(BandwidthMetric::Read)]);
    assert!(
        report
            .ok_measurements()
            .all(|m| m.verification.as_ref().is_none_or(|c| c.passed))
    );
    assert!(
        report
            .stages
            .iter()
            .flat_map(|s| &s.measurements)
            .any(|m| m.status == Status::Ok && m.bytes_per_s == Some(fake)),
        "the edit took"
    );
}

#[test]
fn report_larger_than_the_cap_is_refused_before_parsing() {
    let huge = " ".repeat(usize::try_from(MAX_REPORT_JSON_BYTES).unwrap_or(usize::MAX) + 1);
    let start = Instant::now();
    let err = ProbeReport::from_json(&huge).expect_err("too large");
    assert!(matches!(err, CoreError::TooLarge { .. }), "{err}");
    assert!(start.elapsed() < FAST);
}

#[test]
fn config_larger_than_the_cap_is_refused_before_parsing() {
    let huge = " ".repeat(usize::try_from(MAX_CONFIG_JSON_BYTES).unwrap_or(usize::MAX) + 1);
    let err = model_from_config_json("huge", &huge).expect_err("too large");
    assert!(err.to_string().contains("16 MiB"), "{err}");
}

/// A Qwen3-MoE config with `mlp_only_layers` of `n` entries.
fn qwen_moe_with_mlp_only_layers(n: usize) -> String {
    let mut config: Value =
        serde_json::from_str(&headroom_tests::fixture_config_text("Qwen3-30B-A3B"))
            .unwrap_or_else(|e| panic!("{e}"));
    config["mlp_only_layers"] = Value::Array((0..n).map(|i| json!(i % 48)).collect());
    config.to_string()
}

#[test]
fn mlp_only_layers_of_hundreds_of_thousands_of_entries_fails_fast() {
    let text = qwen_moe_with_mlp_only_layers(200_000);
    let start = Instant::now();
    let err = model_from_config_json("Qwen3-30B-A3B", &text).expect_err("too long a list");
    assert!(
        start.elapsed() < FAST,
        "took {:?} to refuse",
        start.elapsed()
    );
    let message = err.to_string();
    assert!(
        message.contains("mlp_only_layers") && message.contains("10000"),
        "{message}"
    );
    // A list of real length still works.
    assert!(model_from_config_json("Qwen3-30B-A3B", &qwen_moe_with_mlp_only_layers(4)).is_ok());
}

#[test]
fn lora_layers_list_of_repeated_ranges_stays_small_and_fast() {
    // Under the length cap: 0-9999 written thousands of times marks each layer once.
    let spec = "0-9999,".repeat(MAX_LORA_LAYERS_SPEC_BYTES / 8) + "5";
    let start = Instant::now();
    let layers = parse_lora_layers(&spec, 10_000)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    assert_eq!(layers.len(), 10_000);
    assert!(start.elapsed() < FAST, "took {:?}", start.elapsed());
    // Over it: refused at once, the value shown only in part.
    let long = "0,".repeat(MAX_LORA_LAYERS_SPEC_BYTES);
    let err = parse_lora_layers(&long, 32).expect_err("too long");
    let message = err.to_string();
    assert!(
        message.contains("bytes long") && message.len() < 400,
        "{message}"
    );
    assert_eq!(
        parse_lora_layers("3,1-2,2", 8).ok(),
        Some(Some(vec![1, 2, 3]))
    );
}

fn decode_on_devices(n: u32) -> Result<f64, CoreError> {
    let model = headroom_tests::fixture_model("Llama-3.1-8B");
    let device = devices::find("rtx-4090")?;
    let mut q = Question::new(model, device);
    q.device_count = n;
    answer(&q).map(|a| a.estimate.decode_tokens_per_s)
}

#[test]
fn devices_4096_is_refused_and_speed_grows_less_than_the_device_count() {
    assert!(decode_on_devices(4096).is_err());
    assert!(decode_on_devices(MAX_DEVICES + 1).is_err());
    assert!(decode_on_devices(MAX_DEVICES).is_ok());
    let one = decode_on_devices(1).unwrap_or_else(|e| panic!("{e}"));
    let mut last = one;
    for n in [2u32, 4, 8] {
        let speed = decode_on_devices(n).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            speed > last && speed < one * f64::from(n),
            "{n} devices: {speed} tokens/s, one: {one}"
        );
        last = speed;
    }
}

const H100: &str = include_str!("data/reports/h100-report.json");

#[test]
fn report_rates_far_above_the_named_devices_datasheet_are_refused() {
    let h100 = devices::find("h100-sxm").unwrap_or_else(|e| panic!("{e}"));
    let honest = ProbeReport::from_json(H100).unwrap_or_else(|e| panic!("{e}"));
    assert!(plausible::against_catalog(&honest.measured_device(), &h100).is_ok());
    // 60 TB/s passes the generic bound (100 TB/s) but is 18× an H100's datasheet.
    let mut value: Value = serde_json::from_str(H100).unwrap_or_else(|e| panic!("{e}"));
    measurement(&mut value, "bandwidth.read")["bytes_per_s"] = json!(60e12);
    let edited = ProbeReport::from_json(&value.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let err = plausible::against_catalog(&edited.measured_device(), &h100)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("read_bandwidth_bytes_per_s") && err.contains(&h100.name),
        "{err}"
    );
}
