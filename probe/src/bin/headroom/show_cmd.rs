//! `headroom show FILE`: a summary of a saved probe report (the same table `headroom probe`
//! prints at the end).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use headroom_core::limits::MAX_REPORT_JSON_BYTES;
use headroom_core::report::{Measurement, ProbeReport, Status};

use crate::user_file::read_text;

/// Arguments of `headroom show`.
#[derive(clap::Args)]
pub struct ShowArgs {
    /// A JSON report written by `headroom probe` (or the site's benchmark).
    file: PathBuf,
}

/// Run the command.
pub fn run(args: ShowArgs) -> anyhow::Result<()> {
    let text = read_text(&args.file, "probe report", MAX_REPORT_JSON_BYTES)?;
    let report = ProbeReport::from_json(&text).with_context(|| {
        format!(
            "{} is not a valid headroom probe report",
            args.file.display()
        )
    })?;
    print_summary(&report, &mut std::io::stdout())?;
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

fn speed(m: &Measurement) -> String {
    if let Some(t) = m.tokens_per_s {
        let bw = m
            .bytes_per_s
            .map_or_else(String::new, |b| format!(" ({:.1} GB/s)", b / 1e9));
        format!("{t:.1} tokens/s{bw}")
    } else if let Some(f) = m.flops_per_s {
        flops(f)
    } else if let Some(b) = m.bytes_per_s {
        format!(
            "{:.1} GB/s {}",
            b / 1e9,
            m.bytes_counted.as_deref().unwrap_or("")
        )
    } else {
        "-".to_owned()
    }
}

/// FLOP/s in TFLOP/s, or GFLOP/s below one TFLOP/s (a CPU driver's 1.8 GFLOP/s is not
/// "0.00 TFLOP/s").
fn flops(f: f64) -> String {
    if f >= 1e12 {
        format!("{:.2} TFLOP/s", f / 1e12)
    } else {
        format!("{:.2} GFLOP/s", f / 1e9)
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
    }
}

/// Prints the report's summary table, control characters escaped (names in a report are
/// whatever its writer put there).
pub fn print_summary(report: &ProbeReport, out: &mut dyn Write) -> std::io::Result<()> {
    let mut text = Vec::new();
    summary(report, &mut text)?;
    out.write_all(crate::printable::printable(&String::from_utf8_lossy(&text)).as_bytes())?;
    out.flush()
}

fn summary(report: &ProbeReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "headroom probe report ({} {}, {})",
        report.tool.name, report.tool.version, report.date_utc
    )?;
    if !report.complete {
        writeln!(
            out,
            "PARTIAL: the run did not finish; the stages below are the ones that did"
        )?;
    }
    let host = &report.host;
    writeln!(
        out,
        "host: {} {} {}, {} cores, RAM {}",
        host.os,
        host.os_version.as_deref().unwrap_or(""),
        host.cpu_model.as_deref().unwrap_or("unknown CPU"),
        host.cpu_cores
            .map_or_else(|| "?".to_owned(), |c| c.to_string()),
        host.ram_bytes.map_or_else(
            || "unknown".to_owned(),
            |b| format!("{:.1} GiB", b as f64 / GIB)
        ),
    )?;
    if let Some(mac) = &host.macos {
        writeln!(
            out,
            "macOS: hw.memsize {:?}, iogpu.wired_limit_mb {:?}, Metal working set {:?} bytes",
            mac.hw_memsize_bytes, mac.iogpu_wired_limit_mb, mac.recommended_max_working_set_bytes
        )?;
    }
    if let Some(a) = report.adapter() {
        writeln!(
            out,
            "adapter: {} ({}, {}, driver {} {}){}",
            a.name,
            a.backend,
            a.device_type,
            a.driver,
            a.driver_info,
            a.device_local_memory_bytes
                .map_or_else(String::new, |b| format!(
                    ", {:.1} GiB device-local",
                    b as f64 / GIB
                ))
        )?;
    }
    writeln!(
        out,
        "budget: {} ({})",
        report.settings.budget_bytes.map_or_else(
            || "none".to_owned(),
            |b| format!("{:.2} GiB", b as f64 / GIB)
        ),
        report.settings.budget_source
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:<8} {:<34} check / note",
        "measurement", "status", "result"
    )?;
    for stage in &report.stages {
        if stage.measurements.is_empty() && stage.max_buffer.is_none() && stage.allocation.is_none()
        {
            writeln!(
                out,
                "{:<28} {:<8} {:<34} {}",
                stage.stage,
                status(stage.status),
                "-",
                stage.reason.as_deref().unwrap_or("")
            )?;
        }
        for m in &stage.measurements {
            let check = match (&m.verification, &m.error) {
                (_, Some(err)) => err.clone(),
                (Some(v), None) => format!(
                    "rel err {:.1e} {} {:.0e}",
                    v.rel_error,
                    if v.passed { "≤" } else { "above" },
                    v.tolerance
                ),
                (None, None) => String::new(),
            };
            let tile = m
                .params
                .get("tile")
                .and_then(|t| t.as_str())
                .map_or_else(String::new, |t| format!(" [{t}]"));
            let unverified =
                m.status == Status::Ok && m.verification.as_ref().is_some_and(|v| !v.passed);
            writeln!(
                out,
                "{:<28} {:<8} {:<34} {check}{tile}{}",
                m.name,
                if unverified {
                    "IGNORED"
                } else {
                    status(m.status)
                },
                speed(m),
                if unverified {
                    " (check failed: not used for estimates)"
                } else {
                    ""
                }
            )?;
        }
        if let Some(mb) = &stage.max_buffer {
            writeln!(
                out,
                "{:<28} {:<8} {:<34} limit {:.2} GiB, accepted {:.2} GiB, searched to {:.2} GiB",
                "max_buffer",
                status(stage.status),
                format!("{:.2} GiB verified", mb.largest_verified_bytes as f64 / GIB),
                mb.adapter_limit_bytes as f64 / GIB,
                mb.largest_accepted_bytes as f64 / GIB,
                mb.searched_up_to_bytes as f64 / GIB,
            )?;
        }
        if let Some(sw) = &stage.allocation {
            writeln!(
                out,
                "{:<28} {:<8} {:<34} {} steps; {}",
                "sweep",
                status(stage.status),
                format!(
                    "{:.2}B params ({:.1} GiB) clean",
                    sw.largest_clean_params as f64 / 1e9,
                    sw.largest_clean_bytes as f64 / GIB
                ),
                sw.steps.len(),
                sw.stop_detail
            )?;
            // Pages swapped out and the slow steps' notes: what decided the knee.
            if let Some(summary) = sw.swap_summary() {
                writeln!(out, "{:<28} {summary}", "  swap")?;
            }
        }
    }
    let d = report.measured_device();
    writeln!(out)?;
    writeln!(
        out,
        "for estimates: fp32 {}, fp16 {}, read {} GB/s, usable {} GiB",
        d.fp32_flops.map_or_else(|| "-".to_owned(), flops),
        d.fp16_flops.map_or_else(|| "-".to_owned(), flops),
        d.read_bandwidth_bytes_per_s
            .map_or_else(|| "-".to_owned(), |b| format!("{:.1}", b / 1e9)),
        d.usable_bytes
            .map_or_else(|| "-".to_owned(), |b| format!("{:.1}", b as f64 / GIB)),
    )?;
    if d.host_read_bandwidth_bytes_per_s.is_some() || d.host_to_device_bytes_per_s.is_some() {
        let gbs = |b: Option<f64>| b.map_or_else(|| "-".to_owned(), |b| format!("{:.1}", b / 1e9));
        writeln!(
            out,
            "for offload: host RAM read {} GB/s, upload {} GB/s, download {} GB/s",
            gbs(d.host_read_bandwidth_bytes_per_s),
            gbs(d.host_to_device_bytes_per_s),
            gbs(d.device_to_host_bytes_per_s),
        )?;
    }
    // Where the usable figure comes from, or why the allocation stage's was left out (a sweep
    // stopped by its budget is a lower bound).
    if let Some(basis) = &d.usable_basis {
        writeln!(out, "usable memory: {basis}")?;
    }
    if d.usable_bytes.is_none()
        && let (Some(memory), Some(from)) = (d.memory_bytes, &d.memory_basis)
    {
        writeln!(
            out,
            "memory size {:.1} GiB, from {from}: estimates take usable memory from it",
            memory as f64 / GIB
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::flops;

    #[test]
    fn flops_below_a_teraflop_are_shown_in_gigaflops() {
        assert_eq!(flops(1.79e9), "1.79 GFLOP/s");
        assert_eq!(flops(999.0e9), "999.00 GFLOP/s");
        assert_eq!(flops(1.0e12), "1.00 TFLOP/s");
        assert_eq!(flops(37.31e12), "37.31 TFLOP/s");
    }
}
