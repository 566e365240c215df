//! Accuracy against a real framework: headroom-core's transformers-on-CUDA predictions held to
//! memory measured on an NVIDIA GPU with PyTorch + transformers + peft.
//!
//! The measurements (`tests/data/measured/*.json`) come from `tests/measure/measure_memory.py`;
//! every case carries the exact `config.json` it was built from, and the predictions here take that
//! same config and the same settings (batch, context, logits for every position or the last,
//! attention kernel, training mode). Tolerances are the issue's: weights 0.5%, KV cache 1%,
//! prefill and generation peaks 10%, training peaks 15%. Method, the framework behaviour behind
//! each number and the residual errors: `core/docs/ACCURACY.md`.
//!
//! Cases the model cannot meet yet are listed in [`KNOWN_MISSES`] with the reason; they are
//! checked by the ignored test `known_misses_within_tolerance` (run it with `--ignored`) and
//! printed by every run, never silently dropped. Everything else is asserted.

use headroom_core::{
    config::model_from_config_value,
    devices,
    estimate::{EstimateRequest, estimate},
    kv_cache::{KvDtype, kv_cache_bytes},
    model::ModelSpec,
    params::param_counts,
    quant::{WeightFormat, weights_bytes},
    runtime::Runtime,
    training::{FullSettings, LoraSettings, Mode, Optimizer, TrainingPrecision},
};
use serde_json::Value;

/// The measured fixture: H200, driver 580.159.04, torch 2.11.0+cu130, transformers 5.17.0,
/// peft 0.21.0 (see its `meta`).
const MEASURED_FILE: &str = "measured/h200-transformers-5.17.json";
/// LoRA on the last K layers only (peft `layers_to_transform`), same machine and versions:
/// `measure_memory.py --lora-layers-last 4,2 --lora-layers-only` (training records only; each
/// carries `lora_layers`). Its full-size build is the same as in [`MEASURED_FILE`], so only its
/// training rows are compared.
const LORA_LAYERS_FILE: &str = "measured/h200-lora-layers.json";
/// Setups as people run them, on an H100 (driver 580.159.04, torch 2.11.0+cu130, transformers
/// 5.17.0, peft 0.21.0, bitsandbytes 0.50.2): `measure_memory.py --setups qlora,optim`. QLoRA
/// through peft on an nf4 base with and without `prepare_model_for_kbit_training`, and full bf16
/// fine-tunes with bitsandbytes' AdamW8bit, PagedAdamW and PagedAdamW8bit.
const SETUPS_FILE: &str = "measured/h100-setups.json";
/// MLA in transformers (DeepSeek-V3 cut to 4 layers): prefill and generation at 4k and 16k,
/// `measure_memory.py --only deepseek-v3-l4 --no-train`, same H100 and versions.
const MLA_FILE: &str = "measured/h100-mla-prefill.json";

/// Relative tolerance for weights (issue #5).
const WEIGHTS_TOLERANCE: f64 = 0.005;
/// Relative tolerance for the KV cache (issue #5).
const KV_TOLERANCE: f64 = 0.01;
/// Relative tolerance for prefill and generation peaks (issue #5).
const PEAK_TOLERANCE: f64 = 0.10;
/// Relative tolerance for training peaks (issue #5).
const TRAINING_TOLERANCE: f64 = 0.15;

/// Comparisons the model does not meet yet: (case id, quantity, setting prefix, reason).
/// A row matches when its case and quantity are equal and its setting starts with the prefix.
/// Each reason names the framework behaviour behind the miss (see `core/docs/ACCURACY.md`).
const KNOWN_MISSES: &[(&str, &str, &str, &str)] = &[(
    "gemma-3-1b",
    "weights (allocated)",
    "bf16, memory_allocated after build",
    "allocator residue of the random initialisation, held by no Python-visible tensor (35.9 MiB in both sweeps, 50.4 MiB when built first in a fresh process): not model state, not modelled",
)];

/// One predicted-vs-measured comparison.
#[derive(Debug, Clone)]
struct Row {
    case: String,
    quantity: &'static str,
    setting: String,
    predicted: f64,
    measured: f64,
    tolerance: f64,
}

impl Row {
    fn rel_error(&self) -> f64 {
        if self.measured == 0.0 {
            if self.predicted == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (self.predicted - self.measured) / self.measured
        }
    }

    fn passes(&self) -> bool {
        self.rel_error().abs() <= self.tolerance
    }

    fn known_miss(&self) -> Option<&'static str> {
        KNOWN_MISSES
            .iter()
            .find(|(case, quantity, setting, _)| {
                *case == self.case
                    && *quantity == self.quantity
                    && self.setting.starts_with(setting)
            })
            .map(|(_, _, _, reason)| *reason)
    }
}

const MIB: f64 = 1_048_576.0;

fn load_measured(file: &str) -> Value {
    let path = headroom_tests::data_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("measured record lacks integer `{key}`: {v}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn ok(v: &Value) -> bool {
    s(v, "status") == "ok"
}

fn model_of(id: &str, config: &Value) -> ModelSpec {
    model_from_config_value(id, config)
        .unwrap_or_else(|e| panic!("measured config of {id} does not parse: {e}"))
}

fn request(model: &ModelSpec, batch: u64, context: u64, mode: Mode) -> EstimateRequest {
    let device = devices::find("h200").unwrap_or_else(|e| panic!("device catalog: {e}"));
    let mut req = EstimateRequest::new(model.clone(), WeightFormat::Bf16, device);
    req.runtime = Runtime::TransformersCuda;
    req.kv_dtype = KvDtype::Bf16;
    req.batch = batch;
    req.context = Some(context);
    req.mode = mode;
    req
}

/// Predicted inference peak over the weights: KV cache + activations, for the measured
/// attention kernel and logits setting; `decode`: whether decode steps follow (generation) or
/// only the prefill ran (a plain forward).
fn predicted_inference_peak(
    model: &ModelSpec,
    batch: u64,
    context: u64,
    fused_attention: bool,
    logits_all_positions: bool,
    decode: bool,
) -> f64 {
    let mut req = request(model, batch, context, Mode::Inference);
    req.activation.fused_attention = Some(fused_attention);
    req.activation.logits_all_positions = Some(logits_all_positions);
    req.activation.decode = Some(decode);
    let est = estimate(&req).unwrap_or_else(|e| panic!("estimate for {}: {e}", model.name));
    (est.kv_cache_bytes + est.activation_bytes) as f64
}

/// peft target module names (`q_proj`, ...) as the measurement recorded them.
fn lora_targets(record: &Value) -> Vec<String> {
    record
        .get("lora_targets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The record's `lora_layers` (LoRA on a subset of layers), `None` when absent (every layer).
fn lora_layers(record: &Value) -> Option<Vec<u64>> {
    record.get("lora_layers").map(|v| {
        v.as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .unwrap_or_else(|| panic!("`lora_layers` is not a list of layer indices: {v}"))
    })
}

fn rows() -> Vec<Row> {
    let mut rows = rows_of(&load_measured(MEASURED_FILE), false);
    rows.extend(rows_of(&load_measured(LORA_LAYERS_FILE), true));
    rows.extend(rows_of(&load_measured(SETUPS_FILE), true));
    rows.extend(rows_of(&load_measured(MLA_FILE), false));
    rows
}

/// The comparisons of one measured file; `training_only` skips weights and inference (a file whose
/// build repeats one already compared).
fn rows_of(data: &Value, training_only: bool) -> Vec<Row> {
    let new_tokens = u(&data["meta"], "new_tokens");
    let cases = data["cases"].as_array().expect("`cases` is an array");
    let mut rows = Vec::new();
    for case in cases {
        let id = s(case, "id").to_string();
        let build = &case["build"];
        if case.get("config_used").is_none() || !build.get("params").is_some_and(Value::is_u64) {
            // A case that did not build has nothing to compare; it is listed loudly.
            eprintln!(
                "accuracy: case {id} has no measurements ({})",
                s(case, "status")
            );
            continue;
        }
        let model = model_of(&id, &case["config_used"]);
        let fused = s(case, "attn_implementation") != "eager";
        let row = |quantity, setting: String, predicted: f64, measured: f64, tolerance| Row {
            case: id.clone(),
            quantity,
            setting,
            predicted,
            measured,
            tolerance,
        };

        if training_only {
            training_rows(case, &id, &model, fused, &mut rows);
            continue;
        }
        // Weights.
        rows.push(row(
            "params",
            "all stored".into(),
            param_counts(&model).total as f64,
            u(build, "params") as f64,
            WEIGHTS_TOLERANCE,
        ));
        rows.push(row(
            "weights (parameter bytes)",
            "bf16".into(),
            weights_bytes(&model, &WeightFormat::Bf16) as f64,
            u(build, "param_bytes") as f64,
            WEIGHTS_TOLERANCE,
        ));
        rows.push(row(
            "weights (allocated)",
            "bf16, memory_allocated after build".into(),
            weights_bytes(&model, &WeightFormat::Bf16) as f64,
            u(build, "weights_allocated_bytes") as f64,
            WEIGHTS_TOLERANCE,
        ));

        let attn = if fused { "sdpa" } else { "eager" };
        for r in case["inference"].as_array().into_iter().flatten() {
            if !ok(r) {
                eprintln!("accuracy: {id}: measurement not ok: {r}");
                continue;
            }
            let (b, l) = (u(r, "batch"), u(r, "context"));
            let keep_all = r["logits_to_keep"].as_u64() == Some(0);
            let logits = if keep_all {
                "logits all"
            } else {
                "logits last"
            };
            match s(r, "kind") {
                "prefill" => {
                    if !keep_all {
                        // The cache is the same with either logits setting: compare it once.
                        let kv =
                            kv_cache_bytes(&model, l, b, KvDtype::Bf16, Runtime::TransformersCuda);
                        let cache = &r["cache"];
                        rows.push(row(
                            "kv after prefill (allocated)",
                            format!("b{b} L{l}"),
                            kv.total_bytes as f64,
                            u(cache, "storage_nbytes") as f64,
                            KV_TOLERANCE,
                        ));
                        rows.push(row(
                            "kv kept (window honoured)",
                            format!("b{b} L{l}"),
                            kv.steady_bytes as f64,
                            u(cache, "tensor_nbytes") as f64,
                            KV_TOLERANCE,
                        ));
                    }
                    rows.push(row(
                        "prefill peak",
                        format!("b{b} L{l} {logits} {attn}"),
                        predicted_inference_peak(&model, b, l, fused, keep_all, false),
                        u(r, "peak_over_weights_bytes") as f64,
                        PEAK_TOLERANCE,
                    ));
                }
                "generate" => {
                    let total = l + new_tokens;
                    rows.push(row(
                        "generation peak",
                        format!("b{b} L{l}+{new_tokens} {logits} {attn}"),
                        predicted_inference_peak(&model, b, total, fused, keep_all, true),
                        u(r, "peak_over_weights_bytes") as f64,
                        PEAK_TOLERANCE,
                    ));
                }
                other => panic!("{id}: unknown measurement kind {other}"),
            }
        }
        for r in case["eager_inference"].as_array().into_iter().flatten() {
            if !ok(r) {
                continue;
            }
            let (b, l) = (u(r, "batch"), u(r, "context"));
            rows.push(row(
                "prefill peak",
                format!("b{b} L{l} logits last eager"),
                predicted_inference_peak(&model, b, l, false, false, false),
                u(r, "peak_over_weights_bytes") as f64,
                PEAK_TOLERANCE,
            ));
        }

        training_rows(case, &id, &model, fused, &mut rows);
    }
    rows
}

/// The training comparisons of one measured case.
fn training_rows(case: &Value, id: &str, model: &ModelSpec, fused: bool, rows: &mut Vec<Row>) {
    let row = |quantity, setting: String, predicted: f64, measured: f64, tolerance| Row {
        case: id.to_string(),
        quantity,
        setting,
        predicted,
        measured,
        tolerance,
    };
    {
        // Training: the model it ran on may have fewer layers than the inference one.
        let train_model = match case.get("train_config_used") {
            Some(cfg) if cfg.is_object() => model_of(&format!("{id}-train"), cfg),
            _ => model.clone(),
        };
        for r in case["training"].as_array().into_iter().flatten() {
            if !ok(r) {
                eprintln!(
                    "accuracy: {id}: training measurement not ok: {}",
                    s(r, "label")
                );
                continue;
            }
            let (b, seq) = (u(r, "batch"), u(r, "seq"));
            let gc = r["gradient_checkpointing"].as_bool().unwrap_or(false);
            let label = s(r, "label").to_string();
            if label.starts_with("qlora_plain") {
                // Measured for reference: headroom models QLoRA as peft's recipes run it, with
                // prepare_model_for_kbit_training (the `qlora_kbit` rows).
                eprintln!(
                    "accuracy: {id}: {label} not compared: QLoRA without peft's kbit preparation \
                     is not the setup headroom models (see the qlora_kbit rows)"
                );
                continue;
            }
            let peak_over_base = u(r, "peak_over_base_bytes") as f64;
            let setting = format!("{label} b{b} s{seq}");
            let (mode, measured, compare_total) = if label.starts_with("full_bf16") {
                let optimizer = match r.get("optimizer_key").and_then(Value::as_str) {
                    None => Optimizer::AdamW,
                    Some("adam8bit") => Optimizer::Adam8bit,
                    Some("paged_adamw") => Optimizer::PagedAdamW,
                    Some("paged_adamw8bit") => Optimizer::PagedAdam8bit,
                    Some(other) => panic!("{id}: unknown optimizer_key {other}"),
                };
                let mode = Mode::Full(FullSettings {
                    precision: TrainingPrecision::Bf16,
                    optimizer,
                    gradient_checkpointing: gc,
                });
                (mode, peak_over_base, false)
            } else if label.starts_with("qlora") {
                let mode = Mode::Qlora(LoraSettings {
                    rank: u(r, "lora_rank"),
                    target_modules: lora_targets(r),
                    gradient_checkpointing: gc,
                    layers: None,
                });
                // The step started from the nf4 base (with kbit preparation's fp32 copies) and
                // the adapters: compare the total.
                (
                    mode,
                    peak_over_base + u(r, "base_allocated_bytes") as f64,
                    true,
                )
            } else if label.starts_with("lora") {
                let mode = Mode::Lora(LoraSettings {
                    rank: u(r, "lora_rank"),
                    target_modules: lora_targets(r),
                    gradient_checkpointing: gc,
                    layers: lora_layers(r),
                });
                // The base the step started from already held the fp32 adapters.
                (
                    mode,
                    peak_over_base + u(r, "adapter_allocated_bytes") as f64,
                    false,
                )
            } else if label.starts_with("mixed_bf16") {
                let mode = Mode::Full(FullSettings {
                    precision: TrainingPrecision::Bf16Mixed,
                    optimizer: Optimizer::AdamW,
                    gradient_checkpointing: gc,
                });
                // fp32 weights + autocast: the split between "weights" and "training" differs
                // from a bf16 copy + fp32 master, the total does not: compare totals.
                (
                    mode,
                    peak_over_base + u(r, "fp32_weights_allocated_bytes") as f64,
                    true,
                )
            } else {
                panic!("{id}: unknown training label {label}");
            };
            if let Mode::Lora(settings) = &mode {
                let lp = headroom_core::training::lora_params(&train_model, settings)
                    .unwrap_or_else(|e| panic!("{id}: LoRA targets: {e}"));
                rows.push(row(
                    "lora trainable params",
                    setting.clone(),
                    lp.trainable_params as f64,
                    u(r, "trainable_params") as f64,
                    WEIGHTS_TOLERANCE,
                ));
            }
            let mut req = request(&train_model, b, seq, mode);
            req.activation.fused_attention = Some(fused);
            let est = estimate(&req).unwrap_or_else(|e| panic!("estimate {id} {label}: {e}"));
            let predicted = if compare_total {
                (est.weights_bytes + est.training_bytes) as f64
            } else {
                est.training_bytes as f64
            };
            rows.push(row(
                if compare_total {
                    "training peak (total)"
                } else {
                    "training peak over weights"
                },
                setting,
                predicted,
                measured,
                TRAINING_TOLERANCE,
            ));
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| case | quantity | setting | predicted | measured | unit | error | tolerance | status |\n\
         |---|---|---|---:|---:|---|---:|---:|---|\n",
    );
    for r in rows {
        // Counts in millions, bytes in MiB.
        let (scale, unit) = if r.quantity.contains("params") {
            (1e6, "M")
        } else {
            (MIB, "MiB")
        };
        let status = match (r.passes(), r.known_miss()) {
            (true, None) => "ok".to_string(),
            (true, Some(_)) => "ok (listed as known miss: remove it)".to_string(),
            (false, Some(reason)) => format!("known miss: {reason}"),
            (false, None) => "FAIL".to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {} | {:+.2}% | {:.1}% | {} |\n",
            r.case,
            r.quantity,
            r.setting,
            r.predicted / scale,
            r.measured / scale,
            unit,
            100.0 * r.rel_error(),
            100.0 * r.tolerance,
            status
        ));
    }
    out
}

#[test]
fn measured_fixture_covers_the_issue() {
    // At least 8 architectures, three (batch, context) pairs, both logits settings, training with
    // and without checkpointing and LoRA: the fixture must keep covering what issue #5 asks.
    let rows = rows();
    let mut cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    cases.sort_unstable();
    cases.dedup();
    assert!(
        cases.len() >= 8,
        "only {} measured architectures",
        cases.len()
    );
    let pairs: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.quantity == "kv after prefill (allocated)")
        .map(|r| r.setting.as_str())
        .collect();
    assert!(
        pairs.len() >= 3,
        "only {} (batch, context) pairs",
        pairs.len()
    );
    for q in [
        "generation peak",
        "training peak over weights",
        "training peak (total)",
    ] {
        assert!(rows.iter().any(|r| r.quantity == q), "no `{q}` rows");
    }
    assert!(rows.iter().any(|r| r.setting.contains("logits all")));
    assert!(rows.iter().any(|r| r.setting.contains("eager")));
    assert!(rows.iter().any(|r| r.setting.starts_with("lora_gc")));
    // LoRA on a subset of layers, with and without checkpointing.
    assert!(rows.iter().any(|r| r.setting.starts_with("lora_last4 ")));
    assert!(rows.iter().any(|r| r.setting.starts_with("lora_last4_gc")));
    assert!(
        rows.iter()
            .any(|r| r.setting.starts_with("full_bf16_adamw_gc"))
    );
}

#[test]
fn measured_cases_within_tolerance() {
    let rows = rows();
    eprintln!("{}", table(&rows));
    let failures: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.passes() && r.known_miss().is_none())
        .collect();
    let known: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.passes() && r.known_miss().is_some())
        .collect();
    if !known.is_empty() {
        eprintln!(
            "accuracy: {} known misses (KNOWN_MISSES, core/docs/ACCURACY.md) not asserted here; \
             `cargo test -p headroom-tests -- --ignored known_misses` checks them",
            known.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} comparisons outside tolerance:\n{}",
        failures.len(),
        rows.len(),
        table(&failures.into_iter().cloned().collect::<Vec<_>>())
    );
}

#[test]
#[ignore = "known misses (KNOWN_MISSES): the model does not reach these yet, see core/docs/ACCURACY.md"]
fn known_misses_within_tolerance() {
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| r.known_miss().is_some())
        .collect();
    let failing: Vec<Row> = rows.iter().filter(|r| !r.passes()).cloned().collect();
    assert!(
        failing.is_empty(),
        "known misses still outside tolerance:\n{}",
        table(&failing)
    );
}

#[test]
fn known_misses_name_real_rows() {
    // Every allow-list entry must match at least one comparison, so a renamed case or setting
    // cannot leave a stale entry that silences nothing (or something else).
    let rows = rows();
    for (case, quantity, setting, _) in KNOWN_MISSES {
        assert!(
            rows.iter().any(|r| r.case == *case
                && r.quantity == *quantity
                && r.setting.starts_with(setting)),
            "KNOWN_MISSES entry ({case}, {quantity}, {setting}) matches no comparison"
        );
    }
}

#[test]
#[ignore = "prints the predicted-vs-measured table for core/docs/ACCURACY.md; run with --ignored --nocapture"]
fn print_accuracy_table() {
    println!("{}", table(&rows()));
}
