//! Extra models on the same device: the vision projector (llama.cpp's mmproj file, or one
//! image's encoder compute in the engines that load the towers with the model), a draft model
//! for speculative decoding, and a model's own MTP layers in the launch command.

use headroom_core::{
    CoreError,
    answer::{ContextAsk, Question, answer},
    devices,
    error::Setting,
    estimate::{EstimateRequest, estimate},
    extra_models::{
        DRAFT_VOCAB_MAX_DIFFERENCE, DraftAsk, ExtraModelKind, LLAMA_CPP_DEFAULT_DRAFT_TOKENS,
    },
    model::{ComponentKind, ModelSpec},
    model_catalog,
    params::param_counts,
    runtime::Runtime,
    training::{LoraSettings, Mode},
};

fn model(name: &str) -> ModelSpec {
    model_catalog::find(name).expect("catalog model")
}

fn config(file: &str) -> ModelSpec {
    let path = format!("{}/data/hf-configs/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("config");
    headroom_core::config::model_from_config_json(file, &text).expect("parses")
}

fn question(m: ModelSpec, format: &str, device: &str, runtime: Runtime) -> Question {
    let mut q = Question::new(m, devices::find(device).expect("device"));
    q.format = Some(format.parse().expect("format"));
    q.runtime = Some(runtime);
    q
}

fn draft(name: &str) -> DraftAsk {
    DraftAsk {
        model: model(name),
        format: None,
        tokens: None,
        acceptance: None,
        path: None,
    }
}

fn tower_params(m: &ModelSpec) -> u64 {
    headroom_core::components::components(m)
        .iter()
        .filter(|c| c.kind.is_tower())
        .map(|c| c.params)
        .sum()
}

#[test]
fn llama_cpp_keeps_the_towers_in_a_separate_mmproj_file() {
    let vlm = model("gemma-3-12b");
    let towers = tower_params(&vlm);
    assert!(towers > 100_000_000, "gemma-3 has a SigLIP tower: {towers}");
    let plain = answer(&question(
        vlm.clone(),
        "Q4_K_M",
        "m4-pro-20c-48gb",
        Runtime::LlamaCpp,
    ))
    .unwrap();
    // The main GGUF holds the language model only, as convert_hf_to_gguf.py writes it.
    let text = answer(&{
        let mut q = question(vlm.clone(), "Q4_K_M", "m4-pro-20c-48gb", Runtime::LlamaCpp);
        q.text_only = true;
        q
    })
    .unwrap();
    assert_eq!(plain.estimate.weights_bytes, text.estimate.weights_bytes);
    assert!(plain.text_only);
    assert!(plain.extra_models.is_empty());
    assert!(
        plain
            .estimate
            .assumptions
            .iter()
            .any(|a| a.contains("separate mmproj file"))
    );

    let mut q = question(vlm.clone(), "Q4_K_M", "m4-pro-20c-48gb", Runtime::LlamaCpp);
    q.extras.mmproj = true;
    let with = answer(&q).unwrap();
    assert_eq!(with.extra_models.len(), 1);
    let mm = &with.extra_models[0];
    assert_eq!(mm.kind, ExtraModelKind::Mmproj);
    assert_eq!(mm.format, "f16");
    assert_eq!(mm.params, towers);
    assert_eq!(mm.weights_bytes, 2 * towers);
    // SigLIP at 896 px: 4096 patches; the scores alone are heads × 4096² × 4 bytes.
    assert!(mm.compute_bytes > 4096 * 4096 * 4, "{}", mm.compute_bytes);
    assert_eq!(mm.total_bytes, mm.weights_bytes + mm.compute_bytes);
    // The main weights stay the text model's; the file's bytes are added to the total.
    assert_eq!(with.estimate.weights_bytes, plain.estimate.weights_bytes);
    assert_eq!(
        with.estimate.total_bytes,
        plain.estimate.total_bytes + mm.total_bytes
    );
    assert!(!with.text_only);
    assert!(
        with.components
            .iter()
            .any(|c| c.kind == ComponentKind::VisionEncoder)
    );
    let launch = with.launch.expect("fits");
    assert!(
        launch
            .command
            .contains("--mmproj mmproj-gemma-3-12b-it-f16.gguf"),
        "{}",
        launch.command
    );
}

#[test]
fn other_engines_load_the_towers_and_add_one_image() {
    let vlm = config("Qwen2.5-VL-7B-Instruct.json");
    let plain = answer(&question(
        vlm.clone(),
        "bf16",
        "h100-sxm",
        Runtime::TransformersCuda,
    ))
    .unwrap();
    assert!(!plain.text_only);
    let mut q = question(vlm, "bf16", "h100-sxm", Runtime::TransformersCuda);
    q.extras.mmproj = true;
    let with = answer(&q).unwrap();
    let mm = &with.extra_models[0];
    // The towers are in the model's weights already; only the image's compute is added.
    assert_eq!(mm.weights_bytes, 0);
    assert!(mm.compute_bytes > 0);
    assert_eq!(with.estimate.weights_bytes, plain.estimate.weights_bytes);
    assert_eq!(
        with.estimate.total_bytes,
        plain.estimate.total_bytes + mm.compute_bytes
    );
    // Rotary encoder without learned positions: the assumed image is stated.
    assert!(
        with.estimate
            .assumptions
            .iter()
            .any(|a| a.contains("4096 patches (assumed"))
    );
}

#[test]
fn a_projector_needs_towers_and_contradicts_text_only() {
    let mut q = question(
        model("llama-3.1-8b"),
        "Q4_K_M",
        "rtx-4090",
        Runtime::LlamaCpp,
    );
    q.extras.mmproj = true;
    assert!(matches!(
        answer(&q),
        Err(CoreError::Setting {
            setting: Setting::Mmproj,
            ..
        })
    ));
    let mut q = question(
        model("gemma-3-12b"),
        "Q4_K_M",
        "rtx-4090",
        Runtime::LlamaCpp,
    );
    q.extras.mmproj = true;
    q.text_only = true;
    assert!(matches!(
        answer(&q),
        Err(CoreError::Setting {
            setting: Setting::Mmproj,
            ..
        })
    ));
}

#[test]
fn a_draft_adds_its_own_weights_cache_and_compute() {
    let device = "rtx-4090";
    let mut q = question(model("llama-3.1-8b"), "Q4_K_M", device, Runtime::LlamaCpp);
    q.context = ContextAsk::Tokens(8192);
    let plain = answer(&q).unwrap();
    q.extras.draft = Some(draft("llama-3.2-1b"));
    let with = answer(&q).unwrap();
    let d = with
        .extra_models
        .iter()
        .find(|m| m.kind == ExtraModelKind::Draft)
        .expect("draft line");
    // The draft alone, estimated as its own request with the same format and context.
    let mut r = EstimateRequest::new(
        model("llama-3.2-1b"),
        "Q4_K_M".parse().unwrap(),
        devices::find(device).unwrap(),
    );
    r.context = Some(8192);
    r.runtime = Runtime::LlamaCpp;
    let alone = estimate(&r).unwrap();
    assert_eq!(d.format, "Q4_K_M");
    assert_eq!(d.weights_bytes, alone.weights_bytes);
    assert_eq!(d.kv_cache_bytes, alone.kv_cache_bytes);
    assert_eq!(d.compute_bytes, alone.activation_bytes);
    assert_eq!(d.params, param_counts(&model("llama-3.2-1b")).total);
    assert_eq!(
        with.estimate.total_bytes,
        plain.estimate.total_bytes + d.total_bytes
    );
    assert!(
        with.components
            .iter()
            .any(|c| c.kind == ComponentKind::DraftModel && c.params == d.params)
    );
    // Speed: the draft's own decode, the step's cost, and no speed-up without a rate.
    let draft_tps = d.decode_tokens_per_s.expect("draft speed");
    assert!(draft_tps > with.estimate.decode_tokens_per_s * 2.0);
    let sp = with.speculation.as_ref().expect("speculation");
    assert_eq!(sp.draft_tokens, LLAMA_CPP_DEFAULT_DRAFT_TOKENS);
    let expected_step =
        sp.draft_tokens as f64 * 1e3 / draft_tps + 1e3 / with.estimate.decode_tokens_per_s;
    assert!((sp.step_ms - expected_step).abs() < 1e-9);
    assert!(sp.expected_tokens_per_s.is_none());
    assert!(
        with.estimate
            .assumptions
            .iter()
            .any(|a| a.contains("No speed-up is given"))
    );
    let launch = with.launch.expect("fits");
    assert!(
        launch
            .command
            .contains("-md Llama-3.2-1B-Q4_K_M.gguf -ngld 99 --draft-max 16"),
        "{}",
        launch.command
    );
}

#[test]
fn a_stated_acceptance_rate_gives_the_expected_speed() {
    let mut q = question(
        model("llama-3.1-8b"),
        "bf16",
        "h100-sxm",
        Runtime::vllm_default(),
    );
    let mut d = draft("llama-3.2-1b");
    d.tokens = Some(4);
    d.acceptance = Some(0.8);
    q.extras.draft = Some(d);
    let a = answer(&q).unwrap();
    let sp = a.speculation.expect("speculation");
    // 1 + 0.8 + 0.64 + 0.512 + 0.4096 tokens per step.
    let per_step = 1.0 + 0.8 + 0.64 + 0.512 + 0.4096;
    assert!((sp.expected_tokens_per_step.unwrap() - per_step).abs() < 1e-9);
    let tps = sp.expected_tokens_per_s.unwrap();
    assert!((tps - per_step / sp.step_ms * 1e3).abs() < 1e-6);
    assert_eq!(sp.plain_tokens_per_s, a.estimate.decode_tokens_per_s);
    let launch = a.launch.expect("fits");
    assert!(
        launch.command.contains(
            "--speculative-config '{\"model\": \"meta-llama/Llama-3.2-1B\", \
             \"num_speculative_tokens\": 4}'"
        ),
        "{}",
        launch.command
    );
}

#[test]
fn draft_settings_are_checked() {
    let base = question(
        model("llama-3.1-8b"),
        "Q4_K_M",
        "rtx-4090",
        Runtime::LlamaCpp,
    );
    let setting_of = |q: &Question| match answer(q) {
        Err(CoreError::Setting { setting, .. }) => Some(setting),
        _ => None,
    };
    // A different tokenizer: Qwen3's 151,936 tokens against Llama 3's 128,256.
    let mut q = base.clone();
    q.extras.draft = Some(draft("qwen3-0.6b"));
    assert_eq!(setting_of(&q), Some(Setting::Draft));
    for (tokens, acceptance, setting) in [
        (Some(0), None, Setting::DraftTokens),
        (Some(65), None, Setting::DraftTokens),
        (None, Some(0.0), Setting::DraftAcceptance),
        (None, Some(1.0), Setting::DraftAcceptance),
        (None, Some(f64::NAN), Setting::DraftAcceptance),
    ] {
        let mut q = base.clone();
        let mut d = draft("llama-3.2-1b");
        d.tokens = tokens;
        d.acceptance = acceptance;
        q.extras.draft = Some(d);
        assert_eq!(setting_of(&q), Some(setting), "{tokens:?} {acceptance:?}");
    }
    // Training has no speculative decoding.
    let mut q = base.clone();
    q.format = Some("bf16".parse().unwrap());
    q.runtime = None;
    q.mode = Mode::Lora(LoraSettings::default_settings());
    q.extras.draft = Some(draft("llama-3.2-1b"));
    assert_eq!(setting_of(&q), Some(Setting::Draft));
    // A vocabulary a few rows apart loads, with a warning.
    let mut q = base.clone();
    let mut d = draft("llama-3.2-1b");
    d.model.vocab_size += DRAFT_VOCAB_MAX_DIFFERENCE;
    q.extras.draft = Some(d);
    let a = answer(&q).unwrap();
    assert!(
        a.estimate
            .assumptions
            .iter()
            .any(|s| s.contains("differs from the model's"))
    );
    // A draft larger than the model: a warning, not an error.
    let mut q = question(
        model("llama-3.2-1b"),
        "Q4_K_M",
        "rtx-4090",
        Runtime::LlamaCpp,
    );
    q.extras.draft = Some(draft("llama-3.1-8b"));
    let a = answer(&q).unwrap();
    assert!(
        a.estimate
            .assumptions
            .iter()
            .any(|s| s.contains("is larger than the model"))
    );
}

#[test]
fn a_draft_that_does_not_fit_beside_the_model_turns_the_verdict() {
    // Llama-3.1-8B in bf16 (~15 GiB) fits a 24 GiB card alone, not beside an 8B bf16 draft.
    let mut q = question(model("llama-3.1-8b"), "bf16", "rtx-4090", Runtime::LlamaCpp);
    assert!(answer(&q).unwrap().estimate.fits);
    q.extras.draft = Some(draft("llama-3.1-8b"));
    let a = answer(&q).unwrap();
    assert!(!a.estimate.fits);
    assert!(a.launch.is_none());
}

#[test]
fn mtp_layers_turn_on_vllm_speculation() {
    let mut q = question(
        config("DeepSeek-V3.json"),
        "fp8",
        "h200",
        Runtime::vllm_default(),
    );
    q.device_count = 8;
    q.with_mtp = true;
    let a = answer(&q).unwrap();
    assert!(a.with_mtp);
    assert!(
        a.launch.expect("fits").command.ends_with(
            "--speculative-config '{\"method\": \"mtp\", \"num_speculative_tokens\": 1}'"
        )
    );
    // llama.cpp and transformers skip them: counted when asked, and said so.
    let mut q = question(
        config("DeepSeek-V3.json"),
        "Q4_K_M",
        "h200",
        Runtime::LlamaCpp,
    );
    q.device_count = 8;
    q.with_mtp = true;
    let a = answer(&q).unwrap();
    assert!(
        a.estimate
            .assumptions
            .iter()
            .any(|s| s.contains("skips them when it loads the model"))
    );
}
