//! Benchmark: the probe's own kernels (headroom-probe) run through WebGPU in this browser, each
//! checked against a CPU reference before its speed counts; the result is a probe report in the
//! same schema (tool: the browser benchmark), shown with the Reports page's charts and saved as
//! JSON.

use std::rc::Rc;

use headroom_core::report::{
    HostInfo, Measurement, ProbeReport, ProbeSettings, SCHEMA_VERSION, StageRecord, Status,
    ToolInfo,
};
use headroom_probe::kernels::{
    MIB, MeasureSettings, attention, bandwidth, decode, gemm, max_buffer, sweep,
};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    browser,
    components::report_view::ReportView,
    gpu::{self, GpuContext},
};

/// Tool name written into reports from this page (the report's "source").
pub const BROWSER_TOOL_NAME: &str = "headroom browser benchmark";

/// Problem sizes. Browsers give no memory figure and a tab that allocates too much is killed, so
/// the memory stages are capped; on a CPU fallback adapter (SwiftShader) the sizes only check
/// correctness, as the native probe does on lavapipe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrowserSizes {
    /// Label written into the report.
    pub label: &'static str,
    /// GEMM size n (n×n×n).
    pub gemm_n: u32,
    /// Attention (batch, heads, sequence).
    pub attention: (u32, u32, u32),
    /// Bandwidth buffer size, bytes.
    pub bandwidth_bytes: u64,
    /// Decode-simulation model size, parameters.
    pub decode_params: u64,
    /// Sweep step, parameters (fp16).
    pub sweep_step_params: u64,
    /// Cap for the sweep and the largest buffer, bytes.
    pub memory_cap_bytes: u64,
    /// Time limit of the memory stages, seconds.
    pub stage_time_limit_s: f64,
    /// Measurement length.
    pub measure: MeasureSettings,
    /// Attention keys per tile; `None` = as many as the adapter's workgroup storage allows.
    /// CPU adapters get a small tile, as the native probe gives lavapipe (long shader compiles).
    pub attention_key_block: Option<u32>,
}

/// A real GPU: the native probe's `--quick` sizes, memory capped at 4 GiB for the tab's sake.
pub const GPU_SIZES: BrowserSizes = BrowserSizes {
    label: "browser quick",
    gemm_n: 2048,
    attention: (4, 16, 1024),
    bandwidth_bytes: 256 * MIB,
    decode_params: 1_000_000_000,
    sweep_step_params: 256 * MIB,
    memory_cap_bytes: 4096 * MIB,
    stage_time_limit_s: 60.0,
    measure: MeasureSettings::QUICK,
    attention_key_block: None,
};

/// A CPU fallback adapter (SwiftShader): correctness sizes, like the probe's lavapipe sizes.
pub const FALLBACK_SIZES: BrowserSizes = BrowserSizes {
    label: "browser cpu fallback (correctness sizes)",
    gemm_n: 256,
    attention: (1, 2, 128),
    bandwidth_bytes: 32 * MIB,
    decode_params: 16 * MIB,
    sweep_step_params: 16 * MIB,
    memory_cap_bytes: 256 * MIB,
    stage_time_limit_s: 60.0,
    measure: MeasureSettings::ONCE,
    attention_key_block: Some(4),
};

/// One step of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Gemm(gemm::GemmVariant),
    Attention { head_dim: u32, causal: bool },
    Bandwidth,
    Decode(decode::WeightFormat),
    MaxBuffer,
    Sweep,
}

impl Step {
    fn stage(self) -> &'static str {
        match self {
            Step::Gemm(_) => "gemm",
            Step::Attention { .. } => "attention",
            Step::Bandwidth => "bandwidth",
            Step::Decode(_) => "decode",
            Step::MaxBuffer => "max_buffer",
            Step::Sweep => "sweep",
        }
    }
    fn label(self) -> String {
        match self {
            Step::Gemm(v) => format!("GEMM {}", v.name()),
            Step::Attention { head_dim, causal } => {
                format!(
                    "attention d{head_dim}{}",
                    if causal { " causal" } else { "" }
                )
            }
            Step::Bandwidth => "bandwidth read / write / copy".into(),
            Step::Decode(f) => format!("decode simulation {}", f.label()),
            Step::MaxBuffer => "largest buffer".into(),
            Step::Sweep => "model-size sweep".into(),
        }
    }
    fn all() -> Vec<Step> {
        let mut v: Vec<Step> = gemm::GemmVariant::ALL.into_iter().map(Step::Gemm).collect();
        for head_dim in [128, 64] {
            for causal in [false, true] {
                v.push(Step::Attention { head_dim, causal });
            }
        }
        v.push(Step::Bandwidth);
        v.extend(decode::WeightFormat::ALL.into_iter().map(Step::Decode));
        v.push(Step::MaxBuffer);
        v.push(Step::Sweep);
        v
    }
}

/// One line of the progress list.
#[derive(Debug, Clone, PartialEq)]
struct StepLine {
    label: String,
    outcome: String,
    ok: bool,
}

/// A fresh seed per run (the kernels check against fresh random data).
fn seed() -> u64 {
    (js_sys::Math::random() * (u32::MAX as f64)) as u64 ^ (js_sys::Date::now() as u64)
}

fn summarize(ms: &[Measurement]) -> (String, bool) {
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
    (parts.join("; "), ok)
}

async fn run_step(ctx: &GpuContext, sizes: &BrowserSizes, step: Step) -> StageRecord {
    let (device, queue) = (&ctx.device, &ctx.queue);
    let start = browser::now_ms();
    let mut record = StageRecord::new(step.stage(), Status::Ok);
    match step {
        Step::Gemm(variant) => {
            let p = gemm::GemmParams {
                variant,
                n: sizes.gemm_n,
                seed: seed(),
                settings: sizes.measure,
                tiles: gemm::Tile::CANDIDATES.to_vec(),
                coop_properties: Vec::new(),
                subgroup_size: ctx.adapter.get_info().subgroup_max_size,
            };
            record.measurements.push(gemm::run(device, queue, &p).await);
        }
        Step::Attention { head_dim, causal } => {
            let (batch, heads, seq) = sizes.attention;
            let p = attention::AttentionParams {
                batch,
                heads,
                seq,
                head_dim,
                causal,
                seed: seed(),
                settings: sizes.measure,
                key_block: sizes.attention_key_block,
                // The browser has no cooperative matrices: the scalar kernel only.
                coop_properties: Vec::new(),
                subgroup_size: None,
            };
            record
                .measurements
                .push(attention::run(device, queue, &p).await);
        }
        Step::Bandwidth => {
            let p = bandwidth::BandwidthParams {
                size_bytes: sizes.bandwidth_bytes,
                seed: seed() as u32,
                settings: sizes.measure,
            };
            record.measurements = bandwidth::run(device, queue, &p).await;
        }
        Step::Decode(format) => {
            let p = decode::DecodeParams {
                format,
                model_params: sizes.decode_params,
                seed: seed() as u32,
                settings: sizes.measure,
                // The subgroup reduction needs a fixed subgroup size (the probe's rule).
                subgroup_size: {
                    let info = ctx.adapter.get_info();
                    (info.subgroup_min_size == info.subgroup_max_size && info.subgroup_max_size > 0)
                        .then_some(info.subgroup_max_size)
                },
            };
            record
                .measurements
                .push(decode::run(device, queue, &p).await);
        }
        Step::MaxBuffer => {
            let p = max_buffer::MaxBufferParams {
                cap_bytes: sizes.memory_cap_bytes,
                seed: seed() as u32,
                simulate_oom_above_bytes: None,
                time_limit_s: sizes.stage_time_limit_s,
            };
            match max_buffer::run(device, queue, &p).await {
                Ok(r) => record.max_buffer = Some(r),
                Err(e) => {
                    record.status = Status::Failed;
                    record.reason = Some(e.to_string());
                }
            }
        }
        Step::Sweep => {
            let p = sweep::SweepParams {
                step_params: sizes.sweep_step_params,
                budget_bytes: Some(sizes.memory_cap_bytes),
                swap_factor: sweep::DEFAULT_SWAP_FACTOR,
                allow_swap: false,
                time_limit_s: sizes.stage_time_limit_s,
                seed: seed() as u32,
                simulate_oom_above_bytes: None,
            };
            match sweep::run(device, queue, &p).await {
                Ok(r) => {
                    record.reason = Some(format!("stopped: {}", r.stop_detail));
                    record.sweep = Some(r);
                }
                Err(e) => {
                    record.status = Status::Failed;
                    record.reason = Some(e.to_string());
                }
            }
        }
    }
    if record
        .measurements
        .iter()
        .any(|m| m.status == Status::Failed)
    {
        record.status = Status::Failed;
        record.reason = Some("one or more measurements failed (see their errors)".into());
    }
    record.duration_s = (browser::now_ms() - start) / 1e3;
    record
}

/// Merge per-step records into one record per stage (the probe's layout).
fn merge_stages(records: Vec<StageRecord>) -> Vec<StageRecord> {
    let mut out: Vec<StageRecord> = Vec::new();
    for r in records {
        match out.iter_mut().find(|s| s.stage == r.stage) {
            Some(s) => {
                s.duration_s += r.duration_s;
                s.measurements.extend(r.measurements);
                if r.status == Status::Failed {
                    s.status = Status::Failed;
                    s.reason = r.reason;
                }
            }
            None => out.push(r),
        }
    }
    out
}

fn browser_report(
    ctx: &GpuContext,
    sizes: &BrowserSizes,
    stages: Vec<StageRecord>,
    complete: bool,
) -> ProbeReport {
    let mut adapter = headroom_probe::adapter::describe(0, &ctx.adapter);
    // wgpu's AdapterInfo is mostly empty on the web: use what navigator.gpu says.
    if adapter.name.is_empty() {
        adapter.name = format!("{} (WebGPU)", ctx.info.display_name());
    }
    if ctx.info.is_fallback {
        adapter.device_type = "cpu".into();
    }
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
        complete,
        host: HostInfo {
            os: "browser".into(),
            os_version: user_agent,
            arch: "wasm32".into(),
            cpu_cores: cores,
            ..HostInfo::default()
        },
        adapters: vec![adapter],
        selected_adapter: Some(0),
        settings: ProbeSettings {
            quick: true,
            only: Vec::new(),
            budget_bytes: Some(sizes.memory_cap_bytes),
            budget_source: format!("{}: the browser tab's memory cap", sizes.label),
            allow_swap: false,
        },
        stages: merge_stages(stages),
    }
}

/// The benchmark page.
#[component]
pub fn BenchmarkPage() -> impl IntoView {
    let status = RwSignal::new(String::from("checking for WebGPU…"));
    let ok = RwSignal::new(None::<bool>);
    let ctx: RwSignal<Option<Rc<GpuContext>>, LocalStorage> = RwSignal::new_local(None);
    let running = RwSignal::new(false);
    let cancel = RwSignal::new(false);
    let done = RwSignal::new(0usize);
    let total = Step::all().len();
    let lines = RwSignal::new(Vec::<StepLine>::new());
    let report = RwSignal::new(None::<ProbeReport>);
    let finished = RwSignal::new(None::<String>);
    spawn_local(async move {
        match gpu::acquire().await {
            Ok(c) => {
                status.set(format!(
                    "WebGPU adapter: {}{}",
                    c.info.display_name(),
                    if c.info.is_fallback {
                        " (a CPU fallback: sizes only check correctness)"
                    } else {
                        ""
                    }
                ));
                ctx.set(Some(Rc::new(c)));
                ok.set(Some(true));
            }
            Err(e) => {
                status.set(e.to_string());
                ok.set(Some(false));
            }
        }
    });
    let run = move |_| {
        let Some(c) = ctx.get_untracked() else {
            return;
        };
        running.set(true);
        cancel.set(false);
        done.set(0);
        lines.set(Vec::new());
        report.set(None);
        finished.set(None);
        spawn_local(async move {
            let sizes = if c.info.is_fallback {
                FALLBACK_SIZES
            } else {
                GPU_SIZES
            };
            let mut records = Vec::new();
            let mut complete = true;
            for step in Step::all() {
                // Let the page repaint and the cancel button be clicked between steps.
                browser::sleep_ms(0).await;
                if cancel.get_untracked() {
                    complete = false;
                    break;
                }
                let record = run_step(&c, &sizes, step).await;
                let (outcome, step_ok) = if let Some(m) = &record.max_buffer {
                    (
                        format!(
                            "{} verified by write and read-back, {} accepted (adapter limit {})",
                            crate::format::bytes(m.largest_verified_bytes),
                            crate::format::bytes(m.largest_accepted_bytes),
                            crate::format::bytes(m.adapter_limit_bytes)
                        ),
                        record.status == Status::Ok && m.largest_verified_bytes > 0,
                    )
                } else if record.measurements.is_empty() {
                    (
                        record.reason.clone().unwrap_or_else(|| "done".into()),
                        record.status == Status::Ok,
                    )
                } else {
                    summarize(&record.measurements)
                };
                lines.update(|l| {
                    l.push(StepLine {
                        label: step.label(),
                        outcome,
                        ok: step_ok,
                    })
                });
                records.push(record);
                done.update(|d| *d += 1);
                report.set(Some(browser_report(&c, &sizes, records.clone(), false)));
            }
            let final_report = browser_report(&c, &sizes, records, complete);
            let all_ok = final_report.stages.iter().all(|s| s.status == Status::Ok);
            finished.set(Some(if !complete {
                "cancelled: the report keeps the steps that finished".into()
            } else if all_ok {
                "finished: every kernel ran and every result was verified".into()
            } else {
                "finished with failures (see the steps marked FAILED)".into()
            }));
            report.set(Some(final_report));
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
    let use_device = move |_| {
        if let (Some(r), Some(st)) = (
            report.get_untracked(),
            use_context::<crate::app::AppState>(),
        ) {
            crate::components::report_view::use_in_calculator(
                st,
                &crate::components::report_view::device_from_report(&r),
            );
        }
    };
    view! {
        <section id="benchmark">
            <h1>"Benchmark this browser's GPU"</h1>
            <div class="card">
                <p id="webgpu-status" class:error=move || ok.get() == Some(false) data-ready=move || ok.get().map(|b| b.to_string())>
                    {move || status.get()}
                </p>
                <p class="note">"Runs headroom's probe kernels (GEMM, attention, bandwidth, decode simulation, largest buffer, model-size sweep) through WebGPU; every result is checked against a CPU reference before its speed counts. Nothing is uploaded."</p>
                <div class="row">
                    <button id="run-benchmark" style="flex: 0 0 auto" disabled=move || ok.get() != Some(true) || running.get() on:click=run>"Run benchmark"</button>
                    <button id="cancel-benchmark" style="flex: 0 0 auto" class="secondary" disabled=move || !running.get() on:click=move |_| cancel.set(true)>"Cancel"</button>
                    <button id="save-report" style="flex: 0 0 auto" class="secondary" disabled=move || running.get() || report.get().is_none() on:click=save>"Save report (JSON)"</button>
                    <button id="use-benchmark-device" style="flex: 0 0 auto" class="secondary" disabled=move || running.get() || report.get().is_none() on:click=use_device>"Use this device in the calculator"</button>
                </div>
                <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=total aria-valuenow=move || done.get()>
                    <div style=move || format!("width: {:.0}%", 100.0 * done.get() as f64 / total as f64)></div>
                </div>
                <p id="progress-text" class="note">{move || format!("{} of {total} steps", done.get())}
                    {move || cancel.get().then_some(" — cancelling after the current step (a GPU submission cannot be interrupted)")}</p>
                {move || finished.get().map(|f| view! { <p id="benchmark-done"><strong>{f}</strong></p> })}
                <ol id="benchmark-steps">
                    {move || lines.get().into_iter().map(|l| view! {
                        <li class=if l.ok { "kernel-ok" } else { "kernel-fail" }><strong>{l.label}</strong>": " <span class="note">{l.outcome}</span></li>
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
