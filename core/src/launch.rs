//! The launch command: how to run what an answer estimated, in the engine it was estimated for.
//!
//! Built from the resolved [`EstimateRequest`] so every flag is one that produced the estimate:
//! the context (`-c`, `--max-model-len`, `--max-kv-size`, `max_length`), the batch (parallel
//! slots, `--max-num-seqs`, the training batch), the KV cache type, the devices a model is split
//! over, the weight format (GGUF type, `--quantization`, `BitsAndBytesConfig`, MLX bits) and the
//! training settings (peft `LoraConfig`, TRL `SFTConfig`).

use serde::{Deserialize, Serialize};

use crate::{
    estimate::EstimateRequest,
    kv_cache::KvDtype,
    llama_cpp::{LLAMA_SERVER_N_BATCH, LlamaCppSettings},
    offload::{OffloadPlan, SplitKind},
    quant::WeightFormat,
    runtime::Runtime,
    training::{LoraSettings, Mode, Optimizer, TrainingPrecision},
};

/// What the command runs: the Hugging Face id (catalog models, Hub ids), or a local file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// A Hugging Face id (`meta-llama/Llama-3.1-8B`) or a local path (a folder, a `.gguf` file)
    /// as the engine takes it.
    pub path: String,
    /// True when `path` is a `.gguf` file itself (llama.cpp loads it as is).
    pub is_gguf_file: bool,
}

impl ModelRef {
    /// The catalog entry's Hub id when `name` is a catalog id, else `name` itself (a Hub id or
    /// a path as the question named it).
    pub fn for_model_name(name: &str) -> ModelRef {
        let path = crate::model_catalog::find_entry(name)
            .map(|e| e.hub_id.clone())
            .unwrap_or_else(|_| name.to_string());
        ModelRef {
            is_gguf_file: path.to_ascii_lowercase().ends_with(".gguf"),
            path,
        }
    }

    /// The last part of the path, for derived file names (`Llama-3.1-8B`).
    fn short_name(&self) -> &str {
        let trimmed = self.path.trim_end_matches('/');
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    }
}

/// The command that reproduces an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchCommand {
    /// The runtime it is for, e.g. `llama.cpp`.
    pub runtime: String,
    /// The command line (or, for transformers, the Python settings), one step per line.
    pub command: String,
    /// What the command assumes that is not in it (where the file comes from, ...).
    pub notes: Vec<String>,
}

/// llama.cpp's `-ngl` value that puts every layer on the GPU (any number at or above the layer
/// count does; llama.cpp's own examples use 99).
const LLAMA_CPP_ALL_LAYERS: u32 = 99;

/// The command that runs `req` with the weights of `model`.
pub fn launch_command(req: &EstimateRequest, model: &ModelRef) -> LaunchCommand {
    let mut notes = Vec::new();
    let context = req.context_tokens();
    let command = match req.runtime {
        _ if req.mode.is_training() => training_lines(req, model, &mut notes),
        Runtime::LlamaCpp => llama_cpp_line(req, model, context, &mut notes),
        Runtime::Vllm {
            gpu_memory_utilization,
        } => vllm_line(req, model, context, gpu_memory_utilization),
        Runtime::Mlx => mlx_lines(req, model, context, &mut notes),
        Runtime::TransformersCuda | Runtime::TransformersMps => {
            transformers_inference_lines(req, model, context, &mut notes)
        }
    };
    LaunchCommand {
        runtime: req.runtime.to_string(),
        command,
        notes,
    }
}

fn llama_cpp_line(
    req: &EstimateRequest,
    model: &ModelRef,
    context: u64,
    notes: &mut Vec<String>,
) -> String {
    let file = if model.is_gguf_file {
        model.path.clone()
    } else {
        notes.push(format!(
            "{}-{}.gguf: a GGUF of {} in {} (a published one, or convert_hf_to_gguf.py then \
             llama-quantize)",
            model.short_name(),
            req.format,
            model.path,
            req.format
        ));
        format!("{}-{}.gguf", model.short_name(), req.format)
    };
    let kv = match req.kv_dtype {
        KvDtype::Bf16 => "bf16",
        KvDtype::Q8_0 => "q8_0",
        KvDtype::Q4_0 => "q4_0",
        // fp8 is a vLLM cache type; validate() refuses it for llama.cpp.
        KvDtype::F16 | KvDtype::Fp8 => "f16",
    };
    // `-c` is the context of all parallel slots together: each of `-np` slots gets c / np.
    let total_context = context.saturating_mul(req.batch.max(1));
    let settings = &req.llama_cpp;
    let mut line = format!(
        "llama-server -m {} -c {total_context} -ngl {LLAMA_CPP_ALL_LAYERS} -fa {} -ctk {kv} \
         -ctv {kv}",
        quote(&file),
        if settings.flash_attn { "on" } else { "off" }
    );
    if settings.n_ubatch != LlamaCppSettings::default().n_ubatch {
        // A micro-batch beyond the logical batch (-b, 2048) is cut down to it: raise both.
        if settings.n_ubatch > LLAMA_SERVER_N_BATCH {
            line.push_str(&format!(" -b {}", settings.n_ubatch));
        }
        line.push_str(&format!(" -ub {}", settings.n_ubatch));
    }
    if req.batch > 1 {
        line.push_str(&format!(" -np {}", req.batch));
        // An explicit -np leaves the unified cache off unless asked for.
        if settings.kv_unified {
            line.push_str(" --kv-unified");
        }
    }
    if req.device_count > 1 {
        line.push_str(" --split-mode layer");
    }
    line
}

fn vllm_line(req: &EstimateRequest, model: &ModelRef, context: u64, share: f64) -> String {
    let mut line = format!(
        "vllm serve {} --max-model-len {context} --gpu-memory-utilization {share} \
         --tensor-parallel-size {} --max-num-seqs {}",
        quote(&model.path),
        req.device_count.max(1),
        req.batch.max(1)
    );
    line.push_str(match req.kv_dtype {
        KvDtype::Fp8 => " --kv-cache-dtype fp8",
        _ => " --kv-cache-dtype auto",
    });
    match &req.format {
        WeightFormat::F32 => line.push_str(" --dtype float32"),
        WeightFormat::F16 => line.push_str(" --dtype float16"),
        WeightFormat::Bf16 => line.push_str(" --dtype bfloat16"),
        WeightFormat::Fp8 => line.push_str(" --quantization fp8"),
        WeightFormat::Gptq { .. } => line.push_str(" --quantization gptq"),
        WeightFormat::Awq { .. } => line.push_str(" --quantization awq"),
        WeightFormat::BnbInt8 | WeightFormat::BnbNf4 { .. } | WeightFormat::BnbFp4 { .. } => {
            line.push_str(" --quantization bitsandbytes")
        }
        _ => {}
    }
    line
}

fn mlx_lines(
    req: &EstimateRequest,
    model: &ModelRef,
    context: u64,
    notes: &mut Vec<String>,
) -> String {
    let mut lines = Vec::new();
    let weights = match req.format {
        WeightFormat::Mlx { bits, group_size } => {
            let out = format!("{}-{bits}bit", model.short_name());
            lines.push(format!(
                "mlx_lm.convert --hf-path {} -q --q-bits {bits} --q-group-size {group_size} \
                 --mlx-path {}",
                quote(&model.path),
                quote(&out)
            ));
            out
        }
        _ => model.path.clone(),
    };
    lines.push(format!(
        "mlx_lm.generate --model {} --max-kv-size {context} --prompt \"...\"",
        quote(&weights)
    ));
    if req.batch > 1 {
        notes.push(format!(
            "batch {}: mlx_lm.generate runs one sequence; batch_generate from mlx_lm's Python API \
             runs several",
            req.batch
        ));
    }
    lines.join("\n")
}

/// `dtype=...` and `quantization_config=...` arguments of `from_pretrained` for `format`.
fn from_pretrained_args(format: &WeightFormat) -> String {
    match format {
        WeightFormat::F32 => "dtype=torch.float32".into(),
        WeightFormat::F16 => "dtype=torch.float16".into(),
        WeightFormat::BnbInt8 => "quantization_config=BitsAndBytesConfig(load_in_8bit=True)".into(),
        WeightFormat::BnbNf4 { double_quant } | WeightFormat::BnbFp4 { double_quant } => {
            let kind = if matches!(format, WeightFormat::BnbNf4 { .. }) {
                "nf4"
            } else {
                "fp4"
            };
            format!(
                "quantization_config=BitsAndBytesConfig(load_in_4bit=True, \
                 bnb_4bit_quant_type=\"{kind}\", bnb_4bit_use_double_quant={}, \
                 bnb_4bit_compute_dtype=torch.bfloat16)",
                py_bool(*double_quant)
            )
        }
        // bf16, fp8, GPTQ/AWQ/MXFP4 checkpoints: the checkpoint's own config says how it is
        // stored; compute in bf16.
        _ => "dtype=torch.bfloat16".into(),
    }
}

fn transformers_inference_lines(
    req: &EstimateRequest,
    model: &ModelRef,
    context: u64,
    notes: &mut Vec<String>,
) -> String {
    let device_map = if req.runtime == Runtime::TransformersMps {
        "\"mps\""
    } else {
        "\"auto\""
    };
    if matches!(
        req.format,
        WeightFormat::Gptq { .. } | WeightFormat::Awq { .. } | WeightFormat::Fp8
    ) {
        notes.push(format!(
            "{}: load a checkpoint published in that format (its config.json carries the \
             quantization_config)",
            req.format
        ));
    }
    [
        "import torch".to_string(),
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig".to_string(),
        format!(
            "model = AutoModelForCausalLM.from_pretrained({}, {}, device_map={device_map}, \
             attn_implementation=\"sdpa\")",
            py_str(&model.path),
            from_pretrained_args(&req.format)
        ),
        format!(
            "# prompt + generated tokens ≤ {context}, {} sequence(s) per generate() call",
            req.batch
        ),
    ]
    .join("\n")
}

/// peft's module names for headroom's LoRA target roles.
fn peft_module(role: &str) -> String {
    match role {
        "q" | "k" | "v" | "o" | "gate" | "up" | "down" | "qkv" | "gate_up" | "q_a" | "q_b"
        | "kv_b" => format!("{role}_proj"),
        "kv_a" => "kv_a_proj_with_mqa".into(),
        other => other.into(),
    }
}

fn lora_config(l: &LoraSettings) -> String {
    let targets = if l.target_modules.iter().any(|t| t == "all-linear") {
        py_str("all-linear")
    } else {
        let names: Vec<String> = l
            .target_modules
            .iter()
            .map(|t| py_str(&peft_module(t)))
            .collect();
        format!("[{}]", names.join(", "))
    };
    let layers = l
        .layers
        .as_ref()
        .map(|ls| {
            let each: Vec<String> = ls.iter().map(u64::to_string).collect();
            format!(", layers_to_transform=[{}]", each.join(", "))
        })
        .unwrap_or_default();
    // lora_alpha = 2r is the common recipe; it does not change memory.
    format!(
        "peft_config = LoraConfig(r={}, lora_alpha={}, target_modules={targets}{layers}, \
         task_type=\"CAUSAL_LM\")",
        l.rank,
        l.rank * 2
    )
}

fn training_lines(req: &EstimateRequest, model: &ModelRef, notes: &mut Vec<String>) -> String {
    let context = req.context_tokens();
    let device_map = if req.runtime == Runtime::TransformersMps {
        "\"mps\""
    } else {
        "\"auto\""
    };
    let mut lines = vec![
        "import torch".to_string(),
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig".to_string(),
        "from peft import LoraConfig".to_string(),
        "from trl import SFTConfig, SFTTrainer".to_string(),
    ];
    let (load_format, checkpointing, optim, bf16) = match &req.mode {
        Mode::Qlora(l) => (
            crate::estimate::qlora_base_format(&req.format),
            l.gradient_checkpointing,
            "adamw_torch",
            true,
        ),
        Mode::Lora(l) => (
            req.format.clone(),
            l.gradient_checkpointing,
            "adamw_torch",
            true,
        ),
        Mode::Full(f) => (
            match f.precision {
                TrainingPrecision::Fp32 => WeightFormat::F32,
                TrainingPrecision::Bf16Mixed | TrainingPrecision::Bf16 => req.format.clone(),
            },
            f.gradient_checkpointing,
            match f.optimizer {
                Optimizer::AdamW => "adamw_torch",
                Optimizer::Adam8bit => "adamw_bnb_8bit",
                Optimizer::PagedAdamW => "paged_adamw_32bit",
                Optimizer::PagedAdam8bit => "paged_adamw_8bit",
                Optimizer::Sgd => "sgd",
            },
            f.precision != TrainingPrecision::Fp32,
        ),
        Mode::Inference => (req.format.clone(), false, "adamw_torch", true),
    };
    lines.push(format!(
        "model = AutoModelForCausalLM.from_pretrained({}, {}, device_map={device_map})",
        py_str(&model.path),
        from_pretrained_args(&load_format)
    ));
    let peft = match &req.mode {
        Mode::Lora(l) | Mode::Qlora(l) => {
            lines.push(lora_config(l));
            ", peft_config=peft_config"
        }
        _ => "",
    };
    lines.push(format!(
        "args = SFTConfig(per_device_train_batch_size={}, max_length={context}, \
         gradient_checkpointing={}, bf16={}, optim=\"{optim}\", output_dir=\"out\")",
        req.batch,
        py_bool(checkpointing),
        py_bool(bf16)
    ));
    lines.push(format!(
        "SFTTrainer(model=model, args=args, train_dataset=dataset{peft}).train()"
    ));
    if req.device_count > 1 {
        notes.push(format!(
            "{} devices: the estimate splits the model evenly (device_map=\"auto\" spreads the \
             layers)",
            req.device_count
        ));
    }
    lines.join("\n")
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// A Python string literal.
fn py_str(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `text` as one shell word: as is when it holds only safe characters, else single-quoted.
pub(crate) fn quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+@%,".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `launch` with the offload split of `plan` applied: llama.cpp's `-ngl` becomes the split's
/// layer count, or `--n-cpu-moe N` joins it; for transformers a note gives accelerate's
/// `max_memory`, which decides how many layers stay on the GPU.
pub fn with_offload(mut launch: LaunchCommand, plan: Option<&OffloadPlan>) -> LaunchCommand {
    let Some(plan) = plan else {
        return launch;
    };
    let all = format!("-ngl {LLAMA_CPP_ALL_LAYERS}");
    match plan.chosen.split {
        SplitKind::GpuLayers { n_gpu_layers } => {
            launch.command = launch
                .command
                .replace(&all, &format!("-ngl {n_gpu_layers}"));
        }
        SplitKind::CpuMoe { n_cpu_moe } if n_cpu_moe > 0 => {
            launch.command = launch
                .command
                .replace(&all, &format!("{all} --n-cpu-moe {n_cpu_moe}"));
        }
        SplitKind::CpuMoe { .. } => {}
        SplitKind::DeviceMap { gpu_decoder_layers } => launch.notes.push(format!(
            "offload: device_map=\"auto\" with max_memory={{0: \"{}GiB\", \"cpu\": \"{}GiB\"}} \
             keeps the first {gpu_decoder_layers} layers on the GPU and the rest in host memory",
            plan.chosen.gpu_capacity_bytes / crate::units::GIB,
            plan.chosen.host_capacity_bytes / crate::units::GIB
        )),
    }
    launch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{devices, model_catalog};

    fn req(model: &str, device: &str, format: &str) -> EstimateRequest {
        let m = model_catalog::find(model).unwrap_or_else(|e| panic!("{e}"));
        let f: WeightFormat = format.parse().unwrap_or_else(|e| panic!("{e}"));
        let d = devices::find(device).unwrap_or_else(|e| panic!("{e}"));
        EstimateRequest::new(m, f, d)
    }

    #[test]
    fn llama_cpp_carries_context_layers_and_cache_type() {
        let mut r = req("llama-3.1-8b", "rtx-4090", "Q4_K_M");
        r.context = Some(8192);
        r.batch = 2;
        r.kv_dtype = KvDtype::Q8_0;
        let c = launch_command(&r, &ModelRef::for_model_name("llama-3.1-8b"));
        assert_eq!(c.runtime, "llama.cpp");
        assert_eq!(
            c.command,
            "llama-server -m Llama-3.1-8B-Q4_K_M.gguf -c 16384 -ngl 99 -fa on -ctk q8_0 -ctv q8_0 \
             -np 2 --kv-unified"
        );
        // The llama.cpp settings reach the command: flash attention off, a micro-batch beyond
        // the logical batch (both raised), one cache per sequence.
        r.kv_dtype = KvDtype::F16;
        r.llama_cpp = crate::llama_cpp::LlamaCppSettings {
            flash_attn: false,
            n_ubatch: 4096,
            kv_unified: false,
        };
        let c = launch_command(&r, &ModelRef::for_model_name("llama-3.1-8b"));
        assert_eq!(
            c.command,
            "llama-server -m Llama-3.1-8B-Q4_K_M.gguf -c 16384 -ngl 99 -fa off -ctk f16 -ctv f16 \
             -b 4096 -ub 4096 -np 2"
        );
        assert!(
            c.notes[0].contains("meta-llama/Llama-3.1-8B"),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn vllm_carries_share_parallelism_and_kv_type() {
        let mut r = req("llama-3.1-70b", "h100-sxm", "fp8");
        r.runtime = Runtime::Vllm {
            gpu_memory_utilization: 0.85,
        };
        r.kv_dtype = KvDtype::Fp8;
        r.device_count = 2;
        r.context = Some(32_768);
        let c = launch_command(&r, &ModelRef::for_model_name("llama-3.1-70b"));
        assert!(
            c.command
                .starts_with("vllm serve meta-llama/Llama-3.1-70B ")
        );
        for part in [
            "--max-model-len 32768",
            "--gpu-memory-utilization 0.85",
            "--tensor-parallel-size 2",
            "--kv-cache-dtype fp8",
            "--quantization fp8",
        ] {
            assert!(c.command.contains(part), "{part} in {}", c.command);
        }
    }

    #[test]
    fn mlx_quantizes_then_limits_the_cache() {
        let r = req("qwen3-8b", "m2-10c-16gb", "mlx-4bit");
        let c = launch_command(&r, &ModelRef::for_model_name("qwen3-8b"));
        assert_eq!(c.runtime, "mlx");
        assert!(
            c.command.contains("--q-bits 4 --q-group-size 64"),
            "{}",
            c.command
        );
        assert!(c.command.contains("--max-kv-size 4096"), "{}", c.command);
    }

    #[test]
    fn qlora_is_bitsandbytes_with_peft_and_trl_settings() {
        let mut r = req("llama-3.1-8b", "rtx-4090", "nf4+dq");
        r.runtime = Runtime::TransformersCuda;
        r.mode = Mode::Qlora(LoraSettings {
            rank: 32,
            target_modules: vec!["q".into(), "v".into()],
            gradient_checkpointing: true,
            layers: Some(vec![30, 31]),
        });
        r.batch = 4;
        r.context = Some(2048);
        let c = launch_command(&r, &ModelRef::for_model_name("llama-3.1-8b"));
        for part in [
            "load_in_4bit=True",
            "bnb_4bit_quant_type=\"nf4\"",
            "bnb_4bit_use_double_quant=True",
            "LoraConfig(r=32,",
            "target_modules=[\"q_proj\", \"v_proj\"]",
            "layers_to_transform=[30, 31]",
            "per_device_train_batch_size=4",
            "max_length=2048",
            "gradient_checkpointing=True",
        ] {
            assert!(c.command.contains(part), "{part} in {}", c.command);
        }
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        let r = req("llama-3.1-8b", "rtx-4090", "Q4_K_M");
        let c = launch_command(
            &r,
            &ModelRef {
                path: "/models/my model.gguf".into(),
                is_gguf_file: true,
            },
        );
        assert!(
            c.command.contains("-m '/models/my model.gguf'"),
            "{}",
            c.command
        );
        assert!(c.notes.is_empty());
    }
}
