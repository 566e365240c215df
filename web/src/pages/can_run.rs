//! "What can I run?": a device (from the catalog, a dropped probe report, or a measured device
//! in the link) → every catalog model that fits it, ranked by core's
//! `headroom_core::ranking::rank_models` — the same ranking `headroom models --fits` prints.
//! Every setting lives in the URL, so a ranking is a shareable link; the time the ranking took
//! is exposed as `data-rank-ms` on `#ranking` (budget: under 100 ms).

use std::str::FromStr;

use headroom_core::{
    devices::DeviceSpec,
    error::Setting,
    ranking::{
        ArchitectureFilter, DEFAULT_MIN_BITS_PER_WEIGHT, DEFAULT_RANK_CONTEXT_TOKENS, ModelFilter,
        RankRequest, RankSort, Ranking, families, rank_models,
    },
    training::Mode,
};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::{
    browser,
    catalog::{self, DEFAULT_DEVICE, DeviceChoice},
    components::report_view::measured_device_json,
    error::WebError,
    format,
    nav::{Navigation, Page},
    url_state::Query,
};

/// Every setting of the page; round-trips through the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct CanRunSettings {
    /// The device (`device=` or `devspec=`).
    pub device: DeviceChoice,
    /// Order (`sort=size|speed`).
    pub sort: RankSort,
    /// Mode in core's grammar (`mode=`).
    pub mode: String,
    /// Context every model is estimated at (`ctx=`).
    pub context: u64,
    /// Family to keep (`family=`); empty = all.
    pub family: String,
    /// MoE or dense only (`arch=moe|dense`).
    pub architecture: Option<ArchitectureFilter>,
    /// Keep models whose longest context reaches this (`minctx=`).
    pub min_context: Option<u64>,
    /// Keep models that decode at least this fast (`mintps=`).
    pub min_tokens_per_s: Option<f64>,
    /// Pick formats of at least this many bits per weight (`minbits=`).
    pub min_bits: f64,
}

impl Default for CanRunSettings {
    fn default() -> Self {
        CanRunSettings {
            device: DeviceChoice::Catalog(DEFAULT_DEVICE.into()),
            sort: RankSort::Size,
            mode: "inference".into(),
            context: DEFAULT_RANK_CONTEXT_TOKENS,
            family: String::new(),
            architecture: None,
            min_context: None,
            min_tokens_per_s: None,
            min_bits: DEFAULT_MIN_BITS_PER_WEIGHT,
        }
    }
}

impl CanRunSettings {
    /// The settings a link holds; what it does not hold (or holds unreadably) keeps its default,
    /// and a bad value is reported by [`rank`] rather than dropped where it names a filter.
    pub fn from_query(q: &Query) -> CanRunSettings {
        let mut s = CanRunSettings::default();
        if let Some(spec) = q.get("devspec") {
            s.device = DeviceChoice::Measured(spec.to_string());
        } else if let Some(id) = q.get("device") {
            s.device = DeviceChoice::Catalog(id.to_string());
        }
        if let Some(Ok(sort)) = q.get("sort").map(RankSort::from_str) {
            s.sort = sort;
        }
        if let Some(mode) = q.get("mode") {
            s.mode = mode.to_string();
        }
        if let Some(ctx) = q.get("ctx").and_then(|c| c.parse().ok()) {
            s.context = ctx;
        }
        s.family = q.get("family").unwrap_or_default().to_string();
        s.architecture = match q.get("arch") {
            Some("moe") => Some(ArchitectureFilter::Moe),
            Some("dense") => Some(ArchitectureFilter::Dense),
            _ => None,
        };
        s.min_context = q.get("minctx").and_then(|c| c.parse().ok());
        s.min_tokens_per_s = q.get("mintps").and_then(|c| c.parse().ok());
        if let Some(bits) = q.get("minbits").and_then(|c| c.parse().ok()) {
            s.min_bits = bits;
        }
        s
    }

    /// The settings as a link's query (`page=canrun` included).
    pub fn to_query(&self) -> Query {
        let mut q = Query::new();
        q.set("page", Page::CanRun.slug());
        self.device.write_query(&mut q);
        if self.sort != RankSort::Size {
            q.set("sort", self.sort.name());
        }
        if self.mode != "inference" {
            q.set("mode", self.mode.clone());
        }
        if self.context != DEFAULT_RANK_CONTEXT_TOKENS {
            q.set("ctx", self.context.to_string());
        }
        q.set_opt(
            "family",
            (!self.family.is_empty()).then(|| self.family.clone()),
        );
        q.set_opt(
            "arch",
            self.architecture.map(|a| match a {
                ArchitectureFilter::Moe => "moe",
                ArchitectureFilter::Dense => "dense",
            }),
        );
        q.set_opt("minctx", self.min_context.map(|c| c.to_string()));
        q.set_opt("mintps", self.min_tokens_per_s.map(|t| t.to_string()));
        q.set_opt(
            "minbits",
            (self.min_bits != DEFAULT_MIN_BITS_PER_WEIGHT).then(|| self.min_bits.to_string()),
        );
        q
    }
}

/// The choices of the "Min. bits per weight" control: the floors that separate llama.cpp's
/// families of file types.
const MIN_BITS_CHOICES: [(f64, &str); 4] = [
    (1.5, "any (1.5: IQ1_S and up)"),
    (2.0, "2 (IQ2_XXS and up)"),
    (3.0, "3 (IQ3_XXS and up)"),
    (4.0, "4 (IQ4_XS and up)"),
];

/// The label of this page's control for `setting`, for core's errors.
pub fn control(setting: Setting) -> &'static str {
    match setting {
        Setting::Family => "Family",
        Setting::Architecture => "Kind",
        Setting::MinContext => "Min. longest context",
        Setting::MinTokensPerS => "Min. tokens/s",
        Setting::Sort => "Sort",
        Setting::MinBits => "Min. bits per weight",
        Setting::Context => "Context",
        Setting::Mode => "Mode",
        Setting::Device => "Device",
        other => catalog::control(other),
    }
}

/// The ranking the settings ask for, each bad setting named by its control.
pub fn rank(settings: &CanRunSettings) -> Result<(DeviceSpec, Ranking), WebError> {
    let device = catalog::device(&settings.device)?;
    let mode = Mode::from_str(&settings.mode).map_err(|e| WebError::Setting {
        control: "Mode",
        problem: e.to_string(),
    })?;
    let request = RankRequest {
        mode,
        context: settings.context,
        sort: settings.sort,
        filter: ModelFilter {
            family: (!settings.family.is_empty()).then(|| settings.family.clone()),
            architecture: settings.architecture,
            min_context: settings.min_context,
            min_decode_tokens_per_s: settings.min_tokens_per_s,
        },
        min_bits_per_weight: settings.min_bits,
        ..RankRequest::new(device.clone())
    };
    let ranking = rank_models(&request).map_err(|e| {
        WebError::Answer(e.worded(
            |s| control(s).to_owned(),
            |s, value| format!("{value} under {}", control(s)),
        ))
    })?;
    Ok((device, ranking))
}

/// `<option>`s with `current` selected.
fn options(
    items: Vec<(String, String)>,
    current: impl Fn() -> String + Copy + Send + Sync + 'static,
) -> impl IntoView {
    items
        .into_iter()
        .map(|(value, label)| {
            let v = value.clone();
            view! { <option value=value selected=move || current() == v>{label}</option> }
        })
        .collect_view()
}

/// The "What can I run?" page.
#[component]
pub fn CanRunPage() -> impl IntoView {
    let state = use_context::<Navigation>();
    let settings = RwSignal::new(CanRunSettings::from_query(&Query::parse(
        &browser::location_search(),
    )));
    let read_report =
        Action::new_local(|files: &Vec<web_sys::File>| measured_device_json(files.clone()));
    Effect::new(move |_| {
        if let Some(Ok(spec)) = read_report.value().get() {
            settings.update(|s| s.device = DeviceChoice::Measured(spec));
        }
    });
    Effect::new(move |_| {
        let q = settings.with(|s| s.to_query());
        browser::replace_search(&q.to_search());
    });
    // Rank on every change, timing it (budget: under 100 ms for the whole catalog).
    let result = Memo::new(move |_| {
        let start = browser::now_ms();
        let out = settings.with(rank);
        (out, browser::now_ms() - start)
    });
    let device_options = catalog::device_choices()
        .into_iter()
        .map(|(id, name)| (id.clone(), format!("{id} — {name}")))
        .collect::<Vec<_>>();
    let current_device = move || {
        settings.with(|s| match &s.device {
            DeviceChoice::Catalog(id) => id.clone(),
            DeviceChoice::Measured(_) | DeviceChoice::Custom(_) | DeviceChoice::Any => {
                String::new()
            }
        })
    };
    let family_options = std::iter::once((String::new(), "any".to_string()))
        .chain(families().into_iter().map(|f| (f.clone(), f)))
        .collect::<Vec<_>>();
    let number = |text: String| -> Option<u64> { text.trim().parse().ok().filter(|n| *n > 0) };
    view! {
        <section id="can-run">
            <h1>"What can I run?"</h1>
            <div class="card">
                <div class="row">
                    <div>
                        <label for="canrun-device">"Device from the catalog"</label>
                        <select id="canrun-device" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if !v.is_empty() { settings.update(|s| s.device = DeviceChoice::Catalog(v)) }
                        }>
                            <option value="" selected=move || current_device().is_empty()>"my device (measured)"</option>
                            {options(device_options, current_device)}
                        </select>
                    </div>
                    <div>
                        <label for="canrun-report">"or my device: a probe report"</label>
                        <input id="canrun-report" type="file" accept=".json,application/json"
                            on:change=move |ev| {
                                let input = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                                read_report.dispatch_local(browser::files_of(input.and_then(|i| i.files())));
                            } />
                    </div>
                </div>
                {move || read_report.value().get().and_then(Result::err).map(|e| view! { <p id="canrun-device-error" class="error">{e.to_string()}</p> })}
                <p class="note">"A report from " <code>"headroom probe"</code> " or saved from the Benchmark page; read here, nothing is uploaded."</p>
                <div class="row">
                    <div>
                        <label for="canrun-sort">"Sort"</label>
                        <select id="canrun-sort" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Ok(sort) = RankSort::from_str(&v) { settings.update(|s| s.sort = sort) }
                        }>
                            {options(
                                vec![("size".into(), "largest model first".into()), ("speed".into(), "fastest first".into())],
                                move || settings.with(|s| s.sort.name().to_string()),
                            )}
                        </select>
                    </div>
                    <div>
                        <label for="canrun-mode">"Mode"</label>
                        <select id="canrun-mode" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.mode = v) }>
                            {options(
                                ["inference", "lora", "qlora", "full"].iter().map(|m| (m.to_string(), m.to_string())).collect(),
                                move || settings.with(|s| s.mode.clone()),
                            )}
                        </select>
                    </div>
                    <div>
                        <label for="canrun-ctx">"Context (tokens)"</label>
                        <input id="canrun-ctx" type="number" min="1"
                            prop:value=move || settings.with(|s| s.context.to_string())
                            on:change=move |ev| {
                                if let Some(c) = number(event_target_value(&ev)) { settings.update(|s| s.context = c) }
                            } />
                    </div>
                </div>
                <div class="row">
                    <div>
                        <label for="canrun-family">"Family"</label>
                        <select id="canrun-family" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.family = v) }>
                            {options(family_options, move || settings.with(|s| s.family.clone()))}
                        </select>
                    </div>
                    <div>
                        <label for="canrun-arch">"Kind"</label>
                        <select id="canrun-arch" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            settings.update(|s| s.architecture = match v.as_str() {
                                "moe" => Some(ArchitectureFilter::Moe),
                                "dense" => Some(ArchitectureFilter::Dense),
                                _ => None,
                            })
                        }>
                            {options(
                                vec![(String::new(), "any".into()), ("moe".into(), "mixture of experts".into()), ("dense".into(), "dense".into())],
                                move || settings.with(|s| match s.architecture {
                                    Some(ArchitectureFilter::Moe) => "moe".to_string(),
                                    Some(ArchitectureFilter::Dense) => "dense".to_string(),
                                    None => String::new(),
                                }),
                            )}
                        </select>
                    </div>
                    <div>
                        <label for="canrun-minctx">"Min. longest context"</label>
                        <input id="canrun-minctx" type="number" min="0" placeholder="any"
                            prop:value=move || settings.with(|s| s.min_context.map(|c| c.to_string()).unwrap_or_default())
                            on:change=move |ev| { let v = number(event_target_value(&ev)); settings.update(|s| s.min_context = v) } />
                    </div>
                    <div>
                        <label for="canrun-mintps">"Min. tokens/s"</label>
                        <input id="canrun-mintps" type="number" min="0" placeholder="any"
                            prop:value=move || settings.with(|s| s.min_tokens_per_s.map(|t| t.to_string()).unwrap_or_default())
                            on:change=move |ev| {
                                let v = event_target_value(&ev).trim().parse::<f64>().ok().filter(|t| t.is_finite() && *t > 0.0);
                                settings.update(|s| s.min_tokens_per_s = v)
                            } />
                    </div>
                    <div>
                        <label for="canrun-minbits">"Min. bits per weight"</label>
                        <select id="canrun-minbits" on:change=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                                settings.update(|s| s.min_bits = v)
                            }
                        }>
                            {options(
                                MIN_BITS_CHOICES
                                    .iter()
                                    .map(|(bits, label)| (bits.to_string(), (*label).to_string()))
                                    .collect(),
                                move || settings.with(|s| s.min_bits.to_string()),
                            )}
                        </select>
                    </div>
                </div>
            </div>
            <div id="ranking" class="card" data-rank-ms=move || result.with(|r| format!("{:.3}", r.1))>
                {move || match result.with(|r| r.0.clone()) {
                    Err(e) => view! { <p id="ranking-error" class="error">{e.to_string()}</p> }.into_any(),
                    Ok((device, ranking)) => view! { <RankingView device=device ranking=ranking state=state /> }.into_any(),
                }}
            </div>
        </section>
    }
}

/// The ranked list.
#[component]
fn RankingView(
    /// The device ranked for (kept in each row's calculator link).
    device: DeviceSpec,
    /// Core's ranking.
    ranking: Ranking,
    /// Navigation, to open a row in the calculator.
    state: Option<Navigation>,
) -> impl IntoView {
    let heading = format!(
        "{} · {} · {} tokens of context · formats of ≥ {} bits per weight · {} of {} models fit",
        ranking.device,
        ranking.mode,
        format::count(ranking.context),
        ranking.min_bits_per_weight,
        ranking.fitting,
        ranking.considered
    );
    if ranking.models.is_empty() {
        let why = ranking
            .empty_reason
            .clone()
            .unwrap_or_else(|| "no model is left after the filters".into());
        return view! {
            <h2 id="ranking-device">{heading}</h2>
            <p id="ranking-empty">{why}</p>
        }
        .into_any();
    }
    let device_json = serde_json::to_string(&device).unwrap_or_default();
    let rows = ranking
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut q = Query::new();
            q.set("model", m.id.clone());
            q.set("format", m.format.clone());
            if device.id == "measured" {
                q.set("devspec", device_json.clone());
            } else {
                q.set("device", device.id.clone());
            }
            let href = {
                let mut link = q.clone();
                link.set("page", Page::Calculator.slug());
                link.to_search()
            };
            let open = move |ev: leptos::ev::MouseEvent| {
                if let Some(state) = state {
                    ev.prevent_default();
                    state.navigate(Page::Calculator, q.clone());
                }
            };
            let longest = m
                .longest_context
                .map_or_else(|| "none".to_string(), format::count);
            view! {
                <tr data-model=m.id.clone()>
                    <td class="num">{i + 1}</td>
                    <td><a href=href on:click=open>{m.id.clone()}</a>{m.moe.then_some(" (MoE)")}</td>
                    <td class="num">{format::count(m.params_total)}</td>
                    <td>{m.format.clone()}</td>
                    <td>{m.runtime.clone()}</td>
                    <td class="num">{format::bytes(m.total_bytes)}</td>
                    <td class="num">{format::tokens_per_s(m.decode_tokens_per_s)}</td>
                    <td class="num">{format::tokens_per_s(m.prefill_tokens_per_s)}</td>
                    <td class="num">{longest}</td>
                </tr>
            }
        })
        .collect_view();
    let assumptions = ranking
        .assumptions
        .iter()
        .map(|a| view! { <li>{a.clone()}</li> })
        .collect_view();
    view! {
        <h2 id="ranking-device">{heading}</h2>
        <div class="table-wrap">
            <table id="ranking-table">
                <thead><tr>
                    <th>"#"</th><th>"model"</th><th>"params"</th><th>"best format that fits"</th><th>"runtime"</th>
                    <th>"memory"</th><th>"decode"</th><th>"prefill"</th><th>"longest context"</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <ul class="note">{assumptions}</ul>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_url() {
        let s = CanRunSettings {
            device: DeviceChoice::Catalog("rtx-4090".into()),
            sort: RankSort::Speed,
            mode: "qlora".into(),
            context: 8192,
            family: "Qwen3".into(),
            architecture: Some(ArchitectureFilter::Moe),
            min_context: Some(32_768),
            min_tokens_per_s: Some(20.5),
            min_bits: 2.0,
        };
        let q = Query::parse(&s.to_query().to_search());
        assert_eq!(q.get("page"), Some("canrun"));
        assert_eq!(CanRunSettings::from_query(&q), s);
    }

    #[test]
    fn the_page_ranks_what_the_cli_ranks() {
        let s = CanRunSettings {
            device: DeviceChoice::Catalog("rtx-4090".into()),
            ..CanRunSettings::default()
        };
        let (_, ranking) = rank(&s).unwrap_or_else(|e| panic!("{e}"));
        let cli = rank_models(&RankRequest::new(
            headroom_core::devices::find("rtx-4090").unwrap_or_else(|e| panic!("{e}")),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ranking, cli);
        let bad = CanRunSettings {
            family: "nosuchfamily".into(),
            ..s
        };
        let err = rank(&bad).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("nosuchfamily"), "{err}");
    }
}
