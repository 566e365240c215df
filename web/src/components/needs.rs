//! "What does it need?" under a result: the catalog devices that hold the model with the
//! result's settings — per device class the smallest that holds it (each in the best format that
//! fits it) and how many of the class's largest — from core's
//! `headroom_core::ranking::devices_that_fit`, the answer `headroom fit MODEL --devices-that-fit`
//! prints. Worked out only when opened (it tries every catalog device). With no device chosen
//! the calculator shows the same table as its answer ([`needs_view`]).

use headroom_core::{
    answer::{Answer, ContextAsk, Question},
    devices,
    ranking::{DeviceNeeds, devices_that_fit},
};
use leptos::prelude::*;

use crate::format;

/// The question behind `answer`, for every device: its model, context, batch and mode; the
/// format left open (the best that fits each device).
fn question(answer: &Answer) -> Question {
    let r = &answer.request;
    Question {
        context: ContextAsk::Tokens(r.context_tokens()),
        batch: r.batch,
        mode: r.mode.clone(),
        ..Question::new(r.model.clone(), r.device.clone())
    }
}

/// The devices that hold the model, per class, in a table.
pub fn needs_view(needs: DeviceNeeds) -> impl IntoView {
    let rows = needs
        .classes
        .into_iter()
        .map(|c| {
            let (smallest, fmt, speed) = match &c.smallest {
                Some(s) => (
                    s.device.clone(),
                    s.format.clone(),
                    format::tokens_per_s(s.decode_tokens_per_s),
                ),
                None => ("none".to_string(), String::new(), String::new()),
            };
            let largest = c.largest.as_ref().map_or_else(
                || "—".to_string(),
                |l| {
                    if l.device_count > 1 {
                        format!("{} × {}", l.device_count, l.device)
                    } else {
                        l.device.clone()
                    }
                },
            );
            view! {
                <tr data-class=c.label.clone()>
                    <td>{c.label.clone()}</td><td>{smallest}</td><td>{fmt}</td>
                    <td class="num">{speed}</td><td>{largest}</td>
                </tr>
            }
        })
        .collect_view();
    let total = if needs.min_total_bytes == needs.max_total_bytes {
        format::bytes(needs.min_total_bytes)
    } else {
        format!(
            "{} to {}",
            format::bytes(needs.min_total_bytes),
            format::bytes(needs.max_total_bytes)
        )
    };
    view! {
        <p id="needs-summary">
            {format!(
                "{} needs {total} on one device in {} at {} tokens of context; weights {}.",
                needs.model,
                needs.format,
                format::count(needs.context),
                format::bytes(needs.weights_bytes)
            )}
        </p>
        <div class="table-wrap">
            <table id="needs-table">
                <thead><tr>
                    <th>"class"</th><th>"smallest that holds it"</th><th>"format"</th><th>"decode"</th>
                    <th>{format!("or several of the largest, in {}", needs.format)}</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// "What does it need?", closed until asked.
#[component]
pub fn NeedsView(
    /// The calculator's answer.
    answer: Answer,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let q = question(&answer);
    let result = Memo::new(move |_| {
        open.get()
            .then(|| devices_that_fit(&q, devices::catalog()).map_err(|e| e.to_string()))
    });
    view! {
        <details id="needs" on:toggle=move |_| open.set(true)>
            <summary>"What does it need? Devices that hold this model"</summary>
            {move || match result.get() {
                None => ().into_any(),
                Some(Ok(needs)) => needs_view(needs).into_any(),
                Some(Err(e)) => view! { <p id="needs-error" class="error">{e}</p> }.into_any(),
            }}
        </details>
    }
}
