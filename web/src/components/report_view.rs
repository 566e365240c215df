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
    app::{AppState, Page},
    components::charts::{Bar, BarChart, LineChart, Point},
    format,
    url_state::Query,
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
                    name.strip_prefix(stage.name())
                        .unwrap_or(&name)
                        .trim_start_matches('.')
                        .to_string()
                },
                value: v / scale,
                value_text: format!("{:.3} {unit}", v / scale),
            })
        })
        .collect();
    (bars, unit)
}

/// The device a report measured, as the calculator uses it.
pub fn device_from_report(report: &ProbeReport) -> DeviceSpec {
    DeviceSpec::from_measured(&report.measured_device())
}

/// Go to the calculator with this device selected.
pub fn use_in_calculator(state: AppState, device: &DeviceSpec) {
    let mut q = Query::parse(&crate::browser::location_search());
    // Keep nothing of the other page's parameters but a previous calculator model, if any.
    let mut fresh = Query::new();
    for key in [
        "model", "hf", "cfg", "name", "spec", "format", "ctx", "mode",
    ] {
        if let Some(v) = q.get(key) {
            fresh.set(key, v.to_string());
        }
    }
    q = fresh;
    q.set("devspec", serde_json::to_string(device).unwrap_or_default());
    state.navigate(Page::Calculator, q);
}

/// Go to "What can I run?" with this device.
pub fn show_what_it_runs(state: AppState, device: &DeviceSpec) {
    let mut q = Query::new();
    q.set("devspec", serde_json::to_string(device).unwrap_or_default());
    state.navigate(Page::CanRun, q);
}

/// Charts and tables for one report.
#[component]
pub fn ReportView(
    /// The report.
    report: ProbeReport,
    /// Label (file name or "this browser").
    label: String,
) -> impl IntoView {
    let state = use_context::<AppState>();
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
        let stop_detail = format!("Stopped ({:?}): {}", s.stop_reason, s.stop_detail);
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
    let use_button = state.map(|st| {
        let device = device.clone();
        let ranked = device.clone();
        view! {
            <button class="use-device" on:click=move |_| use_in_calculator(st, &device)>
                "Use this device in the calculator"
            </button>
            " "
            <button class="can-run-device secondary" on:click=move |_| show_what_it_runs(st, &ranked)>
                "What can it run?"
            </button>
        }
    });
    view! {
        <div class="card report">
            <h2>{label}</h2>
            <p><strong class="report-device">{device.name.clone()}</strong> " — " {adapter}
               <span class="note">{format!(" · {} · {}", report.date_utc, report.tool.name)}</span></p>
            <ul class="assumptions warnings">{warnings}</ul>
            {use_button}
            {allocation_view}
            {max_buffer}
            {chart("Matrix multiply (GEMM), verified", gemm)}
            {chart("Attention, verified", attention)}
            {chart("Memory bandwidth (copy counts read + write)", bandwidth)}
            {chart("Decode simulation", decode)}
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
