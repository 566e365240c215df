//! Calculator: model × settings × device → verdict, memory bar, every format, longest context.
//!
//! Every setting lives in the URL ([`CalcSettings`]); the model is a [`LocalResource`] of the
//! settings' model source (only the Hub needs the network), shown through `Transition` and
//! `ErrorBoundary`; the answer recomputes on every change (main result, every-format table,
//! best format, longest context, at once) and the time it took is exposed as
//! `data-recompute-ms` on `#result`.
//!
//! The page is three parts: [`inputs`] (model, settings, device), [`result`] (the answer first,
//! then the details) and [`format_table`]. On a phone the answer comes before the inputs.

pub mod format_table;
pub mod inputs;
pub mod model;
pub mod result;

use leptos::prelude::*;

use self::{
    format_table::FormatTableView,
    inputs::{DeviceInput, ModelInput, SettingsInput},
    model::{FileSummary, ResolvedModel},
    result::{AnswerView, DetailsView},
};
use crate::components::needs::needs_view;
use crate::{
    browser,
    catalog::{self, CalcSettings, Calculation, DeviceChoice},
    error::WebError,
    nav::{MY_DEVICE_KEY, remember_device},
    url_state::Query,
};
use headroom_core::ranking::DeviceNeeds;

/// What the calculator shows: the answer on the chosen device, or, with no device chosen, what
/// the model needs and the devices that hold it.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Core's whole answer on the device.
    Answer(Box<Calculation>),
    /// The memory needed and the catalog devices that hold it.
    Needs(Box<DeviceNeeds>),
}

/// One recompute of the calculator and its time.
#[derive(Debug, Clone, PartialEq)]
struct Recompute {
    /// The outcome (`None` until a model is ready).
    out: Option<Result<Outcome, WebError>>,
    /// Time of the whole recompute, ms.
    total_ms: f64,
}

/// The calculator page.
#[component]
pub fn CalculatorPage() -> impl IntoView {
    let query = Query::parse(&browser::location_search());
    let settings = RwSignal::new(CalcSettings::from_query_or(
        &query,
        browser::storage_get(MY_DEVICE_KEY),
    ));
    let file_summary = RwSignal::new(None::<FileSummary>);

    // The model, from its source: a catalog entry at once, a Hub config after a fetch.
    let source = Memo::new(move |_| settings.with(|s| s.model.clone()));
    let model: LocalResource<Result<ResolvedModel, WebError>> =
        LocalResource::new(move || model::resolve(source.get()));

    // Keep the URL in step with the settings (shareable link); remember a measured device.
    Effect::new(move |_| {
        settings.with(|s| {
            browser::replace_search(&s.to_query().to_search());
            if let DeviceChoice::Measured(json) = &s.device
                && let Ok(device) = serde_json::from_str(json)
            {
                remember_device(&device);
            }
        });
    });

    // Recompute on every change, timing it (budget: < 5 ms per change): core's whole answer —
    // the estimate, every format side by side (~30 estimates), the best format, the longest
    // context (a binary search, ~25 estimates) and, for training, the settings that fit.
    let result = Memo::new(move |_| {
        let resolved = model.get();
        let start = browser::now_ms();
        let out = match resolved {
            Some(Ok(m)) => Some(settings.with(|s| {
                if s.device == DeviceChoice::Any {
                    catalog::needs(s, &m.spec).map(|n| Outcome::Needs(Box::new(n)))
                } else {
                    catalog::calculate(s, &m.spec).map(|c| Outcome::Answer(Box::new(c)))
                }
            })),
            _ => None,
        };
        Recompute {
            out,
            total_ms: browser::now_ms() - start,
        }
    });
    let on_use_format = Callback::new(move |f: String| settings.update(|s| s.format = f));
    let pending = RwSignal::new(false);

    view! {
        <section id="calculator" class="calc">
            <div id="result" class="card answer" data-recompute-ms=move || result.with(|r| format!("{:.3}", r.total_ms))>
                {move || match result.with(|r| r.out.clone()) {
                    None => view! { <p class="note">"Choose a model to see whether it fits."</p> }.into_any(),
                    Some(Err(e)) => view! { <p id="result-error" class="error">{e.to_string()}</p> }.into_any(),
                    Some(Ok(Outcome::Answer(c))) => view! { <AnswerView calc=*c on_use_format /> }.into_any(),
                    Some(Ok(Outcome::Needs(n))) => view! {
                        <h2 id="needs-heading">{format!("What does {} need?", n.model)}</h2>
                        {needs_view(*n)}
                        <p class="note">"No device chosen: choose one (or drop a probe report) for its verdict, speed and launch command."</p>
                    }.into_any(),
                }}
            </div>
            <div class="inputs">
                <ModelInput settings file_summary>
                    <Transition fallback=|| view! { <span class="note">"loading the model…"</span> } set_pending=pending.write_only()>
                        <Show when=move || pending.get()><span class="note" id="model-pending">"fetching… "</span></Show>
                        <ErrorBoundary fallback=|errors| view! {
                            <span id="model-error" class="error">
                                {move || errors.get().into_iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; ")}
                            </span>
                        }>
                            {move || Suspend::new(async move {
                                model.await.map(|m| view! {
                                    <span><strong id="model-name">{m.spec.name.clone()}</strong>" "<span class="note">"(" {m.source} ")"</span></span>
                                })
                            })}
                        </ErrorBoundary>
                    </Transition>
                </ModelInput>
                <SettingsInput settings />
                <DeviceInput settings />
            </div>
            <div id="result-details" class="card details">
                {move || match result.with(|r| r.out.clone()) {
                    Some(Ok(Outcome::Answer(c))) => view! {
                        <crate::components::launch::LaunchView launch=c.answer.launch.clone() />
                        <crate::components::serving::ServingView serving=c.answer.serving.clone() />
                        <FormatTableView answer=c.answer.clone() />
                        <crate::components::needs::NeedsView answer=c.answer.clone() />
                        <DetailsView calc=*c />
                    }.into_any(),
                    _ => view! { <p class="note">"Every format, the model part by part and the assumptions appear here."</p> }.into_any(),
                }}
            </div>
        </section>
    }
}
