//! Benchmark: the probe's own kernels (headroom-probe) run through WebGPU in this browser, each
//! checked against a CPU reference before its speed counts; the result is a probe report in the
//! same schema (tool: the browser benchmark), shown with the Reports page's charts and saved as
//! JSON.

use std::rc::Rc;

use headroom_core::report::{
    HostInfo, Measurement, ProbeReport, ProbeSettings, SCHEMA_VERSION, StageRecord, Status,
    ToolInfo,
};
use headroom_probe::plan::{Capabilities, Plan, Request, Step, Target};
use headroom_probe::run::{Outcome, Progress};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    browser,
    components::report_view::{ReportView, device_from_report},
    gpu::{self, GpuContext},
    nav::Navigation,
};

/// Tool name written into reports from this page (the report's "source").
pub const BROWSER_TOOL_NAME: &str = "headroom browser benchmark";

/// One line of the progress list.
#[derive(Debug, Clone, PartialEq)]
struct StepLine {
    label: String,
    outcome: String,
    /// `kernel-ok`, `kernel-skip` (nothing ran: a feature is missing) or `kernel-fail`.
    class: &'static str,
}

/// A fresh seed per run (the kernels check against fresh random data).
fn seed() -> u64 {
    (js_sys::Math::random() * (u32::MAX as f64)) as u64 ^ (js_sys::Date::now() as u64)
}

fn summarize(ms: &[Measurement]) -> (String, &'static str) {
    let mut ok = true;
    let parts: Vec<String> = ms
        .iter()
        .map(|m| match (m.status, m.verification.as_ref()) {
            (Status::Ok, Some(v)) if v.passed => format!("{}: verified", m.name),
            (Status::Ok, Some(_)) => {
                ok = false;
                format!("{}: WRONG RESULT", m.name)
            }
            (Status::Ok, None) => format!("{}: ok", m.name),
            (Status::Skipped, _) => {
                format!(
                    "{}: skipped ({})",
                    m.name,
                    m.error.clone().unwrap_or_default()
                )
            }
            (Status::Failed, _) => {
                ok = false;
                format!(
                    "{}: FAILED ({})",
                    m.name,
                    m.error.clone().unwrap_or_default()
                )
            }
        })
        .collect();
    let class = if !ok {
        "kernel-fail"
    } else if ms.iter().all(|m| m.status == Status::Skipped) {
        "kernel-skip"
    } else {
        "kernel-ok"
    };
    (parts.join("; "), class)
}

/// The run's closing line, honest about what did not run: every kernel verified only when no
/// measurement was skipped or failed; otherwise how many ran, were skipped and failed.
pub fn summary(report: &ProbeReport, cancelled: bool) -> String {
    let all = || report.stages.iter().flat_map(|s| s.measurements.iter());
    // Stages a browser never runs (host RAM with every core) or that mean nothing on this
    // adapter (a transfer to the CPU's own memory) are not features it lacks: said apart.
    let not_here = |s: &StageRecord| {
        s.status == Status::Skipped
            && s.reason.as_deref().is_some_and(|r| {
                r == headroom_probe::plan::BROWSER_HOST_BANDWIDTH_SKIP
                    || r == headroom_probe::plan::CPU_TRANSFER_SKIP
            })
    };
    let not_run: Vec<String> = report
        .stages
        .iter()
        .filter(|s| not_here(s))
        .map(|s| format!("{} — {}", s.stage, s.reason.as_deref().unwrap_or_default()))
        .collect();
    let not_run = if not_run.is_empty() {
        String::new()
    } else {
        format!(". Not run here: {}", not_run.join("; "))
    };
    let verified = all()
        .filter(|m| m.status == Status::Ok && m.verification.as_ref().is_some_and(|v| v.passed))
        .count();
    let skipped = all().filter(|m| m.status == Status::Skipped).count()
        + report
            .stages
            .iter()
            .filter(|s| s.status == Status::Skipped && !not_here(s))
            .count();
    let failed = all()
        .filter(|m| {
            m.status == Status::Failed
                || (m.status == Status::Ok && m.verification.as_ref().is_some_and(|v| !v.passed))
        })
        .count()
        + report
            .stages
            .iter()
            .filter(|s| s.status == Status::Failed)
            .count();
    let counts = format!(
        "{verified} measurement{} verified, {skipped} skipped, {failed} failed",
        if verified == 1 { "" } else { "s" }
    );
    let text = if cancelled {
        format!("cancelled: the report keeps the steps that finished ({counts})")
    } else if failed > 0 {
        format!("finished with failures ({counts}): see the steps marked FAILED")
    } else if skipped > 0 {
        format!(
            "finished: {counts} — the skipped ones need features this browser's adapter lacks \
             (reasons in the steps below)"
        )
    } else {
        format!("finished: every kernel ran and every result was verified ({counts})")
    };
    text + &not_run
}

/// A step's line: its measurements, or the memory stage's result.
fn step_line(step: &Step, measurements: &[Measurement], record: &StageRecord) -> StepLine {
    let ok_or_fail = |ok: bool| if ok { "kernel-ok" } else { "kernel-fail" };
    let (outcome, class) = if let Some(m) = &record.max_buffer {
        (
            format!(
                "{} verified by write and read-back, {} accepted (adapter limit {})",
                crate::format::bytes(m.largest_verified_bytes),
                crate::format::bytes(m.largest_accepted_bytes),
                crate::format::bytes(m.adapter_limit_bytes)
            ),
            ok_or_fail(m.largest_verified_bytes > 0),
        )
    } else if let Some(a) = &record.allocation {
        (
            crate::components::report_view::allocation_stop_words(a),
            "kernel-ok",
        )
    } else if measurements.is_empty() {
        (
            record.reason.clone().unwrap_or_else(|| "done".into()),
            if record.status == Status::Skipped {
                "kernel-skip"
            } else {
                ok_or_fail(record.status == Status::Ok)
            },
        )
    } else {
        summarize(measurements)
    };
    StepLine {
        label: step.label(),
        outcome,
        class,
    }
}

/// The page's side of a run: progress lines, the step count, the report so far, the cancel
/// button.
struct Panel {
    lines: RwSignal<Vec<StepLine>>,
    done: RwSignal<usize>,
    report: RwSignal<Option<ProbeReport>>,
    cancel: RwSignal<bool>,
}

impl Progress for Panel {
    fn step_finished(&mut self, step: &Step, measurements: &[Measurement], record: &StageRecord) {
        let line = step_line(step, measurements, record);
        self.lines.update(|l| l.push(line));
        self.done.update(|d| *d += 1);
    }

    fn report_changed(&mut self, report: &ProbeReport) {
        self.report.set(Some(report.clone()));
    }

    async fn go_on(&mut self) -> bool {
        // Let the page repaint and the cancel button be clicked between steps.
        browser::sleep_ms(0).await;
        !self.cancel.get_untracked()
    }
}

/// The report's header for this browser (no stages yet).
fn browser_report(ctx: &GpuContext, plan: &Plan) -> ProbeReport {
    let navigator = web_sys::window().map(|w| w.navigator());
    let cores = navigator
        .as_ref()
        .map(|n| n.hardware_concurrency() as u32)
        .filter(|c| *c > 0);
    let user_agent = navigator.and_then(|n| n.user_agent().ok());
    ProbeReport {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: BROWSER_TOOL_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        date_utc: String::from(js_sys::Date::new_0().to_iso_string()),
        complete: false,
        host: HostInfo {
            os: "browser".into(),
            os_version: user_agent,
            arch: "wasm32".into(),
            cpu_cores: cores,
            ..HostInfo::default()
        },
        adapters: vec![adapter_info(ctx)],
        selected_adapter: Some(0),
        settings: ProbeSettings {
            quick: true,
            only: Vec::new(),
            budget_bytes: plan.budget.bytes,
            budget_source: plan.budget_source(),
            allow_swap: false,
        },
        stages: Vec::new(),
    }
}

/// The adapter as the report describes it; wgpu's `AdapterInfo` is mostly empty on the web, so
/// the name and the CPU-fallback flag come from `navigator.gpu`.
fn adapter_info(ctx: &GpuContext) -> headroom_core::report::AdapterInfo {
    let mut adapter = headroom_probe::adapter::describe(0, &ctx.adapter);
    if adapter.name.is_empty() {
        adapter.name = format!("{} (WebGPU)", ctx.info.display_name());
    }
    if ctx.info.is_fallback {
        adapter.device_type = "cpu".into();
    }
    adapter
}

/// The plan for this browser's adapter.
fn browser_plan(ctx: &GpuContext) -> Plan {
    let request = Request {
        target: Target::Browser,
        only: Vec::new(),
        budget_bytes: None,
        allow_swap: false,
        simulate_oom_above_bytes: None,
        simulate_slow_steps: Vec::new(),
    };
    Plan::new(
        &request,
        &adapter_info(ctx),
        Capabilities::of(&ctx.adapter),
        &HostInfo::default(),
    )
}

/// The benchmark page.
#[component]
pub fn BenchmarkPage() -> impl IntoView {
    // The WebGPU device, asked for once: a local resource (browser futures are not `Send`),
    // its typed error shown as it is.
    let gpu: LocalResource<Result<Rc<GpuContext>, gpu::GpuError>> =
        LocalResource::new(|| async { gpu::acquire().await.map(Rc::new) });
    let ok = Memo::new(move |_| gpu.get().map(|g| g.is_ok()));
    let status = move || match gpu.get() {
        None => "checking for WebGPU…".to_string(),
        Some(Ok(c)) => format!(
            "WebGPU adapter: {}{}",
            c.info.display_name(),
            if c.info.is_fallback {
                " (a CPU fallback: sizes only check correctness)"
            } else {
                ""
            }
        ),
        Some(Err(e)) => e.to_string(),
    };
    let running = RwSignal::new(false);
    let cancel = RwSignal::new(false);
    let done = RwSignal::new(0usize);
    let total = RwSignal::new(0usize);
    let lines = RwSignal::new(Vec::<StepLine>::new());
    let report = RwSignal::new(None::<ProbeReport>);
    let finished = RwSignal::new(None::<String>);
    // The step count of the plan this adapter gets, shown before the first run.
    Effect::new(move |_| {
        if let Some(Ok(c)) = gpu.get() {
            total.set(browser_plan(&c).all_steps().len());
        }
    });
    let run = move |_| {
        let Some(Ok(c)) = gpu.get_untracked() else {
            return;
        };
        running.set(true);
        cancel.set(false);
        done.set(0);
        lines.set(Vec::new());
        report.set(None);
        finished.set(None);
        spawn_local(async move {
            let plan = browser_plan(&c);
            total.set(plan.all_steps().len());
            let mut this_run = browser_report(&c, &plan);
            let mut panel = Panel {
                lines,
                done,
                report,
                cancel,
            };
            let outcome = headroom_probe::run::run(
                &c.device,
                &c.queue,
                &plan,
                seed(),
                &mut this_run,
                &mut panel,
            )
            .await;
            finished.set(Some(summary(&this_run, outcome == Outcome::Stopped)));
            if outcome != Outcome::Stopped {
                // This browser's device for the calculator's first screen (when it knows its
                // memory).
                crate::nav::remember_device(&device_from_report(&this_run));
            }
            report.set(Some(this_run));
            running.set(false);
        });
    };
    let save = move |_| {
        if let Some(r) = report.get_untracked() {
            let name = format!("headroom-browser-{}.json", r.date_utc.replace(':', "-"));
            if let Err(e) = browser::download_text(&name, &r.to_json(), "application/json") {
                finished.set(Some(format!("could not save the report: {e}")));
            }
        }
    };
    let nav = use_context::<Navigation>();
    let use_device = move |_| {
        if let (Some(r), Some(nav)) = (report.get_untracked(), nav) {
            nav.use_device_in_calculator(&device_from_report(&r));
        }
    };
    let show_runs = move |_| {
        if let (Some(r), Some(nav)) = (report.get_untracked(), nav) {
            nav.show_what_it_runs(&device_from_report(&r));
        }
    };
    view! {
        <section id="benchmark">
            <h1>"Benchmark this browser's GPU"</h1>
            <div class="card">
                <p id="webgpu-status" class:error=move || ok.get() == Some(false) data-ready=move || ok.get().map(|b| b.to_string())>
                    {status}
                </p>
                <p class="note">"Runs headroom's probe kernels (GEMM, attention, bandwidth, decode simulation, largest buffer, model-size sweep) through WebGPU; every result is checked against a CPU reference before its speed counts. Nothing is uploaded."</p>
                <div class="row">
                    <button id="run-benchmark" style="flex: 0 0 auto" disabled=move || ok.get() != Some(true) || running.get() on:click=run>"Run benchmark"</button>
                    <button id="cancel-benchmark" style="flex: 0 0 auto" class="secondary" disabled=move || !running.get() on:click=move |_| cancel.set(true)>"Cancel"</button>
                    <button id="save-report" style="flex: 0 0 auto" class="secondary" disabled=move || running.get() || report.get().is_none() on:click=save>"Save report (JSON)"</button>
                    <button id="use-benchmark-device" style="flex: 0 0 auto" class="secondary" disabled=move || running.get() || report.get().is_none() on:click=use_device>"Use this device in the calculator"</button>
                    <button id="benchmark-can-run" style="flex: 0 0 auto" class="secondary" disabled=move || running.get() || report.get().is_none() on:click=show_runs>"What can it run?"</button>
                </div>
                <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=move || total.get() aria-valuenow=move || done.get()>
                    <div style=move || format!("width: {:.0}%", 100.0 * done.get() as f64 / total.get().max(1) as f64)></div>
                </div>
                <p id="progress-text" class="note">{move || format!("{} of {} steps", done.get(), total.get())}
                    {move || cancel.get().then_some(" — cancelling after the current step (a GPU submission cannot be interrupted)")}</p>
                {move || finished.get().map(|f| view! { <p id="benchmark-done"><strong>{f}</strong></p> })}
                <ol id="benchmark-steps">
                    {move || lines.get().into_iter().map(|l| view! {
                        <li class=l.class><strong>{l.label}</strong>": " <span class="note">{l.outcome}</span></li>
                    }).collect_view()}
                </ol>
            </div>
            {move || report.get().filter(|_| !running.get()).map(|r| view! { <ReportView report=r label="This browser".to_string() /> })}

            <Show when=move || ok.get() == Some(false)>
                <div class="card">
                    <h2>"How to enable WebGPU"</h2>
                    <ul>
                        <li>"Chrome / Edge 113+ on Windows, macOS and ChromeOS: on by default. Check chrome://gpu."</li>
                        <li>"Chrome on Linux: start it with --enable-unsafe-webgpu --enable-features=Vulkan."</li>
                        <li>"Safari 26+ (macOS, iOS): on by default; earlier: Develop → Feature Flags → WebGPU."</li>
                        <li>"Firefox: set dom.webgpu.enabled to true in about:config (on by default on Windows from Firefox 141)."</li>
                    </ul>
                    <p class="note">"Without WebGPU the Calculator and Reports pages still work: run "<code>"headroom probe"</code>" natively and drop its report on the Reports page."</p>
                </div>
            </Show>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> ProbeReport {
        let text = include_str!("../../../tests/data/reports/lavapipe-report.json");
        ProbeReport::from_json(text).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    #[test]
    fn the_summary_says_every_result_was_verified_only_when_nothing_was_skipped() {
        let mut report = fixture();
        // The lavapipe run skips the cooperative-matrix GEMMs (no matrix units through wgpu).
        let text = summary(&report, false);
        assert!(!text.contains("every result was verified"), "{text}");
        assert!(text.contains("2 skipped"), "{text}");
        for stage in &mut report.stages {
            stage.measurements.retain(|m| m.status != Status::Skipped);
        }
        let text = summary(&report, false);
        assert!(text.contains("every result was verified"), "{text}");
        assert!(summary(&report, true).starts_with("cancelled"));
        // A stage the browser never runs is said apart, not counted as a missing feature.
        report.stages.push(StageRecord::skipped(
            headroom_core::report::Stage::HostBandwidth,
            headroom_probe::plan::BROWSER_HOST_BANDWIDTH_SKIP,
        ));
        let text = summary(&report, false);
        assert!(text.contains("every result was verified"), "{text}");
        assert!(
            text.contains("Not run here: host_bandwidth — a browser tab cannot"),
            "{text}"
        );
    }
}
