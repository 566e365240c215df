//! Calculator: model × settings × device → verdict, memory bar, every format, longest context.
//! Every setting lives in the URL (see [`crate::catalog::CalcSettings`]); the result recomputes on
//! every change (main result, every-format table, best format, longest context, at once) and the
//! time it took is exposed as `data-recompute-ms` on `#result`.

use headroom_core::{
    advice::{RowOutcome, TrainingAdvice},
    answer::Answer,
    estimate::Verdict,
    model::ModelSpec,
    units::GIB,
};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;

use crate::{
    browser,
    catalog::{self, CalcSettings, Calculation, DeviceChoice, ExactWeights, ModelSource},
    components::charts::{Marker, Segment, StackedBar},
    format, model_files,
    url_state::Query,
};

/// The resolved model, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    /// Being fetched.
    Loading(String),
    /// Ready for the estimate.
    Ready {
        /// The shape (boxed: a spec is far larger than the other variants).
        spec: Box<ModelSpec>,
        /// Where it came from, in words.
        source: String,
    },
    /// No model: what went wrong and what to do.
    Failed(String),
}

/// Summary of a dropped model file's tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    /// File name(s).
    pub files: String,
    /// Tensor count.
    pub tensor_count: usize,
    /// `(type, elements, bytes)` per element type, largest first.
    pub by_type: Vec<(String, u64, u64)>,
    /// Notes (what the header could not say).
    pub notes: Vec<String>,
    /// Every tensor: name, shape, element type, bytes.
    pub tensors: Vec<(String, Vec<u64>, String, u64)>,
}

/// CSS class and word for a verdict.
pub fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Fits => "fits",
        Verdict::FitsTightly => "tight",
        Verdict::NeedsOffload => "offload",
        Verdict::DoesNotFit => "no",
    }
}

/// Short label for the format table: fits / tight / offload / no.
fn verdict_short(v: Verdict) -> &'static str {
    match v {
        Verdict::Fits => "fits",
        Verdict::FitsTightly => "tight",
        Verdict::NeedsOffload => "offload",
        Verdict::DoesNotFit => "no",
    }
}

/// Resolve a model source that needs no network.
fn resolve_sync(source: &ModelSource) -> Option<ModelState> {
    Some(match source {
        ModelSource::Catalog(id) => match catalog::catalog_model(id) {
            Ok(spec) => ModelState::Ready {
                spec: Box::new(spec),
                source: format!("catalog: {id}"),
            },
            Err(e) => ModelState::Failed(e),
        },
        ModelSource::Config { name, json } => match catalog::model_from_config(name, json) {
            Ok(spec) => ModelState::Ready {
                spec: Box::new(spec),
                source: format!("config.json: {name}"),
            },
            Err(e) => ModelState::Failed(format!("config.json: {e}")),
        },
        ModelSource::Spec(json) => match serde_json::from_str::<ModelSpec>(json) {
            Ok(spec) => ModelState::Ready {
                source: format!("model file header: {}", spec.name),
                spec: Box::new(spec),
            },
            Err(e) => ModelState::Failed(format!("the model in this link is unreadable: {e}")),
        },
        ModelSource::Hub(_) => return None,
    })
}

/// Hugging Face's URL for a repository's `config.json`.
pub fn hub_config_url(repo_id: &str) -> String {
    format!("https://huggingface.co/{repo_id}/resolve/main/config.json")
}

/// A Hub id looks like `owner/name` (letters, digits, `-_.`).
pub fn valid_hub_id(id: &str) -> bool {
    let mut parts = id.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Fetch a Hub model's config and resolve it.
async fn fetch_hub(repo_id: String) -> ModelState {
    if !valid_hub_id(&repo_id) {
        return ModelState::Failed(format!(
            "`{repo_id}` is not a Hugging Face model id: write it as owner/name, e.g. Qwen/Qwen3-8B"
        ));
    }
    match browser::fetch_text(&hub_config_url(&repo_id)).await {
        Err(e) => ModelState::Failed(format!(
            "could not reach huggingface.co ({e}): you may be offline or it is blocked. Paste the \
             model's config.json in the config.json tab instead."
        )),
        Ok(r) if r.status == 401 || r.status == 403 => ModelState::Failed(format!(
            "{repo_id} is gated (HTTP {}): accept its license on huggingface.co/{repo_id} — the \
             browser cannot send your token — then download config.json and paste it in the \
             config.json tab.",
            r.status
        )),
        Ok(r) if r.status == 404 => ModelState::Failed(format!(
            "{repo_id} has no config.json on the Hub (HTTP 404): check the spelling (owner/name, \
             case matters) or whether the repository holds only GGUF files (drop one in the File tab)."
        )),
        Ok(r) if !(200..300).contains(&r.status) => ModelState::Failed(format!(
            "the Hub answered HTTP {} for {repo_id}; try again later or paste config.json.",
            r.status
        )),
        Ok(r) => match catalog::model_from_config(&repo_id, &r.body) {
            Ok(spec) => ModelState::Ready {
                spec: Box::new(spec),
                source: format!("Hugging Face: {repo_id}"),
            },
            Err(e) => ModelState::Failed(format!("{repo_id}/config.json: {e}")),
        },
    }
}

/// What a dropped file set gave.
struct FileOutcome {
    spec: Option<ModelSpec>,
    file_type: Option<String>,
    exact: ExactWeights,
    summary: FileSummary,
}

async fn read_gguf(file: &web_sys::File) -> Result<FileOutcome, String> {
    let name = file.name();
    let header = model_files::read_gguf_header(file).await?;
    let model = model_files::spec_from_gguf(&header, &name).map_err(|e| format!("{name}: {e}"))?;
    let by_type = header
        .type_breakdown()
        .into_iter()
        .map(|(t, e, b)| (t.to_string(), e, b))
        .collect();
    Ok(FileOutcome {
        exact: ExactWeights {
            file: name.clone(),
            bytes: header.tensor_bytes(),
            parameters: header.parameters(),
            format: model.file_type.clone(),
            parameters_exact: true,
        },
        summary: FileSummary {
            files: name,
            tensor_count: header.tensors.len(),
            by_type,
            notes: model.notes,
            tensors: header
                .tensors
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.shape.clone(),
                        t.ggml_type.name.to_string(),
                        t.bytes,
                    )
                })
                .collect(),
        },
        file_type: model.file_type,
        spec: Some(model.spec),
    })
}

async fn read_safetensors(files: &[web_sys::File]) -> Result<FileOutcome, String> {
    let (shards, weights) = model_files::read_safetensors_shards(files).await?;
    let tensors = shards
        .iter()
        .flat_map(|(_, h)| &h.tensors)
        .map(|t| (t.name.clone(), t.shape.clone(), t.dtype.clone(), t.bytes))
        .collect::<Vec<_>>();
    let tensor_count = tensors.len();
    let by_type = weights
        .by_dtype
        .iter()
        .map(|d| (d.dtype.clone(), d.elements, d.bytes))
        .collect();
    let (bytes_total, params_total) = (weights.bytes, weights.parameters);
    let names = shards.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
    let files = names.join(", ");
    Ok(FileOutcome {
        spec: None,
        file_type: None,
        exact: ExactWeights {
            file: files.clone(),
            bytes: bytes_total,
            parameters: params_total,
            format: weights.format_name.clone(),
            parameters_exact: weights.parameters_exact,
        },
        summary: FileSummary {
            files,
            tensor_count,
            by_type,
            notes: vec![
                "a safetensors header lists tensors, not the model's shape: the KV cache and \
                 activations come from the model chosen in the catalog, config.json or Hub tab. \
                 Drop every shard of a sharded checkpoint together."
                    .into(),
            ],
            tensors,
        },
    })
}

/// Read dropped or chosen files: one `.gguf`, or one or more `.safetensors` shards.
async fn read_model_files(files: Vec<web_sys::File>) -> Result<FileOutcome, String> {
    if files.is_empty() {
        return Err("no file was dropped".into());
    }
    let is = |f: &web_sys::File, ext: &str| f.name().to_ascii_lowercase().ends_with(ext);
    if files.iter().all(|f| is(f, ".safetensors")) {
        return read_safetensors(&files).await;
    }
    if files.len() == 1 && is(&files[0], ".gguf") {
        return read_gguf(&files[0]).await;
    }
    Err(format!(
        "{}: drop one .gguf file or .safetensors shards (other files are not model headers)",
        files
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A measured device (as `devspec` JSON) from a dropped probe report.
async fn device_from_report_file(files: Vec<web_sys::File>) -> Result<String, String> {
    let file = files.into_iter().next().ok_or("no file was chosen")?;
    let name = file.name();
    let text = browser::read_file_text(&file, headroom_core::limits::MAX_REPORT_JSON_BYTES).await?;
    let report =
        headroom_core::report::ProbeReport::from_json(&text).map_err(|e| format!("{name}: {e}"))?;
    let device = crate::components::report_view::device_from_report(&report);
    serde_json::to_string(&device).map_err(|e| format!("{name}: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelTab {
    Catalog,
    Config,
    Hub,
    File,
}

/// The calculator page.
#[component]
pub fn CalculatorPage() -> impl IntoView {
    let initial = CalcSettings::from_query(&Query::parse(&browser::location_search()));
    let tab = RwSignal::new(match &initial.model {
        ModelSource::Catalog(_) => ModelTab::Catalog,
        ModelSource::Config { .. } => ModelTab::Config,
        ModelSource::Hub(_) => ModelTab::Hub,
        ModelSource::Spec(_) => ModelTab::File,
    });
    let config_text = RwSignal::new(match &initial.model {
        ModelSource::Config { json, .. } => json.clone(),
        _ => String::new(),
    });
    let hub_text = RwSignal::new(match &initial.model {
        ModelSource::Hub(id) => id.clone(),
        _ => String::new(),
    });
    let model = RwSignal::new(
        resolve_sync(&initial.model)
            .unwrap_or_else(|| ModelState::Loading("fetching config.json from the Hub…".into())),
    );
    if let ModelSource::Hub(id) = &initial.model {
        let id = id.clone();
        spawn_local(async move { model.set(fetch_hub(id).await) });
    }
    let settings = RwSignal::new(initial);
    let file_summary = RwSignal::new(None::<FileSummary>);
    let file_error = RwSignal::new(None::<String>);
    let file_busy = RwSignal::new(false);

    // Keep the URL in step with the settings (shareable link).
    Effect::new(move |_| {
        let q = settings.with(|s| s.to_query());
        browser::replace_search(&q.to_search());
    });

    // Recompute on every change, timing it (budget: < 5 ms per change): core's whole answer —
    // the estimate, every format side by side (~30 estimates), the best format, the longest
    // context (a binary search, ~25 estimates) and, for training, the settings that fit.
    let result = Memo::new(move |_| {
        let start = browser::now_ms();
        let out = settings.with(|s| match model.get() {
            ModelState::Ready { spec, .. } => Some(catalog::calculate(s, &spec)),
            _ => None,
        });
        Recompute {
            out,
            total_ms: browser::now_ms() - start,
        }
    });

    let set_model = move |source: ModelSource, state: ModelState| {
        model.set(state);
        settings.update(|s| {
            s.model = source;
            s.exact = None;
        });
        file_summary.set(None);
    };

    let model_list = catalog::model_choices()
        .into_iter()
        .map(|(id, label)| view! { <option value=id>{label}</option> })
        .collect_view();
    let device_list = catalog::device_choices()
        .into_iter()
        .map(|(id, name)| view! { <option value=id>{name}</option> })
        .collect_view();

    let on_model_search = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        let id = value.split(" — ").next().unwrap_or("").trim().to_string();
        if catalog::model_choices().iter().any(|(c, _)| *c == id) {
            let state = resolve_sync(&ModelSource::Catalog(id.clone()))
                .unwrap_or_else(|| ModelState::Failed("unreachable".into()));
            set_model(ModelSource::Catalog(id), state);
        }
    };
    let on_config = move |ev: leptos::ev::Event| {
        let json = event_target_value(&ev);
        config_text.set(json.clone());
        if json.trim().is_empty() {
            return;
        }
        let name = serde_json::from_str::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| {
                v.get("_name_or_path")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "pasted config.json".to_string());
        let source = ModelSource::Config { name, json };
        let state =
            resolve_sync(&source).unwrap_or_else(|| ModelState::Failed("unreachable".into()));
        set_model(source, state);
    };
    let fetch = move || {
        let id = hub_text.get_untracked().trim().to_string();
        set_model(
            ModelSource::Hub(id.clone()),
            ModelState::Loading(format!("fetching {id}/config.json from the Hub…")),
        );
        spawn_local(async move { model.set(fetch_hub(id).await) });
    };
    let handle_files = move |files: Vec<web_sys::File>| {
        file_busy.set(true);
        file_error.set(None);
        spawn_local(async move {
            match read_model_files(files).await {
                Ok(out) => {
                    if let Some(spec) = out.spec {
                        let json = serde_json::to_string(&spec).unwrap_or_default();
                        model.set(ModelState::Ready {
                            source: format!("model file header: {}", spec.name),
                            spec: Box::new(spec),
                        });
                        settings.update(|s| s.model = ModelSource::Spec(json));
                    }
                    settings.update(|s| {
                        s.exact = Some(out.exact);
                        if let Some(ft) = out.file_type
                            && catalog::format_names().contains(&ft)
                        {
                            s.format = ft;
                        }
                    });
                    file_summary.set(Some(out.summary));
                }
                Err(e) => file_error.set(Some(e)),
            }
            file_busy.set(false);
        });
    };
    let drag_over = RwSignal::new(false);
    let device_error = RwSignal::new(None::<String>);

    let tab_button = move |t: ModelTab, label: &'static str, id: &'static str| {
        view! {
            <button id=id class:active=move || tab.get() == t on:click=move |_| tab.set(t)>{label}</button>
        }
    };

    let select_options = move |names: Vec<String>, current: Memo<String>| {
        names
            .into_iter()
            .map(|n| {
                let v = n.clone();
                let value = n.clone();
                view! { <option value=value selected=move || current.get() == v>{n}</option> }
            })
            .collect_view()
    };
    let cur_format = Memo::new(move |_| settings.with(|s| s.format.clone()));
    let cur_runtime = Memo::new(move |_| settings.with(|s| s.runtime.clone()));
    let cur_kv = Memo::new(move |_| settings.with(|s| s.kv.clone()));
    let cur_mode = Memo::new(move |_| settings.with(|s| s.mode.clone()));
    let mode_names: Vec<String> = ["inference", "lora", "qlora", "full"]
        .into_iter()
        .map(String::from)
        .collect();

    view! {
        <section id="calculator" class="grid2">
            <div class="inputs">
                <div class="card">
                    <h2>"Model"</h2>
                    <div class="tabs" role="tablist">
                        {tab_button(ModelTab::Catalog, "Catalog", "tab-catalog")}
                        {tab_button(ModelTab::Config, "config.json", "tab-config")}
                        {tab_button(ModelTab::Hub, "Hugging Face", "tab-hub")}
                        {tab_button(ModelTab::File, "File", "tab-file")}
                    </div>
                    <div hidden=move || tab.get() != ModelTab::Catalog>
                        <label for="model-search">"Search the catalog"</label>
                        <input id="model-search" type="search" list="model-list" placeholder="e.g. llama-3.1-8b, qwen3, gemma"
                            on:change=on_model_search on:input=on_model_search />
                        <datalist id="model-list">{model_list}</datalist>
                    </div>
                    <div hidden=move || tab.get() != ModelTab::Config>
                        <label for="config-input">"Paste a config.json"</label>
                        <textarea id="config-input" placeholder="{\"model_type\": \"llama\", \"hidden_size\": 4096, …}"
                            prop:value=move || config_text.get() on:input=on_config></textarea>
                    </div>
                    <div hidden=move || tab.get() != ModelTab::Hub>
                        <label for="hf-id">"Hugging Face model id"</label>
                        <div class="row">
                            <input id="hf-id" type="text" placeholder="Qwen/Qwen3-8B" prop:value=move || hub_text.get()
                                on:input=move |ev| hub_text.set(event_target_value(&ev))
                                on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Enter" { fetch() } />
                            <button id="hf-fetch" style="flex: 0 0 auto" on:click=move |_| fetch()>"Fetch"</button>
                        </div>
                        <p class="note">"config.json is fetched by this browser straight from huggingface.co."</p>
                    </div>
                    <div hidden=move || tab.get() != ModelTab::File>
                        <div class="dropzone" class:over=move || drag_over.get()
                            on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); drag_over.set(true); }
                            on:dragleave=move |_| drag_over.set(false)
                            on:drop=move |ev: leptos::ev::DragEvent| {
                                ev.prevent_default();
                                drag_over.set(false);
                                handle_files(browser::files_of(ev.data_transfer().and_then(|d| d.files())));
                            }>
                            <p>"Drop a .gguf file or .safetensors shards — only the header is read, nothing is uploaded."</p>
                            <input id="model-file" type="file" accept=".gguf,.safetensors" multiple
                                on:change=move |ev| {
                                    let input = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                                    handle_files(browser::files_of(input.and_then(|i| i.files())));
                                } />
                        </div>
                        <Show when=move || file_busy.get()><p class="note">"reading the header…"</p></Show>
                        {move || file_error.get().map(|e| view! { <p id="file-error" class="error">{e}</p> })}
                        {move || file_summary.get().map(|s| view! { <FileSummaryView summary=s /> })}
                    </div>
                    <p id="model-status">
                        {move || match model.get() {
                            ModelState::Loading(m) => view! { <span class="note">{m}</span> }.into_any(),
                            ModelState::Ready { spec, source } => view! {
                                <span><strong id="model-name">{spec.name.clone()}</strong>" "<span class="note">"(" {source} ")"</span></span>
                            }.into_any(),
                            ModelState::Failed(e) => view! { <span id="model-error" class="error">{e}</span> }.into_any(),
                        }}
                    </p>
                </div>
                <div class="card">
                    <h2>"Settings"</h2>
                    <div class="row">
                        <div>
                            <label for="format">"Weight format"</label>
                            <select id="format" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.format = v) }>
                                <option value="" selected=move || cur_format.get().is_empty()>"checkpoint's own"</option>
                                {select_options(catalog::format_names(), cur_format)}
                            </select>
                        </div>
                        <div>
                            <label for="mode">"Mode"</label>
                            <select id="mode" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.mode = v) }>
                                {select_options(mode_names, cur_mode)}
                            </select>
                        </div>
                        <div hidden=move || !cur_mode.get().contains("lora")>
                            <label for="lora-layers">"LoRA layers"</label>
                            <input id="lora-layers" type="text" placeholder="all (or last:8, 0-15)"
                                title="peft's layers_to_transform: adapting only the last K layers keeps activations for those K layers only; the earlier layers stay as pretrained"
                                prop:value=move || settings.with(|s| s.lora_layers.clone())
                                on:input=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.lora_layers = v) } />
                        </div>
                    </div>
                    <div class="row">
                        <div>
                            <label for="context">"Context (tokens)"</label>
                            <input id="context" type="number" min="1" placeholder="model default (≤ 4096)"
                                prop:value=move || settings.with(|s| s.context.map(|c| c.to_string()).unwrap_or_default())
                                on:input=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.context = v.trim().parse().ok()) } />
                        </div>
                        <div>
                            <label for="batch">"Batch"</label>
                            <input id="batch" type="number" min="1"
                                prop:value=move || settings.with(|s| s.batch.to_string())
                                on:input=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.batch = v.trim().parse().unwrap_or(0)) } />
                        </div>
                    </div>
                    <div class="row">
                        <div>
                            <label for="runtime">"Runtime"</label>
                            <select id="runtime" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.runtime = v) }>
                                <option value="" selected=move || cur_runtime.get().is_empty()>"usual for the device"</option>
                                {select_options(catalog::runtime_names(), cur_runtime)}
                            </select>
                        </div>
                        <div>
                            <label for="kv">"KV cache"</label>
                            <select id="kv" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.kv = v) }>
                                <option value="" selected=move || cur_kv.get().is_empty()>"usual for the runtime"</option>
                                {select_options(catalog::kv_names(), cur_kv)}
                            </select>
                        </div>
                    </div>
                    <div class="row">
                        <label><input id="text-only" type="checkbox"
                            prop:checked=move || settings.with(|s| s.text_only)
                            on:change=move |ev| { let on = event_target_checked(&ev); settings.update(|s| s.text_only = on) } />
                            " text only (leave out vision/audio parts)"</label>
                        <label><input id="with-mtp" type="checkbox"
                            prop:checked=move || settings.with(|s| s.with_mtp)
                            on:change=move |ev| { let on = event_target_checked(&ev); settings.update(|s| s.with_mtp = on) } />
                            " MTP layers (speculative decoding)"</label>
                    </div>
                </div>
                <div class="card">
                    <h2>"Device"</h2>
                    <label for="device-search">"Search the catalog"</label>
                    <input id="device-search" type="search" list="device-list" placeholder="e.g. rtx-4090, m2, h100"
                        on:input=move |ev| {
                            let v = event_target_value(&ev);
                            if catalog::device_choices().iter().any(|(id, _)| *id == v) {
                                settings.update(|s| s.device = DeviceChoice::Catalog(v));
                            }
                        } />
                    <datalist id="device-list">{device_list}</datalist>
                    <label for="device-count">"Number of identical devices"</label>
                    <input id="device-count" type="number" min="1"
                        max=headroom_core::limits::MAX_DEVICES.to_string()
                        prop:value=move || settings.with(|s| s.device_count.to_string())
                        on:input=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.device_count = v.trim().parse().unwrap_or(0)) } />
                    <p id="device-status">
                        {move || settings.with(|s| match catalog::device(&s.device) {
                            Ok(d) => view! {
                                <span><strong id="device-name">{d.name.clone()}</strong>
                                " " <span class="note">{match &s.device { DeviceChoice::Measured(_) => "(my device: measured)", _ => "(catalog)" }}</span></span>
                            }.into_any(),
                            Err(e) => view! { <span class="error">{e}</span> }.into_any(),
                        })}
                    </p>
                    <label for="device-report">"My device: a probe report"</label>
                    <input id="device-report" type="file" accept=".json,application/json"
                        on:change=move |ev| {
                            let input = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                            let files = browser::files_of(input.and_then(|i| i.files()));
                            spawn_local(async move {
                                device_error.set(None);
                                match device_from_report_file(files).await {
                                    Ok(spec) => settings.update(|s| s.device = DeviceChoice::Measured(spec)),
                                    Err(e) => device_error.set(Some(e)),
                                }
                            });
                        } />
                    {move || device_error.get().map(|e| view! { <p id="device-error" class="error">{e}</p> })}
                    <p class="note">"A report from " <code>"headroom probe"</code> " or the Benchmark page; the Reports page also has “use this device”."</p>
                </div>
            </div>
            <div id="result" class="card" data-recompute-ms=move || result.with(|r| format!("{:.3}", r.total_ms))>
                {move || match result.with(|r| r.out.clone()) {
                    None => view! { <p class="note">"Choose a model to see whether it fits."</p> }.into_any(),
                    Some(Err(e)) => view! { <p id="result-error" class="error">{e}</p> }.into_any(),
                    Some(Ok(c)) => view! {
                        <ResultView calc=c.clone() />
                        <crate::components::launch::LaunchView launch=c.answer.launch.clone() />
                        <crate::components::needs::NeedsView answer=c.answer.clone() />
                        <FormatTableView answer=c.answer />
                    }.into_any(),
                }}
            </div>
        </section>
    }
}

/// A dropped file's tensors, by type.
#[component]
fn FileSummaryView(
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

/// The result panel.
#[component]
fn ResultView(
    /// The calculation to show.
    calc: Calculation,
) -> impl IntoView {
    let e = &calc.answer.estimate;
    let n = e.device_count.max(1) as f64;
    let per = |b: u64| b as f64 / GIB as f64 / n;
    let segments = vec![
        Segment {
            label: "Weights".into(),
            value_gib: per(e.weights_bytes),
            class: "seg-weights",
        },
        Segment {
            label: "KV cache".into(),
            value_gib: per(e.kv_cache_bytes),
            class: "seg-kv",
        },
        Segment {
            label: "Activations".into(),
            value_gib: per(e.activation_bytes),
            class: "seg-act",
        },
        Segment {
            label: "Runtime overhead".into(),
            value_gib: per(e.overhead_bytes),
            class: "seg-overhead",
        },
        Segment {
            label: "Training state".into(),
            value_gib: per(e.training_bytes),
            class: "seg-training",
        },
    ]
    .into_iter()
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
        markers.push(Marker {
            at_gib: mem * lo as f64 / 100.0,
            label: format!("{lo}%"),
            class: "marker-guide",
        });
        markers.push(Marker {
            at_gib: mem * hi as f64 / 100.0,
            label: format!("{hi}%"),
            class: "marker-guide",
        });
    }
    let per_device_note = if e.device_count > 1 {
        format!(" per device (split over {})", e.device_count)
    } else {
        String::new()
    };
    // Decode speed means nothing for a training run: the line names it only for inference.
    let speed = if e.mode == "inference" {
        format!(", ≈ {} decode", format::tokens_per_s(e.decode_tokens_per_s))
    } else {
        format!(" ({})", e.mode)
    };
    let verdict_line = format!(
        "{} in {} on {}{}: {} — needs {} of {} usable{}{}",
        e.model,
        e.quant,
        if e.device_count > 1 {
            format!("{} × ", e.device_count)
        } else {
            String::new()
        },
        e.device,
        e.verdict.label(),
        format::bytes(e.per_device_bytes),
        format::bytes(e.usable_bytes),
        per_device_note,
        speed,
    );
    let title = format!(
        "Memory{} vs usable memory of {}",
        if e.device_count > 1 {
            " per device"
        } else {
            ""
        },
        e.device
    );
    let assumptions = e
        .assumptions
        .iter()
        .map(|a| view! { <li>{a.clone()}</li> })
        .collect_view();
    let exact = calc.exact.as_ref().map(|x| {
        let used = x.bytes == e.weights_bytes;
        let how = if used {
            format!("used as the {} weights", e.quant)
        } else {
            let diff = x.bytes as i128 - e.weights_bytes as i128;
            format!(
                "the estimate's {} weights differ by {:+.2} GiB",
                e.quant,
                diff as f64 / GIB as f64
            )
        };
        let agree = match &calc.answer.checkpoint {
            Some(c) if !c.parameters_agree => format!(
                "; the config describes {} parameters",
                format::count(c.config_parameters)
            ),
            _ => String::new(),
        };
        view! {
            <tr id="exact-weights"><th>"Weights in " {x.file.clone()}</th>
                <td class="num">{format::bytes(x.bytes)} " exact (" {format::count(x.parameters)} " parameters; "
                {how} {agree} ")"</td></tr>
        }
    });
    let training = calc
        .answer
        .training
        .clone()
        .map(|t| view! { <TrainingAdviceView advice=t /> });
    let a = &calc.answer;
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
                    "{} B per token{}",
                    format::count(c.bytes_per_token),
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
    view! {
        <p id="verdict" class=format!("verdict {}", verdict_class(e.verdict))>{verdict_line}</p>
        {approximations}
        <StackedBar title=title segments=segments markers=markers />
        <table id="facts">
            <tbody>
                <tr><th>"Parameters"</th><td class="num">{format::count(e.params_total)} " total, " {format::count(e.params_active)} " active"</td></tr>
                <tr><th>"Total memory"</th><td class="num">{format::bytes(e.total_bytes)}</td></tr>
                <tr><th>"Per device"</th><td class="num">{format::bytes(e.per_device_bytes)}</td></tr>
                <tr><th>"Usable on the device"</th><td class="num">{format::bytes(e.usable_bytes)}</td></tr>
                <tr><th>"Devices needed"</th><td class="num">{e.devices_needed.map(|d| d.to_string()).unwrap_or_else(|| "—".into())}</td></tr>
                <tr><th>"Decode"</th><td class="num">{format::tokens_per_s(e.decode_tokens_per_s)} " per sequence"</td></tr>
                <tr><th>"Prefill"</th><td class="num">{format::tokens_per_s(e.prefill_tokens_per_s)}</td></tr>
                <tr><th>"Runtime, KV cache, mode"</th><td class="num">{format!("{}, {}, {}", e.runtime, e.kv_cache_dtype, e.mode)}</td></tr>
                {exact}
            </tbody>
        </table>
        <h2>"The model, part by part"</h2>
        {text_only}
        {with_mtp}
        <table id="model-parts">
            <thead><tr><th>"part"</th><th class="num">"parameters"</th><th class="num">"active"</th></tr></thead>
            <tbody>{parts}</tbody>
        </table>
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

/// One recompute of the calculator and its time.
#[derive(Debug, Clone, PartialEq)]
struct Recompute {
    /// Core's answer (`None` until a model is ready).
    out: Option<Result<catalog::Calculation, String>>,
    /// Time of the whole recompute, ms.
    total_ms: f64,
}

/// The table of every format, the best format and the longest context.
#[component]
fn FormatTableView(
    /// Core's answer.
    answer: Answer,
) -> impl IntoView {
    let selected = answer.estimate.quant.clone();
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
            let runtime = if e.kv_cache_dtype == answer.estimate.kv_cache_dtype {
                row.runtime.clone()
            } else {
                format!("{} (KV {})", row.runtime, e.kv_cache_dtype)
            };
            view! {
                <tr class:selected=e.quant == selected>
                    <td>{e.quant.clone()}</td>
                    <td class="num">{format::bytes(e.per_device_bytes)}</td>
                    <td><span class=format!("badge {class}")>{verdict_short(e.verdict)}</span></td>
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
            "Best format that fits: {} (highest precision with room; else the first that fits tightly).",
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
        <ul id="formats-skipped" class="note">{skipped}</ul>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_checked_before_fetching() {
        assert!(valid_hub_id("Qwen/Qwen3-8B"));
        assert!(valid_hub_id("meta-llama/Llama-3.1-8B"));
        assert!(!valid_hub_id("Qwen3-8B"));
        assert!(!valid_hub_id("a/b/c"));
        assert!(!valid_hub_id("a/b?x=1"));
        assert_eq!(
            hub_config_url("Qwen/Qwen3-8B"),
            "https://huggingface.co/Qwen/Qwen3-8B/resolve/main/config.json"
        );
    }
}
