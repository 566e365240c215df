//! Regressions of hostile input, hostile hosts and interrupted work (issue 17), each named after
//! the bug, run against the `headroom` binary: `--out` naming things that are not files, reads
//! that could hang or grow without bound, a killed allocation stage, budgets beyond the machine,
//! reports with failed checks or impossible figures, `--devices 4096`, unusable `HF_ENDPOINT`s,
//! terminal escapes in names, and Mesa's noise.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use headroom_core::report::{ProbeReport, Stage};
use serde_json::{Value, json};

use crate::util::{
    BIN, closed_port, data, data_dir, headroom, hub_command, listen, no_cache, read_request,
    scratch, stderr, stdout,
};

/// Longest a refusal may take: anything that blocks (a FIFO) or reads without bound
/// (`/dev/zero`) would run far past it.
const REFUSE_WITHIN: Duration = Duration::from_secs(20);

/// Runs `cmd`, killing it if it outlives [`REFUSE_WITHIN`] (a hang is then a failed assertion,
/// not a stuck test run).
fn run_bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn headroom");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > REFUSE_WITHIN {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "headroom still ran after {REFUSE_WITHIN:?} (a hang or an unbounded read); \
                 stderr:\n{}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn bin(args: &[&str]) -> Command {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let mut cmd = hub_command(&endpoint, &no_cache("hostile"));
    cmd.args(args);
    cmd
}

/// Exit code 2, one `error:` line on stderr that contains every needle, nothing on stdout.
#[track_caller]
fn assert_refused(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{err}");
    assert!(err.starts_with("error: "), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "stderr:\n{err}");
    assert!(out.stdout.is_empty(), "stdout:\n{}", stdout(out));
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
    err
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn file_type(path: &Path) -> String {
    let out = Command::new("stat")
        .args(["-c", "%F"])
        .arg(path)
        .output()
        .expect("stat");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------- 1. --out ----------

#[test]
fn probe_out_does_not_replace_a_device_node_fifo_or_folder() {
    let dir = scratch("hostile-out");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    let mut targets = vec![(fifo.clone(), "fifo"), (folder.clone(), "directory")];
    // A character device like /dev/null, made in the scratch folder (needs root: skipped
    // otherwise, the FIFO and the folder still run).
    let node = dir.join("null");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if made {
        targets.push((node.clone(), "character special file"));
    }
    for (path, kind) in &targets {
        let before = file_type(path);
        assert!(before.contains(kind), "{before}");
        let p = path.display().to_string();
        let out = run_bounded(bin(&[
            "probe", "--only", "sweep", "--budget", "1KiB", "--out", &p,
        ]));
        assert_refused(&out, &["--out", "not a regular file"]);
        assert_eq!(file_type(path), before, "{p} was replaced");
        assert!(!dir.join(format!("{}.tmp", p)).exists());
    }
}

#[test]
fn probe_out_symlink_is_followed_and_mesa_prints_no_xdg_runtime_dir_noise() {
    let dir = scratch("hostile-symlink");
    let target = dir.join("real-report.json");
    std::fs::write(&target, "old").expect("write");
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let mut cmd = bin(&["probe", "--only", "max_buffer", "--budget", "8MiB", "--out"]);
    cmd.arg(&link).env_remove("XDG_RUNTIME_DIR");
    let out = run_bounded(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{err}");
    assert!(
        std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "the link was replaced"
    );
    let text = std::fs::read_to_string(&target).expect("target");
    let report = ProbeReport::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // The report says what the budget bounds.
    assert!(
        report.settings.budget_source.contains("bounds the sweep"),
        "{}",
        report.settings.budget_source
    );
    assert!(!err.contains("XDG_RUNTIME_DIR"), "Mesa noise:\n{err}");
    // A dangling link is refused.
    let dangling = dir.join("dangling.json");
    std::os::unix::fs::symlink(dir.join("missing/x.json"), &dangling).expect("symlink");
    let d = dangling.display().to_string();
    let out = run_bounded(bin(&["probe", "--only", "sweep", "--out", &d]));
    assert_refused(&out, &["--out", "symlink"]);
}

// ---------- 2. bounded reads ----------

#[test]
fn fit_on_a_fifo_does_not_hang() {
    let dir = scratch("hostile-fifo");
    let fifo = dir.join("f.json");
    mkfifo(&fifo);
    let f = fifo.display().to_string();
    let model = data_dir().join("hf-configs/Llama-3.2-1B.json");
    let m = model.display().to_string();
    for args in [
        vec!["fit", &f, "--device", "rtx-4090"],
        vec!["fit", &m, "--probe", &f],
        vec!["show", &f],
    ] {
        let out = run_bounded(bin(&args));
        assert_refused(&out, &["FIFO", "not a regular file"]);
    }
}

#[test]
fn dev_zero_is_not_read_without_bound() {
    let model = data_dir().join("hf-configs/Llama-3.2-1B.json");
    let m = model.display().to_string();
    for args in [
        vec!["fit", "/dev/zero", "--device", "rtx-4090"],
        vec!["fit", &m, "--probe", "/dev/zero"],
        vec!["show", "/dev/zero"],
    ] {
        let out = run_bounded(bin(&args));
        assert_refused(&out, &["/dev/zero", "a device"]);
    }
}

#[test]
fn a_200_mb_config_is_refused_at_the_cap() {
    let dir = scratch("hostile-big");
    let big = dir.join("config.json");
    let file = std::fs::File::create(&big).expect("create");
    // Sparse: no disk is spent, but a whole read would take 200 MB.
    file.set_len(200_000_000).expect("set_len");
    let b = big.display().to_string();
    let start = Instant::now();
    let out = run_bounded(bin(&["fit", &b, "--device", "rtx-4090"]));
    assert_refused(&out, &["16 MiB", "config"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let out = run_bounded(bin(&["show", &b]));
    assert_refused(&out, &["64 MiB", "probe report"]);
}

#[test]
fn a_long_lora_layers_list_fails_fast() {
    // Over the 64 KiB cap, under the OS's limit on one argument (128 KiB on Linux).
    let list = "0-15,".repeat(20_000);
    let out = run_bounded(bin(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--mode",
        "lora",
        "--lora-layers",
        &list,
    ]));
    let err = assert_refused(&out, &["--lora-layers", "bytes long"]);
    assert!(
        err.len() < 1000,
        "the whole list echoed back: {} bytes",
        err.len()
    );
}

// ---------- 3. a killed allocation stage ----------

#[test]
fn a_killed_sweep_keeps_its_verified_steps() {
    let out_path = scratch("hostile-kill").join("killed.json");
    let mut child: Child = Command::new(BIN)
        .args(["probe", "--only", "sweep", "--budget", "3GiB", "--out"])
        .arg(&out_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let steps_seen = loop {
        let steps = std::fs::read_to_string(&out_path)
            .ok()
            .and_then(|t| ProbeReport::from_json(&t).ok())
            .and_then(|r| r.stage(Stage::Allocation).cloned())
            .and_then(|s| s.allocation)
            .map_or(0, |a| a.steps.len());
        if steps >= 1 {
            break steps;
        }
        if child.try_wait().expect("wait").is_some() {
            panic!("the sweep finished before any step was seen; the test needs it running");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no step in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the probe finished before the kill");
    let text = std::fs::read_to_string(&out_path).expect("report");
    let report = ProbeReport::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(!report.complete);
    let sweep = report
        .stage(Stage::Allocation)
        .and_then(|s| s.allocation.as_ref())
        .expect("the sweep's steps survive the kill");
    assert!(sweep.steps.len() >= steps_seen, "{sweep:?}");
    assert!(sweep.steps.iter().all(|s| s.ok) || sweep.steps.len() > 1);
}

// ---------- 4. --budget beyond the machine ----------

#[test]
fn a_budget_of_1024_tib_is_refused_unless_forced() {
    let out_path = scratch("hostile-budget").join("b.json");
    let o = out_path.display().to_string();
    let out = run_bounded(bin(&[
        "probe", "--only", "sweep", "--budget", "1024TiB", "--out", &o,
    ]));
    assert_refused(&out, &["--budget 1024TiB", "--force-budget", "GiB"]);
    assert!(!out_path.exists(), "nothing ran, nothing written");
    let help = run_bounded(bin(&["probe", "--help"]));
    let help = stdout(&help);
    assert!(
        help.contains("--force-budget") && help.contains("driver's own overhead"),
        "{help}"
    );
}

// ---------- 5 and 6. reports: failed checks, impossible figures ----------

fn lavapipe_with(edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut value: Value =
        serde_json::from_str(&data("reports/lavapipe-report.json")).expect("fixture");
    edit(&mut value);
    let tag = format!("{:016x}", fnv(&value.to_string()));
    let path = scratch(&format!("hostile-report-{tag}")).join("report.json");
    std::fs::write(&path, value.to_string()).expect("write");
    path
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn measurement<'a>(value: &'a mut Value, name: &str) -> &'a mut Value {
    value["stages"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .flat_map(|s| s["measurements"].as_array_mut().into_iter().flatten())
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn fit_probe_json(report: &Path) -> (Value, String) {
    let r = report.display().to_string();
    let model = data_dir().join("hf-configs/Llama-3.2-1B.json");
    let out = run_bounded(bin(&[
        "fit",
        &model.display().to_string(),
        "--probe",
        &r,
        "--json",
    ]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{err}");
    (serde_json::from_str(&stdout(&out)).expect("JSON"), err)
}

#[test]
fn fit_probe_ignores_a_measurement_whose_check_failed() {
    let honest = lavapipe_with(|_| {});
    let lying = lavapipe_with(|v| {
        let m = measurement(v, "bandwidth.read");
        m["verification"]["passed"] = json!(false);
        m["bytes_per_s"] = json!(5.0e12);
    });
    let (truth, _) = fit_probe_json(&honest);
    let (answer, err) = fit_probe_json(&lying);
    assert!(
        err.contains("bandwidth.read") && err.contains("check") && err.contains("not used"),
        "{err}"
    );
    let decode = |v: &Value| v["decode_tokens_per_s"].as_f64().unwrap_or(f64::NAN);
    assert!(
        decode(&answer) < decode(&truth) * 100.0,
        "the failed measurement counted: {} vs {}",
        decode(&answer),
        decode(&truth)
    );
}

#[test]
fn report_figures_without_physical_sense_are_refused_with_the_field_named() {
    let cases: [(PathBuf, &str); 3] = [
        (
            lavapipe_with(|v| v["adapters"][0]["device_local_memory_bytes"] = json!(u64::MAX)),
            "device_local_memory_bytes",
        ),
        (
            lavapipe_with(|v| measurement(v, "bandwidth.read")["bytes_per_s"] = json!(1e308)),
            "bytes_per_s",
        ),
        (
            lavapipe_with(|v| measurement(v, "bandwidth.read")["bytes_per_s"] = json!(-1.0)),
            "bytes_per_s",
        ),
    ];
    for (path, field) in cases {
        let p = path.display().to_string();
        let out = run_bounded(bin(&["fit", "llama-3.1-8b", "--probe", &p]));
        assert_refused(&out, &[field, "probe report"]);
        let out = run_bounded(bin(&["show", &p]));
        assert_refused(&out, &[field]);
    }
}

#[test]
fn fit_probe_refuses_rates_far_above_the_named_devices_datasheet() {
    let mut value: Value =
        serde_json::from_str(&data("reports/h100-report.json")).expect("fixture");
    measurement(&mut value, "bandwidth.read")["bytes_per_s"] = json!(60e12);
    let path = scratch("hostile-h100").join("h100.json");
    std::fs::write(&path, value.to_string()).expect("write");
    let p = path.display().to_string();
    let out = run_bounded(bin(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "h100-sxm",
        "--probe",
        &p,
    ]));
    assert_refused(&out, &["read_bandwidth_bytes_per_s", "datasheet"]);
}

// ---------- 7. --devices ----------

#[test]
fn devices_4096_is_refused_and_more_devices_speed_up_less_than_linearly() {
    let out = headroom(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--devices",
        "4096",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--devices"), "{}", stderr(&out));
    let speed = |n: u32| {
        let n = n.to_string();
        let out = headroom(&[
            "fit",
            "llama-3.1-8b",
            "--device",
            "rtx-4090",
            "--devices",
            &n,
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        v["decode_tokens_per_s"].as_f64().unwrap_or(f64::NAN)
    };
    let one = speed(1);
    let mut last = one;
    for n in [2, 4, 8] {
        let s = speed(n);
        assert!(s > last && s < one * f64::from(n), "{n}: {s} (one: {one})");
        last = s;
    }
}

// ---------- 8. HF_ENDPOINT ----------

#[test]
fn a_non_utf8_hf_endpoint_is_an_error_not_a_fallback_to_the_public_hub() {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = hub_command("unused", &no_cache("hostile-endpoint"));
    cmd.env(
        "HF_ENDPOINT",
        std::ffi::OsStr::from_bytes(b"https://hub.example/\xff"),
    )
    .env("HF_TOKEN", "hf_secret_token")
    .args(["fit", "acme/tiny", "--device", "rtx-4090"]);
    let out = run_bounded(cmd);
    let err = assert_refused(&out, &["HF_ENDPOINT", "UTF-8"]);
    assert!(!err.contains("huggingface.co/acme"), "{err}");
}

#[test]
fn credentials_in_hf_endpoint_are_never_printed() {
    let port = closed_port();
    let endpoint = format!("http://alice:pa55word@127.0.0.1:{port}");
    let mut cmd = hub_command(&endpoint, &no_cache("hostile-creds"));
    cmd.args(["fit", "acme/tiny", "--device", "rtx-4090"]);
    let out = run_bounded(cmd);
    let err = assert_refused(&out, &["HF_ENDPOINT", "HF_TOKEN"]);
    assert!(!err.contains("pa55word") && !err.contains("alice"), "{err}");
}

#[test]
fn a_redirect_to_file_url_is_not_called_too_many_redirects() {
    let (listener, endpoint) = listen();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            let Ok(mut stream): Result<TcpStream, _> = stream else {
                continue;
            };
            if read_request(&stream).is_some() {
                let _ = stream.write_all(
                    b"HTTP/1.1 302 Found\r\nlocation: file:///etc/passwd\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    let mut cmd = hub_command(&endpoint, &no_cache("hostile-redirect"));
    cmd.args(["fit", "acme/tiny", "--device", "rtx-4090"]);
    let out = run_bounded(cmd);
    server.join().expect("server");
    let err = assert_refused(&out, &["file:///etc/passwd", "redirect"]);
    assert!(!err.contains("too many redirects"), "{err}");
}

// ---------- 10. terminal escapes ----------

#[test]
fn adapter_names_from_a_report_cannot_send_terminal_escapes() {
    let evil = lavapipe_with(|v| {
        let selected = v["selected_adapter"].as_u64().unwrap_or(0) as usize;
        v["adapters"][selected]["name"] = json!("pwned\u{1b}]0;title\u{7}\u{1b}[2J\rRTX 9090");
        v["host"]["cpu_model"] = json!("cpu\u{1b}[31mred");
    });
    let e = evil.display().to_string();
    let out = run_bounded(bin(&["show", &e]));
    let shown = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\r'),
        "{shown:?}"
    );
    assert!(shown.contains("pwned\\u{1b}]0;title"), "{shown}");
    // `fit --probe` with a catalog device notes the measured adapter's name.
    let model = data_dir().join("hf-configs/Llama-3.2-1B.json");
    let out = run_bounded(bin(&[
        "fit",
        &model.display().to_string(),
        "--device",
        "rtx-4090",
        "--probe",
        &e,
    ]));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("pwned\\u{1b}"), "{all}");
    assert!(!all.contains('\u{1b}') && !all.contains('\u{7}'), "{all:?}");
}

#[test]
fn values_clap_refuses_are_echoed_escaped() {
    let out = run_bounded(bin(&[
        "fit",
        "llama-3.1-8b",
        "--device",
        "rtx-4090",
        "--batch",
        "\u{1b}[2J",
    ]));
    // clap's plain rendering drops escape sequences, and `printable` catches any control
    // character left; either way none reaches the terminal.
    let err = assert_refused(&out, &["--batch", "invalid value"]);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let help = run_bounded(bin(&["fit", "--help"]));
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("--devices"));
}

#[test]
fn file_names_with_escapes_are_printed_escaped() {
    let dir = scratch("hostile-name");
    let name = dir.join("evil\u{1b}[2J.json");
    std::fs::write(&name, "{ not json").expect("write");
    let out = run_bounded(bin(&[
        "fit",
        &name.display().to_string(),
        "--device",
        "rtx-4090",
    ]));
    let err = assert_refused(&out, &["evil\\u{1b}[2J.json"]);
    assert!(!err.contains('\u{1b}'), "{err:?}");
}
