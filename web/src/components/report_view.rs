//! One probe report drawn as charts: the model-size sweep (time per step against size, stopping
//! point marked), GEMM and attention rates, bandwidths, decode simulation, and every measurement
//! with its verification. Used by the Reports and Benchmark pages.

use headroom_core::{
    devices::DeviceSpec,
    report::{Measurement, ProbeReport, Stage, Status},
    units::GIB,
};
use leptos::prelude::*;

use crate::{
    browser,
    components::charts::{Bar, BarChart, LineChart, Point},
    error::WebError,
    format, search,
};

/// A report's problems that are not JSON errors: things a reader must know before trusting it.
pub fn report_warnings(report: &ProbeReport) -> Vec<String> {
    let mut w = Vec::new();
    if !report.complete {
        w.push(
            "the run did not finish (complete = false): only the stages below were measured".into(),
        );
    }
    match report.selected_adapter {
        Some(i) if i >= report.adapters.len() => w.push(format!(
            "selected_adapter = {i} but the report lists {} adapter(s)",
            report.adapters.len()
        )),
        None => w.push("no adapter was selected: nothing was measured on a GPU".into()),
        _ => {}
    }
    for m in report.stages.iter().flat_map(|s| s.measurements.iter()) {
        if m.status == Status::Ok && m.verification.as_ref().is_some_and(|v| !v.passed) {
            w.push(format!(
                "{} is marked ok but its verification failed: its speed is not counted",
                m.name
            ));
        }
    }
    w
}

/// A unit for values up to `max`: the first of `units` (largest first) that `max` reaches, so a
/// CPU adapter's GFLOP/s are not drawn as 0.000 TFLOP/s.
fn pick_unit(max: f64, units: &[(f64, &'static str)]) -> (f64, &'static str) {
    units
        .iter()
        .copied()
        .find(|(scale, _)| max >= *scale)
        .or(units.last().copied())
        .unwrap_or((1.0, ""))
}

/// FLOP/s units.
const FLOPS_UNITS: &[(f64, &str)] = &[
    (1e12, "TFLOP/s"),
    (1e9, "GFLOP/s"),
    (1e6, "MFLOP/s"),
    (1.0, "FLOP/s"),
];
/// Bytes/s units (decimal, as datasheets give bandwidth).
const BANDWIDTH_UNITS: &[(f64, &str)] = &[(1e9, "GB/s"), (1e6, "MB/s"), (1.0, "B/s")];
/// Tokens/s.
const TOKEN_UNITS: &[(f64, &str)] = &[(1.0, "tokens/s")];

/// A GEMM's or attention's problem size from its parameters: `4096³` for a square GEMM,
/// `256×512×128` otherwise, `seq 2048` for attention.
fn shape_of(m: &Measurement) -> Option<String> {
    m.problem_shape().map(|s| s.label())
}

/// Why the allocation stage stopped, in words with human sizes (the report's own detail holds
/// raw byte counts).
pub fn allocation_stop_words(a: &headroom_core::report::AllocationResult) -> String {
    use headroom_core::report::AllocationStopReason as Stop;
    let held = format::bytes(a.largest_clean_bytes);
    match a.stop_reason {
        Stop::Budget => format!(
            "Stopped at its budget{}: it held {held}, and the next step would pass the budget — \
             a lower bound of what the device can hold.",
            a.budget_bytes
                .map(|b| format!(" of {}", format::bytes(b)))
                .unwrap_or_default()
        ),
        Stop::TimeLimit => {
            format!("Stopped at the stage's time limit after {held}: a lower bound.")
        }
        Stop::Error => format!(
            "Stopped when an allocation failed after {held}: the device's limit ({}).",
            a.stop_detail
        ),
        Stop::Swapping if a.swap_counters.is_some() => format!(
            "Stopped after {held}: a step took far longer than the ones before while the host \
             swapped pages out — the host began to swap."
        ),
        Stop::Swapping => format!(
            "Stopped after {held}: steps took far longer than the ones before, the host probably \
             began to swap (it gives no swap counters, so two slow steps in a row decided)."
        ),
        Stop::NothingToAllocate => {
            "Nothing to allocate: the adapter's buffer limits leave no room.".to_string()
        }
    }
}

/// What the decode simulation of `report` ran: `a 16.8 M-parameter model (hidden 4096)`.
pub fn simulated_model(report: &ProbeReport) -> Option<String> {
    let m = report
        .ok_measurements()
        .find(|m| m.name.stage() == Stage::Decode)?;
    let model = m.decode_model()?;
    let hidden = model
        .hidden
        .map(|h| format!(" (hidden {h})"))
        .unwrap_or_default();
    Some(format!(
        "a {}-parameter model{hidden}",
        format::count(model.model_params)
    ))
}

/// The catalog device a report's adapter is, by the same rule as `headroom fit --probe`: the
/// first part of the catalog id that holds a digit (`h200`, `4090`, `m2`) occurs in the
/// adapter's name, letters and digits only; the longest such id wins (`rtx-4090-d` over
/// `rtx-4090` only when the name says D).
pub fn catalog_device_of(adapter_name: &str) -> Option<DeviceSpec> {
    let name = search::squash(adapter_name);
    headroom_core::devices::catalog()
        .iter()
        .filter(|d| {
            d.id.split('-')
                .find(|part| part.chars().any(|c| c.is_ascii_digit()))
                .is_some_and(|part| name.contains(&search::squash(part)))
                && d.id
                    .split('-')
                    .filter(|p| !p.ends_with("gb"))
                    .all(|p| name.contains(&search::squash(p)))
        })
        .max_by_key(|d| d.id.len())
        .cloned()
}

/// The measurements of `stage`, as bars in a unit that suits their size.
fn bars(
    report: &ProbeReport,
    stage: Stage,
    value: fn(&Measurement) -> Option<f64>,
    units: &[(f64, &'static str)],
) -> (Vec<Bar>, &'static str) {
    let max = report
        .ok_measurements()
        .filter(|m| m.name.stage() == stage)
        .filter_map(value)
        .fold(0.0, f64::max);
    let (scale, unit) = pick_unit(max, units);
    let bars = report
        .ok_measurements()
        .filter(|m| m.name.stage() == stage)
        .filter(|m| m.verification.as_ref().is_none_or(|v| v.passed))
        .filter_map(|m| {
            value(m).map(|v| Bar {
                label: {
                    let name = m.name.to_string();
                    // `f16.acc_f32` reads as f16 inputs into f32 sums: `f16→f32`, short
                    // enough to leave room for the size.
                    let short = name
                        .strip_prefix(stage.name())
                        .unwrap_or(&name)
                        .trim_start_matches('.')
                        .replace(".acc_", "→");
                    // The same kernel at several sizes: the size tells the bars apart.
                    match shape_of(m) {
                        Some(shape) => format!("{short} {shape}"),
                        None => short,
                    }
                },
                value: v / scale,
                value_text: format!("{} {unit}", format::significant(v / scale)),
            })
        })
        .collect();
    (bars, unit)
}

/// The device a report measured, as the calculator uses it: the catalog entry its adapter
/// stands for with the measured figures in place ([`DeviceSpec::from_report`], as the CLI's
/// `--probe` does), or the measurements alone.
pub fn device_from_report(report: &ProbeReport) -> DeviceSpec {
    DeviceSpec::from_report(&report.measured_device()).0
}

/// The measured device of a chosen probe report file, as the `devspec=` JSON both the
/// calculator and "What can I run?" keep in their links.
pub async fn measured_device_json(files: Vec<web_sys::File>) -> Result<String, WebError> {
    let file = files.into_iter().next().ok_or_else(|| {
        WebError::File(
            "no file was dropped; choose a report from headroom probe or the Benchmark page".into(),
        )
    })?;
    let name = file.name();
    let text = browser::read_file_text(&file, headroom_core::limits::MAX_REPORT_JSON_BYTES).await?;
    let report =
        ProbeReport::from_json(&text).map_err(|e| WebError::File(format!("{name}: {e}")))?;
    serde_json::to_string(&device_from_report(&report)).map_err(|e| {
        WebError::File(format!(
            "{name}: the measured device cannot be kept in the link: {e}"
        ))
    })
}

/// Charts and tables for one report.
#[component]
pub fn ReportView(
    /// The report.
    report: ProbeReport,
    /// Label (file name or "this browser").
    label: String,
    /// Called with the measured device when "use this device" is clicked; no button without.
    #[prop(optional)]
    on_use_device: Option<Callback<DeviceSpec>>,
    /// Called with the measured device when "What can it run?" is clicked; no button without.
    #[prop(optional)]
    on_show_runs: Option<Callback<DeviceSpec>>,
) -> impl IntoView {
    let adapter = report
        .adapter()
        .map(|a| format!("{} ({}, {})", a.name, a.backend, a.device_type))
        .unwrap_or_else(|| "no adapter".into());
    let device = device_from_report(&report);
    let warnings = report_warnings(&report)
        .into_iter()
        .map(|w| view! { <li>{w}</li> })
        .collect_view();
    let gemm = bars(&report, Stage::Gemm, |m| m.flops_per_s, FLOPS_UNITS);
    let attention = bars(&report, Stage::Attention, |m| m.flops_per_s, FLOPS_UNITS);
    let bandwidth = bars(
        &report,
        Stage::Bandwidth,
        |m| m.bytes_per_s,
        BANDWIDTH_UNITS,
    );
    let decode = bars(&report, Stage::Decode, |m| m.tokens_per_s, TOKEN_UNITS);
    let host = bars(
        &report,
        Stage::HostBandwidth,
        |m| m.bytes_per_s,
        BANDWIDTH_UNITS,
    );
    let transfer = bars(&report, Stage::Transfer, |m| m.bytes_per_s, BANDWIDTH_UNITS);
    let decode_title = match simulated_model(&report) {
        Some(model) => format!("Decode simulation: {model}, one token per step"),
        None => "Decode simulation".to_string(),
    };
    let measured = report.measured_device();
    let memory = format!(
        "Memory: {}{}. Usable: {}.",
        measured
            .memory_bytes
            .map(format::bytes)
            .unwrap_or_else(|| "not reported".into()),
        measured
            .memory_basis
            .as_ref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default(),
        match (measured.usable_bytes, &measured.usable_basis) {
            (Some(b), Some(why)) => format!("{} — {why}", format::bytes(b)),
            (Some(b), None) => format::bytes(b),
            (None, Some(why)) => format!("not measured: {why}"),
            (None, None) => "not measured".into(),
        }
    );
    let datasheet = report
        .adapter()
        .and_then(|a| catalog_device_of(&a.name))
        .map(|d| datasheet_table(&d, &measured));
    let allocation = report
        .stage(Stage::Allocation)
        .and_then(|s| s.allocation.clone());
    let allocation_view = allocation.map(|s| {
        let points: Vec<Point> = s
            .steps
            .iter()
            .filter(|st| st.ok)
            .map(|st| Point {
                x: st.total_bytes as f64 / GIB as f64,
                y: st.step_s,
            })
            .collect();
        let last = s.steps.last().map(|st| Point {
            x: st.total_bytes as f64 / GIB as f64,
            y: st.step_s,
        });
        let stop = last.map(|p| (p, format!("{:?}", s.stop_reason).to_lowercase()));
        let stop_detail = allocation_stop_words(&s);
        // Pages swapped out and every slow step's note: what decided the knee.
        let swap = s
            .swap_summary()
            .map(|summary| view! { <p class="note sweep-swap">{format!("Swap: {summary}.")}</p> });
        view! {
            <h3>"Model-size sweep"</h3>
            <p class="note">{format!(
                "fp16 parameters allocated in steps of {}; largest clean size {} ({} parameters).",
                format::count(s.step_params),
                format::bytes(s.largest_clean_bytes),
                format::count(s.largest_clean_params)
            )}</p>
            <LineChart
                title="Time per sweep step against model size".to_string()
                x_unit="allocated (GiB)".to_string()
                y_unit="step time (s)".to_string()
                points=points
                stop=stop
            />
            <p class="note">{stop_detail}</p>
            {swap}
        }
    });
    let max_buffer = report
        .stage(Stage::MaxBuffer)
        .and_then(|s| s.max_buffer.clone())
        .map(|m| {
            view! {
                <p>"Largest buffer: " {format::bytes(m.largest_verified_bytes)} " verified, "
                   {format::bytes(m.largest_accepted_bytes)} " accepted (adapter limit "
                   {format::bytes(m.adapter_limit_bytes)} ")."</p>
            }
        });
    let chart = |title: &str, (b, unit): (Vec<Bar>, &str)| {
        (!b.is_empty()).then(|| {
            view! {
                <h3>{title.to_string()}</h3>
                <BarChart title=title.to_string() unit=unit.to_string() bars=b />
            }
        })
    };
    let rows = report
        .stages
        .iter()
        .flat_map(|s| s.measurements.iter())
        .map(|m| {
            let (class, status) = match (m.status, m.verification.as_ref()) {
                (Status::Ok, Some(v)) if v.passed => {
                    ("kernel-ok", format!("verified (rel. error {:.1e})", v.rel_error))
                }
                (Status::Ok, Some(_)) => ("kernel-fail", "verification failed".to_string()),
                (Status::Ok, None) => ("kernel-ok", "ok".to_string()),
                (Status::Failed, _) => (
                    "kernel-fail",
                    format!("failed: {}", m.error.clone().unwrap_or_default()),
                ),
                (Status::Skipped, _) => (
                    "note",
                    format!("skipped: {}", m.error.clone().unwrap_or_default()),
                ),
            };
            let speed = m
                .flops_per_s
                .map(format::flops)
                .or(m.bytes_per_s.map(format::bandwidth))
                .or(m.tokens_per_s.map(format::tokens_per_s))
                .unwrap_or_default();
            view! { <tr><td>{m.name.to_string()}</td><td class=class>{status}</td><td class="num">{speed}</td></tr> }
        })
        .collect_view();
    let runs_button = on_show_runs.map(|show| {
        let device = device.clone();
        view! {
            " "
            <button class="can-run-device secondary" on:click=move |_| show.run(device.clone())>
                "What can it run?"
            </button>
        }
    });
    let use_button = on_use_device.map(|use_it| {
        let device = device.clone();
        view! {
            <button class="use-device" on:click=move |_| use_it.run(device.clone())>
                "Use this device in the calculator"
            </button>
            {runs_button}
        }
    });
    view! {
        <div class="card report">
            <h2>{label}</h2>
            <p><strong class="report-device">{device.name.clone()}</strong> " — " {adapter}
               <span class="note report-date">{format!(" · {} · {}", format::date_utc(&report.date_utc), report.tool.name)}</span></p>
            <ul class="assumptions warnings">{warnings}</ul>
            <p class="note report-memory">{memory}</p>
            {use_button}
            {datasheet}
            {allocation_view}
            {max_buffer}
            {chart("Matrix multiply (GEMM), verified", gemm)}
            {chart("Attention, verified", attention)}
            {chart("Memory bandwidth (copy counts read + write)", bandwidth)}
            {chart(&decode_title, decode)}
            {chart("Host RAM read, every core (for offload)", host)}
            {chart("Host↔device transfer (for offload)", transfer)}
            <details>
                <summary>"Every measurement"</summary>
                <div class="table-wrap">
                    <table class="measurements">
                        <thead><tr><th>"measurement"</th><th>"result"</th><th class="num">"speed"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            </details>
        </div>
    }
}

/// The measured figures beside the catalog's datasheet figures for the same device.
fn datasheet_table(
    d: &DeviceSpec,
    m: &headroom_core::report::MeasuredDevice,
) -> impl IntoView + use<> {
    let row = |what: &'static str, measured: Option<String>, sheet: String, ratio: Option<f64>| {
        view! {
            <tr><td>{what}</td><td class="num">{measured.unwrap_or_else(|| "—".into())}</td>
                <td class="num">{sheet}</td>
                <td class="num">{ratio.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "—".into())}</td></tr>
        }
    };
    let share = |a: Option<f64>, b: f64| a.filter(|_| b > 0.0).map(|a| a / b);
    view! {
        <h3>{format!("Measured against the datasheet of {}", d.name)}</h3>
        <div class="table-wrap">
            <table class="datasheet">
                <thead><tr><th>"figure"</th><th class="num">"measured"</th><th class="num">"datasheet"</th><th class="num">"share"</th></tr></thead>
                <tbody>
                    {row("read bandwidth", m.read_bandwidth_bytes_per_s.map(format::bandwidth), format::bandwidth(d.bandwidth_bytes_per_s), share(m.read_bandwidth_bytes_per_s, d.bandwidth_bytes_per_s))}
                    {row("best f16 GEMM", m.fp16_flops.map(format::flops), format::flops(d.fp16_flops), share(m.fp16_flops, d.fp16_flops))}
                    {row("f32 GEMM", m.fp32_flops.map(format::flops), format::flops(d.fp32_flops), share(m.fp32_flops, d.fp32_flops))}
                    {row("memory", m.memory_bytes.map(format::bytes), format::bytes(d.memory_bytes), share(m.memory_bytes.map(|b| b as f64), d.memory_bytes as f64))}
                </tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_are_matched_to_their_catalog_datasheet() {
        assert_eq!(
            catalog_device_of("NVIDIA H200").map(|d| d.id),
            Some("h200".to_string())
        );
        assert_eq!(
            catalog_device_of("NVIDIA GeForce RTX 4090").map(|d| d.id),
            Some("rtx-4090".to_string())
        );
        assert_eq!(catalog_device_of("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
    }
}
