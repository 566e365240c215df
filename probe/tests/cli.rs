//! End-to-end tests of `headroom fit`, `headroom models` and `headroom devices`: the table, the
//! JSON (keys and integer types), `--quant all`, every fixture model on the four reference
//! devices, and each kind of bad input (exit code 2 and one message naming the problem).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{data_dir, headroom, json, scratch, stderr, stdout, success};

/// The four machines issue #2 names: M2 16 GB, M3 Max 64 GB, RTX 4090, H100.
const REFERENCE_DEVICES: [&str; 4] = ["m2-10c-16gb", "m3-max-40c-64gb", "rtx-4090", "h100-sxm"];

/// Keys every `fit --json` object must have, byte counts among them.
const REQUIRED_KEYS: [&str; 19] = [
    "model",
    "params_total",
    "params_active",
    "quant",
    "context",
    "batch",
    "weights_bytes",
    "kv_cache_bytes",
    "activation_bytes",
    "overhead_bytes",
    "training_bytes",
    "total_bytes",
    "device",
    "usable_bytes",
    "fits",
    "verdict",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "assumptions",
];

/// Keys that must be non-negative JSON integers.
const INTEGER_KEYS: [&str; 12] = [
    "params_total",
    "params_active",
    "context",
    "batch",
    "weights_bytes",
    "kv_cache_bytes",
    "activation_bytes",
    "overhead_bytes",
    "training_bytes",
    "total_bytes",
    "usable_bytes",
    "per_device_bytes",
];

fn config(name: &str) -> String {
    data_dir()
        .join("hf-configs")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

/// The fixtures whose checkpoints were counted: the models `param_counts.json` names (the other
/// configs in `hf-configs` are held to transformers' counts by the workspace's tests).
fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = param_counts()
        .as_object()
        .expect("param_counts.json is an object")
        .keys()
        .filter(|name| !name.starts_with('_'))
        .cloned()
        .collect();
    names.sort();
    names
}

fn param_counts() -> Value {
    let text =
        std::fs::read_to_string(data_dir().join("hf-configs/param_counts.json")).expect("counts");
    serde_json::from_str(&text).expect("param_counts.json")
}

/// Exit code 2, nothing on stdout, an `error:` message holding every needle. `one_line` for our
/// own messages (clap's usage errors add a usage block).
fn assert_bad_input(args: &[&str], needles: &[&str], one_line: bool) {
    let out = headroom(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: exit code; stderr:\n{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?}: stdout not empty:\n{}",
        stdout(&out)
    );
    assert!(err.starts_with("error: "), "{args:?}: stderr:\n{err}");
    if one_line {
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line; stderr:\n{err}"
        );
    }
    assert!(!err.contains("panicked"), "{args:?}: panic:\n{err}");
    for needle in needles {
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: `{needle}` missing from stderr:\n{err}"
        );
    }
}

fn check_fit_object(obj: &Value) {
    for key in REQUIRED_KEYS {
        assert!(obj.get(key).is_some(), "key `{key}` missing:\n{obj:#}");
    }
    for key in INTEGER_KEYS {
        assert!(
            obj[key].is_u64(),
            "`{key}` is not a non-negative integer: {}",
            obj[key]
        );
    }
    let sum: u64 = [
        "weights_bytes",
        "kv_cache_bytes",
        "activation_bytes",
        "overhead_bytes",
        "training_bytes",
    ]
    .iter()
    .map(|k| obj[k].as_u64().unwrap_or(0))
    .sum();
    assert_eq!(
        obj["total_bytes"].as_u64(),
        Some(sum),
        "total is the sum:\n{obj:#}"
    );
    let verdict = obj["verdict"].as_str().expect("verdict is a string");
    let fits = obj["fits"].as_bool().expect("fits is a bool");
    assert!(
        ["fits", "fits_tightly", "needs_offload", "does_not_fit"].contains(&verdict),
        "verdict {verdict}"
    );
    assert_eq!(
        fits,
        verdict == "fits" || verdict == "fits_tightly",
        "{obj:#}"
    );
    assert!(obj["decode_tokens_per_s"].is_number() || obj["decode_tokens_per_s"].is_null());
    let assumptions = obj["assumptions"].as_array().expect("assumptions array");
    assert!(!assumptions.is_empty(), "assumptions must be stated");
    assert!(assumptions.iter().all(Value::is_string));
}

#[test]
fn every_fixture_on_every_reference_device() {
    let counts = param_counts();
    let names = fixture_names();
    assert!(names.len() >= 16, "fixtures: {names:?}");
    let mut slowest = (Duration::ZERO, String::new());
    let mut total = Duration::ZERO;
    for name in &names {
        for device in REFERENCE_DEVICES {
            let path = config(name);
            let start = Instant::now();
            let out = headroom(&["fit", &path, "--device", device, "--json"]);
            let took = start.elapsed();
            total += took;
            if took > slowest.0 {
                slowest = (took, format!("{name} on {device}"));
            }
            let obj = json(&out);
            check_fit_object(&obj);
            assert_eq!(obj["model"], name.as_str());
            assert_eq!(
                obj["params_total"], counts[name]["params_total"],
                "{name}: params_total"
            );
            if let Some(active) = counts[name].get("params_active") {
                assert_eq!(&obj["params_active"], active, "{name}: params_active");
            }
            assert_eq!(obj["training_bytes"], 0, "inference has no training memory");
            assert_eq!(obj["batch"], 1);
        }
    }
    // Timing is reported, not asserted (a loaded CI machine must not fail the suite).
    eprintln!(
        "fit timing: {} runs, mean {:?}, slowest {:?} ({})",
        names.len() * REFERENCE_DEVICES.len(),
        total / (names.len() * REFERENCE_DEVICES.len()) as u32,
        slowest.0,
        slowest.1
    );
}

#[test]
fn table_shows_components_verdict_and_assumptions() {
    let text = success(&headroom(&[
        "fit",
        &config("Llama-3.1-8B"),
        "--device",
        "rtx-4090",
    ]));
    for needle in [
        "Llama-3.1-8B",
        "8,030,261,248 parameters",
        "component",
        "weights",
        "KV cache",
        "activations",
        "runtime overhead",
        "total",
        "usable",
        "verdict: ",
        "tokens/s decode",
        "longest context that fits",
        "best format that fits",
        "assumptions:",
        "context 4,096 tokens",
    ] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
    // Inference has no training row.
    assert!(!text.contains("\ntraining "), "{text}");
}

#[test]
fn json_is_one_object_with_integer_bytes() {
    let obj = json(&headroom(&[
        "fit",
        &config("Llama-3.1-8B"),
        "--device",
        "h100-sxm",
        "--quant",
        "Q4_K_M",
        "--context",
        "8192",
        "--batch",
        "2",
        "--json",
    ]));
    assert!(obj.is_object());
    check_fit_object(&obj);
    assert_eq!(obj["context"], 8192);
    assert_eq!(obj["batch"], 2);
    assert_eq!(obj["quant"], "Q4_K_M");
    assert_eq!(obj["device_id"], "h100-sxm");
    // 8B at Q4_K_M is ~4.6 GiB: fits an 80 GB H100 easily.
    assert_eq!(obj["verdict"], "fits");
}

#[test]
fn default_context_is_4096_not_the_maximum() {
    let obj = json(&headroom(&[
        "fit",
        &config("Llama-3.1-8B"),
        "--device",
        "rtx-4090",
        "--json",
    ]));
    assert_eq!(obj["context"], 4096, "max_position_embeddings is 131072");
}

#[test]
fn kv_cache_grows_with_context_and_batch() {
    let at = |context: &str, batch: &str| {
        json(&headroom(&[
            "fit",
            &config("Llama-3.1-8B"),
            "--device",
            "h100-sxm",
            "--context",
            context,
            "--batch",
            batch,
            "--json",
        ]))["kv_cache_bytes"]
            .as_u64()
            .expect("kv bytes")
    };
    let base = at("4096", "1");
    assert!(base > 0);
    assert_eq!(
        at("8192", "1"),
        2 * base,
        "KV cache is linear in context for full attention"
    );
    assert_eq!(at("4096", "2"), 2 * base, "KV cache is linear in batch");
}

#[test]
fn quant_all_puts_formats_side_by_side() {
    let text = success(&headroom(&[
        "fit",
        &config("Llama-3.1-8B"),
        "--device",
        "m2-10c-16gb",
        "--quant",
        "all",
    ]));
    for needle in [
        "format",
        "bpw",
        "weights",
        "total",
        "verdict",
        "decode tok/s",
        "Q4_K_M",
        "Q8_0",
    ] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
    let rows = text.lines().filter(|l| l.contains(" GiB ")).count();
    assert!(rows >= 10, "expected a row per format:\n{text}");
}

#[test]
fn quant_all_json_is_an_array_of_fit_objects() {
    let value = json(&headroom(&[
        "fit",
        &config("Qwen2.5-7B"),
        "--device",
        "rtx-4090",
        "--quant",
        "all",
        "--json",
    ]));
    let items = value.as_array().expect("array");
    assert!(items.len() >= 10, "{} formats", items.len());
    for item in items {
        check_fit_object(item);
    }
    let quants: Vec<&str> = items.iter().filter_map(|i| i["quant"].as_str()).collect();
    let mut unique = quants.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), quants.len(), "one row per format: {quants:?}");
    // Fewer bits, fewer weight bytes: fp32 is the largest, and the smallest is far below fp16.
    let weights = |q: &str| {
        items
            .iter()
            .find(|i| {
                i["quant"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(q))
            })
            .and_then(|i| i["weights_bytes"].as_u64())
    };
    let max = items
        .iter()
        .filter_map(|i| i["weights_bytes"].as_u64())
        .max();
    if let Some(f32_bytes) = weights("fp32").or_else(|| weights("f32")) {
        assert_eq!(Some(f32_bytes), max);
    }
}

#[test]
fn moe_model_reports_active_parameters() {
    let counts = param_counts();
    let obj = json(&headroom(&[
        "fit",
        &config("Mixtral-8x7B-v0.1"),
        "--device",
        "h100-sxm",
        "--json",
    ]));
    assert_eq!(
        obj["params_active"],
        counts["Mixtral-8x7B-v0.1"]["params_active"]
    );
    assert!(obj["params_active"].as_u64() < obj["params_total"].as_u64());
}

#[test]
fn training_modes_report_training_memory() {
    for mode in ["lora", "qlora", "full"] {
        let obj = json(&headroom(&[
            "fit",
            &config("Llama-3.2-1B"),
            "--device",
            "h100-sxm",
            "--mode",
            mode,
            "--context",
            "2048",
            "--json",
        ]));
        check_fit_object(&obj);
        assert!(obj["training_bytes"].as_u64() > Some(0), "{mode}: {obj:#}");
        let shown = obj["mode"].as_str().expect("mode");
        assert!(shown.starts_with(mode), "{mode}: mode {shown}");
    }
    let text = success(&headroom(&[
        "fit",
        &config("Llama-3.2-1B"),
        "--device",
        "h100-sxm",
        "--mode",
        "qlora",
        "--checkpointing",
    ]));
    assert!(text.contains("training"), "{text}");
}

#[test]
fn several_devices_split_the_memory() {
    let one = json(&headroom(&[
        "fit",
        &config("Llama-3.1-70B"),
        "--device",
        "rtx-4090",
        "--json",
    ]));
    let four = json(&headroom(&[
        "fit",
        &config("Llama-3.1-70B"),
        "--device",
        "rtx-4090",
        "--devices",
        "4",
        "--json",
    ]));
    assert!(four["per_device_bytes"].as_u64() < one["per_device_bytes"].as_u64());
    assert_eq!(
        one["fits"], false,
        "70B in bf16 does not fit one 24 GB card"
    );
}

#[test]
fn catalog_name_and_folder_work() {
    let obj = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--json",
    ]));
    check_fit_object(&obj);
    // A folder holding config.json is read like the file; the name is the folder's.
    let dir = scratch("cli-folder");
    let folder = dir.join("My-Model");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::copy(config("Qwen2.5-0.5B"), folder.join("config.json")).expect("copy");
    let obj = json(&headroom(&[
        "fit",
        &folder.display().to_string(),
        "--device",
        "rtx-4090",
        "--json",
    ]));
    assert_eq!(obj["model"], "My-Model");
    assert_eq!(
        obj["params_total"],
        param_counts()["Qwen2.5-0.5B"]["params_total"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn models_lists_the_catalog() {
    let text = success(&headroom(&["models"]));
    assert!(text.lines().count() > 40, "at least 40 models:\n{text}");
    let all = json(&headroom(&["models", "--json"]));
    let items = all.as_array().expect("array");
    assert!(items.len() >= 40);
    let filtered = json(&headroom(&["models", "qwen", "--json"]));
    let filtered = filtered.as_array().expect("array");
    assert!(!filtered.is_empty() && filtered.len() < items.len());
    assert_bad_input(
        &["models", "no-such-model-zzz"],
        &["no-such-model-zzz", "headroom models"],
        true,
    );
}

#[test]
fn devices_lists_the_catalog() {
    let text = success(&headroom(&["devices"]));
    for id in REFERENCE_DEVICES {
        assert!(text.contains(id), "`{id}` missing:\n{text}");
    }
    let all = json(&headroom(&["devices", "--json"]));
    let items = all.as_array().expect("array");
    for item in items {
        assert!(item["memory_bytes"].is_u64(), "{item}");
        assert!(item["id"].is_string());
    }
    let nvidia = json(&headroom(&["devices", "rtx", "--json"]));
    let nvidia = nvidia.as_array().expect("array");
    assert!(!nvidia.is_empty() && nvidia.len() < items.len());
    assert_bad_input(
        &["devices", "no-such-gpu-zzz"],
        &["no-such-gpu-zzz", "headroom devices"],
        true,
    );
}

// ---- bad input: exit 2 and one message naming the problem and what to do ----

#[test]
fn missing_file_is_bad_input() {
    assert_bad_input(
        &["fit", "does/not/exist/config.json", "--device", "rtx-4090"],
        &["does/not/exist/config.json", "no such file"],
        true,
    );
}

#[test]
fn unreadable_file_is_bad_input() {
    let dir = scratch("cli-bin");
    let file = dir.join("config.json");
    std::fs::write(&file, [0xff, 0xfe, 0x00, 0x80]).expect("write");
    assert_bad_input(
        &["fit", &file.display().to_string(), "--device", "rtx-4090"],
        &["cannot read", "config.json"],
        true,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn folder_without_config_is_bad_input() {
    let dir = scratch("cli-empty");
    assert_bad_input(
        &["fit", &dir.display().to_string(), "--device", "rtx-4090"],
        &["has no config.json"],
        true,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_json_is_bad_input() {
    let path = data_dir()
        .join("bad-configs/malformed.json")
        .display()
        .to_string();
    assert_bad_input(
        &["fit", &path, "--device", "rtx-4090"],
        &["malformed.json", "JSON"],
        true,
    );
}

#[test]
fn unsupported_architecture_is_bad_input() {
    let path = data_dir()
        .join("bad-configs/unknown-arch.json")
        .display()
        .to_string();
    assert_bad_input(
        &["fit", &path, "--device", "rtx-4090"],
        &["unknown-arch.json", "model_type", "llama"],
        true,
    );
}

#[test]
fn unknown_model_is_bad_input() {
    assert_bad_input(
        &["fit", "no-such-model-zzz", "--device", "rtx-4090"],
        &["unknown model", "no-such-model-zzz", "headroom models"],
        true,
    );
}

#[test]
fn unknown_device_is_bad_input() {
    assert_bad_input(
        &["fit", "llama-3.1-8b", "--device", "no-such-gpu-zzz"],
        &["no-such-gpu-zzz", "headroom devices"],
        true,
    );
}

#[test]
fn unknown_format_is_bad_input() {
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--quant",
            "Q9_Z",
        ],
        &["Q9_Z", "--quant"],
        true,
    );
}

#[test]
fn unknown_runtime_is_bad_input() {
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--runtime",
            "tensorflow",
        ],
        &["tensorflow", "--runtime"],
        true,
    );
}

#[test]
fn impossible_numbers_are_bad_input() {
    for (flag, value) in [
        ("--context", "0"),
        ("--context", "1000000000000"),
        ("--batch", "0"),
        ("--batch", "-3"),
        ("--batch", "10000000"),
        ("--devices", "0"),
        ("--devices", "100000"),
        ("--lora-rank", "0"),
        ("--context", "lots"),
    ] {
        assert_bad_input(
            &["fit", "llama-3.1-8b", "--device", "rtx-4090", flag, value],
            &[flag, value],
            false,
        );
    }
}

#[test]
fn bad_enum_values_are_bad_input() {
    for (flag, value) in [
        ("--mode", "pretrain"),
        ("--kv-dtype", "int3"),
        ("--optimizer", "lion"),
    ] {
        assert_bad_input(
            &["fit", "llama-3.1-8b", "--device", "rtx-4090", flag, value],
            &[flag, value],
            false,
        );
    }
}

#[test]
fn training_flag_without_training_is_bad_input() {
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--checkpointing",
        ],
        &["--checkpointing", "--mode"],
        true,
    );
}

#[test]
fn bad_lora_target_is_bad_input() {
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--mode",
            "lora",
            "--lora-targets",
            "q,v,embed",
        ],
        &["embed"],
        true,
    );
}

#[test]
fn arguments_are_checked_before_any_work() {
    // A bad number is reported even though the model does not exist: no file or network access
    // happens before the arguments are valid.
    assert_bad_input(
        &[
            "fit",
            "does/not/exist.json",
            "--device",
            "rtx-4090",
            "--batch",
            "0",
        ],
        &["--batch"],
        false,
    );
}

#[test]
fn missing_probe_report_is_bad_input() {
    assert_bad_input(
        &["fit", "llama-3.1-8b", "--probe", "no-such-report.json"],
        &["no-such-report.json", "headroom probe"],
        true,
    );
}

#[test]
fn malformed_probe_report_is_bad_input() {
    let path = data_dir()
        .join("bad-configs/malformed.json")
        .display()
        .to_string();
    assert_bad_input(
        &["fit", "llama-3.1-8b", "--probe", &path],
        &["malformed.json"],
        true,
    );
}

#[test]
fn unreachable_hub_is_bad_input() {
    // HF_ENDPOINT points at a closed port on loopback (see `headroom`).
    assert_bad_input(
        &["fit", "someone/some-model", "--device", "rtx-4090"],
        &["could not reach", "someone/some-model", "config.json"],
        true,
    );
}

#[test]
fn wired_limit_raises_apple_usable_memory() {
    let usable = |extra: &[&str]| {
        let mut args = vec![
            "fit",
            "llama-3.1-8b",
            "--device",
            "m3-max-40c-64gb",
            "--json",
        ];
        args.extend_from_slice(extra);
        json(&headroom(&args))["usable_bytes"]
            .as_u64()
            .expect("usable")
    };
    let default = usable(&[]);
    let raised = usable(&["--wired-limit-mb", "57344"]);
    assert!(
        default < 64 << 30,
        "Metal's working set is a share of RAM, not all of it"
    );
    assert_eq!(
        raised,
        57344 << 20,
        "the override replaces the working-set rule"
    );
}

#[test]
fn runtime_choice_is_followed() {
    let obj = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--runtime",
        "vllm:0.85",
        "--json",
    ]));
    check_fit_object(&obj);
    assert_eq!(obj["runtime"], "vllm:0.85");
}

#[test]
fn training_comparison_groups_skipped_formats() {
    let text = success(&headroom(&[
        "fit",
        "llama-3.2-1b",
        "--device",
        "rtx-4090",
        "--mode",
        "lora",
        "--quant",
        "all",
    ]));
    let skipped: Vec<&str> = text.lines().filter(|l| l.starts_with("skipped ")).collect();
    // GGUF types cannot be trained; they share one reason and one line.
    assert!(!skipped.is_empty(), "{text}");
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("Q4_K_M") && l.contains("Q8_0")),
        "{text}"
    );
    assert!(text.contains("bf16"), "{text}");
}

// ---- --probe: a report from `headroom probe` replaces catalog figures ----

fn report(name: &str) -> String {
    data_dir().join("reports").join(name).display().to_string()
}

#[test]
fn probe_report_alone_is_the_device() {
    let obj = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--probe",
        &report("h100-report.json"),
        "--json",
    ]));
    check_fit_object(&obj);
    assert_eq!(obj["device_id"], "measured");
    assert_eq!(obj["device"], "NVIDIA H100 80GB HBM3");
    assert_eq!(
        obj["usable_bytes"].as_u64(),
        Some(85_520_809_984),
        "device-local memory"
    );
    let assumptions = obj["assumptions"].to_string();
    assert!(
        assumptions.contains("measured"),
        "measured bandwidth must be named: {assumptions}"
    );
    // The measured 3.0 TB/s read bandwidth replaces the datasheet's figure: decode speed changes.
    let catalog = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--json",
    ]));
    assert_ne!(obj["decode_tokens_per_s"], catalog["decode_tokens_per_s"]);
    let text = success(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--probe",
        &report("h100-report.json"),
    ]));
    assert!(text.contains("device figures: probe report"), "{text}");
}

#[test]
fn probe_report_refines_a_catalog_device() {
    let out = headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--probe",
        &report("h100-report.json"),
        "--json",
    ]);
    let obj = json(&out);
    assert_eq!(obj["device_id"], "h100-sxm");
    assert!(
        obj["assumptions"].to_string().contains("measured"),
        "{obj:#}"
    );
    assert!(
        stderr(&out).is_empty(),
        "same device, no note: {}",
        stderr(&out)
    );
    // A report from another adapter is used, but the user is told.
    let out = headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--probe",
        &report("no-memory-report.json"),
    ]);
    success(&out);
    assert!(stderr(&out).contains("llvmpipe"), "{}", stderr(&out));
}

#[test]
fn regression_a_budget_capped_probe_is_not_the_usable_memory() {
    // The H200 report's allocation stage stopped at its 90% budget: a lower bound. The usable
    // memory is the adapter's device-local memory, and the answer says where it came from.
    let path = report("h200-report.json");
    let obj = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--probe",
        &path,
        "--json",
    ]));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let adapter = &report["adapters"][report["selected_adapter"].as_u64().expect("index") as usize];
    assert_eq!(
        obj["usable_bytes"], adapter["device_local_memory_bytes"],
        "{obj:#}"
    );
    let assumptions = obj["assumptions"].to_string();
    assert!(assumptions.contains("device-local"), "{assumptions}");
    assert!(assumptions.contains("lower bound"), "{assumptions}");
}

#[test]
fn regression_qlora_checkpoints_by_default() {
    // llama-3.1-8b, QLoRA, RTX 4090, 4k: fits with peft's default checkpointing; without it,
    // `--no-checkpointing`, it does not.
    let on = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--mode",
        "qlora",
        "--context",
        "4096",
        "--json",
    ]));
    assert_eq!(on["fits"], true, "{on:#}");
    assert!(
        on["mode"].as_str().is_some_and(|m| m.contains(":ckpt")),
        "{on:#}"
    );
    let off = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--mode",
        "qlora",
        "--context",
        "4096",
        "--no-checkpointing",
        "--json",
    ]));
    assert_eq!(off["fits"], false, "{off:#}");
    assert!(
        off["mode"].as_str().is_some_and(|m| m.contains(":no-ckpt")),
        "{off:#}"
    );
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--no-checkpointing",
        ],
        &["--no-checkpointing", "--mode"],
        true,
    );
}

#[test]
fn regression_no_speed_when_it_cannot_run_and_no_device_count_for_a_laptop() {
    let obj = json(&headroom(&[
        "fit",
        "llama-3.1-70b",
        "--device",
        "m2-10c-16gb",
        "--quant",
        "bf16",
        "--json",
    ]));
    assert_eq!(obj["verdict"], "does_not_fit", "{obj:#}");
    assert_eq!(obj["decode_tokens_per_s"].as_f64(), Some(0.0));
    assert!(obj["devices_needed"].is_null(), "{obj:#}");
}

#[test]
fn probe_report_without_memory_needs_a_device() {
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--probe",
            &report("no-memory-report.json"),
        ],
        &["no-memory-report.json", "how much memory", "--device"],
        true,
    );
}

#[test]
fn probe_report_from_a_newer_schema_is_bad_input() {
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--probe",
            &report("future-report.json"),
        ],
        &["future-report.json", "schema_version"],
        true,
    );
}

#[test]
fn table_and_json_agree() {
    let args = [
        "fit",
        "gemma-2-9b",
        "--device",
        "rtx-4090",
        "--quant",
        "Q5_K_M",
        "--context",
        "8192",
    ];
    let text = success(&headroom(&args));
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let obj = json(&headroom(&with_json));
    // Each component row ends with its exact byte count, thousands separated.
    let bytes_of = |label: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` row:\n{text}"));
        let last = line.split_whitespace().last().expect("cells");
        last.replace(',', "")
            .parse()
            .unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    for (label, key) in [
        ("weights", "weights_bytes"),
        ("KV cache", "kv_cache_bytes"),
        ("activations", "activation_bytes"),
        ("runtime overhead", "overhead_bytes"),
        ("total", "total_bytes"),
        ("usable", "usable_bytes"),
    ] {
        assert_eq!(Some(bytes_of(label)), obj[key].as_u64(), "{label} vs {key}");
    }
    let verdict_line = text
        .lines()
        .find(|l| l.starts_with("verdict: "))
        .expect("verdict");
    let expected = obj["verdict"].as_str().expect("verdict").replace('_', " ");
    assert!(
        verdict_line.starts_with(&format!("verdict: {expected}")),
        "{verdict_line}"
    );
}

#[test]
fn full_fine_tune_of_a_quantized_checkpoint_defaults_to_bf16() {
    // gpt-oss ships MXFP4 experts; a full fine-tune trains 16-bit weights.
    let inference = json(&headroom(&[
        "fit",
        &config("gpt-oss-20b"),
        "--device",
        "h100-sxm",
        "--json",
    ]));
    assert_eq!(inference["quant"], "mxfp4");
    let full = json(&headroom(&[
        "fit",
        &config("gpt-oss-20b"),
        "--device",
        "h100-sxm",
        "--mode",
        "full",
        "--json",
    ]));
    assert_eq!(full["quant"], "bf16");
}

/// Pure bf16 (a model loaded in bf16 handed to AdamW) keeps no fp32 master copy and its moments
/// in bf16: 8 bytes per parameter less than bf16 mixed precision (4 master + 4 of the moments),
/// plus at most the 2 bytes per parameter of the smaller optimizer-step temporary.
#[test]
fn full_fine_tune_in_pure_bf16_can_be_asked_for() {
    let fit = |precision: &str| {
        json(&headroom(&[
            "fit",
            "llama-3.2-1b",
            "--device",
            "h100-sxm",
            "--mode",
            "full",
            "--precision",
            precision,
            "--context",
            "1024",
            "--json",
        ]))
    };
    let (pure, mixed) = (fit("bf16"), fit("bf16-mixed"));
    assert!(
        pure["mode"]
            .as_str()
            .is_some_and(|m| m.contains("bf16") && !m.contains("mixed")),
        "{}",
        pure["mode"]
    );
    let params = pure["params_total"].as_u64().expect("params_total");
    let saved = mixed["training_bytes"].as_u64().expect("training_bytes")
        - pure["training_bytes"].as_u64().expect("training_bytes");
    assert!(
        (8 * params..=10 * params).contains(&saved),
        "pure bf16 saves {saved} bytes over bf16-mixed for {params} parameters"
    );
}

/// bitsandbytes' paged optimizers keep their state in CUDA managed memory, which the driver pages
/// out to host RAM when the GPU is full: the GPU does not need it, and the answer says where it is.
#[test]
fn paged_optimizer_state_is_not_counted_on_the_gpu() {
    let fit = |optimizer: &str| {
        json(&headroom(&[
            "fit",
            "llama-3.2-1b",
            "--device",
            "h100-sxm",
            "--mode",
            "full",
            "--precision",
            "bf16-mixed",
            "--optimizer",
            optimizer,
            "--context",
            "1024",
            "--json",
        ]))
    };
    let (adamw, paged, paged8) = (fit("adamw"), fit("paged-adamw"), fit("paged-adam8bit"));
    let params = adamw["params_total"].as_u64().expect("params_total");
    let bytes = |v: &serde_json::Value| v["training_bytes"].as_u64().expect("training_bytes");
    // AdamW: 8 B/param of fp32 moments on the GPU; paged: none there (8-bit or 32-bit alike).
    assert!(bytes(&adamw) - bytes(&paged) >= 8 * params);
    assert_eq!(bytes(&paged), bytes(&paged8));
    let said = paged["assumptions"].to_string();
    assert!(
        said.contains("managed memory") && said.contains("host RAM"),
        "{said}"
    );
}

#[test]
fn absurd_or_incomplete_config_is_bad_input() {
    let path = data_dir()
        .join("bad-configs/absurd-hidden-size.json")
        .display()
        .to_string();
    assert_bad_input(
        &["fit", &path, "--device", "rtx-4090"],
        &["absurd-hidden-size.json", "hidden_size"],
        true,
    );
    let path = data_dir()
        .join("bad-configs/missing-layers.json")
        .display()
        .to_string();
    assert_bad_input(
        &["fit", &path, "--device", "rtx-4090"],
        &["missing-layers.json", "num_hidden_layers", "missing"],
        true,
    );
}

#[test]
fn apple_usable_memory_is_a_share_of_ram() {
    let all = json(&headroom(&["devices", "m2 16gb", "--json"]));
    let m2 = all
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == "m2-10c-16gb"))
        .expect("m2-10c-16gb listed");
    let memory = m2["memory_bytes"].as_u64().expect("memory");
    let usable = m2["usable_bytes"].as_u64().expect("usable");
    assert!(
        usable < memory,
        "Metal's working set is below RAM: {usable} vs {memory}"
    );
}

#[test]
fn context_accepts_k_suffix_and_max() {
    let at = |context: &str| {
        json(&headroom(&[
            "fit",
            "llama-3.1-8b",
            "--device",
            "h100-sxm",
            "--context",
            context,
            "--json",
        ]))["context"]
            .as_u64()
    };
    assert_eq!(at("32k"), Some(32_768));
    assert_eq!(
        at("max"),
        Some(131_072),
        "Llama-3.1's max_position_embeddings"
    );
}

#[test]
fn lora_layers_adapt_only_the_named_layers() {
    let run = |layers: Option<&str>| {
        let mut args = vec![
            "fit",
            "llama-3.1-8b",
            "--device",
            "h100-sxm",
            "--mode",
            "lora",
            "--context",
            "1024",
            "--json",
        ];
        if let Some(l) = layers {
            args.extend(["--lora-layers", l]);
        }
        json(&headroom(&args))
    };
    let all = run(None);
    let last8 = run(Some("last:8"));
    check_fit_object(&last8);
    let listed: Vec<u64> = last8["lora_layers"]
        .as_array()
        .expect("lora_layers array")
        .iter()
        .map(|v| v.as_u64().expect("index"))
        .collect();
    assert_eq!(listed, (24..32).collect::<Vec<u64>>());
    assert_eq!(all["lora_layers"].as_array().map(Vec::len), Some(32));
    // Fewer adapted layers: less training memory (adapters and kept activations).
    assert!(
        last8["training_bytes"].as_u64() < all["training_bytes"].as_u64(),
        "{last8:#}"
    );
    // `0-7` and `first:8` name the same layers; `all` is the default.
    assert_eq!(
        run(Some("0-7"))["lora_layers"],
        run(Some("first:8"))["lora_layers"]
    );
    assert_eq!(run(Some("all"))["training_bytes"], all["training_bytes"]);
    // The table says which layers carry adapters.
    let text = success(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--mode",
        "qlora",
        "--lora-layers",
        "last:8",
    ]));
    assert!(
        text.contains("qlora on layers last 8 of 32 (24-31)"),
        "{text}"
    );
    assert!(text.contains("layers_to_transform"), "{text}");
}

#[test]
fn bad_lora_layers_are_bad_input() {
    let base = [
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--mode",
        "lora",
        "--lora-layers",
    ];
    for (spec, needle) in [
        ("32", "32 layers"),
        ("last:0", "1 to 32"),
        ("last:40", "1 to 32"),
        ("9-3", "backwards"),
        ("top", "top"),
        ("1,,2", "empty"),
    ] {
        let mut args = base.to_vec();
        args.push(spec);
        assert_bad_input(&args, &["--lora-layers", needle], true);
    }
    // Only for LoRA modes.
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--lora-layers",
            "last:8",
        ],
        &["--lora-layers", "--mode lora or qlora"],
        true,
    );
}

#[test]
fn lora_advice_names_the_last_k_layers() {
    let text = success(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--mode",
        "lora",
        "--context",
        "2048",
    ]));
    assert!(text.contains("LoRA on the last k layers:"), "{text}");
    assert!(text.contains("stay as pretrained"), "{text}");
}

/// JSON equality, with floats equal to the last bit that printing and re-reading keeps
/// (serde_json's default float parser may land one unit in the last place away).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The CLI (`headroom fit --json`) and the site (`headroom_web::catalog::calculate`, what the
/// calculator renders) give identical answers: same estimate, longest context, best format and
/// training advice, or both refuse, for a grid of catalog models × devices × modes × formats.
#[test]
fn cli_and_site_give_identical_answers() {
    use headroom_web::catalog::{
        CalcSettings, DeviceChoice, ModelSource, calculate, catalog_model,
    };
    let models = [
        "llama-3.1-8b",
        "qwen3-30b-a3b",
        "gpt-oss-20b",
        "gemma-3-27b",
        "mistral-7b-v0.3",
    ];
    let devices = ["rtx-4090", "h100-sxm", "m2-10c-16gb"];
    let modes = ["inference", "lora", "qlora", "full"];
    let formats = ["", "bf16", "Q4_K_M", "nf4+dq", "mlx-4bit-g64"];
    let (mut compared, mut both_refused) = (0, 0);
    for model in models {
        let spec = catalog_model(model).expect("catalog model");
        for device in devices {
            for mode in modes {
                for format in formats {
                    let settings = CalcSettings {
                        model: ModelSource::Catalog(model.into()),
                        format: format.into(),
                        mode: mode.into(),
                        device: DeviceChoice::Catalog(device.into()),
                        ..CalcSettings::default()
                    };
                    let site = calculate(&settings, &spec);
                    let mut args = vec!["fit", model, "--device", device, "--mode", mode, "--json"];
                    if !format.is_empty() {
                        args.extend(["--quant", format]);
                    }
                    let out = headroom(&args);
                    let case = format!("{model} on {device}, {mode}, format `{format}`");
                    match site {
                        Err(site_error) => {
                            assert_eq!(
                                out.status.code(),
                                Some(2),
                                "{case}: the site refused ({site_error}) but the CLI answered: {}",
                                stdout(&out)
                            );
                            both_refused += 1;
                        }
                        Ok(calc) => {
                            assert!(
                                out.status.success(),
                                "{case}: the site answered but the CLI refused: {}",
                                stderr(&out)
                            );
                            let cli = json(&out);
                            let a = &calc.answer;
                            let site_estimate =
                                serde_json::to_value(&a.estimate).expect("serializable");
                            for (key, value) in site_estimate.as_object().expect("object") {
                                assert!(
                                    same_json(&cli[key], value),
                                    "{case}: `{key}` differs: CLI {} vs site {value}",
                                    cli[key]
                                );
                            }
                            assert_eq!(
                                cli["longest_context"],
                                serde_json::to_value(a.longest_context).expect("json"),
                                "{case}: longest context"
                            );
                            let best = serde_json::to_value(&a.best_format).expect("json");
                            assert!(
                                same_json(&cli["best_format"], &best),
                                "{case}: best format: CLI {} vs site {best}",
                                cli["best_format"]
                            );
                            let training = serde_json::to_value(&a.training).expect("json");
                            assert_eq!(
                                cli.get("training_advice").unwrap_or(&Value::Null),
                                &training,
                                "{case}: training advice"
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
    }
    println!("CLI and site: {compared} answers identical, {both_refused} refused by both");
    // The grid exercises both outcomes (e.g. a GGUF format in training mode is refused by both).
    assert!(
        compared > 100 && both_refused > 10,
        "{compared} compared, {both_refused} refused"
    );
}

/// The answer lists the model part by part, says whether it is exact, and `--text-only` leaves
/// a vision-language model's tower and projector out of the weights.
#[test]
fn components_and_text_only() {
    let run = |extra: &[&str]| {
        let mut args = vec!["fit", "gemma-3-27b", "--device", "h100-sxm", "--json"];
        args.extend(extra);
        json(&headroom(&args))
    };
    let full = run(&[]);
    let text = run(&["--text-only"]);
    let kinds = |v: &Value| -> Vec<String> {
        v["components"]
            .as_array()
            .expect("components")
            .iter()
            .map(|c| c["kind"].as_str().expect("kind").to_owned())
            .collect()
    };
    assert!(
        kinds(&full).contains(&"vision_encoder".to_owned()),
        "{full}"
    );
    assert!(
        !kinds(&text).iter().any(|k| k.starts_with("vision")),
        "{text}"
    );
    let sum = |v: &Value| -> u64 {
        v["components"]
            .as_array()
            .expect("components")
            .iter()
            .filter(|c| c["in_total"] == true)
            .map(|c| c["params"].as_u64().expect("params"))
            .sum()
    };
    assert_eq!(sum(&full), full["params_total"].as_u64().expect("total"));
    assert_eq!(sum(&text), text["params_total"].as_u64().expect("total"));
    assert!(text["weights_bytes"].as_u64() < full["weights_bytes"].as_u64());
    assert_eq!(full["exact"], true);
    assert!(full["cache"].as_array().is_some_and(|c| !c.is_empty()));
    // The table shows the parts too.
    let table = success(&headroom(&[
        "fit",
        "gemma-3-27b",
        "--device",
        "h100-sxm",
        "--text-only",
    ]));
    assert!(
        table.contains("text only: vision/audio parts left out"),
        "{table}"
    );
    assert!(table.contains("layers: "), "{table}");
}

/// `--macos` picks the Mac's GPU share by release; it is refused off a Mac and for releases
/// Apple silicon does not run.
#[test]
fn macos_release_sets_the_gpu_share() {
    let usable = |release: &str| {
        json(&headroom(&[
            "fit",
            "llama-3.1-8b",
            "--device",
            "m3 max 40 64gb",
            "--macos",
            release,
            "--json",
        ]))["usable_bytes"]
            .as_u64()
            .unwrap_or(0)
    };
    // macOS 14: 3/4 of 64 GiB; macOS 26: the reported 51.84 GiB.
    assert_eq!(usable("14"), 48 << 30);
    assert_eq!(usable("26"), (51.84 * (1u64 << 30) as f64) as u64);
    let j = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "m2-10c-16gb",
        "--runtime",
        "transformers-mps",
        "--quant",
        "bf16",
        "--json",
    ]));
    assert!(j["mps_high_watermark_bytes"].as_u64().is_some(), "{j}");
    assert!(
        j["largest_buffer"]["max_buffer_bytes"].as_u64().is_some(),
        "{j}"
    );
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--macos",
            "26",
        ],
        &["--macos `26`", "not a Mac"],
        true,
    );
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "m2-10c-16gb",
            "--macos",
            "16",
        ],
        &["--macos `16`", "--macos 26"],
        true,
    );
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "m2-10c-16gb",
            "--macos",
            "sonoma",
        ],
        &["--macos `sonoma`"],
        true,
    );
}

/// `--users N`: the verdict for N sequences at the context, the users that fit and their decode
/// speeds in `--json`; 0, absurd or non-numeric counts and non-serving engines are one line,
/// exit 2.
#[test]
fn users_on_a_server() {
    let j = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--runtime",
        "vllm",
        "--context",
        "32k",
        "--users",
        "8",
        "--device",
        "h100-sxm",
        "--json",
    ]));
    assert_eq!(j["batch"], 8, "{j}");
    let s = &j["serving"];
    assert_eq!(s["users_asked"], 8, "{s}");
    assert_eq!(s["kv_bytes_per_user"], 4u64 << 30, "{s}");
    let max = s["max_users"].as_u64().unwrap_or(0);
    assert!((8..=16).contains(&max), "{s}");
    let per_user = s["at_users"]["per_user_tokens_per_s"]
        .as_f64()
        .unwrap_or(0.0);
    let aggregate = s["at_users"]["aggregate_tokens_per_s"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        per_user > 0.0 && (aggregate - 8.0 * per_user).abs() < 1e-6 * aggregate,
        "{s}"
    );
    assert!(s["kv_pool_bytes"].as_u64().is_some(), "{s}");
    // Shown by default on a serving engine, in the table too.
    let out = success(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--quant",
        "Q4_K_M",
        "--context",
        "8k",
        "--device",
        "rtx-4090",
    ]));
    assert!(out.contains("users fit at 8,192 tokens each"), "{out}");
    assert!(out.contains("llama-server -np"), "{out}");
    for (users, needle) in [
        ("0", "--users `0`"),
        ("70000", "--users `70000`"),
        (
            "99999999999999999999999",
            "--users `99999999999999999999999`",
        ),
        ("many", "--users `many`"),
        ("-3", "--users `-3`"),
    ] {
        assert_bad_input(
            &[
                "fit",
                "llama-3.1-8b",
                "--runtime",
                "vllm",
                "--device",
                "h100-sxm",
                "--users",
                users,
            ],
            &[needle],
            true,
        );
    }
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "h100-sxm",
            "--users",
            "4",
        ],
        &["--users `4`", "--runtime vllm"],
        true,
    );
    assert_bad_input(
        &[
            "fit",
            "llama-3.1-8b",
            "--runtime",
            "vllm",
            "--device",
            "h100-sxm",
            "--users",
            "4",
            "--batch",
            "2",
        ],
        &["--users `4`", "--batch 1"],
        true,
    );
}

/// `--mmproj` and `--draft`: the extra models' lines in the table, `extra_models` and
/// `speculation` in `--json` (in the total), their launch flags; bad values are one line, exit 2.
#[test]
fn extra_models_beside_the_model() {
    let base = [
        "fit",
        "gemma-3-12b",
        "--quant",
        "Q4_K_M",
        "--device",
        "m4-pro-20c-48gb",
        "--json",
    ];
    let plain = json(&headroom(&base));
    let mut with_args = base.to_vec();
    with_args.push("--mmproj");
    let with = json(&headroom(&with_args));
    let extra = &with["extra_models"][0];
    assert_eq!(extra["kind"], "mmproj", "{with}");
    assert_eq!(extra["format"], "f16", "{extra}");
    let added = extra["total_bytes"].as_u64().unwrap_or(0);
    assert!(added > 1 << 30, "{extra}");
    assert_eq!(
        with["total_bytes"].as_u64().unwrap_or(0),
        plain["total_bytes"].as_u64().unwrap_or(0) + added,
        "{with}"
    );
    assert!(plain.get("extra_models").is_none(), "{plain}");
    let command = with["launch"]["command"].as_str().unwrap_or("");
    assert!(
        command.contains("--mmproj mmproj-gemma-3-12b-it-f16.gguf"),
        "{command}"
    );

    // A draft: its line in the table, the speculative step, and the flags that load it.
    let out = success(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--quant",
        "Q4_K_M",
        "--draft",
        "llama-3.2-1b",
        "--draft-acceptance",
        "0.7",
        "--draft-tokens",
        "4",
        "--device",
        "rtx-4090",
    ]));
    assert!(out.contains("draft llama-3.2-1b (Q4_K_M)"), "{out}");
    assert!(out.contains("at acceptance 0.7 (yours)"), "{out}");
    assert!(
        out.contains("-md Llama-3.2-1B-Q4_K_M.gguf -ngld 99 --draft-max 4"),
        "{out}"
    );
    let j = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--quant",
        "Q4_K_M",
        "--draft",
        &config("Llama-3.2-1B"),
        "--draft-quant",
        "Q8_0",
        "--device",
        "rtx-4090",
        "--json",
    ]));
    let d = &j["extra_models"][0];
    assert_eq!(d["kind"], "draft", "{j}");
    assert_eq!(d["format"], "Q8_0", "{d}");
    assert!(d["weights_bytes"].as_u64().unwrap_or(0) > 1 << 30, "{d}");
    assert!(d["kv_cache_bytes"].as_u64().unwrap_or(0) > 0, "{d}");
    let sp = &j["speculation"];
    assert_eq!(sp["draft_tokens"], 16, "{sp}");
    assert!(sp["expected_tokens_per_s"].is_null(), "{sp}");
    assert!(sp["step_ms"].as_f64().unwrap_or(0.0) > 0.0, "{sp}");
    // The speed band against published measurements rides along.
    assert_eq!(j["speed_bands"][0]["kind"], "decode", "{j}");

    for (args, needle) in [
        (
            vec!["llama-3.1-8b", "--mmproj", "--device", "rtx-4090"],
            "--mmproj",
        ),
        (
            vec![
                "gemma-3-12b",
                "--mmproj",
                "--text-only",
                "--device",
                "rtx-4090",
            ],
            "--mmproj",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "qwen3-0.6b",
                "--device",
                "rtx-4090",
            ],
            "vocabulary",
        ),
        (
            vec!["gemma-3-12b", "--mmproj", "--devices-that-fit"],
            "drop --mmproj",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "llama-3.2-1b",
                "--devices-that-fit",
            ],
            "drop --draft",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "no-such-model",
                "--device",
                "rtx-4090",
            ],
            "--draft `no-such-model`",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "llama-3.2-1b",
                "--draft-acceptance",
                "1.5",
                "--device",
                "rtx-4090",
            ],
            "--draft-acceptance",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "llama-3.2-1b",
                "--draft-acceptance",
                "most",
                "--device",
                "rtx-4090",
            ],
            "--draft-acceptance `most`",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "llama-3.2-1b",
                "--draft-tokens",
                "0",
                "--device",
                "rtx-4090",
            ],
            "--draft-tokens",
        ),
        (
            vec![
                "llama-3.1-8b",
                "--draft",
                "llama-3.2-1b",
                "--draft-quant",
                "q5",
                "--device",
                "rtx-4090",
            ],
            "--draft-quant `q5`",
        ),
    ] {
        let mut full = vec!["fit"];
        full.extend(args);
        assert_bad_input(&full, &[needle], true);
    }
}
