//! The three questions people ask, end to end: *will it fit on this machine?* (`fit MODEL`
//! with no device: a probe report in the working directory, else discovery; lavapipe or no
//! adapter at all is the CPU and its RAM), *what does this model need?* (`fit --devices-that-fit`),
//! *what can this device run?* (`models --fits`, `devices --limits`), and the launch command.
//! Tables, JSON, and each kind of bad input (exit code 2, one line naming it).

use std::{path::Path, process::Command};

use serde_json::Value;

use crate::util::{BIN, data_dir, headroom, json, scratch, stderr, stdout, success};

/// `headroom ARGS` run in `dir` (no network: these commands never reach one).
fn headroom_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run headroom")
}

/// `headroom ARGS` in `dir` on a machine whose Vulkan loader finds no driver: no GPU adapter at
/// all (only the Vulkan backend is searched, so no other API finds one either).
fn headroom_without_gpu(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("WGPU_BACKEND", "vulkan")
        .env("VK_ICD_FILENAMES", dir.join("no-such-icd.json"))
        .env("VK_DRIVER_FILES", dir.join("no-such-icd.json"))
        .output()
        .expect("run headroom")
}

/// Exit code 2, nothing on stdout, one `error:` line holding every needle.
fn assert_bad(out: &std::process::Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{err}");
    assert!(out.stdout.is_empty(), "stdout:\n{}", stdout(out));
    assert!(err.starts_with("error: "), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    for needle in needles {
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "`{needle}` missing from:\n{err}"
        );
    }
}

/// Like [`assert_bad`], and the message is one line (our own messages; clap adds usage).
fn assert_bad_line(out: &std::process::Output, needles: &[&str]) {
    assert_bad(out, needles);
    assert_eq!(stderr(out).trim_end().lines().count(), 1, "{}", stderr(out));
}

fn ranked(v: &Value) -> &[Value] {
    v["models"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(target_os = "linux")]
#[test]
fn no_gpu_at_all_answers_for_the_cpu_and_its_ram() {
    let dir = scratch("no-gpu");
    let table = success(&headroom_without_gpu(&dir, &["fit", "llama-3.2-1b"]));
    assert!(table.contains("no GPU adapter found"), "{table}");
    assert!(table.contains("answering for the CPU"), "{table}");
    assert!(table.contains("usable memory: CPU only: 3/4 of"), "{table}");
    assert!(
        table.contains("CPU only: everything is in RAM already"),
        "{table}"
    );
    assert!(table.contains("launch (llama.cpp):"), "{table}");
    let out = headroom_without_gpu(&dir, &["fit", "llama-3.2-1b", "--json"]);
    let v = json(&out);
    assert_eq!(v["device_id"], "cpu");
    assert_eq!(v["runtime"], "llama.cpp");
    let how = v["this_machine"].as_str().unwrap_or_default();
    assert!(how.contains("no GPU adapter found"), "{how}");
    assert!(stderr(&out).contains("note: no GPU adapter found"));
    assert!(
        v["launch"]["command"]
            .as_str()
            .unwrap_or_default()
            .starts_with("llama-server -m Llama-3.2-1B-bf16.gguf -c 4096 "),
        "{v:#}"
    );
    // RAM comes from the host: 3/4 of it is usable.
    let usable = v["usable_bytes"].as_u64().unwrap_or(0);
    assert!(usable > 0, "{v:#}");
}

#[test]
fn this_machine_by_default_says_what_it_found() {
    // CI has lavapipe only: a CPU adapter, so the answer is for the CPU and its RAM. On a
    // machine with a GPU the answer names it instead.
    let dir = scratch("this-machine");
    let v = json(&headroom_in(&dir, &["fit", "qwen3-0.6b", "--json"]));
    let how = v["this_machine"].as_str().unwrap_or_default().to_owned();
    assert!(how.contains("headroom probe"), "{how}");
    if how.contains("llvmpipe") || how.contains("no GPU adapter") {
        assert_eq!(v["device_id"], "cpu", "{how}");
        assert!(how.contains("CPU (software) adapter") || how.contains("no GPU adapter"));
    } else {
        assert!(
            how.contains("matched to the catalog") || how.contains("not in the catalog"),
            "{how}"
        );
    }
}

#[test]
fn a_probe_report_in_the_working_directory_is_this_machine() {
    let dir = scratch("report-here");
    std::fs::copy(
        data_dir().join("reports/lavapipe-report.json"),
        dir.join("headroom-probe.json"),
    )
    .expect("copy report");
    let table = success(&headroom_in(&dir, &["fit", "qwen3-0.6b"]));
    assert!(
        table.contains("this machine, measured: ./headroom-probe.json"),
        "{table}"
    );
    assert!(
        table.contains("device figures: probe report for llvmpipe"),
        "{table}"
    );
    let ranking = json(&headroom_in(&dir, &["models", "--fits", "--json"]));
    assert_eq!(ranking["device_id"], "measured");
    assert!(
        ranking["this_machine"]
            .as_str()
            .is_some_and(|h| h.contains("./headroom-probe.json")),
        "{ranking:#}"
    );
    // The fixture's allocation sweep stopped at its 64 MiB budget: a lower bound, not what
    // lavapipe may use, so models fit in the host memory the platform reports.
    assert!(!ranked(&ranking).is_empty(), "{ranking:#}");
    // A flag still wins over the report.
    let v = json(&headroom_in(
        &dir,
        &["fit", "qwen3-0.6b", "--device", "rtx-4090", "--json"],
    ));
    assert_eq!(v["device_id"], "rtx-4090");
    assert!(v.get("this_machine").is_none());
}

#[test]
fn fit_prints_the_launch_command_that_reproduces_it() {
    let table = success(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "-q",
        "Q4_K_M",
        "--context",
        "16k",
        "--kv-dtype",
        "q8_0",
    ]));
    assert!(table.contains("launch (llama.cpp):"), "{table}");
    assert!(
        table.contains(
            "llama-server -m Llama-3.1-8B-Q4_K_M.gguf -c 16384 -ngl 99 -fa on -ctk q8_0 -ctv q8_0"
        ),
        "{table}"
    );
    let v = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--runtime",
        "vllm:0.8",
        "--devices",
        "2",
        "--json",
    ]));
    let cmd = v["launch"]["command"].as_str().unwrap_or_default();
    assert!(
        cmd.starts_with("vllm serve meta-llama/Llama-3.1-8B "),
        "{cmd}"
    );
    for part in [
        "--max-model-len 4096",
        "--gpu-memory-utilization 0.8",
        "--tensor-parallel-size 2",
    ] {
        assert!(cmd.contains(part), "{part}: {cmd}");
    }
    assert_eq!(v["launch"]["runtime"], "vllm:0.8");
    let qlora = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--mode",
        "qlora",
        "--checkpointing",
        "--context",
        "2048",
        "--json",
    ]));
    assert_eq!(qlora["fits"], true, "{qlora:#}");
    let cmd = qlora["launch"]["command"].as_str().unwrap_or_default();
    assert!(
        cmd.contains("BitsAndBytesConfig(load_in_4bit=True"),
        "{cmd}"
    );
    assert!(cmd.contains("LoraConfig(r=16"), "{cmd}");
    assert!(
        cmd.contains("SFTConfig(per_device_train_batch_size=1"),
        "{cmd}"
    );
    // Nothing to launch when it does not fit.
    let big = json(&headroom(&[
        "fit",
        "llama-3.1-70b",
        "--device",
        "rtx-4060",
        "--json",
    ]));
    assert_eq!(big["fits"], false);
    assert!(big["launch"].is_null(), "{big:#}");
}

#[test]
fn devices_that_fit_per_class() {
    let table = success(&headroom(&["fit", "llama-3.1-70b", "--devices-that-fit"]));
    for needle in [
        "llama-3.1-70b needs ",
        "in bf16 at 4,096 tokens",
        "Apple",
        "NVIDIA consumer",
        "NVIDIA datacenter",
        "AMD",
        "Intel",
        "launch on the smallest of each class",
    ] {
        assert!(table.contains(needle), "`{needle}` in:\n{table}");
    }
    let v = json(&headroom(&[
        "fit",
        "llama-3.1-70b",
        "--devices-that-fit",
        "--json",
    ]));
    assert_eq!(v["format"], "bf16");
    assert_eq!(v["format_fixed"], false);
    let classes = v["classes"].as_array().cloned().unwrap_or_default();
    let labels: Vec<&str> = classes.iter().filter_map(|c| c["label"].as_str()).collect();
    assert_eq!(
        labels,
        [
            "Apple",
            "NVIDIA consumer",
            "NVIDIA datacenter",
            "AMD",
            "Intel"
        ]
    );
    let min = v["min_total_bytes"].as_u64().unwrap_or(0);
    let weights = v["weights_bytes"].as_u64().unwrap_or(0);
    assert!(weights > 130 << 30 && min > weights, "{v:#}");
    let datacenter = &classes[2];
    let largest = &datacenter["largest"];
    assert_eq!(largest["format"], "bf16");
    assert!(largest["per_device_bytes"].as_u64() <= largest["usable_bytes"].as_u64());
    let consumer_many = &classes[1]["largest"];
    assert!(
        consumer_many["device_count"].as_u64().unwrap_or(0) >= 5,
        "{v:#}"
    );
    // One format for every device.
    let fixed = json(&headroom(&[
        "fit",
        "qwen3-8b",
        "--devices-that-fit",
        "-q",
        "Q4_K_M",
        "--json",
    ]));
    assert_eq!(fixed["format_fixed"], true);
    for c in fixed["classes"].as_array().cloned().unwrap_or_default() {
        if !c["smallest"].is_null() {
            assert_eq!(c["smallest"]["format"], "Q4_K_M", "{c:#}");
            assert!(
                c["smallest"]["launch"]["command"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Qwen3-8B-Q4_K_M.gguf")
            );
        }
    }
}

#[test]
fn devices_that_fit_bad_input() {
    assert_bad_line(
        &headroom(&[
            "fit",
            "qwen3-8b",
            "--devices-that-fit",
            "--device",
            "rtx-4090",
        ]),
        &["--devices-that-fit", "--device"],
    );
    assert_bad_line(
        &headroom(&["fit", "qwen3-8b", "--devices-that-fit", "-q", "all"]),
        &["--quant all"],
    );
    assert_bad_line(
        &headroom(&["fit", "qwen3-8b", "--devices-that-fit", "--devices", "2"]),
        &["--devices"],
    );
}

#[test]
fn models_fits_ranks_every_model_that_fits() {
    let table = success(&headroom(&["models", "--fits", "rtx-4090"]));
    assert!(
        table.contains("What can NVIDIA GeForce RTX 4090 run? inference · 4,096 tokens"),
        "{table}"
    );
    assert!(table.contains("longest context"), "{table}");
    assert!(table.contains("launch the first ("), "{table}");
    let v = json(&headroom(&["models", "--fits", "rtx-4090", "--json"]));
    let models = ranked(&v);
    assert!(models.len() > 20, "{v:#}");
    assert_eq!(v["fitting"].as_u64(), Some(models.len() as u64));
    let sizes: Vec<u64> = models
        .iter()
        .filter_map(|m| m["params_total"].as_u64())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "by size: {sizes:?}");
    for m in models {
        assert!(
            m["verdict"] == "fits" || m["verdict"] == "fits_tightly",
            "{m:#}"
        );
        assert!(
            m["total_bytes"].as_u64() <= m["usable_bytes"].as_u64(),
            "{m:#}"
        );
        assert!(
            m["decode_tokens_per_s"].as_f64().unwrap_or(0.0) > 0.0,
            "{m:#}"
        );
        assert!(m["longest_context"].as_u64().unwrap_or(0) >= 1, "{m:#}");
        assert!(
            !m["launch"]["command"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
    }
    // The ranking's row is the one answer's.
    let row = models
        .iter()
        .find(|m| m["id"] == "qwen3-8b")
        .unwrap_or_else(|| panic!("qwen3-8b fits a 4090"));
    let format = row["format"].as_str().unwrap_or_default();
    let fit = json(&headroom(&[
        "fit", "qwen3-8b", "--device", "rtx-4090", "-q", format, "--json",
    ]));
    assert_eq!(fit["per_device_bytes"], row["total_bytes"]);
    assert_eq!(fit["longest_context"], row["longest_context"]);
    assert_eq!(fit["launch"]["command"], row["launch"]["command"]);
}

#[test]
fn models_fits_sort_and_filters() {
    let speed = json(&headroom(&[
        "models",
        "--fits",
        "m3-max-40c-128gb",
        "--sort",
        "speed",
        "--json",
    ]));
    let rates: Vec<f64> = ranked(&speed)
        .iter()
        .filter_map(|m| m["decode_tokens_per_s"].as_f64())
        .collect();
    assert!(
        rates.len() > 5 && rates.windows(2).all(|w| w[0] >= w[1]),
        "{rates:?}"
    );
    assert_eq!(speed["sort"], "speed");
    let moe = json(&headroom(&[
        "models", "--fits", "h200", "--family", "qwen3", "--moe", "--json",
    ]));
    assert!(!ranked(&moe).is_empty());
    assert!(
        ranked(&moe)
            .iter()
            .all(|m| m["moe"] == true && m["family"] == "Qwen3"),
        "{moe:#}"
    );
    let dense = json(&headroom(&[
        "models", "--fits", "h200", "--dense", "--json",
    ]));
    assert!(ranked(&dense).iter().all(|m| m["moe"] == false));
    let long = json(&headroom(&[
        "models",
        "--fits",
        "rtx-4090",
        "--min-context",
        "64k",
        "--min-tokens-per-s",
        "50",
        "--json",
    ]));
    assert!(!ranked(&long).is_empty());
    for m in ranked(&long) {
        assert!(
            m["longest_context"].as_u64().unwrap_or(0) >= 65_536,
            "{m:#}"
        );
        assert!(
            m["decode_tokens_per_s"].as_f64().unwrap_or(0.0) >= 50.0,
            "{m:#}"
        );
    }
    let qlora = json(&headroom(&[
        "models", "--fits", "rtx-4090", "--mode", "qlora", "--json",
    ]));
    assert!(
        qlora["mode"]
            .as_str()
            .unwrap_or_default()
            .starts_with("qlora")
    );
    assert!(
        ranked(&qlora)
            .iter()
            .all(|m| m["format"].as_str().unwrap_or_default().starts_with("nf4")),
        "{qlora:#}"
    );
    let two = json(&headroom(&[
        "models",
        "--fits",
        "rtx-4090",
        "--devices",
        "2",
        "--context",
        "8k",
        "--json",
    ]));
    assert_eq!(two["device_count"], 2);
    assert_eq!(two["context"], 8192);
    assert!(ranked(&two).len() >= ranked(&long).len());
}

#[test]
fn models_fits_a_probe_report() {
    let report = data_dir().join("reports/h100-report.json");
    let v = json(&headroom(&[
        "models",
        "--probe",
        &report.display().to_string(),
        "--json",
    ]));
    assert_eq!(v["device_id"], "measured");
    assert!(ranked(&v).len() > 30, "{v:#}");
}

#[test]
fn an_empty_ranking_says_why() {
    // A report of a machine with 256 MiB: nothing in the catalog fits.
    let dir = scratch("tiny-report");
    let mut report: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir().join("reports/lavapipe-report.json")).expect("fixture"),
    )
    .expect("fixture JSON");
    fn shrink(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "ram_bytes" | "ram_available_bytes" | "largest_clean_bytes"
                    ) && x.is_u64()
                    {
                        *x = Value::from(256u64 << 20);
                    } else {
                        shrink(x);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(shrink),
            _ => {}
        }
    }
    shrink(&mut report);
    let path = dir.join("tiny.json");
    std::fs::write(&path, report.to_string()).expect("write");
    let out = headroom(&["models", "--probe", &path.display().to_string()]);
    let text = success(&out);
    assert!(text.contains("nothing fits"), "{text}");
    assert!(text.contains("the smallest, "), "{text}");
    assert!(text.contains(" needs "), "{text}");
    let v = json(&headroom(&[
        "models",
        "--probe",
        &path.display().to_string(),
        "--json",
    ]));
    assert!(ranked(&v).is_empty());
    assert!(
        v["empty_reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("nothing fits llvmpipe"),
        "{v:#}"
    );
}

#[test]
fn models_fits_bad_input() {
    assert_bad_line(
        &headroom(&["models", "--fits", "no-such-gpu-zzz"]),
        &["--fits", "no-such-gpu-zzz"],
    );
    assert_bad_line(
        &headroom(&["models", "--fits", "rtx-4090", "--family", "nosuchfamily"]),
        &["unknown family `nosuchfamily`", "Qwen3"],
    );
    assert_bad(
        &headroom(&["models", "--fits", "rtx-4090", "--sort", "fastest"]),
        &["fastest", "size", "speed"],
    );
    assert_bad_line(
        &headroom(&[
            "models",
            "--fits",
            "rtx-4090",
            "--min-tokens-per-s",
            "100000",
        ]),
        &["--min-tokens-per-s", "the fastest does"],
    );
    assert_bad_line(
        &headroom(&["models", "--fits", "rtx-4060", "--min-context", "1m"]),
        &["--min-context", "the longest context that fits is"],
    );
    assert_bad_line(
        &headroom(&[
            "models", "--fits", "rtx-4090", "--family", "gpt-oss", "--dense",
        ]),
        &["--moe/--dense", "no dense model", "gpt-oss"],
    );
    assert_bad_line(
        &headroom(&["models", "--fits", "rtx-4090", "--context", "max"]),
        &["--context max"],
    );
    assert_bad_line(
        &headroom(&["models", "--fits", "rtx-4090", "--min-tokens-per-s", "-3"]),
        &["--min-tokens-per-s"],
    );
    for bits in ["0", "-1", "33", "NaN"] {
        assert_bad_line(
            &headroom(&["models", "--fits", "rtx-4090", "--min-bits", bits]),
            &["--min-bits", "bits per weight", "try --min-bits 3"],
        );
    }
    assert_bad_line(
        &headroom(&["models", "--probe", "/no/such/report.json"]),
        &["/no/such/report.json", "headroom probe"],
    );
    // Reports that fail their checks.
    let reports = data_dir().join("reports");
    assert_bad_line(
        &headroom(&[
            "models",
            "--probe",
            &reports.join("future-report.json").display().to_string(),
        ]),
        &["schema_version", "headroom probe"],
    );
    assert_bad_line(
        &headroom(&[
            "models",
            "--probe",
            &reports.join("no-memory-report.json").display().to_string(),
        ]),
        &["does not say how much memory", "--fits NAME"],
    );
    // Ranking flags need --fits or --probe; --moe and --dense exclude each other.
    assert_bad(&headroom(&["models", "--min-context", "32k"]), &["--fits"]);
    assert_bad(
        &headroom(&["models", "--fits", "h200", "--moe", "--dense"]),
        &["--moe", "--dense"],
    );
}

#[test]
fn devices_limits_is_the_practical_limit_table() {
    let table = success(&headroom(&["devices", "--limits"]));
    assert!(table.contains("largest at 4-bit (Q4_K_M)"), "{table}");
    assert!(table.contains("largest at 8-bit (Q8_0)"), "{table}");
    let v = json(&headroom(&["devices", "--limits", "--json"]));
    let rows = v.as_array().cloned().unwrap_or_default();
    assert!(rows.len() > 100, "{}", rows.len());
    let params = |id: &str, key: &str| {
        rows.iter()
            .find(|r| r["device_id"] == id)
            .and_then(|r| r[key]["params_total"].as_u64())
            .unwrap_or(0)
    };
    // More memory runs a larger model; 4-bit runs at least what 8-bit does.
    assert!(params("m1-7c-8gb", "largest_4bit") > 0);
    assert!(params("m2-ultra-76c-192gb", "largest_4bit") > params("m1-7c-8gb", "largest_4bit"));
    assert!(params("m1-7c-8gb", "largest_4bit") >= params("m1-7c-8gb", "largest_8bit"));
    assert!(params("h200", "largest_8bit") > params("rtx-4060", "largest_8bit"));
    let filtered = json(&headroom(&["devices", "m3 max", "--limits", "--json"]));
    assert!(
        filtered.as_array().is_some_and(|a| !a.is_empty()
            && a.iter().all(|r| r["device_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("m3-max")))),
        "{filtered:#}"
    );
}
