//! `headroom probe` and `headroom show` end to end on lavapipe (CI installs
//! `mesa-vulkan-drivers libvulkan1` and `python3-jsonschema`): a run's report validates against
//! the checked-in schema, Ctrl-C leaves a valid partial report, the budget holds, a simulated
//! out-of-memory is recorded, and no adapter means exit code 2 with advice.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use headroom_core::report::{AllocationResult, AllocationStopReason, ProbeReport, Stage, Status};

use crate::util::{BIN, data_dir, scratch};

const MIB: u64 = 1 << 20;

/// A fresh scratch folder for one test, and `name` in it.
fn temp_path(name: &str) -> PathBuf {
    scratch(&format!("probe-cli-{name}")).join(name)
}

fn probe(args: &[&str], out: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("probe").args(args).arg("--out").arg(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run headroom")
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates a report file against core/src/report.schema.json with Python's `jsonschema`
/// (Draft 2020-12). Chosen over a Rust validator crate: no extra Rust dependencies or build
/// time, and it is an independent implementation of the schema language.
fn validate_against_schema(report: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src/report.schema.json");
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
        for e in errors: print('/'.join(map(str, e.absolute_path)), ':', e.message)\n\
        sys.exit(1 if errors else 0)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .arg(report)
        .output()
        .expect(
            "python3 is needed to validate reports (apt-get install python3 python3-jsonschema)",
        );
    assert!(
        out.status.success(),
        "{} does not validate against the schema (needs python3-jsonschema):\n{}{}",
        report.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_report(path: &Path) -> ProbeReport {
    let text = std::fs::read_to_string(path).expect("report written");
    ProbeReport::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The allocation stage's result in `report` (the test asked for the sweep).
fn sweep_of(report: &ProbeReport) -> &AllocationResult {
    report
        .stage(Stage::Allocation)
        .and_then(|s| s.allocation.as_ref())
        .expect("sweep result")
}

#[test]
fn quick_run_writes_a_schema_valid_report_and_show_reads_it() {
    let out_path = temp_path("quick.json");
    let out = probe(&["--quick", "--budget", "64MiB"], &out_path, &[]);
    assert_success(&out);
    validate_against_schema(&out_path);
    let report = read_report(&out_path);
    assert!(report.complete);
    let names: Vec<&str> = report.stages.iter().map(|s| s.stage.name()).collect();
    assert_eq!(
        names,
        [
            "gemm",
            "attention",
            "bandwidth",
            "host_bandwidth",
            "decode",
            "max_buffer",
            "sweep",
            "transfer"
        ]
    );
    for stage in &report.stages {
        assert_ne!(stage.status, Status::Failed, "{stage:?}");
    }
    // lavapipe is the CPU: nothing crosses a link, and the report says so.
    let transfer = report.stages.last().expect("stages");
    assert_eq!(transfer.status, Status::Skipped);
    assert!(
        transfer
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("the adapter is the CPU")),
        "{transfer:?}"
    );
    let device = report.measured_device();
    assert!(
        device
            .host_read_bandwidth_bytes_per_s
            .is_some_and(|b| b > 0.0)
    );
    assert!(device.fp32_flops.is_some_and(|f| f > 0.0));
    assert!(device.read_bandwidth_bytes_per_s.is_some());
    assert!(device.max_buffer_bytes.is_some_and(|b| b <= 64 * MIB));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("gemm.f32") && stdout.contains("sweep"),
        "{stdout}"
    );

    let shown = Command::new(BIN)
        .arg("show")
        .arg(&out_path)
        .output()
        .expect("show");
    assert_success(&shown);
    assert_eq!(
        shown.stdout, out.stdout,
        "show prints the same summary as the probe"
    );
}

#[test]
fn ctrl_c_leaves_a_valid_partial_report() {
    let out_path = temp_path("interrupted.json");
    let _ = std::fs::remove_file(&out_path);
    let mut child = Command::new(BIN)
        .args(["probe", "--budget", "64MiB", "--out"])
        .arg(&out_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until the first stage is in the file (it is written as it begins), then interrupt.
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&out_path)
            && ProbeReport::from_json(&text).is_ok_and(|r| !r.stages.is_empty())
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no stage finished in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(
        !status.success(),
        "the probe finished before the interrupt; the test needs it running"
    );
    validate_against_schema(&out_path);
    let report = read_report(&out_path);
    assert!(!report.complete, "an interrupted report says it is partial");
    assert!(
        !report.stages.is_empty() && report.stages.len() < 6,
        "{:?}",
        report.stages
    );
}

#[test]
fn the_sweep_stops_at_the_budget() {
    let out_path = temp_path("budget.json");
    let out = probe(
        &["--only", "sweep,max_buffer", "--budget", "100MiB"],
        &out_path,
        &[],
    );
    assert_success(&out);
    validate_against_schema(&out_path);
    let report = read_report(&out_path);
    let sweep = sweep_of(&report);
    assert_eq!(sweep.stop_reason, AllocationStopReason::Budget, "{sweep:?}");
    assert!(!sweep.steps.is_empty());
    assert!(
        sweep.steps.iter().all(|s| s.total_bytes <= 100 * MIB),
        "{sweep:?}"
    );
    let mb = report
        .stage(Stage::MaxBuffer)
        .and_then(|s| s.max_buffer.as_ref())
        .expect("max_buffer");
    assert!(
        mb.largest_verified_bytes <= 100 * MIB && mb.largest_verified_bytes > 0,
        "{mb:?}"
    );
    assert_eq!(
        report.stage(Stage::Gemm).map(|s| s.status),
        Some(Status::Skipped)
    );
}

/// Regression: under a busy CPU one step of a lavapipe sweep took 11.4 s/GB against a 2.0 s/GB
/// median, and the stage stopped there as if the host swapped, reporting 0.41 GiB usable. On
/// Linux the swap counters say whether it did.
#[cfg(target_os = "linux")]
#[test]
fn a_slow_step_without_swapping_does_not_stop_the_sweep() {
    let out_path = temp_path("slow.json");
    // Steps of 32 MiB on a CPU adapter: five fit the budget; step 3 is timed 10 s longer.
    let out = probe(
        &["--only", "sweep", "--budget", "160MiB"],
        &out_path,
        &[("HEADROOM_PROBE_SIMULATE_SLOW_STEPS", "3")],
    );
    assert_success(&out);
    validate_against_schema(&out_path);
    let report = read_report(&out_path);
    let sweep = sweep_of(&report);
    assert_eq!(sweep.stop_reason, AllocationStopReason::Budget, "{sweep:?}");
    assert_eq!(sweep.steps.len(), 5, "{sweep:?}");
    assert!(
        sweep
            .swap_counters
            .as_deref()
            .is_some_and(|s| s.contains("/proc/vmstat")),
        "{sweep:?}"
    );
    assert!(sweep.steps.iter().all(|s| s.pages_swapped_out.is_some()));
    assert!(
        sweep.steps[2]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("contention, not swapping")),
        "{sweep:?}"
    );
    let shown = Command::new(BIN)
        .arg("show")
        .arg(&out_path)
        .output()
        .expect("run headroom show");
    assert_success(&shown);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("pages swapped out by the host during the sweep"),
        "{text}"
    );
    assert!(
        text.contains("step 3 (") && text.contains("contention, not swapping"),
        "{text}"
    );
}

#[test]
fn a_bad_slow_step_list_is_one_clear_line() {
    let out_path = temp_path("slow-bad.json");
    let out = probe(
        &["--only", "sweep", "--budget", "64MiB"],
        &out_path,
        &[("HEADROOM_PROBE_SIMULATE_SLOW_STEPS", "3,x")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HEADROOM_PROBE_SIMULATE_SLOW_STEPS") && err.contains("`x`"),
        "{err}"
    );
}

#[test]
fn a_simulated_out_of_memory_is_recorded_not_a_crash() {
    let out_path = temp_path("oom.json");
    let out = probe(
        &["--only", "sweep,max_buffer", "--budget", "256MiB"],
        &out_path,
        &[("HEADROOM_PROBE_SIMULATE_OOM_BYTES", "80MiB")],
    );
    assert_success(&out);
    validate_against_schema(&out_path);
    let report = read_report(&out_path);
    let sweep = sweep_of(&report);
    assert_eq!(sweep.stop_reason, AllocationStopReason::Error, "{sweep:?}");
    assert!(
        sweep.stop_detail.contains("out of memory"),
        "{}",
        sweep.stop_detail
    );
    assert!(sweep.largest_clean_bytes <= 80 * MIB && sweep.largest_clean_bytes > 0);
    let mb = report
        .stage(Stage::MaxBuffer)
        .and_then(|s| s.max_buffer.as_ref())
        .expect("max_buffer");
    assert!(mb.largest_verified_bytes <= 80 * MIB, "{mb:?}");
    assert!(mb.attempts.iter().any(|a| {
        a.error
            .as_deref()
            .is_some_and(|e| e.contains("out of memory"))
    }));
}

#[test]
fn no_adapter_exits_2_with_advice() {
    let out_path = temp_path("none.json");
    let missing = "/nonexistent/icd.json";
    let out = probe(
        &["--backend", "vulkan"],
        &out_path,
        &[("VK_DRIVER_FILES", missing), ("VK_ICD_FILENAMES", missing)],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no GPU adapter") && stderr.contains("mesa-vulkan-drivers"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_exit_2_before_any_work() {
    let out_path = temp_path("bad.json");
    for args in [
        &["--only", "gemm,nope"][..],
        &["--budget", "lots"],
        &["--backend", "glide"],
        &["--adapter", "99"],
    ] {
        let out = probe(args, &out_path, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
    let shown = Command::new(BIN)
        .args(["show", "/nonexistent/report.json"])
        .output()
        .expect("show");
    assert_eq!(shown.status.code(), Some(2));
}

#[test]
fn checked_in_reports_validate_against_the_schema() {
    let data = data_dir().join("reports");
    for name in ["h200-report.json", "lavapipe-report.json"] {
        validate_against_schema(&data.join(name));
    }
}
