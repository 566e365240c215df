//! The calculator's inputs: the model (catalog search, size, config.json, Hub, file), every
//! setting `headroom fit` has, and the device (catalog search, measured, custom). Each control
//! writes one field of the page's [`CalcSettings`]; nothing here computes an answer.

use headroom_core::training::Mode;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::{
    model::{self, FileSummary},
    result::FileSummaryView,
};
use crate::{
    browser,
    catalog::{self, CalcSettings, CustomDevice, DeviceChoice, ModelSource},
    error::WebError,
    search::{self, Candidate},
};

/// Most suggestions shown under a search box.
const MAX_MATCHES: usize = 6;

/// `<option>`s for `names`, the one equal to `current` selected.
fn options(names: Vec<String>, current: Memo<String>) -> impl IntoView {
    names
        .into_iter()
        .map(|n| {
            let v = n.clone();
            let value = n.clone();
            view! { <option value=value selected=move || current.get() == v>{n}</option> }
        })
        .collect_view()
}

/// The value of an `<input type=file>`'s change event.
fn chosen_files(ev: &leptos::ev::Event) -> Vec<web_sys::File> {
    let input = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
    browser::files_of(input.and_then(|i| i.files()))
}

/// A search box over `candidates` with its suggestions: an exact name selects at once, Enter
/// takes the best match, a click takes any; a query that matches nothing says so.
#[component]
fn SearchBox(
    /// Element id of the input.
    id: &'static str,
    /// Label text.
    label: &'static str,
    /// Placeholder text.
    placeholder: &'static str,
    /// What to search.
    candidates: StoredValue<Vec<Candidate>>,
    /// The text the box starts with (the current choice).
    initial: String,
    /// Called with the chosen candidate's id.
    on_pick: Callback<String>,
    /// What to say when nothing matches `query`.
    nothing: Callback<String, String>,
) -> impl IntoView {
    let text = RwSignal::new(initial.clone());
    let picked = RwSignal::new(initial);
    let matches = Memo::new(move |_| {
        let q = text.get();
        candidates.with_value(|c| {
            search::search(c, &q, MAX_MATCHES)
                .into_iter()
                .map(|c| (c.id.clone(), c.label.clone(), search::is_exact(c, &q)))
                .collect::<Vec<_>>()
        })
    });
    let pick = move |id: String| {
        text.set(id.clone());
        picked.set(id.clone());
        on_pick.run(id);
    };
    let on_input = move |ev: leptos::ev::Event| {
        text.set(event_target_value(&ev));
        if let Some((id, _, true)) = matches.get_untracked().into_iter().next() {
            picked.set(id.clone());
            on_pick.run(id);
        }
    };
    let on_enter = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter"
            && let Some((id, _, _)) = matches.get_untracked().into_iter().next()
        {
            pick(id);
        }
    };
    let list_id = format!("{id}-matches");
    let status_id = format!("{id}-status");
    view! {
        <label for=id>{label}</label>
        <input id=id type="search" autocomplete="off" placeholder=placeholder
            prop:value=move || text.get() on:input=on_input on:keydown=on_enter />
        <ul id=list_id class="matches" hidden=move || text.get() == picked.get() || matches.with(Vec::is_empty)>
            {move || matches.get().into_iter().map(|(id, label, _)| {
                let chosen = id.clone();
                view! { <li><button class="match" data-id=id on:click=move |_| pick(chosen.clone())>{label}</button></li> }
            }).collect_view()}
        </ul>
        {move || {
            let q = text.get();
            (!q.trim().is_empty() && matches.with(Vec::is_empty))
                .then(|| view! { <p id=status_id.clone() class="error">{nothing.run(q)}</p> })
        }}
    }
}

/// Which way the model is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelTab {
    Catalog,
    Size,
    Config,
    Hub,
    File,
}

/// The model card: catalog search, a size, a pasted config.json, a Hub id, a dropped file.
#[component]
pub fn ModelInput(
    /// The page's settings.
    settings: RwSignal<CalcSettings>,
    /// The summary of the last dropped file.
    file_summary: RwSignal<Option<FileSummary>>,
    /// The model's status line (loading, resolved, or its error).
    children: Children,
) -> impl IntoView {
    let initial = settings.with_untracked(|s| s.model.clone());
    let tab = RwSignal::new(match &initial {
        ModelSource::Catalog(_) => ModelTab::Catalog,
        ModelSource::Size(_) => ModelTab::Size,
        ModelSource::Config { .. } => ModelTab::Config,
        ModelSource::Hub(_) => ModelTab::Hub,
        ModelSource::Spec(_) => ModelTab::File,
    });
    let config_text = RwSignal::new(match &initial {
        ModelSource::Config { json, .. } => json.clone(),
        _ => String::new(),
    });
    let hub_text = RwSignal::new(match &initial {
        ModelSource::Hub(id) => id.clone(),
        _ => String::new(),
    });
    let size_text = RwSignal::new(match &initial {
        ModelSource::Size(s) => s.clone(),
        _ => String::new(),
    });
    let catalog_id = match &initial {
        ModelSource::Catalog(id) => id.clone(),
        _ => String::new(),
    };
    // Reading dropped files is an action: its pending state and its last outcome are signals.
    let read_files =
        Action::new_local(|files: &Vec<web_sys::File>| model::read_model_files(files.clone()));
    // A model read from the files becomes the page's model; a spec that cannot be written into
    // the link is the file's error.
    let spec_error = RwSignal::new(None::<WebError>);
    Effect::new(move |_| {
        let Some(Ok(out)) = read_files.value().get() else {
            return;
        };
        spec_error.set(None);
        if let Some(spec) = out.spec {
            match serde_json::to_string(&spec) {
                Ok(json) => settings.update(|s| s.model = ModelSource::Spec(json)),
                Err(e) => spec_error.set(Some(WebError::File(e.to_string()))),
            }
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
    });
    let file_error = move || {
        read_files
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| spec_error.get())
    };
    let drag_over = RwSignal::new(false);

    let set_model = move |source: ModelSource| {
        settings.update(|s| {
            s.model = source;
            s.exact = None;
        });
        file_summary.set(None);
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
        set_model(ModelSource::Config { name, json });
    };
    let fetch = move || {
        let id = search::hub_id_of(&hub_text.get_untracked());
        hub_text.set(id.clone());
        set_model(ModelSource::Hub(id));
    };
    let handle_files = move |files: Vec<web_sys::File>| {
        read_files.dispatch_local(files);
    };
    let tab_button = move |t: ModelTab, label: &'static str, id: &'static str| {
        view! {
            <button id=id class:active=move || tab.get() == t on:click=move |_| tab.set(t)>{label}</button>
        }
    };
    let candidates = StoredValue::new(search::model_candidates());
    let on_pick = Callback::new(move |id: String| set_model(ModelSource::Catalog(id)));
    let nothing = Callback::new(move |q: String| {
        let hub = search::hub_id_of(&q);
        if model::valid_hub_id(&hub) {
            format!(
                "{hub} is not in the catalog: open the Hugging Face tab to fetch its config.json"
            )
        } else {
            format!(
                "no catalog model matches “{}”: try a family and size (qwen3 8b), the Size tab, \
                 or the Hugging Face tab for any Hub model",
                q.trim()
            )
        }
    });
    let (lo, hi) = headroom_core::model_catalog::MODEL_SIZE_LIMITS;

    view! {
        <div class="card">
            <h2>"Model"</h2>
            <div class="tabs" role="tablist">
                {tab_button(ModelTab::Catalog, "Catalog", "tab-catalog")}
                {tab_button(ModelTab::Size, "Size", "tab-size")}
                {tab_button(ModelTab::Config, "config.json", "tab-config")}
                {tab_button(ModelTab::Hub, "Hugging Face", "tab-hub")}
                {tab_button(ModelTab::File, "File", "tab-file")}
            </div>
            <div hidden=move || tab.get() != ModelTab::Catalog>
                <SearchBox id="model-search" label="Search the catalog (id, Hub id, family, Hub address)"
                    placeholder="e.g. qwen3 8b, Qwen/Qwen3-8B, gemma" candidates initial=catalog_id
                    on_pick nothing />
            </div>
            <div hidden=move || tab.get() != ModelTab::Size>
                <label for="model-size">"Parameters (billions, or 8B, 494M)"</label>
                <input id="model-size" type="text" placeholder="e.g. 13B" prop:value=move || size_text.get()
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        size_text.set(v.clone());
                        if !v.trim().is_empty() {
                            set_model(ModelSource::Size(v.trim().to_string()));
                        }
                    } />
                <p class="note">{format!(
                    "For a model in no catalog and without a config.json: shaped like the Llama model nearest in size ({} B – {} B). \
                     Weights follow the size; the KV cache, activations and speed follow that shape, so a mixture-of-experts \
                     or unusual model is only approximated — the answer says so.",
                    lo as f64 / 1e9, hi as f64 / 1e9)}</p>
            </div>
            <div hidden=move || tab.get() != ModelTab::Config>
                <label for="config-input">"Paste a config.json"</label>
                <textarea id="config-input" placeholder="{\"model_type\": \"llama\", \"hidden_size\": 4096, …}"
                    prop:value=move || config_text.get() on:input=on_config></textarea>
            </div>
            <div hidden=move || tab.get() != ModelTab::Hub>
                <label for="hf-id">"Hugging Face model id or address"</label>
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
                        on:change=move |ev| handle_files(chosen_files(&ev)) />
                </div>
                <Show when=move || read_files.pending().get()><p class="note">"reading the header…"</p></Show>
                {move || file_error().map(|e| view! { <p id="file-error" class="error">{e.to_string()}</p> })}
                {move || file_summary.get().map(|s| view! { <FileSummaryView summary=s /> })}
            </div>
            <p id="model-status">{children()}</p>
        </div>
    }
}

/// Every setting of `headroom fit`: format, mode and its training settings, context, batch,
/// runtime, KV cache type, text only, MTP layers, the vision projector and a draft model.
#[component]
pub fn SettingsInput(
    /// The page's settings.
    settings: RwSignal<CalcSettings>,
) -> impl IntoView {
    let cur_format = Memo::new(move |_| settings.with(|s| s.format.clone()));
    let cur_runtime = Memo::new(move |_| settings.with(|s| s.runtime.clone()));
    let cur_kv = Memo::new(move |_| settings.with(|s| s.kv.clone()));
    let cur_draft = Memo::new(move |_| settings.with(|s| s.draft.clone()));
    let cur_draft_format = Memo::new(move |_| settings.with(|s| s.draft_format.clone()));
    // The mode as core reads it: a link's `qlora:ckpt` shows as qlora with checkpointing on.
    let mode = Memo::new(move |_| settings.with(|s| s.mode().ok()));
    let cur_mode =
        Memo::new(move |_| mode.with(|m| m.as_ref().map_or("inference", Mode::name).to_string()));
    let lora = move || matches!(mode.get(), Some(Mode::Lora(_) | Mode::Qlora(_)));
    let full = move || matches!(mode.get(), Some(Mode::Full(_)));
    let cur_optimizer = Memo::new(move |_| {
        settings.with(|s| {
            if s.optimizer.is_empty() {
                "adamw".into()
            } else {
                s.optimizer.clone()
            }
        })
    });
    let cur_precision = Memo::new(move |_| {
        settings.with(|s| {
            if s.precision.is_empty() {
                "bf16-mixed".into()
            } else {
                s.precision.clone()
            }
        })
    });
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let number = |ev: &leptos::ev::Event| event_target_value(ev).trim().parse::<u64>().ok();
    view! {
        <div class="card">
            <h2>"Settings"</h2>
            <div class="row">
                <div>
                    <label for="format">"Weight format"</label>
                    <select id="format" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.format = v) }>
                        <option value="" selected=move || cur_format.get().is_empty()>"checkpoint's own"</option>
                        {options(catalog::format_names(), cur_format)}
                    </select>
                </div>
                <div>
                    <label for="mode">"Mode"</label>
                    <select id="mode" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.mode = v) }>
                        {options(names(&catalog::MODE_NAMES), cur_mode)}
                    </select>
                </div>
            </div>
            <div class="row" hidden=move || !(lora() || full())>
                <label class="check"><input id="checkpointing" type="checkbox"
                    prop:checked=move || mode.get().is_some_and(|m| m.gradient_checkpointing())
                    on:change=move |ev| { let on = event_target_checked(&ev); settings.update(|s| s.checkpointing = Some(on)) } />
                    " gradient checkpointing (on by default for QLoRA, as peft's kbit preparation does)"</label>
            </div>
            <div class="row" hidden=move || !lora()>
                <div>
                    <label for="lora-rank">"LoRA rank"</label>
                    <input id="lora-rank" type="number" min="1" placeholder="16"
                        prop:value=move || settings.with(|s| s.lora_rank.map(|r| r.to_string()).unwrap_or_default())
                        on:input=move |ev| { let r = number(&ev); settings.update(|s| s.lora_rank = r) } />
                </div>
                <div>
                    <label for="lora-targets">"LoRA targets"</label>
                    <input id="lora-targets" type="text" placeholder="q,k,v,o,gate,up,down"
                        title=headroom_core::training::LORA_TARGET_NAMES
                        prop:value=move || settings.with(|s| s.lora_targets.clone())
                        on:input=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.lora_targets = v) } />
                </div>
                <div>
                    <label for="lora-layers">"LoRA layers"</label>
                    <input id="lora-layers" type="text" placeholder="all (or last:8, 0-15)"
                        title="peft's layers_to_transform: adapting only the last K layers keeps activations for those K layers only; the earlier layers stay as pretrained"
                        prop:value=move || settings.with(|s| s.lora_layers.clone())
                        on:input=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.lora_layers = v) } />
                </div>
            </div>
            <div class="row" hidden=move || !full()>
                <div>
                    <label for="optimizer">"Optimizer"</label>
                    <select id="optimizer" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.optimizer = v) }>
                        {options(names(&catalog::OPTIMIZER_NAMES), cur_optimizer)}
                    </select>
                </div>
                <div>
                    <label for="precision">"Precision"</label>
                    <select id="precision" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.precision = v) }>
                        {options(names(&catalog::PRECISION_NAMES), cur_precision)}
                    </select>
                </div>
            </div>
            <div class="row">
                <div>
                    <label for="context">"Context (tokens)"</label>
                    <input id="context" type="number" min="1" placeholder="model default (≤ 4096)"
                        prop:value=move || settings.with(|s| s.context.map(|c| c.to_string()).unwrap_or_default())
                        on:input=move |ev| { let c = number(&ev); settings.update(|s| s.context = c) } />
                </div>
                <div>
                    <label for="batch">"Batch"</label>
                    <input id="batch" type="number" min="1"
                        prop:value=move || settings.with(|s| s.batch.to_string())
                        on:input=move |ev| { let b = number(&ev).unwrap_or(0); settings.update(|s| s.batch = b) } />
                </div>
            </div>
            <div class="row">
                <div>
                    <label for="runtime">"Runtime"</label>
                    <select id="runtime" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.runtime = v) }>
                        <option value="" selected=move || cur_runtime.get().is_empty()>"usual for the device"</option>
                        {options(catalog::runtime_names(), cur_runtime)}
                    </select>
                </div>
                <div>
                    <label for="kv">"KV cache"</label>
                    <select id="kv" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.kv = v) }>
                        <option value="" selected=move || cur_kv.get().is_empty()>"usual for the runtime"</option>
                        {options(catalog::kv_names(), cur_kv)}
                    </select>
                </div>
            </div>
            <div class="row">
                <div>
                    <label for="flash-attn">"llama.cpp flash attention"</label>
                    <select id="flash-attn" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.flash_attn = match v.as_str() { "on" => Some(true), "off" => Some(false), _ => None }) }>
                        <option value="" selected=move || settings.with(|s| s.flash_attn.is_none())>"on (llama-server's default)"</option>
                        <option value="on" selected=move || settings.with(|s| s.flash_attn == Some(true))>"on"</option>
                        <option value="off" selected=move || settings.with(|s| s.flash_attn == Some(false))>"off (f32 attention scores)"</option>
                    </select>
                </div>
                <div>
                    <label for="ubatch">"llama.cpp micro-batch (-ub)"</label>
                    <input id="ubatch" type="number" min="1" placeholder="512"
                        prop:value=move || settings.with(|s| s.ubatch.map(|u| u.to_string()).unwrap_or_default())
                        on:input=move |ev| { let u = event_target_value(&ev).trim().parse::<u64>().ok(); settings.update(|s| s.ubatch = u) } />
                </div>
                <div>
                    <label for="kv-unified">"llama.cpp KV cache across sequences"</label>
                    <select id="kv-unified" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.kv_unified = match v.as_str() { "on" => Some(true), "off" => Some(false), _ => None }) }>
                        <option value="" selected=move || settings.with(|s| s.kv_unified.is_none())>"unified (default)"</option>
                        <option value="on" selected=move || settings.with(|s| s.kv_unified == Some(true))>"unified"</option>
                        <option value="off" selected=move || settings.with(|s| s.kv_unified == Some(false))>"one per sequence"</option>
                    </select>
                </div>
            </div>
            <div class="row">
                <label class="check"><input id="text-only" type="checkbox"
                    prop:checked=move || settings.with(|s| s.text_only)
                    on:change=move |ev| { let on = event_target_checked(&ev); settings.update(|s| s.text_only = on) } />
                    " text only (leave out vision/audio parts)"</label>
                <label class="check"><input id="with-mtp" type="checkbox"
                    prop:checked=move || settings.with(|s| s.with_mtp)
                    on:change=move |ev| { let on = event_target_checked(&ev); settings.update(|s| s.with_mtp = on) } />
                    " MTP layers (speculative decoding)"</label>
                <label class="check"><input id="mmproj" type="checkbox"
                    prop:checked=move || settings.with(|s| s.mmproj)
                    on:change=move |ev| { let on = event_target_checked(&ev); settings.update(|s| s.mmproj = on) } />
                    " vision projector (llama.cpp's mmproj file, one image)"</label>
            </div>
            <div class="row">
                <div>
                    <label for="draft">"Draft model"</label>
                    <select id="draft" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.draft = v) }>
                        <option value="" selected=move || cur_draft.get().is_empty()>"none"</option>
                        {options(catalog::model_ids(), cur_draft)}
                    </select>
                </div>
                <div>
                    <label for="draft-format">"Draft format"</label>
                    <select id="draft-format" on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.draft_format = v) }>
                        <option value="" selected=move || cur_draft_format.get().is_empty()>"the model's"</option>
                        {options(catalog::format_names(), cur_draft_format)}
                    </select>
                </div>
            </div>
            <div class="row">
                <div>
                    <label for="draft-tokens">"Draft tokens per step"</label>
                    <input id="draft-tokens" type="number" min="1" max="64" placeholder="runtime's usual"
                        prop:value=move || settings.with(|s| s.draft_tokens.map(|t| t.to_string()).unwrap_or_default())
                        on:input=move |ev| { let t = number(&ev); settings.update(|s| s.draft_tokens = t) } />
                </div>
                <div>
                    <label for="draft-acceptance">"Draft acceptance rate (yours)"</label>
                    <input id="draft-acceptance" type="number" min="0" max="1" step="0.05" placeholder="none: no expected speed"
                        prop:value=move || settings.with(|s| s.draft_acceptance.map(|a| a.to_string()).unwrap_or_default())
                        on:input=move |ev| { let a = event_target_value(&ev).trim().parse::<f64>().ok(); settings.update(|s| s.draft_acceptance = a) } />
                </div>
            </div>
        </div>
    }
}

/// The device card: catalog search, how many, the Apple wired limit or the host's RAM, a
/// measured device from a probe report, or a custom device by its figures.
#[component]
pub fn DeviceInput(
    /// The page's settings.
    settings: RwSignal<CalcSettings>,
) -> impl IntoView {
    let read_report = Action::new_local(|files: &Vec<web_sys::File>| {
        crate::components::report_view::measured_device_json(files.clone())
    });
    Effect::new(move |_| {
        if let Some(Ok(spec)) = read_report.value().get() {
            settings.update(|s| s.device = DeviceChoice::Measured(spec));
        }
    });
    let initial = settings.with_untracked(|s| match &s.device {
        DeviceChoice::Catalog(id) => id.clone(),
        _ => String::new(),
    });
    let custom = RwSignal::new(settings.with_untracked(|s| match &s.device {
        DeviceChoice::Custom(c) => *c,
        _ => CustomDevice::default(),
    }));
    let resolved = Memo::new(move |_| settings.with(|s| catalog::device(&s.device)));
    let unified = move || {
        resolved.with(|d| {
            d.as_ref()
                .is_ok_and(|d| d.memory_kind == headroom_core::devices::MemoryKind::Unified)
        })
    };
    let candidates = StoredValue::new(search::device_candidates());
    let on_pick = Callback::new(move |id: String| {
        settings.update(|s| s.device = DeviceChoice::Catalog(id));
    });
    let nothing = Callback::new(|q: String| {
        format!(
            "no catalog device matches “{}”: try its number (4090, m2 16, h100) or describe it \
             under “Custom device”",
            q.trim()
        )
    });
    let set_custom = move |f: &dyn Fn(&mut CustomDevice)| {
        custom.update(|c| f(c));
        let c = custom.get_untracked();
        settings.update(|s| s.device = DeviceChoice::Custom(c));
    };
    let float =
        |ev: &leptos::ev::Event| event_target_value(ev).trim().parse::<f64>().unwrap_or(0.0);
    let number = |ev: &leptos::ev::Event| event_target_value(ev).trim().parse::<u64>().ok();
    view! {
        <div class="card">
            <h2>"Device"</h2>
            <SearchBox id="device-search" label="Search the catalog (id, name, vendor)"
                placeholder="e.g. 4090, m2 16, h100" candidates initial on_pick nothing />
            <button id="device-any" type="button"
                disabled=move || settings.with(|s| s.device == DeviceChoice::Any)
                on:click=move |_| settings.update(|s| s.device = DeviceChoice::Any)>
                "No device: what does it need?"
            </button>
            <div class="row">
                <div>
                    <label for="device-count">"Number of identical devices"</label>
                    <input id="device-count" type="number" min="1"
                        prop:value=move || settings.with(|s| s.device_count.to_string())
                        on:input=move |ev| { let n = number(&ev).and_then(|n| u32::try_from(n).ok()).unwrap_or(0); settings.update(|s| s.device_count = n) } />
                </div>
                <div hidden=move || !unified()>
                    <label for="wired-limit">"Wired limit (MiB, iogpu.wired_limit_mb)"</label>
                    <input id="wired-limit" type="number" min="1" placeholder="macOS default"
                        prop:value=move || settings.with(|s| s.wired_limit_mb.map(|w| w.to_string()).unwrap_or_default())
                        on:input=move |ev| { let w = number(&ev); settings.update(|s| s.wired_limit_mb = w) } />
                </div>
                <div hidden=move || !unified()>
                    <label for="macos">"macOS release (sets the GPU's share)"</label>
                    <input id="macos" type="text" placeholder="26 (newest)"
                        prop:value=move || settings.with(|s| s.macos.clone())
                        on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| s.macos = v.trim().to_string()) } />
                </div>
                <div>
                    <label for="users">"Users on a server (each at the context)"</label>
                    <input id="users" type="number" min="1" placeholder="none"
                        prop:value=move || settings.with(|s| s.users.map(|u| u.to_string()).unwrap_or_default())
                        on:input=move |ev| { let u = number(&ev); settings.update(|s| s.users = u) } />
                </div>
                <div hidden=unified>
                    <label for="host-memory">"Host RAM (GiB, for offload)"</label>
                    <input id="host-memory" type="number" min="1" placeholder="32"
                        prop:value=move || settings.with(|s| s.host_memory_gib.map(|h| h.to_string()).unwrap_or_default())
                        on:input=move |ev| { let h = number(&ev); settings.update(|s| s.host_memory_gib = h) } />
                </div>
                <div>
                    <label for="gpu-layers">"GPU layers (llama.cpp -ngl)"</label>
                    <input id="gpu-layers" type="number" min="0" placeholder="auto"
                        prop:value=move || settings.with(|s| s.gpu_layers.map(|n| n.to_string()).unwrap_or_default())
                        on:input=move |ev| { let n = number(&ev); settings.update(|s| s.gpu_layers = n) } />
                </div>
                <div>
                    <label for="n-cpu-moe">"Expert layers on the host (--n-cpu-moe)"</label>
                    <input id="n-cpu-moe" type="number" min="0" placeholder="auto"
                        prop:value=move || settings.with(|s| s.n_cpu_moe.map(|n| n.to_string()).unwrap_or_default())
                        on:input=move |ev| { let n = number(&ev); settings.update(|s| s.n_cpu_moe = n) } />
                </div>
            </div>
            <p id="device-status">
                {move || settings.with(|s| match resolved.get() {
                    Err(_) if s.device == DeviceChoice::Any => view! {
                        <span class="note" id="device-none">"No device: the answer lists the devices that hold the model."</span>
                    }.into_any(),
                    Ok(d) => view! {
                        <span><strong id="device-name">{d.name.clone()}</strong>
                        " " <span class="note">{match &s.device {
                            DeviceChoice::Measured(_) => "(my device: measured)",
                            DeviceChoice::Custom(_) => "(custom)",
                            DeviceChoice::Catalog(_) => "(catalog)",
                            DeviceChoice::Any => "",
                        }}</span></span>
                    }.into_any(),
                    Err(e) => view! { <span class="error">{e.to_string()}</span> }.into_any(),
                })}
            </p>
            <details id="custom-device" open=settings.with_untracked(|s| matches!(s.device, DeviceChoice::Custom(_)))>
                <summary>"Custom device (not in the catalog)"</summary>
                <div class="row">
                    <div>
                        <label for="custom-memory">"Memory (GiB)"</label>
                        <input id="custom-memory" type="number" min="0" step="any" prop:value=move || custom.with(|c| c.memory_gib.to_string())
                            on:input=move |ev| { let v = float(&ev); set_custom(&|c| c.memory_gib = v) } />
                    </div>
                    <div>
                        <label for="custom-bandwidth">"Bandwidth (GB/s)"</label>
                        <input id="custom-bandwidth" type="number" min="0" step="any" prop:value=move || custom.with(|c| c.bandwidth_gb_s.to_string())
                            on:input=move |ev| { let v = float(&ev); set_custom(&|c| c.bandwidth_gb_s = v) } />
                    </div>
                    <div>
                        <label for="custom-tflops">"FP16 compute (TFLOP/s)"</label>
                        <input id="custom-tflops" type="number" min="0" step="any" prop:value=move || custom.with(|c| c.fp16_tflops.to_string())
                            on:input=move |ev| { let v = float(&ev); set_custom(&|c| c.fp16_tflops = v) } />
                    </div>
                </div>
                <label class="check"><input id="custom-unified" type="checkbox" prop:checked=move || custom.with(|c| c.unified)
                    on:change=move |ev| { let on = event_target_checked(&ev); set_custom(&|c| c.unified = on) } />
                    " unified memory (Apple silicon, integrated GPU)"</label>
            </details>
            <label for="device-report">"My device: a probe report"</label>
            <input id="device-report" type="file" accept=".json,application/json"
                on:change=move |ev| { read_report.dispatch_local(chosen_files(&ev)); } />
            {move || read_report.value().get().and_then(Result::err).map(|e| view! { <p id="device-error" class="error">{e.to_string()}</p> })}
            <p class="note">"A report from " <code>"headroom probe"</code> " or the Benchmark page; the Reports page also has “use this device”. This browser remembers the last one."</p>
        </div>
    }
}
