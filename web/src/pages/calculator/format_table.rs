//! Every format side by side: memory, verdict, decode speed and the runtime that loads it, the
//! asked format and the best one marked; formats the mode cannot use listed with the reason.

use headroom_core::{advice::RowOutcome, answer::Answer};
use leptos::prelude::*;

use super::result::verdict_class;
use crate::format;

/// The table of every format, the best format and the longest context.
#[component]
pub fn FormatTableView(
    /// Core's answer.
    answer: Answer,
) -> impl IntoView {
    let selected = answer.estimate.quant.clone();
    let best = answer.best_format.as_ref().map(|b| b.format.clone());
    let mut skipped: Vec<(String, Vec<String>)> = Vec::new();
    let rows = answer
        .formats
        .iter()
        .filter_map(|row| match &row.outcome {
            RowOutcome::Skipped(why) => {
                match skipped.iter_mut().find(|(reason, _)| reason == why) {
                    Some((_, formats)) => formats.push(row.format.clone()),
                    None => skipped.push((why.clone(), vec![row.format.clone()])),
                }
                None
            }
            RowOutcome::Estimated(e) => Some((row.clone(), e.clone())),
        })
        .map(|(row, e)| {
            let class = verdict_class(e.verdict);
            let runtime = if row.kv_cache_dtype == answer.estimate.kv_cache_dtype {
                row.runtime.clone()
            } else {
                format!("{} (KV {})", row.runtime, row.kv_cache_dtype)
            };
            let is_best = best.as_deref() == Some(e.quant.as_str());
            view! {
                <tr class:selected=e.quant == selected class:best=is_best>
                    <td>{e.quant.clone()}{is_best.then_some(" ★")}</td>
                    <td class="num">{format::bytes(e.per_device_bytes)}</td>
                    <td><span class=format!("badge {class}")>{e.verdict.label()}</span></td>
                    <td class="num">{format::tokens_per_s(e.decode_tokens_per_s)}</td>
                    <td class="note">{runtime}</td>
                </tr>
            }
        })
        .collect_view();
    let skipped = skipped
        .into_iter()
        .map(|(why, formats)| view! { <li>{format!("{}: {why}", formats.join(", "))}</li> })
        .collect_view();
    let max_context = answer.request.model.max_context;
    let longest = match answer.longest_context {
        Some(c) if c >= max_context => format!("{c} tokens (the model's maximum)"),
        Some(c) => format!("{c} tokens (model maximum {max_context})"),
        None => "none: even 1 token does not fit".into(),
    };
    let best = match &answer.best_format {
        Some(b) => format!(
            "Best format that fits: {} ★ (highest precision with room; else the first that fits tightly).",
            b.format
        ),
        None => "No format fits with these settings.".to_string(),
    };
    view! {
        <p>"Longest context that fits: " <strong id="longest-context">{longest}</strong></p>
        <h2>"Every format"</h2>
        <p id="best-format">{best}</p>
        <div class="table-wrap">
            <table id="formats">
                <thead><tr><th>"format"</th><th class="num">"memory"</th><th>"fits?"</th><th class="num">"decode"</th><th>"runtime"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <p class="note">"Decode is per sequence; “—” where the format cannot run. Formats left out:"</p>
        <ul id="formats-skipped" class="note">{skipped}</ul>
    }
}
