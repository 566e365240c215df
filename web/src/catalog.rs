//! The one place the site calls into `headroom-core`: catalogs, settings parsed from the URL, and
//! the calculation behind the Calculator page (estimate, advice, every format side by side).
//! Pure (no browser calls), so it is tested natively and timed in the browser tests.

use std::str::FromStr;

use headroom_core::{
    answer::{self, Answer, CheckpointSize, ContextAsk, Question},
    devices::{self, DeviceSpec, MemoryKind},
    error::Setting,
    kv_cache::KvDtype,
    model::ModelSpec,
    model_catalog,
    quant::WeightFormat,
    runtime::Runtime,
    training::Mode,
    usable_memory,
};

use crate::url_state::Query;

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A catalog id, e.g. `llama-3.1-8b` (`model=`).
    Catalog(String),
    /// A Hugging Face repository id, fetched in the browser (`hf=`).
    Hub(String),
    /// A pasted `config.json` (`cfg=`, with `name=`).
    Config {
        /// Display name.
        name: String,
        /// The JSON text.
        json: String,
    },
    /// A spec read from a model file's header (`spec=`: [`ModelSpec`] as JSON).
    Spec(String),
}

/// Exact weights read from a dropped model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactWeights {
    /// File name.
    pub file: String,
    /// Sum of the file's tensor data, bytes.
    pub bytes: u64,
    /// Parameters in the file.
    pub parameters: u64,
    /// The file's format in headroom's names (`Q4_K_M`, `fp8`, `bf16`), when known (`wformat=`).
    pub format: Option<String>,
    /// False when packed tensors were counted as stored (`wexact=0`).
    pub parameters_exact: bool,
}

/// The device: a catalog entry or a measured one.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceChoice {
    /// Catalog id (`device=`).
    Catalog(String),
    /// A device built from a probe report or the browser benchmark (`devspec=`: JSON).
    Measured(String),
}

/// Every Calculator setting; round-trips through the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct CalcSettings {
    /// The model.
    pub model: ModelSource,
    /// Weight format name; empty = the checkpoint's own format.
    pub format: String,
    /// Context tokens; `None` = the model's default.
    pub context: Option<u64>,
    /// Batch.
    pub batch: u64,
    /// Mode in core's grammar (`inference`, `lora:r=16`, `qlora`, `full`, ...).
    pub mode: String,
    /// Layers that get LoRA adapters (`layers=`), in the CLI's `--lora-layers` grammar
    /// (`last:8`, `0-15`, ...); empty = all. LoRA and QLoRA only.
    pub lora_layers: String,
    /// Runtime name; empty = the usual one for device and format.
    pub runtime: String,
    /// KV cache type name; empty = the runtime's usual one.
    pub kv: String,
    /// Identical devices.
    pub device_count: u32,
    /// The device.
    pub device: DeviceChoice,
    /// Exact weights from a dropped file (`wbytes=`, `wparams=`, `wfile=`).
    pub exact: Option<ExactWeights>,
    /// Leave out vision/audio encoders and projectors (`text=1`).
    pub text_only: bool,
    /// Load the MTP layers for speculative decoding (`mtp=1`).
    pub with_mtp: bool,
}

/// Model shown when the URL names none.
pub const DEFAULT_MODEL: &str = "llama-3.1-8b";
/// Device shown when the URL names none.
pub const DEFAULT_DEVICE: &str = "m2-10c-16gb";

impl Default for CalcSettings {
    fn default() -> Self {
        CalcSettings {
            model: ModelSource::Catalog(DEFAULT_MODEL.into()),
            format: String::new(),
            context: None,
            batch: 1,
            mode: "inference".into(),
            lora_layers: String::new(),
            runtime: String::new(),
            kv: String::new(),
            device_count: 1,
            device: DeviceChoice::Catalog(DEFAULT_DEVICE.into()),
            exact: None,
            text_only: false,
            with_mtp: false,
        }
    }
}

impl CalcSettings {
    /// Read settings from a query; anything missing or unreadable keeps its default (the
    /// calculation then reports what is wrong with what was given).
    pub fn from_query(q: &Query) -> CalcSettings {
        let d = CalcSettings::default();
        let model = if let Some(id) = q.get("hf") {
            ModelSource::Hub(id.to_string())
        } else if let Some(json) = q.get("cfg") {
            ModelSource::Config {
                name: q.get("name").unwrap_or("pasted config.json").to_string(),
                json: json.to_string(),
            }
        } else if let Some(spec) = q.get("spec") {
            ModelSource::Spec(spec.to_string())
        } else if let Some(id) = q.get("model") {
            ModelSource::Catalog(id.to_string())
        } else {
            d.model
        };
        let device = if let Some(spec) = q.get("devspec") {
            DeviceChoice::Measured(spec.to_string())
        } else if let Some(id) = q.get("device") {
            DeviceChoice::Catalog(id.to_string())
        } else {
            d.device
        };
        let exact = match (q.get("wbytes"), q.get("wparams")) {
            (Some(b), Some(p)) => match (b.parse(), p.parse()) {
                (Ok(bytes), Ok(parameters)) => Some(ExactWeights {
                    file: q.get("wfile").unwrap_or("model file").to_string(),
                    format: q.get("wformat").map(str::to_string),
                    parameters_exact: q.get("wexact") != Some("0"),
                    bytes,
                    parameters,
                }),
                _ => None,
            },
            _ => None,
        };
        CalcSettings {
            model,
            format: q.get("format").unwrap_or("").to_string(),
            context: q.get("ctx").and_then(|c| c.parse().ok()),
            batch: q.get("batch").and_then(|b| b.parse().ok()).unwrap_or(1),
            mode: q.get("mode").unwrap_or(&d.mode).to_string(),
            lora_layers: q.get("layers").unwrap_or("").to_string(),
            runtime: q.get("runtime").unwrap_or("").to_string(),
            kv: q.get("kv").unwrap_or("").to_string(),
            device_count: q.get("n").and_then(|n| n.parse().ok()).unwrap_or(1),
            device,
            exact,
            text_only: q.get("text") == Some("1"),
            with_mtp: q.get("mtp") == Some("1"),
        }
    }

    /// The settings as a query (with `page=calculator`).
    pub fn to_query(&self) -> Query {
        let mut q = Query::new();
        q.set("page", "calculator");
        match &self.model {
            ModelSource::Catalog(id) => q.set("model", id.clone()),
            ModelSource::Hub(id) => q.set("hf", id.clone()),
            ModelSource::Config { name, json } => {
                q.set("name", name.clone());
                q.set("cfg", json.clone());
            }
            ModelSource::Spec(s) => q.set("spec", s.clone()),
        }
        if let Some(e) = &self.exact {
            q.set("wfile", e.file.clone());
            q.set("wbytes", e.bytes.to_string());
            q.set("wparams", e.parameters.to_string());
            if let Some(f) = &e.format {
                q.set("wformat", f.clone());
            }
            if !e.parameters_exact {
                q.set("wexact", "0");
            }
        }
        if !self.format.is_empty() {
            q.set("format", self.format.clone());
        }
        if let Some(c) = self.context {
            q.set("ctx", c.to_string());
        }
        if self.batch != 1 {
            q.set("batch", self.batch.to_string());
        }
        if self.mode != "inference" {
            q.set("mode", self.mode.clone());
        }
        if !self.lora_layers.is_empty() {
            q.set("layers", self.lora_layers.clone());
        }
        if !self.runtime.is_empty() {
            q.set("runtime", self.runtime.clone());
        }
        if !self.kv.is_empty() {
            q.set("kv", self.kv.clone());
        }
        if self.device_count != 1 {
            q.set("n", self.device_count.to_string());
        }
        if self.text_only {
            q.set("text", "1");
        }
        if self.with_mtp {
            q.set("mtp", "1");
        }
        match &self.device {
            DeviceChoice::Catalog(id) => q.set("device", id.clone()),
            DeviceChoice::Measured(s) => q.set("devspec", s.clone()),
        }
        q
    }
}

/// `(id, label)` of every catalog model, for the search list.
pub fn model_choices() -> Vec<(String, String)> {
    model_catalog::entries()
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                format!("{} — {} ({})", e.id, e.hub_id, e.published_params),
            )
        })
        .collect()
}

/// `(id, name)` of every catalog device.
pub fn device_choices() -> Vec<(String, String)> {
    devices::catalog()
        .iter()
        .map(|d| (d.id.clone(), d.name.clone()))
        .collect()
}

/// Every weight format name, highest precision first.
pub fn format_names() -> Vec<String> {
    WeightFormat::all().iter().map(|f| f.to_string()).collect()
}

/// Every runtime name.
pub fn runtime_names() -> Vec<String> {
    Runtime::all().iter().map(|r| r.to_string()).collect()
}

/// Every KV cache type name.
pub fn kv_names() -> Vec<String> {
    KvDtype::all().iter().map(|k| k.to_string()).collect()
}

/// The catalog model `id`.
pub fn catalog_model(id: &str) -> Result<ModelSpec, String> {
    model_catalog::find(id).map_err(|e| e.to_string())
}

/// A model from `config.json` text.
pub fn model_from_config(name: &str, json: &str) -> Result<ModelSpec, String> {
    headroom_core::config::model_from_config_json(name, json).map_err(|e| e.to_string())
}

/// Resolve the device choice.
pub fn device(choice: &DeviceChoice) -> Result<DeviceSpec, String> {
    match choice {
        DeviceChoice::Catalog(id) => devices::find(id).map_err(|e| e.to_string()),
        DeviceChoice::Measured(json) => serde_json::from_str(json)
            .map_err(|e| format!("the measured device in this link is unreadable: {e}")),
    }
}

/// The main result: what must update at once on every change.
#[derive(Debug, Clone, PartialEq)]
pub struct Calculation {
    /// Core's whole answer: estimate, every format, best format, longest context, training
    /// advice, assumptions.
    pub answer: Answer,
    /// The device used.
    pub device: DeviceSpec,
    /// Whether the device has unified memory (draw the 70–75% guide).
    pub unified: bool,
    /// Exact weights from a file, when one was dropped.
    pub exact: Option<ExactWeights>,
}

/// The question the settings ask about `model`. Each bad setting is named.
pub fn question(settings: &CalcSettings, model: &ModelSpec) -> Result<Question, String> {
    let device = device(&settings.device)?;
    let mut q = Question::new(model.clone(), device);
    if !settings.format.is_empty() {
        q.format =
            Some(WeightFormat::from_str(&settings.format).map_err(|e| format!("format: {e}"))?);
    }
    q.context = match settings.context {
        Some(tokens) => ContextAsk::Tokens(tokens),
        None => ContextAsk::Default,
    };
    q.batch = settings.batch;
    q.mode = Mode::from_str(&settings.mode).map_err(|e| format!("mode: {e}"))?;
    if !settings.lora_layers.trim().is_empty() && matches!(q.mode, Mode::Lora(_) | Mode::Qlora(_)) {
        q.lora_layers = Some(settings.lora_layers.clone());
    }
    if !settings.runtime.is_empty() {
        q.runtime =
            Some(Runtime::from_str(&settings.runtime).map_err(|e| format!("runtime: {e}"))?);
    }
    if !settings.kv.is_empty() {
        q.kv_dtype = Some(KvDtype::from_str(&settings.kv).map_err(|e| format!("KV cache: {e}"))?);
    }
    q.device_count = settings.device_count;
    q.text_only = settings.text_only;
    q.with_mtp = settings.with_mtp;
    q.checkpoint = settings.exact.as_ref().map(|e| CheckpointSize {
        source: e.file.clone(),
        format_name: e.format.clone(),
        bytes: e.bytes,
        parameters: e.parameters,
        parameters_exact: e.parameters_exact,
    });
    Ok(q)
}

/// The label of the calculator's control for `setting`, for core's errors.
pub fn control(setting: Setting) -> &'static str {
    match setting {
        Setting::Format => "Format",
        Setting::Context => "Context",
        Setting::Batch => "Batch",
        Setting::Mode => "Mode",
        Setting::Runtime => "Runtime",
        Setting::KvDtype => "KV cache",
        Setting::Device => "Device",
        Setting::DeviceCount => "Devices",
        Setting::LoraRank => "LoRA rank (mode)",
        Setting::LoraLayers => "LoRA layers",
        Setting::WiredLimit => "Wired limit",
        Setting::HostMemory => "Host memory",
        // `Setting` is non-exhaustive: a new one is named by core's word until it gets a control.
        _ => setting.name(),
    }
}

/// The Calculator page's result: core's answer to the settings.
pub fn calculate(settings: &CalcSettings, model: &ModelSpec) -> Result<Calculation, String> {
    let q = question(settings, model)?;
    let answer = answer::answer(&q).map_err(|e| {
        e.worded(
            |s| control(s).to_owned(),
            |s, value| format!("{value} under {}", control(s)),
        )
    })?;
    Ok(Calculation {
        unified: q.device.memory_kind == MemoryKind::Unified,
        device: q.device,
        exact: settings.exact.clone(),
        answer,
    })
}

/// The "use at most 70–75%" guide for unified memory (FACTS.md, Apple silicon): lower and upper
/// share, percent.
pub const UNIFIED_GUIDE_PERCENT: (u64, u64) = (70, 75);

/// Usable bytes of a device for a runtime (exposed for the chart's marker).
pub fn usable_bytes(device: &DeviceSpec, runtime: &str) -> Option<u64> {
    let runtime = Runtime::from_str(runtime).ok()?;
    Some(usable_memory::usable_memory(device, runtime, None).usable_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_layers_setting_reaches_the_request() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let s = CalcSettings {
            mode: "lora".into(),
            lora_layers: "last:8".into(),
            ..CalcSettings::default()
        };
        let c = calculate(&s, &model).unwrap();
        match &c.answer.request.mode {
            Mode::Lora(l) => assert_eq!(l.layers, Some((24..32).collect::<Vec<u64>>())),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.answer.lora_layers, Some((24..32).collect::<Vec<u64>>()));
        let bad = CalcSettings {
            lora_layers: "40".into(),
            ..s
        };
        let err = calculate(&bad, &model).unwrap_err();
        assert!(err.contains("LoRA layers"), "{err}");
    }

    #[test]
    fn settings_round_trip_through_the_url() {
        let s = CalcSettings {
            model: ModelSource::Config {
                name: "my model".into(),
                json: r#"{"model_type":"llama"}"#.into(),
            },
            format: "Q4_K_M".into(),
            context: Some(32768),
            batch: 2,
            mode: "lora:r=8".into(),
            lora_layers: "last:8".into(),
            runtime: "llama.cpp".into(),
            kv: "q8_0".into(),
            device_count: 2,
            device: DeviceChoice::Catalog("rtx-4090".into()),
            exact: Some(ExactWeights {
                file: "x.gguf".into(),
                bytes: 123,
                parameters: 45,
                format: Some("Q4_K_M".into()),
                parameters_exact: false,
            }),
            text_only: true,
            with_mtp: true,
        };
        let q = Query::parse(&s.to_query().to_search());
        assert_eq!(CalcSettings::from_query(&q), s);
        assert_eq!(
            CalcSettings::from_query(&Query::new()),
            CalcSettings::default()
        );
    }

    #[test]
    fn default_settings_give_a_verdict_and_every_format() {
        let s = CalcSettings::default();
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let c = calculate(&s, &model).unwrap();
        let a = &c.answer;
        assert!(a.estimate.total_bytes > a.estimate.weights_bytes);
        assert!(c.unified);
        let rows: Vec<_> = a.formats.iter().filter_map(|r| r.estimate()).collect();
        assert!(rows.len() >= 10, "{}", rows.len());
        assert!(rows.iter().any(|e| e.quant == "Q4_K_M"));
        // A 16 GB M2 holds an 8B model in some format.
        assert!(a.best_format.is_some());
        // bf16 weights (16 GB) do not fit a 16 GB Mac at any context; Q4_K_M does at 4096+.
        assert_eq!(a.longest_context, None);
        let q4 = CalcSettings {
            format: "Q4_K_M".into(),
            ..CalcSettings::default()
        };
        let c = calculate(&q4, &model).unwrap();
        assert!(c.answer.longest_context.is_some_and(|l| l >= 4096));
    }

    #[test]
    fn every_offered_choice_parses_back() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        for format in format_names() {
            let s = CalcSettings {
                format: format.clone(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("format {format}: {e}"));
        }
        for runtime in runtime_names() {
            let s = CalcSettings {
                runtime: runtime.clone(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("runtime {runtime}: {e}"));
        }
        for kv in kv_names() {
            let s = CalcSettings {
                kv: kv.clone(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("kv {kv}: {e}"));
        }
        for mode in ["inference", "lora", "qlora", "full"] {
            let s = CalcSettings {
                mode: mode.into(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        }
        for (id, _) in device_choices() {
            device(&DeviceChoice::Catalog(id.clone())).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
        for (id, _) in model_choices() {
            catalog_model(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let mut s = CalcSettings {
            format: "Q9_Z".into(),
            ..CalcSettings::default()
        };
        assert!(calculate(&s, &model).unwrap_err().starts_with("format:"));
        s.format.clear();
        s.device = DeviceChoice::Catalog("no-such-gpu".into());
        assert!(calculate(&s, &model).unwrap_err().contains("no-such-gpu"));
        s.device = DeviceChoice::Measured("{".into());
        assert!(
            calculate(&s, &model)
                .unwrap_err()
                .contains("measured device")
        );
    }
}
