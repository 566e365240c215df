//! `headroom fit` when a model does not fit the GPU: the offload split in the table, in `--json`
//! and in the launch command; `--gpu-layers` / `--n-cpu-moe` forcing a split; every bad setting
//! one line on stderr and exit code 2.

use crate::util::{headroom, json, stderr, stdout, success};

/// Exit code 2, nothing on stdout, one `error:` line holding every needle.
fn assert_refused(args: &[&str], needles: &[&str]) {
    let out = headroom(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr:\n{err}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout:\n{}", stdout(&out));
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: `{needle}` missing:\n{err}");
    }
}

const MOE_ON_8_GB: [&str; 8] = [
    "fit",
    "qwen3-30b-a3b",
    "--quant",
    "Q4_K_M",
    "--device",
    "rtx-4060-ti-8gb",
    "--host-memory-gib",
    "64",
];

#[test]
fn needs_offload_names_the_split_and_its_speed() {
    let out = success(&headroom(&MOE_ON_8_GB));
    assert!(out.contains("verdict: needs offload"), "{out}");
    assert!(out.contains("with --n-cpu-moe "), "{out}");
    assert!(out.contains("alternative -ngl "), "{out}");
    assert!(out.contains("-ngl 99 --n-cpu-moe "), "{out}");

    let mut args = MOE_ON_8_GB.to_vec();
    args.push("--json");
    let j = json(&headroom(&args));
    assert_eq!(j["verdict"], "needs_offload", "{j}");
    let plan = &j["offload"];
    let chosen = &plan["chosen"];
    assert_eq!(chosen["split"]["kind"], "cpu_moe", "{plan}");
    let n = chosen["split"]["n_cpu_moe"].as_u64().unwrap_or(0);
    assert!((1..=48).contains(&n), "{plan}");
    for key in [
        "gpu_bytes",
        "gpu_capacity_bytes",
        "host_bytes",
        "host_capacity_bytes",
        "gpu_read_bytes_per_token",
        "host_read_bytes_per_token",
    ] {
        assert!(chosen[key].as_u64().is_some(), "{key}: {plan}");
    }
    assert!(chosen["gpu_bytes"].as_u64() <= chosen["gpu_capacity_bytes"].as_u64());
    assert_eq!(chosen["fits"], true);
    let decode = chosen["decode_tokens_per_s"].as_f64().unwrap_or(0.0);
    assert!(
        decode > 0.0 && j["decode_tokens_per_s"].as_f64() == Some(decode),
        "{j}"
    );
    assert_eq!(plan["alternative"]["split"]["kind"], "gpu_layers", "{plan}");
    assert!(plan["alternative"]["decode_tokens_per_s"].as_f64() < Some(decode));
    assert!(
        plan["host_bandwidth_bytes_per_s"]
            .as_f64()
            .is_some_and(|b| b > 0.0)
    );
    assert!(plan["host_to_device_basis"].as_str().is_some());
    let launch = j["launch"]["command"].as_str().unwrap_or("");
    assert!(launch.contains(&format!("--n-cpu-moe {n}")), "{launch}");

    // A model that fits has no plan.
    let fits = json(&headroom(&[
        "fit",
        "llama-3.1-8b",
        "--quant",
        "Q4_K_M",
        "--device",
        "rtx-4090",
        "--json",
    ]));
    assert!(fits["offload"].is_null(), "{fits}");
}

#[test]
fn gpu_layers_forces_the_split_into_json_and_the_launch() {
    let mut args = MOE_ON_8_GB.to_vec();
    args.extend(["--gpu-layers", "10", "--json"]);
    let j = json(&headroom(&args));
    let chosen = &j["offload"]["chosen"];
    assert_eq!(chosen["split"]["kind"], "gpu_layers", "{j}");
    assert_eq!(chosen["split"]["n_gpu_layers"], 10, "{j}");
    let launch = j["launch"]["command"].as_str().unwrap_or("");
    assert!(launch.contains("-ngl 10 "), "{launch}");
    // headroom's own choice is the alternative.
    assert_eq!(j["offload"]["alternative"]["split"]["kind"], "cpu_moe");
}

#[test]
fn bad_offload_settings_exit_2_with_one_line() {
    let with = |extra: &[&'static str]| {
        let mut a = MOE_ON_8_GB.to_vec();
        a.extend_from_slice(extra);
        a
    };
    // Layers beyond the model: 48 layers + the output layer.
    assert_refused(
        &with(&["--gpu-layers", "50"]),
        &["--gpu-layers `50`", "at most 49"],
    );
    // More expert layers than layers.
    assert_refused(&with(&["--n-cpu-moe", "49"]), &["--n-cpu-moe `49`"]);
    // Host memory smaller than the split keeps there.
    let mut small = MOE_ON_8_GB.to_vec();
    small[7] = "8";
    small.extend(["--n-cpu-moe", "48"]);
    assert_refused(
        &small,
        &["--host-memory-gib `8 GiB`", "--host-memory-gib 23"],
    );
    // Experts on the host of a dense model.
    assert_refused(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--quant",
            "Q4_K_M",
            "--n-cpu-moe",
            "4",
        ],
        &["--n-cpu-moe `4`", "dense model"],
    );
    // A llama.cpp split in another runtime.
    assert_refused(
        &[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--runtime",
            "vllm",
            "--gpu-layers",
            "10",
        ],
        &["--gpu-layers `10`", "--runtime llama.cpp"],
    );
    // Not a number, and both splits at once (clap's own errors: exit 2 too).
    for extra in [
        &["--gpu-layers", "many"][..],
        &["--gpu-layers", "-1"][..],
        &["--gpu-layers", "4", "--n-cpu-moe", "4"][..],
    ] {
        let out = headroom(&with(extra));
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}
