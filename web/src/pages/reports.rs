//! Reports: drop one or more probe JSON files; each is validated (every problem named with its
//! file), drawn as charts, and compared side by side; any measured device can be used in the
//! calculator.

use headroom_core::{limits::MAX_REPORT_JSON_BYTES, report::ProbeReport};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::{
    browser,
    components::{
        charts::{Bar, BarChart},
        report_view::{ReportView, device_from_report, simulated_model},
    },
    error::WebError,
    format,
    nav::Navigation,
};

/// Read and validate one dropped file.
async fn load(file: web_sys::File) -> Result<(String, ProbeReport), WebError> {
    let name = file.name();
    let text = browser::read_file_text(&file, MAX_REPORT_JSON_BYTES).await?;
    ProbeReport::from_json(&text)
        .map(|r| (name.clone(), r))
        .map_err(|e| WebError::File(format!("{name}: {e}")))
}

/// The reports page.
#[component]
pub fn ReportsPage() -> impl IntoView {
    let reports = RwSignal::new(Vec::<(String, ProbeReport)>::new());
    let errors = RwSignal::new(Vec::<WebError>::new());
    let nav = use_context::<Navigation>();
    let on_use_device = nav.map(|nav| Callback::new(move |d| nav.use_device_in_calculator(&d)));
    let on_show_runs = nav.map(|nav| Callback::new(move |d| nav.show_what_it_runs(&d)));
    let over = RwSignal::new(false);
    // Reading dropped reports is an action; each finished read adds its reports and says which
    // files failed.
    let read = Action::new_local(|files: &Vec<web_sys::File>| {
        let files = files.clone();
        async move {
            let mut out = Vec::with_capacity(files.len());
            for f in files {
                out.push(load(f).await);
            }
            out
        }
    });
    Effect::new(move |_| {
        let Some(outcomes) = read.value().get() else {
            return;
        };
        let mut failed = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(r) => reports.update(|v| v.push(r)),
                Err(e) => failed.push(e),
            }
        }
        errors.set(failed);
    });
    let handle = move |files: Vec<web_sys::File>| {
        read.dispatch_local(files);
    };
    view! {
        <section id="reports">
            <h1>"Probe reports"</h1>
            <div class="card">
                <div class="dropzone" class:over=move || over.get()
                    on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); over.set(true); }
                    on:dragleave=move |_| over.set(false)
                    on:drop=move |ev: leptos::ev::DragEvent| {
                        ev.prevent_default();
                        over.set(false);
                        handle(browser::files_of(ev.data_transfer().and_then(|d| d.files())));
                    }>
                    <p>"Drop one or more reports written by " <code>"headroom probe"</code> " or saved from the Benchmark page. They are read here; nothing is uploaded."</p>
                    <input id="report-file" type="file" accept=".json,application/json" multiple
                        on:change=move |ev| {
                            let input = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                            handle(browser::files_of(input.and_then(|i| i.files())));
                        } />
                </div>
                <Show when=move || !errors.get().is_empty()>
                    <ul id="report-errors">
                        {move || errors.get().into_iter().map(|e| view! { <li class="error">{e.to_string()}</li> }).collect_view()}
                    </ul>
                </Show>
                <Show when=move || !reports.get().is_empty()>
                    <button class="secondary" on:click=move |_| reports.set(Vec::new())>"Clear"</button>
                </Show>
            </div>
            {move || {
                let list = reports.get();
                (list.len() > 1).then(|| view! { <SideBySide reports=list.clone() /> })
            }}
            <div id="report-list">
                {move || reports.get().into_iter().map(|(name, r)| match (on_use_device, on_show_runs) {
                    (Some(use_it), Some(runs)) => view! { <ReportView report=r label=name on_use_device=use_it on_show_runs=runs /> }.into_any(),
                    _ => view! { <ReportView report=r label=name /> }.into_any(),
                }).collect_view()}
            </div>
        </section>
    }
}

/// Several devices compared on the measured figures the calculator uses.
#[component]
fn SideBySide(
    /// `(file name, report)` pairs.
    reports: Vec<(String, ProbeReport)>,
) -> impl IntoView {
    let devices: Vec<_> = reports
        .iter()
        .map(|(n, r)| (n.clone(), r.measured_device(), device_from_report(r)))
        .collect();
    let metric =
        |f: fn(&headroom_core::report::MeasuredDevice) -> Option<f64>, scale: f64, unit: &str| {
            devices
                .iter()
                .map(|(n, m, d)| {
                    let v = f(m).unwrap_or(0.0) / scale;
                    Bar {
                        label: format!("{} — {}", d.name, n),
                        value: v,
                        value_text: if f(m).is_some() {
                            format!("{} {unit}", format::significant(v))
                        } else {
                            "not measured".into()
                        },
                    }
                })
                .collect::<Vec<_>>()
        };
    let rows = reports
        .iter()
        .zip(&devices)
        .map(|((_, r), (n, m, d))| {
            let usable = match (m.usable_bytes, m.memory_bytes) {
                (Some(u), _) => format::bytes(u),
                (None, Some(mem)) => format!("{} (device memory)", format::bytes(mem)),
                (None, None) => "—".into(),
            };
            let decode = match (
                m.decode_simulation_tokens_per_s,
                simulated_model(r),
            ) {
                (Some(t), Some(model)) => format!("{} for {model}", format::tokens_per_s(t)),
                (Some(t), None) => format::tokens_per_s(t),
                _ => "—".into(),
            };
            view! {
                <tr>
                    <td>{d.name.clone()}<br /><span class="note">{n.clone()}{" · "}{format::date_utc(&r.date_utc)}</span></td>
                    <td class="num">{usable}</td>
                    <td class="num">{m.max_buffer_bytes.map(format::bytes).unwrap_or_else(|| "—".into())}</td>
                    <td class="num sim">{decode}</td>
                </tr>
            }
        })
        .collect_view();
    let models: Vec<String> = reports
        .iter()
        .filter_map(|(_, r)| simulated_model(r))
        .collect();
    let differ = models.windows(2).any(|w| w[0] != w[1]);
    view! {
        <div class="card" id="side-by-side">
            <h2>"Devices side by side"</h2>
            <h3>"Best f16 matrix multiply (TFLOP/s)"</h3>
            <BarChart title="Best f16 GEMM".to_string() unit="TFLOP/s".to_string() bars=metric(|m| m.fp16_flops, 1e12, "TFLOP/s") />
            <h3>"f32 matrix multiply (TFLOP/s)"</h3>
            <BarChart title="f32 GEMM".to_string() unit="TFLOP/s".to_string() bars=metric(|m| m.fp32_flops, 1e12, "TFLOP/s") />
            <h3>"Read bandwidth (GB/s)"</h3>
            <BarChart title="Read bandwidth".to_string() unit="GB/s".to_string() bars=metric(|m| m.read_bandwidth_bytes_per_s, 1e9, "GB/s") />
            {differ.then(|| view! {
                <p class="note" id="simulated-models-differ">"The decode simulations ran different model sizes (each device's run picks one that fits its budget): compare their tokens/s only with that in mind."</p>
            })}
            <div class="table-wrap">
                <table>
                    <thead><tr><th>"device"</th><th class="num">"usable memory"</th><th class="num">"largest buffer"</th><th class="num">"decode simulation"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </div>
    }
}
