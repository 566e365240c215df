//! `headroom fit --json`: the object printed per format, and its specification.

use headroom_core::{
    advice::{FormatChoice, TrainingAdvice},
    answer::{Answer, CheckpointCheck},
    components::{CacheComponent, Component, LayerKindCount},
    estimate::Estimate,
    extra_models::{ExtraModel, Speculation},
    launch::LaunchCommand,
    published::SpeedBand,
    serving::Serving,
};
use serde::Serialize;

use super::OutputContext;

/// The JSON output, one object per format.
///
/// `headroom fit MODEL --json` prints one such object; `--quant all --json` prints an array of
/// them, one per format that could be estimated, in the order of `WeightFormat::all()`.
///
/// ```json
/// {"model": "Llama-3.1-8B", "params_total": 8030261248, "params_active": 8030261248,
///  "quant": "Q4_K_M", "context": 4096, "batch": 1, "weights_bytes": 4912898048,
///  "kv_cache_bytes": 536870912, "activation_bytes": 109051904, "overhead_bytes": 524288000,
///  "training_bytes": 0, "total_bytes": 6083108864, "per_device_bytes": 6083108864,
///  "device": "NVIDIA GeForce RTX 4090", "usable_bytes": 25769803776, "devices_needed": 1,
///  "fits": true, "verdict": "fits", "decode_tokens_per_s": 121.99,
///  "prefill_tokens_per_s": 16389.35, "assumptions": ["context 4096 tokens (default: ...)"],
///  "runtime": "llama.cpp", "mode": "inference", "kv_cache_dtype": "f16", "device_count": 1,
///  "device_id": "rtx-4090", "model_source": "config Llama-3.1-8B.json",
///  "longest_context": 131072, "best_format": {"format": "bf16", "runtime": "transformers",
///  "verdict": "fits", "total_bytes": 17574666240, "decode_tokens_per_s": 55.7},
///  "launch": {"runtime": "llama.cpp", "command": "llama-server -m Llama-3.1-8B-Q4_K_M.gguf -c 4096
///  -ngl 99 -fa on -ctk f16 -ctv f16", "notes": ["Llama-3.1-8B-Q4_K_M.gguf: a GGUF of ..."]}}
/// ```
#[derive(Serialize)]
pub(super) struct FitJson<'a> {
    #[serde(flatten)]
    estimate: &'a Estimate,
    /// Catalog id of the device (`measured` when it came from a probe report alone).
    device_id: &'a str,
    /// Where the model came from: a file, the catalog, or a Hub URL.
    model_source: String,
    /// Longest context that fits with everything else as given (`null` if none); one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    longest_context: Option<Option<u64>>,
    /// Highest-precision format that fits (`null` if none); one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    best_format: Option<Option<&'a FormatChoice>>,
    /// Training settings that fit; training modes, one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    training_advice: Option<&'a TrainingAdvice>,
    /// Decoder layers (0-based) that carry LoRA adapters; every layer unless --lora-layers
    /// names fewer. LoRA/QLoRA only.
    #[serde(skip_serializing_if = "Option::is_none")]
    lora_layers: Option<Vec<u64>>,
    /// The checkpoint's headers against the config (a .gguf file or safetensors shards).
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<&'a CheckpointCheck>,
    /// Whether every count is exact; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    exact: Option<bool>,
    /// What is approximated and why; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    approximations: Option<&'a [String]>,
    /// Parameters per component; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<&'a [Component]>,
    /// Decoder layers per (mixer, MLP) kind; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_kinds: Option<&'a [LayerKindCount]>,
    /// Cache per mixer kind for one sequence (bytes per token, state bytes per sequence); one
    /// format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'a [CacheComponent]>,
    /// The command that runs it ({runtime, command, notes}); `null` when it does not fit; one
    /// format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    launch: Option<Option<&'a LaunchCommand>>,
    /// How this machine was found, when no --device or --probe named the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    this_machine: Option<&'a str>,
    /// Users a server holds at this context and their decode speed; one format only, with
    /// --users or a serving runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    serving: Option<&'a Serving>,
    /// How far headroom's speeds for this runtime and kind of device were from published
    /// measurements: [{runtime, family, kind, rows, low_percent, high_percent, median_percent,
    /// sources}]; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_bands: Option<&'a [SpeedBand]>,
    /// Models loaded beside this one (--mmproj, --draft), in total_bytes and the verdict; one
    /// format only, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_models: Option<&'a [ExtraModel]>,
    /// Speculative decoding's cost per step and, at --draft-acceptance, its expected speed.
    #[serde(skip_serializing_if = "Option::is_none")]
    speculation: Option<&'a Speculation>,
}

impl OutputContext<'_> {
    /// One format's JSON object; `answer` adds the advice (one format only).
    pub(super) fn json<'r>(
        &'r self,
        estimate: &'r Estimate,
        answer: Option<&'r Answer>,
    ) -> FitJson<'r> {
        FitJson {
            estimate,
            device_id: &self.device.id,
            model_source: self.source.to_string(),
            longest_context: answer.map(|a| a.longest_context),
            best_format: answer.map(|a| a.best_format.as_ref()),
            training_advice: answer.and_then(|a| a.training.as_ref()),
            lora_layers: answer.and_then(|a| a.lora_layers.clone()),
            checkpoint: answer.and_then(|a| a.checkpoint.as_ref()),
            exact: answer.map(|a| a.exact),
            approximations: answer.map(|a| a.approximations.as_slice()),
            components: answer.map(|a| a.components.as_slice()),
            layer_kinds: answer.map(|a| a.layer_kinds.as_slice()),
            cache: answer.map(|a| a.cache.as_slice()),
            launch: answer.map(|a| a.launch.as_ref()),
            this_machine: self.this_machine,
            serving: answer.and_then(|a| a.serving.as_ref()),
            speed_bands: answer.map(|a| a.speed_bands.as_slice()),
            extra_models: answer
                .map(|a| a.extra_models.as_slice())
                .filter(|m| !m.is_empty()),
            speculation: answer.and_then(|a| a.speculation.as_ref()),
        }
    }
}
