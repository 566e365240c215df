//! The one error type of `headroom-core`. Every message names what was wrong and what to do.

use thiserror::Error;

/// Everything that can go wrong in core. Messages are written for the person who typed the input.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoreError {
    /// The text is not valid JSON (or not the expected JSON shape).
    #[error("malformed JSON in {what}: {detail}")]
    MalformedJson {
        /// What was being read, e.g. `config.json`.
        what: String,
        /// The parser's message (line and column).
        detail: String,
    },
    /// A required field is missing or has the wrong type.
    #[error("{what}: field `{field}` {problem}")]
    BadField {
        /// What was being read.
        what: String,
        /// The field's name (dotted path for nested fields).
        field: String,
        /// What is wrong with it and what to do.
        problem: String,
    },
    /// The config's `model_type` is not supported and its fields do not suffice for an estimate.
    #[error(
        "unsupported model_type `{model_type}` and its config lacks {missing}; supported: {supported}"
    )]
    UnsupportedArchitecture {
        /// The `model_type` found.
        model_type: String,
        /// The fields that would have been needed for an approximate estimate.
        missing: String,
        /// Comma-separated list of supported architectures.
        supported: String,
    },
    /// A name that is not in a catalog (model, device, format, runtime).
    #[error("unknown {kind} `{name}`; {hint}")]
    Unknown {
        /// `model`, `device`, `format`, `runtime`, ...
        kind: String,
        /// What the user typed.
        name: String,
        /// Close matches or where to list the valid names.
        hint: String,
    },
    /// A number outside what makes sense (context 0, batch 10^12, ...).
    #[error("{field} = {value} is out of range: {problem}")]
    OutOfRange {
        /// The setting's name.
        field: String,
        /// The value given.
        value: String,
        /// The valid range and what to do.
        problem: String,
    },
    /// An input larger than any real one of its kind: read no further, so that a damaged or
    /// hostile file costs neither memory nor time.
    #[error(
        "{what} is {bytes} bytes, more than the {} MiB cap for such a file: it is not a real \
         one or it is damaged; check that you gave the right file",
        cap_bytes >> 20
    )]
    TooLarge {
        /// What was being read.
        what: String,
        /// Its size, bytes (at least this many when the reader stopped at the cap).
        bytes: u64,
        /// The cap, bytes.
        cap_bytes: u64,
    },
    /// A combination that cannot be computed (e.g. a GGUF format with training).
    #[error("{0}")]
    Unsupported(String),
    /// A setting of the question that cannot be answered as given: out of range, or at odds
    /// with another setting. Structured so each front end words it in its own terms — the CLI
    /// names flags (`--runtime llama.cpp`), the site names its controls ("Runtime").
    #[error("{setting} {value}: {problem}{}", fixes_in_words(fixes))]
    Setting {
        /// The setting at fault.
        setting: Setting,
        /// Its value as given.
        value: String,
        /// What is wrong, in words that name no flag or control.
        problem: String,
        /// Settings that would make the question answerable, most likely first.
        fixes: Vec<Fix>,
    },
}

/// A setting of a question ([`crate::answer::Question`]), named so each front end can word it:
/// the CLI as a flag, the site as a form control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// The weight format.
    Format,
    /// The context length.
    Context,
    /// The batch (sequences processed together).
    Batch,
    /// Inference, LoRA, QLoRA or a full fine-tune.
    Mode,
    /// The engine.
    Runtime,
    /// The KV cache element type.
    KvDtype,
    /// The device.
    Device,
    /// How many identical devices.
    DeviceCount,
    /// The LoRA rank.
    LoraRank,
    /// The layers that get LoRA adapters.
    LoraLayers,
    /// macOS `iogpu.wired_limit_mb`.
    WiredLimit,
    /// Host RAM beside a discrete GPU.
    HostMemory,
    /// The model family a ranking keeps (`Qwen3`, `Llama 3.1`, ...).
    Family,
    /// Mixture-of-experts or dense models only, in a ranking.
    Architecture,
    /// The shortest longest-context a ranked model must reach.
    MinContext,
    /// The slowest decode speed a ranked model may have.
    MinTokensPerS,
    /// The order of a ranking.
    Sort,
    /// The macOS release of a Mac (it sets the GPU's share of unified memory).
    MacosVersion,
    /// Concurrent users (sequences) a server holds at the context.
    Users,
    /// The fewest bits per weight a ranking may pick a format with.
    MinBits,
    /// llama.cpp's flash attention (on or off).
    FlashAttn,
    /// llama.cpp's micro-batch (`n_ubatch`).
    Ubatch,
    /// Layers on the GPU (llama.cpp `-ngl`).
    GpuLayers,
    /// Layers whose expert tensors stay on the host (llama.cpp `--n-cpu-moe`).
    NCpuMoe,
    /// The vision projector (llama.cpp's mmproj file) loaded beside the model.
    Mmproj,
    /// The draft model for speculative decoding.
    Draft,
    /// The draft model's weight format.
    DraftFormat,
    /// Draft tokens proposed per speculative step.
    DraftTokens,
    /// The share of draft tokens the model accepts.
    DraftAcceptance,
}

impl Setting {
    /// A neutral name: `runtime`, `KV cache type`, ...
    pub fn name(self) -> &'static str {
        match self {
            Setting::Format => "format",
            Setting::Context => "context",
            Setting::Batch => "batch",
            Setting::Mode => "mode",
            Setting::Runtime => "runtime",
            Setting::KvDtype => "KV cache type",
            Setting::Device => "device",
            Setting::DeviceCount => "device count",
            Setting::LoraRank => "LoRA rank",
            Setting::LoraLayers => "LoRA layers",
            Setting::WiredLimit => "wired limit",
            Setting::HostMemory => "host memory",
            Setting::Family => "family",
            Setting::Architecture => "architecture",
            Setting::MinContext => "minimum context",
            Setting::MinTokensPerS => "minimum decode speed",
            Setting::Sort => "order",
            Setting::MacosVersion => "macOS version",
            Setting::Users => "users",
            Setting::MinBits => "minimum bits per weight",
            Setting::FlashAttn => "flash attention",
            Setting::Ubatch => "micro-batch (n_ubatch)",
            Setting::GpuLayers => "GPU layers",
            Setting::NCpuMoe => "expert layers on the host",
            Setting::Mmproj => "vision projector",
            Setting::Draft => "draft model",
            Setting::DraftFormat => "draft format",
            Setting::DraftTokens => "draft tokens",
            Setting::DraftAcceptance => "draft acceptance rate",
        }
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One way to make a question answerable: set `setting` to `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The setting to change.
    pub setting: Setting,
    /// The value to give it, e.g. `llama.cpp`.
    pub value: String,
}

impl Fix {
    /// Set `setting` to `value`.
    pub fn new(setting: Setting, value: impl Into<String>) -> Fix {
        Fix {
            setting,
            value: value.into(),
        }
    }
}

/// `; try runtime llama.cpp, or format bf16` — the fixes in neutral words.
fn fixes_in_words(fixes: &[Fix]) -> String {
    if fixes.is_empty() {
        return String::new();
    }
    let each: Vec<String> = fixes
        .iter()
        .map(|f| format!("{} {}", f.setting, f.value))
        .collect();
    format!("; try {}", each.join(", or "))
}

impl CoreError {
    /// A [`CoreError::Setting`] error.
    pub fn setting(
        setting: Setting,
        value: impl ToString,
        problem: impl Into<String>,
        fixes: Vec<Fix>,
    ) -> CoreError {
        CoreError::Setting {
            setting,
            value: value.to_string(),
            problem: problem.into(),
            fixes,
        }
    }

    /// Reword this error for a front end: `name` turns a setting into the front end's word for
    /// it (a flag, a control's label), `set` into how one sets it to a value (`--runtime
    /// llama.cpp`, `Runtime: llama.cpp`). Errors that are not about a setting keep their text.
    pub fn worded(
        &self,
        name: impl Fn(Setting) -> String,
        set: impl Fn(Setting, &str) -> String,
    ) -> String {
        match self {
            CoreError::Setting {
                setting,
                value,
                problem,
                fixes,
            } => {
                let mut text = format!("{} `{value}`: {problem}", name(*setting));
                if !fixes.is_empty() {
                    let each: Vec<String> =
                        fixes.iter().map(|f| set(f.setting, &f.value)).collect();
                    text.push_str(&format!("; try {}", each.join(", or ")));
                }
                text
            }
            other => other.to_string(),
        }
    }
}
