//! Serving: how many users (concurrent sequences, each at the question's context) a server holds,
//! and how fast each of them and all of them together decode.
//!
//! * **vLLM** takes `gpu_memory_utilization` × GPU memory, loads the weights, profiles one
//!   forward pass (activations), captures CUDA graphs, and turns what is left into a paged KV
//!   pool of 16-token blocks. A user at context `c` holds `⌈c / 16⌉` blocks, so the pool holds
//!   `⌊pool ÷ (blocks × block bytes)⌋` users, at most `max_num_seqs` (256) at once.
//! * **llama.cpp** (`llama-server -np N -c N·c --kv-unified`) allocates `n_ctx` cells shared by
//!   its `N` slots; `N` users at `c` tokens need `n_ctx = N × c` (without `--kv-unified` each
//!   slot gets `n_ctx / N`, the same memory). The most users is the largest `N` whose whole
//!   estimate (weights, `N × c` cells, compute buffer, overhead) fits.
//! * **MLX** (mlx-lm's batched generation) keeps one growing KV cache per sequence: the same
//!   search as llama.cpp.
//!
//! Decode of `N` sequences reads the weights once per step plus every sequence's KV cache, so
//! per-user tokens/s = `bandwidth ÷ (active weights + N × KV per user)` and the aggregate is `N`
//! times that — until the step becomes compute-bound: `N × 2 × active params` FLOPs per step at
//! the device's matrix rate. The slower of the two sets the step time.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    error::{Fix, Setting},
    estimate::{EstimateRequest, estimate_with},
    facts::ModelFacts,
    kv_cache::kv_cache_bytes,
    limits::MAX_BATCH,
    runtime::Runtime,
    speed::{
        DATASHEET_COMPUTE_EFFICIENCY, attention_flops_per_token, decode_tokens_per_s,
        llama_cpp_decode_step_overhead_s, llama_cpp_mmq_ops_per_s, llama_cpp_moe_step_overhead_s,
        llama_cpp_uses_mmq, tensor_parallel_speedup, with_llama_cpp_bandwidth_cap,
    },
    units::GIB,
};

/// vLLM's default `max_num_seqs`: at most this many sequences are scheduled at once (vLLM engine
/// arguments; the V1 engine raises it on some large GPUs when serving, which we do not assume).
pub const VLLM_MAX_NUM_SEQS: u64 = 256;

/// Tokens per vLLM KV block (`--block-size`, default 16 on CUDA).
pub const VLLM_BLOCK_TOKENS: u64 = 16;

/// Most users a question may ask for: the same bound as the batch ([`MAX_BATCH`]).
pub const MAX_USERS: u64 = MAX_BATCH;

/// Decode speed at some number of users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsersSpeed {
    /// Concurrent users (sequences).
    pub users: u64,
    /// Tokens per second each user sees.
    pub per_user_tokens_per_s: f64,
    /// Tokens per second of all users together (`users` × per user).
    pub aggregate_tokens_per_s: f64,
    /// Whether the step is limited by compute rather than memory bandwidth.
    pub compute_bound: bool,
}

/// How many users a server holds at the question's context, and how fast they decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Serving {
    /// The engine, e.g. `llama.cpp`, `vllm:0.9`.
    pub engine: String,
    /// Tokens each user holds (prompt + generated).
    pub context: u64,
    /// Users asked for; `None` when the question asked for none (then speeds are for one user).
    pub users_asked: Option<u64>,
    /// The most users that fit at this context (0: not even one).
    pub max_users: u64,
    /// What sets `max_users`, in words (memory, or the engine's cap on sequences).
    pub limited_by: String,
    /// KV cache one user holds at this context, bytes (vLLM: whole blocks).
    pub kv_bytes_per_user: u64,
    /// vLLM: the paged KV pool (`gpu_memory_utilization` × memory − weights − activations −
    /// CUDA context and graphs), bytes, over all devices.
    pub kv_pool_bytes: Option<u64>,
    /// vLLM: tokens per KV block.
    pub block_tokens: Option<u64>,
    /// vLLM: the engine's cap on concurrent sequences (`max_num_seqs`).
    pub max_num_seqs: Option<u64>,
    /// The engine's own settings for the asked users (or the most that fit), e.g.
    /// `--max-num-seqs 8 --max-model-len 32768` or `-np 4 -c 131072 --kv-unified`.
    pub engine_settings: String,
    /// Decode at the asked users (or one user when none was asked).
    pub at_users: UsersSpeed,
    /// Decode at `max_users` (`None` when not even one fits).
    pub at_max_users: Option<UsersSpeed>,
    /// How the numbers were found, in words.
    pub assumptions: Vec<String>,
}

/// Whether `runtime` serves concurrent users (vLLM, llama.cpp's server, MLX).
pub fn serves(runtime: Runtime) -> bool {
    matches!(
        runtime,
        Runtime::Vllm { .. } | Runtime::LlamaCpp | Runtime::Mlx
    )
}

/// Check a number of users (1 to [`MAX_USERS`]) for `runtime`.
pub fn validate_users(users: u64, runtime: Runtime) -> Result<(), CoreError> {
    if users == 0 || users > MAX_USERS {
        return Err(CoreError::setting(
            Setting::Users,
            users,
            format!("must be between 1 and {MAX_USERS} concurrent users"),
            vec![Fix::new(Setting::Users, "8")],
        ));
    }
    if !serves(runtime) {
        return Err(CoreError::setting(
            Setting::Users,
            users,
            format!(
                "{runtime} generates for one batch at a time and is no server: concurrent users \
                 are estimated for vLLM, llama.cpp's server and MLX"
            ),
            vec![
                Fix::new(Setting::Runtime, "vllm"),
                Fix::new(Setting::Runtime, "llama.cpp"),
                Fix::new(Setting::Runtime, "mlx"),
            ],
        ));
    }
    Ok(())
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

/// Serving for `req` (inference; `req.batch` is the asked users, or 1 with `users_asked` `None`).
pub(crate) fn serving_with(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
    users_asked: Option<u64>,
) -> Result<Serving, CoreError> {
    let context = req.context_tokens();
    let model = &req.model;
    let mut assumptions = Vec::new();
    let one = EstimateRequest {
        batch: 1,
        ..req.clone()
    };
    let single = estimate_with(facts, &one)?;
    let n_dev = u64::from(req.device_count.max(1));
    let usable_all = single.usable_bytes.saturating_mul(n_dev);
    let (max_users, limited_by, kv_per_user, pool, block_tokens, max_num_seqs) = match req.runtime {
        Runtime::Vllm {
            gpu_memory_utilization,
        } => {
            let blocks = context.div_ceil(VLLM_BLOCK_TOKENS);
            let kv_per_user = kv_cache_bytes(
                model,
                blocks * VLLM_BLOCK_TOKENS,
                1,
                req.kv_dtype,
                req.runtime,
            )
            .total_bytes;
            let fixed = single.total_bytes.saturating_sub(single.kv_cache_bytes);
            let pool = usable_all.saturating_sub(fixed);
            let by_memory = pool.checked_div(kv_per_user).unwrap_or(MAX_USERS);
            let max_users = by_memory.min(VLLM_MAX_NUM_SEQS);
            assumptions.push(format!(
                "vLLM: KV pool = gpu_memory_utilization {gpu_memory_utilization} × {:.2} GiB × \
                 {n_dev} device(s) − weights {:.2} GiB − activations {:.2} GiB (profiled \
                 forward pass) − CUDA context and graphs {:.2} GiB = {:.2} GiB; each user at \
                 {context} tokens holds {blocks} blocks of {VLLM_BLOCK_TOKENS} tokens = {:.3} \
                 GiB; max_num_seqs {VLLM_MAX_NUM_SEQS} caps the users scheduled at once",
                gib(req.device.memory_bytes),
                gib(single.weights_bytes),
                gib(single.activation_bytes),
                gib(single.overhead_bytes),
                gib(pool),
                gib(kv_per_user)
            ));
            let limited_by = if by_memory > VLLM_MAX_NUM_SEQS {
                format!(
                    "max_num_seqs {VLLM_MAX_NUM_SEQS} (the pool would hold {by_memory}; raise \
                     max_num_seqs for more)"
                )
            } else {
                "the paged KV pool".to_string()
            };
            (
                max_users,
                limited_by,
                kv_per_user,
                Some(pool),
                Some(VLLM_BLOCK_TOKENS),
                Some(VLLM_MAX_NUM_SEQS),
            )
        }
        _ => {
            let kv_per_user =
                kv_cache_bytes(model, context, 1, req.kv_dtype, req.runtime).total_bytes;
            let fits = |users: u64| -> bool {
                let r = EstimateRequest {
                    batch: users,
                    ..req.clone()
                };
                // A count too large for the arithmetic does not fit.
                estimate_with(facts, &r).is_ok_and(|e| e.fits)
            };
            // Memory grows with the users: the largest count that fits, by bisection. Every
            // user adds at least its KV cache to the single user's total, so no more than
            // (usable − everything else) ÷ KV per user can fit: the search starts there.
            let room =
                usable_all.saturating_sub(single.total_bytes.saturating_sub(single.kv_cache_bytes));
            let bound = room
                .checked_div(kv_per_user)
                .map_or(MAX_USERS, |u| u.saturating_add(1))
                .clamp(1, MAX_USERS);
            let max_users = if !single.fits {
                0
            } else {
                // [lo fits, hi does not]: the bound is usually past the answer; where the cache
                // grows less than a user's worth per user (llama.cpp's sliding-window cells are
                // shared with the micro-batch), search upward from it.
                let (mut lo, mut hi) = (1u64, bound);
                while hi < MAX_USERS && fits(hi) {
                    lo = hi;
                    hi = hi.saturating_mul(2).min(MAX_USERS);
                }
                if hi == MAX_USERS && fits(hi) {
                    lo = hi;
                }
                while hi > lo + 1 {
                    let mid = lo + (hi - lo) / 2;
                    if fits(mid) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                lo
            };
            assumptions.push(if req.runtime == Runtime::LlamaCpp {
                format!(
                    "llama.cpp server: N users at {context} tokens need n_ctx = N × {context} \
                     cells ({}; each stream rounded up to 256 cells), plus the compute buffer \
                     for that n_ctx; the most users is the largest N whose whole estimate fits",
                    if req.llama_cpp.kv_unified {
                        "one unified KV cache shared by the N slots"
                    } else {
                        "one KV cache of n_ctx / N cells per slot: the same memory for \
                         full-attention layers, but a window per slot for sliding ones"
                    }
                )
            } else {
                format!(
                    "MLX: each user keeps its own KV cache of {context} tokens (grown in steps \
                     of 256); the most users is the largest count whose whole estimate fits"
                )
            });
            (
                max_users,
                "memory".to_string(),
                kv_per_user,
                None,
                None,
                None,
            )
        }
    };
    let settings_users = users_asked.unwrap_or(max_users.max(1));
    let engine_settings = match req.runtime {
        Runtime::Vllm {
            gpu_memory_utilization,
        } => format!(
            "vllm serve --gpu-memory-utilization {gpu_memory_utilization} --max-model-len \
             {context} --max-num-seqs {settings_users}{}",
            if n_dev > 1 {
                format!(" --tensor-parallel-size {n_dev}")
            } else {
                String::new()
            }
        ),
        Runtime::LlamaCpp => format!(
            "llama-server -np {settings_users} -c {}{}",
            settings_users.saturating_mul(context),
            if req.llama_cpp.kv_unified {
                " --kv-unified"
            } else {
                ""
            }
        ),
        _ => "mlx-lm batched generation (one KV cache per sequence)".to_string(),
    };
    let at_users = speed_at(facts, req, users_asked.unwrap_or(1), &mut assumptions);
    let at_max_users = (max_users > 0).then(|| speed_at(facts, req, max_users, &mut Vec::new()));
    Ok(Serving {
        engine: req.runtime.to_string(),
        context,
        users_asked,
        max_users,
        limited_by,
        kv_bytes_per_user: kv_per_user,
        kv_pool_bytes: pool,
        block_tokens,
        max_num_seqs,
        engine_settings,
        at_users,
        at_max_users,
        assumptions,
    })
}

/// Decode speed of `users` sequences at the request's context: the slower of reading (weights
/// once + every user's KV) and computing (`users` × FLOPs per token) sets the step.
fn speed_at(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
    users: u64,
    assumptions: &mut Vec<String>,
) -> UsersSpeed {
    let context = req.context_tokens();
    let model = &req.model;
    let totals = facts.weight_totals(&req.format);
    let active_bytes = match &req.checkpoint {
        Some(c) if c.format == req.format && totals.weights_bytes > 0 => {
            (totals.active_weights_bytes as f64 * c.bytes as f64 / totals.weights_bytes as f64)
                as u64
        }
        _ => totals.active_weights_bytes,
    };
    let kv_per_user = kv_cache_bytes(model, context, 1, req.kv_dtype, req.runtime).steady_bytes;
    let mut memory = decode_tokens_per_s(&req.device, active_bytes, kv_per_user, users);
    if req.runtime == Runtime::LlamaCpp {
        memory = with_llama_cpp_bandwidth_cap(memory, &req.device);
    }
    let mut mem_step_s = if memory.tokens_per_s > 0.0 {
        1.0 / memory.tokens_per_s
    } else {
        0.0
    };
    if req.runtime == Runtime::LlamaCpp && mem_step_s > 0.0 {
        // The same fixed cost per step as one sequence's decode (`estimate`), paid once per
        // step however many users share it.
        let overhead_s = llama_cpp_decode_step_overhead_s(&req.device, model.num_layers)
            + llama_cpp_moe_step_overhead_s(&req.device, model);
        mem_step_s += overhead_s;
        assumptions.push(format!(
            "serving decode: each step also pays llama.cpp's {:.2} ms of kernel launches and \
             waits (once per step, shared by every user)",
            overhead_s * 1e3
        ));
    }
    let active_params = facts.counts().active_excluding_input_embedding as f64;
    // Decode attends to every cached key: twice the prompt's average key length.
    let flops_per_token =
        2.0 * active_params + attention_flops_per_token(model, context.saturating_mul(2));
    let rate = match (req.runtime, req.device.fp16_fp32_accumulate_flops) {
        (Runtime::Vllm { .. }, Some(r)) if r.is_finite() && r > 0.0 => r,
        _ => req.device.fp16_flops,
    };
    let eff = if req.device.compute_measured {
        1.0
    } else {
        DATASHEET_COMPUTE_EFFICIENCY
    };
    // llama.cpp multiplies quantized GGUF weights through MMQ once a step carries more than a
    // few tokens: the matrix products at its rate, attention at the fp16 rate.
    let mmq = llama_cpp_mmq_ops_per_s(&req.device).filter(|_| {
        req.runtime == Runtime::LlamaCpp && llama_cpp_uses_mmq(&req.device, &req.format)
    });
    let compute_step_s = match mmq {
        Some(mmq) if rate.is_finite() && rate > 0.0 => {
            let attn = flops_per_token - 2.0 * active_params;
            users as f64 * (2.0 * active_params / mmq + attn / (rate * eff))
        }
        _ if rate.is_finite() && rate > 0.0 => users as f64 * flops_per_token / (rate * eff),
        _ => 0.0,
    };
    // The rate the step's compute runs at, for the statement.
    let achieved_rate = if compute_step_s > 0.0 {
        users as f64 * flops_per_token / compute_step_s
    } else {
        rate * eff
    };
    let compute_bound = compute_step_s > mem_step_s;
    let mut step_s = mem_step_s.max(compute_step_s);
    let n = req.device_count.max(1);
    if n > 1 && step_s > 0.0 {
        step_s /= tensor_parallel_speedup(step_s, n, model.num_layers, model.hidden_size, users);
    }
    let per_user = if step_s > 0.0 { 1.0 / step_s } else { 0.0 };
    assumptions.extend(memory.assumptions);
    assumptions.push(format!(
        "serving decode at {users} user(s): one step reads the active weights once and every \
         user's KV cache ({:.1} ms), and computes {users} × {:.2} GFLOP ({:.1} ms at {:.0} \
         TFLOPS); the slower sets the step: {}; MoE counts one token's experts per step \
         (optimistic with many users, who touch more experts)",
        mem_step_s * 1e3,
        flops_per_token / 1e9,
        compute_step_s * 1e3,
        achieved_rate / 1e12,
        if compute_bound {
            "compute-bound"
        } else {
            "memory-bound"
        }
    ));
    UsersSpeed {
        users,
        per_user_tokens_per_s: per_user,
        aggregate_tokens_per_s: per_user * users as f64,
        compute_bound,
    }
}
