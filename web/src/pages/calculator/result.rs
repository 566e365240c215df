//! The answer: the verdict with the best format beside it, the memory bar and the key numbers
//! first; then the model part by part, training settings that fit and every assumption.

use headroom_core::{
    advice::TrainingAdvice, estimate::Verdict, extra_models::ExtraModelKind, units::GIB,
};
use leptos::prelude::*;

use super::model::FileSummary;
use crate::{
    catalog::{self, Calculation},
    components::charts::{Marker, Segment, StackedBar},
    format,
};

/// CSS class and word for a verdict.
pub fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Fits => "fits",
        Verdict::FitsTightly => "tight",
        Verdict::NeedsOffload => "offload",
        Verdict::DoesNotFit => "no",
    }
}

/// The verdict, the best format that fits beside it, the memory bar and the key numbers.
#[component]
pub fn AnswerView(
    /// The calculation to show.
    calc: Calculation,
    /// Called with a format name when "use it" is clicked on the best format.
    on_use_format: Callback<String>,
) -> impl IntoView {
    let e = &calc.answer.estimate;
    let n = e.device_count.max(1) as f64;
    let per = |b: u64| b as f64 / GIB as f64 / n;
    let extra_bytes = calc
        .answer
        .extra_models
        .iter()
        .fold(0u64, |acc, m| acc.saturating_add(m.total_bytes));
    let segments = [
        ("Weights", e.weights_bytes, "seg-weights"),
        ("KV cache", e.kv_cache_bytes, "seg-kv"),
        ("Activations", e.activation_bytes, "seg-act"),
        ("Runtime overhead", e.overhead_bytes, "seg-overhead"),
        ("Training state", e.training_bytes, "seg-training"),
        // Extra models sit on one device, not split over several.
        ("Extra models", (extra_bytes as f64 * n) as u64, "seg-extra"),
    ]
    .into_iter()
    .map(|(label, bytes, class)| Segment {
        label: label.into(),
        value_gib: per(bytes),
        class,
    })
    .filter(|s| s.value_gib > 0.0)
    .collect::<Vec<_>>();
    let mut markers = vec![Marker {
        at_gib: e.usable_bytes as f64 / GIB as f64,
        label: "usable".into(),
        class: "marker-usable",
    }];
    if calc.unified {
        let (lo, hi) = catalog::UNIFIED_GUIDE_PERCENT;
        let mem = calc.device.memory_bytes as f64 / GIB as f64;
        for pct in [lo, hi] {
            markers.push(Marker {
                at_gib: mem * pct as f64 / 100.0,
                label: format!("{pct}%"),
                class: "marker-guide",
            });
        }
    }
    let split = e.device_count > 1;
    let speed = if e.mode != "inference" {
        format!(" ({})", e.mode.split(':').next().unwrap_or(&e.mode))
    } else if e.decode_tokens_per_s > 0.0 {
        format!(", ≈ {} decode", format::tokens_per_s(e.decode_tokens_per_s))
    } else {
        String::new()
    };
    let verdict_line = format!(
        "{} in {} on {}{}: {} — needs {} of {} usable{}{}",
        e.model,
        e.quant,
        if split {
            format!("{} × ", e.device_count)
        } else {
            String::new()
        },
        e.device,
        match (&e.offload, e.verdict) {
            (Some(p), Verdict::NeedsOffload) =>
                format!("needs offload ({})", p.chosen.split.flag()),
            _ => e.verdict.label().to_string(),
        },
        format::bytes(e.per_device_bytes),
        format::bytes(e.usable_bytes),
        if split { " per device" } else { "" },
        speed,
    );
    let title = format!(
        "Memory{} vs usable memory of {}",
        if split { " per device" } else { "" },
        e.device
    );
    let best = match &calc.answer.best_format {
        Some(b) if b.format == e.quant => view! {
            <p id="best-format-next" class="best-next">"This is the best format that fits: "
                <strong>{b.format.clone()}</strong> " (highest precision with room)."</p>
        }
        .into_any(),
        Some(b) => {
            let name = b.format.clone();
            let speed = if b.decode_tokens_per_s > 0.0 {
                format!(", ≈ {} decode", format::tokens_per_s(b.decode_tokens_per_s))
            } else {
                String::new()
            };
            view! {
                <p id="best-format-next" class="best-next">"Best format that fits: "
                    <strong>{b.format.clone()}</strong>
                    {format!(" — {}, {} in {}{speed} ", b.verdict.label(), format::bytes(b.total_bytes), b.runtime)}
                    <button id="use-best-format" class="secondary small" on:click=move |_| on_use_format.run(name.clone())>
                        {format!("Use {}", b.format)}
                    </button>
                </p>
            }
            .into_any()
        }
        None => {
            // A unified-memory machine is one device: more of them is no advice there.
            let more = if calc.unified { "" } else { " or more devices" };
            let training = if e.mode == "inference" {
                ""
            } else {
                " (the training settings that fit are listed below)"
            };
            // With an offload split that runs it, the model does run: say what would fit whole.
            let text = if e.verdict == Verdict::NeedsOffload && e.offload.is_some() {
                format!(
                    "No format fits the GPU alone with these settings: the offload split below \
                     runs this one (a shorter context, a smaller batch{more} may fit it \
                     whole){training}."
                )
            } else {
                format!(
                    "No format fits with these settings: try a shorter context, a smaller \
                     batch{more}{training}."
                )
            };
            view! {
                <p id="best-format-next" class="best-next none">{text}</p>
            }
            .into_any()
        }
    };
    let usable_basis = e
        .assumptions
        .iter()
        .find_map(|a| a.strip_prefix("usable memory: "))
        .map(str::to_string)
        .unwrap_or_default();
    let no_speed = match (e.mode.as_str(), e.verdict) {
        ("inference", Verdict::DoesNotFit) => " (does not fit: no speed)",
        ("inference", _) => "",
        _ => " (not estimated for training)",
    };
    let extras = calc
        .answer
        .extra_models
        .iter()
        .map(|m| {
            let name = match m.kind {
                ExtraModelKind::Mmproj if m.weights_bytes > 0 => {
                    format!("Vision projector ({})", m.format)
                }
                ExtraModelKind::Mmproj => "One image's encoder compute".to_string(),
                ExtraModelKind::Draft => format!("Draft {} ({})", m.name, m.format),
            };
            let speed = m
                .decode_tokens_per_s
                .map(|t| format!(", {} decode alone", format::tokens_per_s(t)))
                .unwrap_or_default();
            view! { <tr class="extra-model"><th>{name}</th><td class="num">{format::bytes(m.total_bytes)}{speed}</td></tr> }
        })
        .collect_view();
    let speculation = calc.answer.speculation.as_ref().map(|sp| {
        let gain = match (sp.acceptance, sp.expected_tokens_per_s) {
            (Some(a), Some(t)) => format!(
                "; at your acceptance rate {a}: ≈ {} decode against {} without",
                format::tokens_per_s(t),
                format::tokens_per_s(sp.plain_tokens_per_s)
            ),
            _ => "; give an acceptance rate for an expected speed".to_string(),
        };
        view! { <tr><th>"Speculative step"</th><td class="num" id="speculation">{format!("{} draft tokens + one check: {:.1} ms{gain}", sp.draft_tokens, sp.step_ms)}</td></tr> }
    });
    let devices_needed = e.devices_needed.map(|d| {
        view! { <tr><th>"Devices needed"</th><td class="num" id="devices-needed">{d}</td></tr> }
    });
    let offload = e.offload.clone().map(|plan| view! { <OffloadView plan /> });
    view! {
        <p id="verdict" class=format!("verdict {}", verdict_class(e.verdict))>{verdict_line}</p>
        {best}
        {offload}
        <StackedBar title=title segments=segments markers=markers />
        <table id="facts">
            <tbody>
                <tr><th>"Parameters"</th><td class="num">{format::count(e.params_total)} " total, " {format::count(e.params_active)} " active"</td></tr>
                {extras}
                <tr><th>"Total memory"</th><td class="num">{format::bytes(e.total_bytes)}</td></tr>
                {split.then(|| view! { <tr><th>"Per device"</th><td class="num">{format::bytes(e.per_device_bytes)}</td></tr> })}
                <tr><th>"Usable on the device"</th><td class="num" id="usable" title=usable_basis.clone()>{format::bytes(e.usable_bytes)}</td></tr>
                {devices_needed}
                <tr><th>"Decode"</th><td class="num" id="decode">{format::tokens_per_s(e.decode_tokens_per_s)}
                    {(e.decode_tokens_per_s > 0.0).then_some(" per sequence")}{no_speed}</td></tr>
                <tr><th>"Prefill"</th><td class="num">{format::tokens_per_s(e.prefill_tokens_per_s)}</td></tr>
                {speculation}
                <tr><th>"Runtime, KV cache, mode"</th><td class="num" id="runtime-kv-mode">{format!("{}, {}, {}", e.runtime, e.kv_cache_dtype, e.mode)}</td></tr>
            </tbody>
        </table>
        <p class="note" id="usable-basis">"Usable memory: " {usable_basis}</p>
    }
}

/// The split between GPU and host memory: where the bytes go, how fast it runs, and the other way
/// to split.
#[component]
fn OffloadView(
    /// The plan to show.
    plan: headroom_core::offload::OffloadPlan,
) -> impl IntoView {
    let c = &plan.chosen;
    let of = |have: u64, cap: u64| format!("{} of {}", format::bytes(have), format::bytes(cap));
    let alternative = plan.alternative.as_ref().map(|a| {
        view! {
            <p id="offload-alternative">{format!(
                "Alternative: {} — GPU {}, host {}, ≈ {} decode{}",
                a.split.flag(),
                format::bytes(a.gpu_bytes),
                format::bytes(a.host_bytes),
                format::tokens_per_s(a.decode_tokens_per_s),
                if a.fits { "" } else { " (does not fit)" }
            )}</p>
        }
    });
    view! {
        <div id="offload-split" class="offload">
            <p><strong>"Offload: " <code id="offload-flag">{c.split.flag()}</code></strong>
                {format!(" — {}{}", c.description, if c.fits { "" } else { " (does not fit)" })}</p>
            <table>
                <tbody>
                    <tr><th>"GPU"</th><td class="num" id="offload-gpu">{of(c.gpu_bytes, c.gpu_capacity_bytes)}</td></tr>
                    <tr><th>"Host RAM"</th><td class="num" id="offload-host">{of(c.host_bytes, c.host_capacity_bytes)}</td></tr>
                    <tr><th>"Decode"</th><td class="num" id="offload-decode">{format::tokens_per_s(c.decode_tokens_per_s)}</td></tr>
                    <tr><th>"Prefill"</th><td class="num">{format::tokens_per_s(c.prefill_tokens_per_s)}</td></tr>
                </tbody>
            </table>
            {alternative}
            <p class="note">{format!(
                "Host RAM read at {:.0} GB/s ({}); host→GPU at {:.0} GB/s ({}).",
                plan.host_bandwidth_bytes_per_s / 1e9,
                plan.host_bandwidth_basis,
                plan.host_to_device_bytes_per_s / 1e9,
                plan.host_to_device_basis
            )}</p>
        </div>
    }
}

/// The model part by part, exact weights of a dropped file, training settings that fit and
/// every assumption.
#[component]
pub fn DetailsView(
    /// The calculation to show.
    calc: Calculation,
) -> impl IntoView {
    let a = &calc.answer;
    let e = &a.estimate;
    let exact = calc.exact.as_ref().map(|x| {
        let how = if x.bytes == e.weights_bytes {
            format!("used as the {} weights", e.quant)
        } else {
            let diff = x.bytes as i128 - e.weights_bytes as i128;
            format!(
                "the estimate's {} weights differ by {:+.2} GiB",
                e.quant,
                diff as f64 / GIB as f64
            )
        };
        let agree = match &a.checkpoint {
            Some(c) if !c.parameters_agree => format!(
                "; the config describes {} parameters",
                format::count(c.config_parameters)
            ),
            _ => String::new(),
        };
        view! {
            <p id="exact-weights"><strong>"Weights in " {x.file.clone()} ": "</strong>
                {format::bytes(x.bytes)} " exact (" {format::count(x.parameters)} " parameters; "
                {how} {agree} ")"</p>
        }
    });
    let training = a
        .training
        .clone()
        .map(|t| view! { <TrainingAdviceView advice=t /> });
    let parts = a
        .components
        .iter()
        .map(|c| {
            let name = c.kind.name().replace('_', " ");
            let loaded = if c.in_total { "" } else { " (not loaded)" };
            view! { <tr><td>{name}{loaded}</td><td class="num">{format::count(c.params)}</td><td class="num">{format::count(c.active_params)}</td></tr> }
        })
        .collect_view();
    let layer_kinds = a
        .layer_kinds
        .iter()
        .map(|k| format!("{} × {} + {}", k.layers, k.mixer, k.mlp))
        .collect::<Vec<_>>()
        .join(", ");
    let cache = a
        .cache
        .iter()
        .filter(|c| c.bytes_per_token > 0 || c.state_bytes_per_sequence > 0)
        .map(|c| {
            let per_token = if c.bytes_per_token > 0 {
                format!(
                    "{} per token{}",
                    format::bytes_small(c.bytes_per_token),
                    c.token_limit
                        .map(|t| format!(", at most {t} tokens"))
                        .unwrap_or_default()
                )
            } else {
                "no per-token cache".to_string()
            };
            let state = if c.state_bytes_per_sequence > 0 {
                format!(
                    " + {} state per sequence",
                    format::bytes(c.state_bytes_per_sequence)
                )
            } else {
                String::new()
            };
            view! { <li>{format!("{} {} layers: {per_token}{state}", c.layers, c.mixer)}</li> }
        })
        .collect_view();
    let approximations = (!a.exact).then(|| {
        let items = a
            .approximations
            .iter()
            .map(|x| view! { <li>{x.clone()}</li> })
            .collect_view();
        view! { <div id="approximate" class="error"><strong>"Approximate: "</strong><ul>{items}</ul></div> }
    });
    let text_only = a
        .text_only
        .then(|| view! { <p class="note" id="text-only-note">"Text only: the vision/audio parts are left out."</p> });
    let with_mtp = a.with_mtp.then(|| {
        view! { <p class="note" id="mtp-note">"MTP layers loaded for speculative decoding: counted as decoder layers."</p> }
    });
    let assumptions = e
        .assumptions
        .iter()
        .map(|a| view! { <li>{a.clone()}</li> })
        .collect_view();
    view! {
        {approximations}
        {exact}
        <h2>"The model, part by part"</h2>
        {text_only}
        {with_mtp}
        <div class="table-wrap">
            <table id="model-parts">
                <thead><tr><th>"part"</th><th class="num">"parameters"</th><th class="num">"active"</th></tr></thead>
                <tbody>{parts}</tbody>
            </table>
        </div>
        <p class="note" id="layer-kinds">"Layers: " {layer_kinds}</p>
        <ul id="cache-parts">{cache}</ul>
        {training}
        <h2>"Assumptions"</h2>
        <ul class="assumptions" id="assumptions">
            {assumptions}
        </ul>
    }
}

/// Training settings that fit, from core's answer.
#[component]
fn TrainingAdviceView(
    /// Core's training advice.
    advice: TrainingAdvice,
) -> impl IntoView {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let or_none = |v: Option<u64>| v.map_or_else(|| "none".to_string(), format::count);
    let suggestions = advice
        .suggestions
        .iter()
        .map(|s| view! { <li>{s.clone()}</li> })
        .collect_view();
    view! {
        <h2>"Training settings that fit"</h2>
        <table id="training-advice">
            <tbody>
                <tr><th>"As given"</th><td>{yes_no(advice.fits_as_given)}</td></tr>
                {(!advice.fits_as_given).then(|| view! {
                    <tr><th>"With gradient checkpointing"</th><td>{yes_no(advice.fits_with_checkpointing)}</td></tr>
                })}
                <tr><th>"Largest batch at this length"</th><td class="num">{or_none(advice.max_batch)}</td></tr>
                <tr><th>"Longest sequence at batch 1"</th><td class="num">{or_none(advice.max_sequence_tokens)} " tokens"</td></tr>
                {advice.max_lora_rank.map(|r| view! { <tr><th>"Largest LoRA rank"</th><td class="num">{r}</td></tr> })}
                {advice.lora_targets.clone().map(|t| view! { <tr><th>"Widest LoRA targets"</th><td>{t.join(", ")}</td></tr> })}
            </tbody>
        </table>
        <ul id="training-suggestions">{suggestions}</ul>
    }
}

/// A dropped file's tensors, by type.
#[component]
pub fn FileSummaryView(
    /// The summary.
    summary: FileSummary,
) -> impl IntoView {
    let total_bytes: u64 = summary.by_type.iter().map(|t| t.2).sum();
    let total_params: u64 = summary.by_type.iter().map(|t| t.1).sum();
    let rows = summary
        .by_type
        .iter()
        .map(|(t, e, b)| {
            view! { <tr><td>{t.clone()}</td><td class="num">{format::count(*e)}</td><td class="num">{format::bytes(*b)}</td></tr> }
        })
        .collect_view();
    let tensor_rows = summary
        .tensors
        .iter()
        .map(|(n, shape, t, b)| {
            let shape = shape.iter().map(u64::to_string).collect::<Vec<_>>().join(" × ");
            view! { <tr><td><code>{n.clone()}</code></td><td>{shape}</td><td>{t.clone()}</td><td class="num">{format::bytes(*b)}</td></tr> }
        })
        .collect_view();
    let notes = summary
        .notes
        .iter()
        .map(|n| view! { <li>{n.clone()}</li> })
        .collect_view();
    view! {
        <div id="file-summary">
            <p><strong>{summary.files.clone()}</strong>": " {summary.tensor_count} " tensors, "
               {format::count(total_params)} " parameters, " <span id="file-bytes">{format::bytes(total_bytes)}</span> " of weights (exact)"</p>
            <table>
                <thead><tr><th>"type"</th><th class="num">"parameters"</th><th class="num">"bytes"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <details id="tensor-list">
                <summary>"Every tensor"</summary>
                <div class="table-wrap">
                    <table>
                        <thead><tr><th>"name"</th><th>"shape"</th><th>"type"</th><th class="num">"bytes"</th></tr></thead>
                        <tbody>{tensor_rows}</tbody>
                    </table>
                </div>
            </details>
            <ul class="assumptions">{notes}</ul>
        </div>
    }
}
