//! Timing and result dump for the calculator's whole recompute (main estimate, every-format table,
//! best format, longest context), natively.
//!
//! `cargo run --release -p headroom-core --example perf -- bench` prints µs per estimate and per
//! whole recompute for several catalog models, then the time to rank every catalog model for one
//! device (budget: under 50 ms) and to build the practical-limits table (`... -- rank`: only
//! those); `... -- dump FILE` writes every estimate (every
//! catalog model × a few devices × every format × 2 contexts, plus longest context and best
//! format) as JSON, to compare results before and after a change byte for byte; `... -- cold`
//! times a change of model (nothing remembered) for every catalog model; `... -- parts` times
//! the named tensor list and per-tensor storage; `... -- dump-weights FILE` writes the weight
//! totals of every catalog model in every format the rules know, with each tensor's GGUF type.

use std::time::Instant;

use headroom_core::{
    advice::{best_format, longest_context, request_for_format},
    answer::{ContextAsk, Question, answer},
    devices,
    estimate::{EstimateRequest, estimate},
    model_catalog,
    quant::WeightFormat,
};

/// Devices the dump covers: a discrete consumer GPU, a datacenter GPU, Apple unified memory.
const DUMP_DEVICES: &[&str] = &["rtx-4090", "h100-sxm", "m2-max-38c-96gb"];
/// Contexts the dump covers (`None`: the model's default).
const DUMP_CONTEXTS: &[Option<u64>] = &[None, Some(32_768)];
/// Models timed by `bench`.
const BENCH_MODELS: &[&str] = &[
    "llama-3.1-8b",
    "qwen3-30b-a3b",
    "deepseek-v3",
    "gemma-3-27b",
];

fn request_for(req: &EstimateRequest, format: &WeightFormat) -> EstimateRequest {
    request_for_format(req, None, format)
}

/// What the calculator and `headroom fit` do on one change: core's whole answer for the
/// question `req` stands for. Returns the number of formats estimated.
fn whole_recompute(req: &EstimateRequest) -> usize {
    let q = Question {
        format: Some(req.format.clone()),
        context: req.context.map_or(ContextAsk::Default, ContextAsk::Tokens),
        batch: req.batch,
        mode: req.mode.clone(),
        runtime: Some(req.runtime),
        kv_dtype: Some(req.kv_dtype),
        device_count: req.device_count,
        ..Question::new(req.model.clone(), req.device.clone())
    };
    answer(&q).map_or(0, |a| {
        a.formats.iter().filter(|r| r.estimate().is_some()).count()
    })
}

fn device(name: &str) -> headroom_core::devices::DeviceSpec {
    devices::find(name).unwrap_or_else(|e| panic!("device {name}: {e}"))
}

fn dump(path: &str) {
    let mut out = Vec::new();
    for entry in model_catalog::entries() {
        let model = entry
            .model()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.id));
        for d in DUMP_DEVICES {
            let dev = device(d);
            for ctx in DUMP_CONTEXTS {
                let base = EstimateRequest::new(
                    model.clone(),
                    WeightFormat::default_for(&model),
                    dev.clone(),
                );
                let mut base = base;
                base.context = *ctx;
                for f in WeightFormat::all() {
                    let r = request_for(&base, &f);
                    let e = estimate(&r).map_err(|e| e.to_string());
                    out.push(serde_json::json!({"model": entry.id, "device": d, "context": ctx, "format": f.to_string(), "estimate": e}));
                }
                let lc = longest_context(&base).map_err(|e| e.to_string());
                let bf = best_format(&base, None).map_err(|e| e.to_string());
                out.push(serde_json::json!({"model": entry.id, "device": d, "context": ctx, "longest_context": lc, "best_format": bf}));
            }
        }
    }
    let text = serde_json::to_string_pretty(&out).expect("serializable");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
    println!("wrote {} records to {path}", out.len());
}

/// Every format the weight rules know beyond [`WeightFormat::all`]: every llama.cpp file type,
/// every pure GGUF block type, and the other bit widths and group sizes of GPTQ, AWQ, MLX and
/// bitsandbytes.
fn every_weight_format() -> Vec<WeightFormat> {
    use headroom_core::gguf::{GgmlType, LlamaFileType};
    let mut formats: Vec<WeightFormat> = LlamaFileType::ALL
        .iter()
        .map(|f| WeightFormat::Gguf(*f))
        .collect();
    formats.extend(
        GgmlType::ALL
            .iter()
            .filter(|t| t.is_quantized())
            .map(|t| WeightFormat::GgufPure(*t)),
    );
    for name in [
        "fp32",
        "fp16",
        "bf16",
        "fp8",
        "int8",
        "nf4",
        "nf4+dq",
        "fp4",
        "fp4+dq",
        "mxfp4",
        "gptq-2bit-g32",
        "gptq-3bit-g64",
        "gptq-4bit-g128",
        "gptq-8bit-g128",
        "awq-4bit-g64",
        "mlx-2bit-g32",
        "mlx-3bit-g64",
        "mlx-4bit-g64",
        "mlx-5bit-g128",
        "mlx-6bit-g64",
        "mlx-8bit-g64",
    ] {
        formats.push(
            name.parse()
                .unwrap_or_else(|e| panic!("format {name}: {e}")),
        );
    }
    formats
}

/// Writes, for every catalog model and every format of [`every_weight_format`], the weight
/// totals and (GGUF file types) the type of each tensor, to compare builds byte for byte.
fn dump_weights(path: &str) {
    let mut out = Vec::new();
    for entry in model_catalog::entries() {
        let model = entry
            .model()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.id));
        let params = headroom_core::params::param_counts(&model);
        out.push(serde_json::json!({"model": entry.id, "params": params}));
        for f in every_weight_format() {
            let totals = headroom_core::quant::weight_totals(&model, &f);
            let types: Vec<String> = match &f {
                WeightFormat::Gguf(ft) => headroom_core::gguf::file_tensor_types(&model, *ft)
                    .into_iter()
                    .map(|(t, g)| format!("{} {}", t.name, g.name()))
                    .collect(),
                _ => Vec::new(),
            };
            out.push(serde_json::json!({"model": entry.id, "format": f.to_string(), "totals": totals, "types": types}));
        }
    }
    let text = serde_json::to_string_pretty(&out).expect("serializable");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
    println!("wrote {} records to {path}", out.len());
}

fn bench() {
    let dev = device("rtx-4090");
    for id in BENCH_MODELS {
        let model = model_catalog::find(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        let mut req = EstimateRequest::new(
            model.clone(),
            WeightFormat::default_for(&model),
            dev.clone(),
        );
        // HEADROOM_PERF_MODE=lora|qlora|full times the calculator in a training mode.
        if let Ok(mode) = std::env::var("HEADROOM_PERF_MODE") {
            req.mode = mode
                .parse()
                .unwrap_or_else(|e| panic!("HEADROOM_PERF_MODE: {e}"));
        }
        // Warm up, then time single estimates at changing contexts (as the calculator sees them).
        let _ = whole_recompute(&req);
        let n = 200u64;
        let t = Instant::now();
        for i in 0..n {
            let mut r = req.clone();
            r.context = Some(1024 + i);
            let _ = std::hint::black_box(estimate(&r));
        }
        let per_estimate_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let reps = 5;
        let mut times = Vec::new();
        let mut count = 0;
        for i in 0..reps {
            let mut r = req.clone();
            // A change: a new context each time.
            r.context = Some(2048 + i);
            let t = Instant::now();
            count = whole_recompute(&r);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        // A change of model: nothing remembered yet (a fresh thread has empty per-thread caches).
        let mut cold = Vec::new();
        for _ in 0..reps {
            let r = req.clone();
            cold.push(
                std::thread::spawn(move || {
                    let t = Instant::now();
                    let _ = whole_recompute(&r);
                    t.elapsed().as_secs_f64() * 1e3
                })
                .join()
                .expect("timing thread"),
            );
        }
        cold.sort_by(f64::total_cmp);
        println!(
            "{id:16} estimate {per_estimate_us:8.1} µs   whole recompute ({count} calls) median {:.2} ms (min {:.2}, max {:.2}); new model: median {:.2} ms",
            times[reps as usize / 2],
            times[0],
            times[reps as usize - 1],
            cold[reps as usize / 2]
        );
    }
}

/// Devices `bench` ranks the whole catalog for: a small and a large discrete GPU, a Mac.
const RANK_DEVICES: &[&str] = &["rtx-4060", "rtx-4090", "h200", "m2-max-38c-96gb"];

/// The ranking of every catalog model for one device (`headroom models --fits`, the site's
/// "What can I run?"), each from nothing remembered, and the practical-limits table.
fn bench_rankings() {
    use headroom_core::ranking::{RankRequest, practical_limits, rank_models};
    for name in RANK_DEVICES {
        let dev = device(name);
        let reps = 5;
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..reps {
            let t = Instant::now();
            let r = rank_models(&RankRequest::new(dev.clone()))
                .unwrap_or_else(|e| panic!("ranking for {name}: {e}"));
            times.push(t.elapsed().as_secs_f64() * 1e3);
            count = r.models.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "rank catalog for {name:16} ({} models, {count} fit) median {:.2} ms (min {:.2}, max {:.2})",
            model_catalog::entries().len(),
            times[reps / 2],
            times[0],
            times[reps - 1]
        );
    }
    let t = Instant::now();
    let limits = practical_limits(devices::catalog()).unwrap_or_else(|e| panic!("limits: {e}"));
    println!(
        "practical limits, {} devices × {} models × 2 formats: {:.2} ms",
        limits.len(),
        model_catalog::entries().len(),
        t.elapsed().as_secs_f64() * 1e3
    );
}

/// Where a new model's time goes: the tensor list, and the per-tensor storage of a few formats.
fn parts() {
    for id in BENCH_MODELS {
        let model = model_catalog::find(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        let n = 50;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(headroom_core::tensors::tensors(&model));
        }
        let list_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let mut line = format!("{id:16} tensors() {list_us:7.1} µs");
        for f in ["bf16", "Q4_K_M", "gptq-4bit-g128", "nf4"] {
            let Ok(format) = f.parse::<WeightFormat>() else {
                continue;
            };
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(headroom_core::quant::tensor_formats(&model, &format));
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            line.push_str(&format!("  {f} {us:7.1} µs"));
        }
        println!("{line}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("parts") => parts(),
        Some("cold") => cold(),
        Some("dump") => dump(args.get(2).map_or("target/perf.json", String::as_str)),
        Some("dump-weights") => dump_weights(
            args.get(2)
                .map_or("target/perf-weights.json", String::as_str),
        ),
        Some("rank") => bench_rankings(),
        _ => {
            bench();
            bench_rankings();
        }
    }
}

/// Where a change of model's time goes, cold (fresh thread, nothing remembered), for every catalog
/// model: parameter counts (which group the tensors), each format's weight totals, then the rest
/// of the whole recompute with those remembered. Slowest last.
fn cold() {
    let dev = device("rtx-4090");
    let mut lines = Vec::new();
    for entry in model_catalog::entries() {
        let model = entry
            .model()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.id));
        let tensors = headroom_core::tensors::tensors(&model).len();
        let dev = dev.clone();
        let id = entry.id.clone();
        let (total_us, line) = std::thread::spawn(move || {
            let req = EstimateRequest::new(model.clone(), WeightFormat::default_for(&model), dev);
            let start = Instant::now();
            let _ = std::hint::black_box(headroom_core::params::param_counts(&model));
            let params_us = start.elapsed().as_secs_f64() * 1e6;
            let t = Instant::now();
            for f in WeightFormat::all() {
                let _ = std::hint::black_box(headroom_core::quant::weight_totals(&model, &f));
            }
            let totals_us = t.elapsed().as_secs_f64() * 1e6;
            let t = Instant::now();
            let _ = whole_recompute(&req);
            let rest_us = t.elapsed().as_secs_f64() * 1e6;
            let total_us = start.elapsed().as_secs_f64() * 1e6;
            (
                total_us,
                format!(
                    "{id:24} {tensors:5} tensors  cold recompute {total_us:7.1} µs = param_counts {params_us:6.1} + weight_totals × {} {totals_us:6.1} + rest {rest_us:6.1}",
                    WeightFormat::all().len()
                ),
            )
        })
        .join()
        .expect("timing thread");
        lines.push((total_us, line));
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, line) in lines {
        println!("{line}");
    }
}
