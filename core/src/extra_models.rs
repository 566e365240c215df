//! Models loaded beside the main one on the same device: the vision projector (llama.cpp's
//! `--mmproj` GGUF) and a draft model for speculative decoding, each with its weights, cache and
//! compute memory, and what speculative decoding costs per step.
//!
//! * **Vision projector.** llama.cpp keeps a multimodal model's vision (and audio) towers out of
//!   the main GGUF: `convert_hf_to_gguf.py --mmproj` writes them to a second file, f16 by
//!   default, which `llama-server --mmproj FILE` loads. transformers, vLLM and MLX load the towers
//!   with the model (they are in the main estimate already). Either way one image needs the
//!   encoder's compute memory: llama.cpp's clip reserves the graph of the largest image once at
//!   load.
//! * **Draft model.** A second, smaller model with the same vocabulary proposes `k` tokens that
//!   the main model checks in one pass. It needs its own weights, its own KV cache at the same
//!   context and its own compute memory. headroom does not invent how many proposals are
//!   accepted: it states the draft's decode speed and the time one step costs, and gives an
//!   expected speed only for an acceptance rate the question states.
//! * **MTP layers** built into a model (DeepSeek-V3, GLM-4.5, Qwen3-Next) are the main model's own
//!   and counted by [`crate::model::ModelSpec::with_mtp_layers`] when asked.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    answer::text_only,
    components::components,
    error::{Fix, Setting},
    estimate::{Estimate, EstimateRequest, estimate},
    model::{ComponentKind, ModelSpec},
    quant::WeightFormat,
    runtime::Runtime,
};

/// llama.cpp refuses a draft whose vocabulary size differs from the target's by more than this
/// (`SPEC_VOCAB_MAX_SIZE_DIFFERENCE` in its `common/speculative.cpp`); a smaller difference
/// loads, with a warning when tokens differ.
pub const DRAFT_VOCAB_MAX_DIFFERENCE: u64 = 128;

/// Draft tokens per step when the question names none, for llama.cpp: its `--draft-max`
/// default (it stops drafting earlier when the draft is unsure, so this is the most).
pub const LLAMA_CPP_DEFAULT_DRAFT_TOKENS: u64 = 16;

/// Draft tokens per step when the question names none, for the other engines (vLLM's
/// `num_speculative_tokens` has no default; 5 is the value its examples use). Written into the
/// launch command so the estimate and the command agree.
pub const DEFAULT_DRAFT_TOKENS: u64 = 5;

/// The most draft tokens per step a question may ask for.
pub const MAX_DRAFT_TOKENS: u64 = 64;

/// Image patches assumed for an encoder whose config gives no learned positions (rotary
/// encoders with dynamic resolution, Qwen2.5-VL): 4096 patches, a 896 × 896 image at 14-pixel
/// patches — llama.cpp's clip reserves its graph for the largest image it accepts.
pub const DEFAULT_IMAGE_PATCHES: u64 = 4096;

/// Head width assumed to count an encoder's attention heads (`attention_dim / 64`): CLIP and
/// most ViTs use 64; SigLIP (72) and Qwen2.5-VL (80) have a few fewer heads.
const ENCODER_HEAD_DIM: u64 = 64;

/// Bytes of an f32 activation (clip computes in f32).
const F32_BYTES: u64 = 4;

/// What the question asks for beyond the main model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ExtraAsk {
    /// Load the vision/audio towers (llama.cpp: the `--mmproj` file) and reserve the compute
    /// memory of one image.
    #[serde(default)]
    pub mmproj: bool,
    /// A draft model for speculative decoding.
    #[serde(default)]
    pub draft: Option<DraftAsk>,
}

/// The draft model a question names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftAsk {
    /// Its shape.
    pub model: ModelSpec,
    /// Its format; `None` = the main model's format.
    #[serde(default)]
    pub format: Option<WeightFormat>,
    /// Draft tokens proposed per step; `None` = the runtime's usual number
    /// ([`LLAMA_CPP_DEFAULT_DRAFT_TOKENS`], [`DEFAULT_DRAFT_TOKENS`]).
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Share of draft tokens the main model accepts (0 to 1, exclusive); only then is an
    /// expected speed given.
    #[serde(default)]
    pub acceptance: Option<f64>,
    /// How the launch command names it (a Hub id, a folder or a `.gguf` file); `None` = from
    /// its name (the catalog's Hub id).
    #[serde(default)]
    pub path: Option<String>,
}

/// Which extra model a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraModelKind {
    /// The vision/audio towers as llama.cpp loads them (`--mmproj`), or, in the other engines,
    /// the compute memory of one image (their towers are in the main weights).
    Mmproj,
    /// A draft model for speculative decoding.
    Draft,
}

/// One extra model's memory on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraModel {
    /// Which.
    pub kind: ExtraModelKind,
    /// Its name (the draft's model name; the main model's name for the projector).
    pub name: String,
    /// The format its weights are in.
    pub format: String,
    /// Parameters loaded (0 when the weights are the main model's own, already counted).
    pub params: u64,
    /// Weight bytes.
    pub weights_bytes: u64,
    /// KV cache bytes (draft: at the main model's context and batch).
    pub kv_cache_bytes: u64,
    /// Compute memory (draft: its activations; projector: one image's encoder graph).
    pub compute_bytes: u64,
    /// Everything it adds on the device.
    pub total_bytes: u64,
    /// Its own decode speed on the device (draft only).
    #[serde(default)]
    pub decode_tokens_per_s: Option<f64>,
}

/// What speculative decoding costs per step, and what it gains at a stated acceptance rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speculation {
    /// Draft tokens proposed per step.
    pub draft_tokens: u64,
    /// Time of one draft token, ms.
    pub draft_token_ms: f64,
    /// Time of one main-model pass (checking every draft token at once costs about one decode
    /// step: the pass is memory-bound), ms.
    pub verify_ms: f64,
    /// Time of one whole step: `draft_tokens × draft_token_ms + verify_ms`, ms.
    pub step_ms: f64,
    /// The acceptance rate the question stated, if any.
    pub acceptance: Option<f64>,
    /// Tokens one step yields on average at that rate: `(1 − a^(k+1)) / (1 − a)`.
    pub expected_tokens_per_step: Option<f64>,
    /// Decode tokens/s with speculation at that rate.
    pub expected_tokens_per_s: Option<f64>,
    /// Decode tokens/s of the main model alone, for comparison.
    pub plain_tokens_per_s: f64,
}

/// The extra models of one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ExtraModels {
    /// One line per extra model.
    pub models: Vec<ExtraModel>,
    /// Speculative decoding's cost and speed (with a draft).
    pub speculation: Option<Speculation>,
    /// What the numbers assume, and warnings (a draft larger than the model, a vocabulary that
    /// differs a little).
    pub assumptions: Vec<String>,
}

impl ExtraModels {
    /// Bytes every extra model adds together.
    pub fn total_bytes(&self) -> u64 {
        self.models
            .iter()
            .fold(0u64, |acc, m| acc.saturating_add(m.total_bytes))
    }
}

/// Whether `model` has vision or audio towers.
pub fn has_towers(model: &ModelSpec) -> bool {
    !model.encoders.is_empty() || !model.projectors.is_empty()
}

/// llama.cpp keeps the towers out of the main GGUF (in the mmproj file, which the projector
/// line counts when asked): true when the main model of an answer for `runtime` is counted
/// without them.
pub fn towers_in_separate_file(runtime: Runtime) -> bool {
    runtime == Runtime::LlamaCpp
}

/// Checks what can be checked before any estimate: a projector asked of a model without towers,
/// a draft in training, the draft's settings and vocabulary.
pub fn validate(
    main: &ModelSpec,
    ask: &ExtraAsk,
    training: bool,
    text_only_asked: bool,
) -> Result<(), CoreError> {
    if ask.mmproj && !has_towers(main) {
        return Err(CoreError::setting(
            Setting::Mmproj,
            &main.name,
            "the model has no vision or audio encoder to load".to_string(),
            vec![],
        ));
    }
    if ask.mmproj && text_only_asked {
        return Err(CoreError::setting(
            Setting::Mmproj,
            &main.name,
            "asks for the vision towers that text only leaves out: give one of them".to_string(),
            vec![],
        ));
    }
    let Some(d) = &ask.draft else {
        return Ok(());
    };
    if training {
        return Err(CoreError::setting(
            Setting::Draft,
            &d.model.name,
            "speculative decoding is for inference, not training".to_string(),
            vec![Fix::new(Setting::Mode, "inference")],
        ));
    }
    if let Some(k) = d.tokens
        && (k == 0 || k > MAX_DRAFT_TOKENS)
    {
        return Err(CoreError::setting(
            Setting::DraftTokens,
            k,
            format!("must be between 1 and {MAX_DRAFT_TOKENS}"),
            vec![Fix::new(
                Setting::DraftTokens,
                DEFAULT_DRAFT_TOKENS.to_string(),
            )],
        ));
    }
    if let Some(a) = d.acceptance
        && !(a.is_finite() && a > 0.0 && a < 1.0)
    {
        return Err(CoreError::setting(
            Setting::DraftAcceptance,
            a,
            "must be a share between 0 and 1 (exclusive), e.g. 0.7".to_string(),
            vec![Fix::new(Setting::DraftAcceptance, "0.7")],
        ));
    }
    let diff = d.model.vocab_size.abs_diff(main.vocab_size);
    if diff > DRAFT_VOCAB_MAX_DIFFERENCE {
        return Err(CoreError::setting(
            Setting::Draft,
            &d.model.name,
            format!(
                "has a vocabulary of {} tokens, the model {}: a draft must share the model's \
                 tokenizer (llama.cpp refuses a difference over {DRAFT_VOCAB_MAX_DIFFERENCE}); \
                 pick a smaller model of the same family",
                d.model.vocab_size, main.vocab_size
            ),
            vec![],
        ));
    }
    Ok(())
}

/// The extra models of an answer whose main request is `req` and main estimate `main`.
/// `main_model` is the model as the question gave it (towers included).
pub fn extra_models(
    main_model: &ModelSpec,
    req: &EstimateRequest,
    main: &Estimate,
    ask: &ExtraAsk,
) -> Result<ExtraModels, CoreError> {
    let mut out = ExtraModels::default();
    if ask.mmproj && has_towers(main_model) {
        out.models
            .push(projector(main_model, req.runtime, &mut out.assumptions));
    }
    if let Some(d) = &ask.draft {
        let (line, speculation) = draft(main_model, req, main, d, &mut out.assumptions)?;
        out.models.push(line);
        out.speculation = Some(speculation);
    }
    Ok(out)
}

/// Patches of one image for `encoder` (learned positions without the class token, else
/// [`DEFAULT_IMAGE_PATCHES`]), and whether that is assumed.
fn image_patches(e: &crate::model::EncoderSpec) -> (u64, bool) {
    if e.positions > 0 {
        (
            e.positions - u64::from(e.class_token).min(e.positions),
            false,
        )
    } else {
        (DEFAULT_IMAGE_PATCHES, true)
    }
}

/// The projector line: llama.cpp's mmproj file (the towers in f16, their 1-D tensors f32, plus
/// one image's graph), or for the other engines one image's graph alone.
fn projector(model: &ModelSpec, runtime: Runtime, notes: &mut Vec<String>) -> ExtraModel {
    let tower_params: u64 = components(model)
        .iter()
        .filter(|c| c.kind.is_tower())
        .map(|c| c.params)
        .sum();
    // One image through the largest vision encoder: ggml-alloc reuses buffers from layer to
    // layer, so the graph's peak is one layer's working set — the residual stream and its
    // normed copy, q/k/v, the MLP's hidden (two for a gated MLP) and the attention scores,
    // which clip materialises (heads × patches² in f32) — plus the input patches.
    let mut compute_bytes = 0u64;
    let mut patches_note = String::new();
    for e in model
        .encoders
        .iter()
        .filter(|e| e.kind == ComponentKind::VisionEncoder)
    {
        let (n, assumed) = image_patches(e);
        let heads = (e.attention_dim / ENCODER_HEAD_DIM).max(1);
        let mlp = e
            .intermediate
            .saturating_mul(if e.mlp_gated { 2 } else { 1 });
        let per_patch = e
            .hidden
            .saturating_mul(2)
            .saturating_add(e.attention_dim.saturating_mul(3))
            .saturating_add(mlp)
            .saturating_add(e.patch_inputs);
        let bytes = n
            .saturating_mul(per_patch)
            .saturating_add(heads.saturating_mul(n).saturating_mul(n))
            .saturating_mul(F32_BYTES);
        if bytes > compute_bytes {
            compute_bytes = bytes;
            patches_note = format!(
                "{n} patches{} × {} layers wide {} ({} heads assumed at {ENCODER_HEAD_DIM} per head)",
                if assumed {
                    " (assumed: the encoder has no learned positions; an image of about 896 × 896)"
                } else {
                    " (its learned positions)"
                },
                e.layers,
                e.hidden,
                heads
            );
        }
    }
    let (params, weights_bytes, format) = if runtime == Runtime::LlamaCpp {
        // f16 for every 2-D weight; norms and biases (a few per mille of the towers) are f32 in
        // the file and counted at 2 bytes here.
        (tower_params, tower_params.saturating_mul(2), "f16")
    } else {
        (0, 0, "with the model")
    };
    if runtime == Runtime::LlamaCpp {
        notes.push(format!(
            "mmproj: the vision/audio towers ({:.2}B parameters) as llama.cpp loads them from a \
             separate --mmproj GGUF, f16 as convert_hf_to_gguf.py --mmproj writes it by default; \
             plus the compute buffer clip reserves for the largest image: {patches_note}, f32, \
             one layer's working set with the attention scores materialised",
            tower_params as f64 / 1e9
        ));
    } else {
        notes.push(format!(
            "vision: the towers load with the model in {runtime} (counted in its weights); one \
             image's encoder activations added: {patches_note}, f32, one layer's working set \
             with the attention scores materialised"
        ));
    }
    ExtraModel {
        kind: ExtraModelKind::Mmproj,
        name: model.name.clone(),
        format: format.to_string(),
        params,
        weights_bytes,
        kv_cache_bytes: 0,
        compute_bytes,
        total_bytes: weights_bytes.saturating_add(compute_bytes),
        decode_tokens_per_s: None,
    }
}

/// The draft's line and the speculation it allows.
fn draft(
    main_model: &ModelSpec,
    req: &EstimateRequest,
    main: &Estimate,
    d: &DraftAsk,
    notes: &mut Vec<String>,
) -> Result<(ExtraModel, Speculation), CoreError> {
    let draft_model = text_only(&d.model);
    let format = d.format.clone().unwrap_or_else(|| req.format.clone());
    let mut r = EstimateRequest::new(draft_model.clone(), format.clone(), req.device.clone());
    r.context = Some(req.context_tokens());
    r.batch = req.batch;
    r.runtime = req.runtime;
    r.kv_dtype = req.kv_dtype;
    r.wired_limit_bytes = req.wired_limit_bytes;
    r.host_memory_bytes = req.host_memory_bytes;
    r.macos = req.macos;
    let e = estimate(&r).map_err(|err| match err {
        CoreError::Setting {
            setting: Setting::Format,
            value,
            problem,
            fixes,
        } => CoreError::Setting {
            setting: Setting::DraftFormat,
            value,
            problem,
            fixes,
        },
        other => other,
    })?;
    let params = crate::params::param_counts(&draft_model).total;
    let main_params = crate::params::param_counts(main_model).total;
    if params > main_params {
        notes.push(format!(
            "draft: {} ({:.2}B parameters) is larger than the model ({:.2}B): speculative \
             decoding only pays when the draft is much faster than the model",
            draft_model.name,
            params as f64 / 1e9,
            main_params as f64 / 1e9
        ));
    }
    let vocab_diff = draft_model.vocab_size.abs_diff(main_model.vocab_size);
    if vocab_diff > 0 {
        notes.push(format!(
            "draft: its vocabulary ({}) differs from the model's ({}) by {vocab_diff} tokens; \
             llama.cpp accepts up to {DRAFT_VOCAB_MAX_DIFFERENCE} but warns, and drafts only help \
             where the tokens are the same",
            draft_model.vocab_size, main_model.vocab_size
        ));
    }
    let k = d.tokens.unwrap_or(if req.runtime == Runtime::LlamaCpp {
        LLAMA_CPP_DEFAULT_DRAFT_TOKENS
    } else {
        DEFAULT_DRAFT_TOKENS
    });
    notes.push(format!(
        "draft: {} in {format} on the same device: weights {:.2} GiB, its own KV cache at the \
         same context and batch {:.2} GiB, compute {:.2} GiB (its runtime overhead is the main \
         model's, not counted twice)",
        draft_model.name,
        e.weights_bytes as f64 / crate::units::GIB as f64,
        e.kv_cache_bytes as f64 / crate::units::GIB as f64,
        e.activation_bytes as f64 / crate::units::GIB as f64,
    ));
    let draft_token_ms = if e.decode_tokens_per_s > 0.0 {
        1e3 / e.decode_tokens_per_s
    } else {
        0.0
    };
    let verify_ms = if main.decode_tokens_per_s > 0.0 {
        1e3 / main.decode_tokens_per_s
    } else {
        0.0
    };
    let step_ms = k as f64 * draft_token_ms + verify_ms;
    let expected_tokens_per_step = d
        .acceptance
        .map(|a| (1.0 - a.powf(k as f64 + 1.0)) / (1.0 - a));
    let expected_tokens_per_s = expected_tokens_per_step
        .filter(|_| step_ms > 0.0)
        .map(|t| t / step_ms * 1e3);
    notes.push(match (d.acceptance, expected_tokens_per_s) {
        (Some(a), Some(tps)) => format!(
            "speculative decoding: {k} draft tokens per step ({draft_token_ms:.2} ms each) and \
             one pass of the model over them ({verify_ms:.2} ms, as one decode step: the pass \
             is memory-bound) = {step_ms:.2} ms per step; at the stated acceptance rate {a} a \
             step yields (1 − a^(k+1)) / (1 − a) = {:.2} tokens on average: {tps:.1} tokens/s \
             against {:.1} without the draft (the acceptance rate is the question's, not \
             headroom's: it depends on the model pair and the text)",
            expected_tokens_per_step.unwrap_or(1.0),
            main.decode_tokens_per_s
        ),
        _ => format!(
            "speculative decoding: {k} draft tokens per step ({draft_token_ms:.2} ms each) and \
             one pass of the model over them ({verify_ms:.2} ms, as one decode step) = \
             {step_ms:.2} ms per step; it pays when more than {:.1} tokens per step are \
             accepted on average. No speed-up is given: it depends on the acceptance rate, \
             which depends on the model pair and the text (state one to get an expected speed)",
            if verify_ms > 0.0 {
                step_ms / verify_ms
            } else {
                0.0
            }
        ),
    });
    let compute_bytes = e.activation_bytes;
    let line = ExtraModel {
        kind: ExtraModelKind::Draft,
        name: draft_model.name.clone(),
        format: format.to_string(),
        params,
        weights_bytes: e.weights_bytes,
        kv_cache_bytes: e.kv_cache_bytes,
        compute_bytes,
        total_bytes: e
            .weights_bytes
            .saturating_add(e.kv_cache_bytes)
            .saturating_add(compute_bytes),
        decode_tokens_per_s: Some(e.decode_tokens_per_s),
    };
    Ok((
        line,
        Speculation {
            draft_tokens: k,
            draft_token_ms,
            verify_ms,
            step_ms,
            acceptance: d.acceptance,
            expected_tokens_per_step,
            expected_tokens_per_s,
            plain_tokens_per_s: main.decode_tokens_per_s,
        },
    ))
}

/// The launch command's extra flags for the extra models (appended to the engine's line), and
/// notes on the files they need.
/// `mtp_loaded`: the model's MTP layers were loaded (`--mtp`); without a draft, the runtimes
/// that use them get the flag that turns them on ([`mtp_launch_flag`]).
pub fn launch_flags(
    runtime: Runtime,
    main_name: &str,
    models: &[ExtraModel],
    speculation: Option<&Speculation>,
    ask: &ExtraAsk,
    mtp_loaded: bool,
    notes: &mut Vec<String>,
) -> String {
    let mut flags = String::new();
    if mtp_loaded
        && ask.draft.is_none()
        && let Some(flag) = mtp_launch_flag(runtime)
    {
        flags.push_str(flag);
    }
    for m in models {
        match (m.kind, runtime) {
            (ExtraModelKind::Mmproj, Runtime::LlamaCpp) => {
                let short = main_name.rsplit('/').next().unwrap_or(main_name);
                let file = format!("mmproj-{short}-f16.gguf");
                notes.push(format!(
                    "{file}: the vision projector GGUF (convert_hf_to_gguf.py --mmproj, or the \
                     mmproj file published beside the model's GGUFs)"
                ));
                flags.push_str(&format!(" --mmproj {}", crate::launch::quote(&file)));
            }
            (ExtraModelKind::Draft, _) => {
                let k = speculation
                    .map(|s| s.draft_tokens)
                    .unwrap_or(DEFAULT_DRAFT_TOKENS);
                let draft_ref = match ask.draft.as_ref().and_then(|d| d.path.clone()) {
                    Some(path) => crate::launch::ModelRef {
                        is_gguf_file: path.to_ascii_lowercase().ends_with(".gguf"),
                        path,
                    },
                    None => crate::launch::ModelRef::for_model_name(&m.name),
                };
                match runtime {
                    Runtime::LlamaCpp => {
                        let file = if draft_ref.is_gguf_file {
                            draft_ref.path.clone()
                        } else {
                            let short = draft_ref.path.rsplit('/').next().unwrap_or(&m.name);
                            let file = format!("{short}-{}.gguf", m.format);
                            notes.push(format!(
                                "{file}: a GGUF of the draft {} in {}",
                                draft_ref.path, m.format
                            ));
                            file
                        };
                        flags.push_str(&format!(
                            " -md {} -ngld 99 --draft-max {k}",
                            crate::launch::quote(&file)
                        ));
                    }
                    Runtime::Vllm { .. } => {
                        flags.push_str(&format!(
                            " --speculative-config '{{\"model\": \"{}\", \
                             \"num_speculative_tokens\": {k}}}'",
                            draft_ref.path.replace('\'', "")
                        ));
                    }
                    Runtime::Mlx => {
                        flags.push_str(&format!(
                            " --draft-model {} --num-draft-tokens {k}",
                            crate::launch::quote(&draft_ref.path)
                        ));
                    }
                    Runtime::TransformersCuda | Runtime::TransformersMps => {
                        notes.push(format!(
                            "draft: load {} with from_pretrained as well and pass it to \
                             generate(..., assistant_model=draft)",
                            draft_ref.path
                        ));
                    }
                }
            }
            (ExtraModelKind::Mmproj, _) => {}
        }
    }
    flags
}

/// The launch flag that turns on speculative decoding with a model's own MTP layers, where the
/// runtime does it from the same checkpoint (vLLM's `"method": "mtp"`, one token ahead as its
/// documentation starts with); `None` where the runtime skips MTP layers.
pub fn mtp_launch_flag(runtime: Runtime) -> Option<&'static str> {
    match runtime {
        Runtime::Vllm { .. } => {
            Some(" --speculative-config '{\"method\": \"mtp\", \"num_speculative_tokens\": 1}'")
        }
        _ => None,
    }
}
