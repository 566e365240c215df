//! Speed: decode tokens/s (bandwidth ÷ bytes read per token) and prefill tokens/s (FLOPs ÷ rate).
//!
//! * **Decode** is memory-bound: each step reads every active weight once (MoE: the routed
//!   experts of one token — with a batch, more experts are touched; we keep one token's share,
//!   an optimistic simplification we state) plus every sequence's KV cache. Per-sequence
//!   tokens/s = `bandwidth × efficiency ÷ (active weight bytes + batch × KV bytes per sequence)`.
//! * **Prefill** is compute-bound: `2 · active params` FLOPs per token for the matrix products
//!   plus attention `4 · layers · heads · head_dim · (average key length)` (QKᵀ and AV; a causal
//!   prompt of `s` tokens averages `s/2` keys, windows cap it). Tokens/s =
//!   `rate × efficiency ÷ FLOPs per token`.
//!
//! Efficiency: with datasheet figures we apply the ratios measured on an H200 through PyTorch
//! (FACTS.md): device copy 4.12 of 4.8 TB/s and bf16 GEMM 790 of 989 TFLOPS. With figures a probe
//! measured, no factor: the measurement already is the achieved rate.

use serde::{Deserialize, Serialize};

use crate::{
    devices::DeviceSpec,
    model::{LayerAttention, ModelSpec},
    quant::WeightFormat,
};

/// Achieved ÷ datasheet bandwidth: 4.12 TB/s measured device copy on an H200 (4.8 TB/s
/// datasheet), FACTS.md.
pub const DATASHEET_BANDWIDTH_EFFICIENCY: f64 = 4.12 / 4.8;

/// Achieved ÷ datasheet matrix rate: 790 TFLOPS measured bf16 cuBLAS GEMM on an H200 (989
/// datasheet), FACTS.md.
pub const DATASHEET_COMPUTE_EFFICIENCY: f64 = 790.0 / 989.0;

/// Bandwidth at which offloaded layers are read from host memory, bytes per second: dual-channel
/// DDR5-5600 is 89.6 GB/s by its datasheet and CPUs reach about 60% of it in STREAM-like reads,
/// so ~55 GB/s; llama.cpp runs offloaded layers on the CPU, bound by this read.
pub const HOST_OFFLOAD_BANDWIDTH_BYTES_PER_S: f64 = 55e9;

/// The speed of a run whose `offloaded_share` (0–1) of the bytes read per token lives in host
/// memory and is read at `host_bytes_per_s`, when the same run on the device alone reaches
/// `device_tokens_per_s` at `device_bytes_per_s`: the time per token is the device's share at
/// its speed plus the host's share at host speed.
pub fn offloaded_tokens_per_s(
    device_tokens_per_s: f64,
    device_bytes_per_s: f64,
    host_bytes_per_s: f64,
    offloaded_share: f64,
) -> f64 {
    if device_tokens_per_s <= 0.0 || device_bytes_per_s <= 0.0 || host_bytes_per_s <= 0.0 {
        return 0.0;
    }
    let share = offloaded_share.clamp(0.0, 1.0);
    // Reading at host speed is this many times slower than at device speed (never faster).
    let slowdown = (device_bytes_per_s / host_bytes_per_s).max(1.0);
    let seconds = (1.0 - share) / device_tokens_per_s + share * slowdown / device_tokens_per_s;
    1.0 / seconds
}

/// Time llama.cpp's Metal backend spends per decoder layer on every decode step besides reading
/// the weights (encoding and launching the layer's kernels, waiting on each): 170 µs. A decode
/// step is far slower than its bytes alone explain on fast Apple GPUs (an M2 Ultra reads a 7B
/// Q4_0 model's 3.8 GB at 800 GB/s in under 6 ms but takes 10.6 ms per token) and nearly as
/// fast on slow ones, which a fixed cost per step explains and a lower bandwidth does not. The
/// figure is the median of that excess per layer over the published llama-bench rows on Apple
/// GPUs (`core/data/published_speeds.json`); the rows are then within the band the answer
/// quotes ([`crate::published`]).
pub const LLAMA_CPP_METAL_DECODE_LAYER_OVERHEAD_S: f64 = 170e-6;

/// The same fixed cost per decoder layer and decode step for llama.cpp on NVIDIA GPUs whose SM
/// figures the catalog has: 25 µs. llama.cpp's CUDA backend replays a decode step's kernels as
/// one CUDA graph (since llama.cpp PR #6766, 2024), which leaves little launch cost per kernel;
/// 25 µs per layer is the median excess over the published llama-bench decode results of current
/// builds on NVIDIA GPUs (llama.cpp discussion #15013, seven GPUs from the RTX 3060 to the H100)
/// once the bandwidth a decode step reaches ([`LLAMA_CPP_DECODE_BYTES_PER_SM_CLOCK`]) is
/// accounted for.
pub const LLAMA_CPP_CUDA_DECODE_LAYER_OVERHEAD_S: f64 = 25e-6;

/// The fixed cost per decoder layer and decode step for llama.cpp on other GPUs — AMD, Intel,
/// and a GPU known only from a probe report — where the catalog has no SM figures, so the decode
/// kernels' bandwidth limit ([`llama_cpp_decode_bandwidth_cap`]) cannot be placed: 70 µs, the
/// median excess per layer over every published llama-bench decode row on NVIDIA GPUs with the
/// bandwidth alone. It carries both the launch cost and, on HBM cards, the bandwidth the kernels
/// leave unused (on a probe-measured H100 it puts llama-bench's Llama-3.1-8B Q4_0 decode within
/// `tests/llama_cpp_offload.rs`'s tolerance).
pub const LLAMA_CPP_GPU_DECODE_LAYER_OVERHEAD_S: f64 = 70e-6;

/// The further fixed cost of a MoE layer in llama.cpp's CUDA decode step on NVIDIA GPUs whose SM
/// figures the catalog has: 30 µs. A MoE layer runs the router's product, its softmax and top-k,
/// the gathers of the chosen experts and their weighted sum besides the expert products
/// (`mul_mat_id`), each a small kernel the GPU cannot fill. The figure is what a llama-bench run
/// of Qwen3-30B-A3B Q4_0 with every layer on an H100 needed beyond the dense cost and the
/// bandwidth limit (254.6 tokens/s; the same run's Llama-3.1-8B Q4_0, 271.8 tokens/s, is within
/// 1% of the dense model alone: the run `tests/llama_cpp_offload.rs` holds offload to).
pub const LLAMA_CPP_CUDA_MOE_LAYER_EXTRA_S: f64 = 30e-6;

/// The extra fixed time of one MoE layer in llama.cpp's decode step on `device`:
/// [`LLAMA_CPP_CUDA_MOE_LAYER_EXTRA_S`] on NVIDIA GPUs with SM figures, else 0 (the 70 µs per
/// layer without SM figures already carries it; Metal's 170 µs was read from dense models).
pub fn llama_cpp_moe_layer_overhead_s(device: &DeviceSpec) -> f64 {
    if llama_cpp_decode_bandwidth_cap(device).is_some() {
        LLAMA_CPP_CUDA_MOE_LAYER_EXTRA_S
    } else {
        0.0
    }
}

/// The extra fixed time llama.cpp's decode step spends on `model`'s MoE layers on `device`:
/// [`llama_cpp_moe_layer_overhead_s`] per MoE layer; 0 for dense models.
pub fn llama_cpp_moe_step_overhead_s(device: &DeviceSpec, model: &ModelSpec) -> f64 {
    match &model.moe {
        Some(moe) => {
            let moe_layers = model
                .num_layers
                .saturating_sub(moe.dense_layers.len() as u64);
            llama_cpp_moe_layer_overhead_s(device) * moe_layers as f64
        }
        None => 0.0,
    }
}

/// Bytes llama.cpp's decode kernels (the quantized and f16 matrix-vector products) read per
/// streaming multiprocessor and clock at most on NVIDIA GPUs: 5.75.
///
/// A matrix-vector product keeps only so many loads in flight per SM, and the bandwidth it
/// reaches is those bytes over the memory's latency (Little's law), whatever the memory could
/// deliver. On GeForce cards the GDDR bandwidth is reached first; on A100 and H100, whose HBM
/// delivers two to three times as much per SM, the kernels stop at about 45% of it: the current
/// build's published Llama-2-7B Q4_0 decode (discussion #15013: A100 201, H100 SXM 281 tokens/s,
/// with the per-layer cost above) reads about 6.1 and 5.4 bytes per SM-clock, and the 2023 F16
/// decode results on A100 and H100 PCIe about 7 and 6. The figure is the middle of the first
/// two.
pub const LLAMA_CPP_DECODE_BYTES_PER_SM_CLOCK: f64 = 5.75;

/// The most bandwidth llama.cpp's decode kernels reach on `device`, bytes per second: SMs ×
/// boost clock × [`LLAMA_CPP_DECODE_BYTES_PER_SM_CLOCK`]; `None` where the catalog has no SM
/// figures (non-NVIDIA devices).
pub fn llama_cpp_decode_bandwidth_cap(device: &DeviceSpec) -> Option<f64> {
    if !device.vendor.eq_ignore_ascii_case("nvidia") {
        return None;
    }
    device
        .sm_clocks_per_s()
        .map(|c| c * LLAMA_CPP_DECODE_BYTES_PER_SM_CLOCK)
        .filter(|b| b.is_finite() && *b > 0.0)
}

/// The bandwidth a decode step reads at on `device` before any cap: the measured figure, or the
/// datasheet's times [`DATASHEET_BANDWIDTH_EFFICIENCY`].
pub fn achieved_bandwidth(device: &DeviceSpec) -> f64 {
    if device.bandwidth_measured {
        device.bandwidth_bytes_per_s
    } else {
        device.bandwidth_bytes_per_s * DATASHEET_BANDWIDTH_EFFICIENCY
    }
}

/// `estimate` (a decode speed at [`achieved_bandwidth`]) slowed to llama.cpp's decode bandwidth
/// cap on `device` where the cap is lower, and the assumption that says so.
pub fn with_llama_cpp_bandwidth_cap(
    mut estimate: SpeedEstimate,
    device: &DeviceSpec,
) -> SpeedEstimate {
    let bw = achieved_bandwidth(device);
    if let Some(cap) = llama_cpp_decode_bandwidth_cap(device).filter(|c| *c < bw) {
        estimate.tokens_per_s *= cap / bw;
        estimate.assumptions.push(format!(
            "decode: llama.cpp's matrix-vector kernels read at most {:.0} GB/s here ({} SMs × \
             {:.0} MHz × {:.2} bytes per SM and clock, what they reach on A100 and H100 in \
             published llama-bench results), below the {:.0} GB/s the memory gives",
            cap / 1e9,
            device.sm_count.unwrap_or(0),
            device.boost_clock_mhz.unwrap_or(0.0),
            LLAMA_CPP_DECODE_BYTES_PER_SM_CLOCK,
            bw / 1e9
        ));
    }
    estimate
}

/// The fixed time llama.cpp adds to every decode step of a model with `layers` decoder layers on
/// `device`, besides reading weights and cache.
pub fn llama_cpp_decode_step_overhead_s(device: &DeviceSpec, layers: u64) -> f64 {
    let per_layer = if device.is_apple_silicon() {
        LLAMA_CPP_METAL_DECODE_LAYER_OVERHEAD_S
    } else if llama_cpp_decode_bandwidth_cap(device).is_some() {
        LLAMA_CPP_CUDA_DECODE_LAYER_OVERHEAD_S
    } else {
        LLAMA_CPP_GPU_DECODE_LAYER_OVERHEAD_S
    };
    per_layer * layers as f64
}

/// `estimate` with `overhead_s` added to every step (one token per sequence per step), and the
/// assumption that says so.
pub fn with_step_overhead(mut estimate: SpeedEstimate, overhead_s: f64) -> SpeedEstimate {
    if estimate.tokens_per_s > 0.0 && overhead_s > 0.0 {
        estimate.tokens_per_s = 1.0 / (1.0 / estimate.tokens_per_s + overhead_s);
        estimate.assumptions.push(format!(
            "decode: plus {:.2} ms per step that llama.cpp spends launching and waiting on each \
             layer's kernels (the median excess over published llama-bench results)",
            overhead_s * 1e3
        ));
    }
    estimate
}

/// A speed with the assumptions behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedEstimate {
    /// Tokens per second (0 when the device figure is unknown).
    pub tokens_per_s: f64,
    /// The assumptions, in words.
    pub assumptions: Vec<String>,
}

/// Decode tokens/s per sequence for `active_weight_bytes` read per step and `kv_bytes_per_seq`
/// of cache per sequence (read in full each step), with `batch` sequences decoding together.
pub fn decode_tokens_per_s(
    device: &DeviceSpec,
    active_weight_bytes: u64,
    kv_bytes_per_seq: u64,
    batch: u64,
) -> SpeedEstimate {
    let (eff, basis) = if device.bandwidth_measured {
        (
            1.0,
            "measured bandwidth (probe report), no efficiency factor".to_string(),
        )
    } else {
        (
            DATASHEET_BANDWIDTH_EFFICIENCY,
            format!(
                "datasheet bandwidth × {:.2} (achieved/datasheet copy bandwidth measured on an H200)",
                DATASHEET_BANDWIDTH_EFFICIENCY
            ),
        )
    };
    let bytes_per_step =
        active_weight_bytes as f64 + (kv_bytes_per_seq as f64) * (batch.max(1) as f64);
    let bw = device.bandwidth_bytes_per_s * eff;
    let tps = if bytes_per_step > 0.0 && bw.is_finite() && bw > 0.0 {
        bw / bytes_per_step
    } else {
        0.0
    };
    SpeedEstimate {
        tokens_per_s: tps,
        assumptions: vec![format!(
            "decode: {:.0} GB/s ({basis}) ÷ {:.2} GB read per step (active weights {:.2} GB + \
             KV {:.3} GB × batch {}); MoE reads one token's experts; per sequence",
            bw / 1e9,
            bytes_per_step / 1e9,
            active_weight_bytes as f64 / 1e9,
            kv_bytes_per_seq as f64 / 1e9,
            batch.max(1)
        )],
    }
}

/// Attention FLOPs per prompt token for a prompt of `context` tokens (QKᵀ and AV, 2 FLOPs per
/// multiply-add, average key length `context/2`, windows capped).
pub fn attention_flops_per_token(model: &ModelSpec, context: u64) -> f64 {
    let (qk_dim, v_dim) = match &model.mla {
        Some(m) => (
            (m.qk_nope_head_dim + m.qk_rope_head_dim) as f64,
            m.v_head_dim as f64,
        ),
        None => (model.head_dim as f64, model.head_dim as f64),
    };
    let heads = model.num_attention_heads as f64;
    let layers = model.num_layers as usize;
    let mut flops = 0.0;
    for i in 0..layers {
        let avg_keys = match model.layer_attention.get(i) {
            Some(LayerAttention::Sliding { window }) if *window < context => *window as f64,
            _ => context as f64 / 2.0,
        };
        flops += 2.0 * heads * (qk_dim + v_dim) * avg_keys;
    }
    flops
}

/// Prefill tokens/s for `active_params` per token (matrix products) at `context` tokens.
/// `use_fp16_rate`: 16-bit or quantized weights on matrix units (else the FP32 rate).
pub fn prefill_tokens_per_s(
    device: &DeviceSpec,
    model: &ModelSpec,
    active_params: u64,
    context: u64,
    use_fp16_rate: bool,
) -> SpeedEstimate {
    prefill_tokens_per_s_accumulating(device, model, active_params, context, use_fp16_rate, false)
}

/// [`prefill_tokens_per_s`] for an engine whose half-precision GEMMs accumulate in fp32
/// (`fp32_accumulate`: PyTorch, vLLM): on devices where that is slower
/// ([`DeviceSpec::fp16_fp32_accumulate_flops`], GeForce RTX) the lower rate is used.
pub fn prefill_tokens_per_s_accumulating(
    device: &DeviceSpec,
    model: &ModelSpec,
    active_params: u64,
    context: u64,
    use_fp16_rate: bool,
    fp32_accumulate: bool,
) -> SpeedEstimate {
    let accumulate_rate = device
        .fp16_fp32_accumulate_flops
        .filter(|r| fp32_accumulate && use_fp16_rate && r.is_finite() && *r > 0.0);
    let rate = match accumulate_rate {
        Some(r) => r,
        None if use_fp16_rate => device.fp16_flops,
        None => device.fp32_flops,
    };
    let (eff, basis) = if device.compute_measured {
        (
            1.0,
            "measured GEMM rate (probe report), no efficiency factor".to_string(),
        )
    } else {
        (
            DATASHEET_COMPUTE_EFFICIENCY,
            format!(
                "datasheet rate × {:.2} (achieved/datasheet bf16 GEMM measured on an H200)",
                DATASHEET_COMPUTE_EFFICIENCY
            ),
        )
    };
    let attn = attention_flops_per_token(model, context);
    let flops_per_token = 2.0 * active_params as f64 + attn;
    let effective = rate * eff;
    let tps = if flops_per_token > 0.0 && effective.is_finite() && effective > 0.0 {
        effective / flops_per_token
    } else {
        0.0
    };
    SpeedEstimate {
        tokens_per_s: tps,
        assumptions: vec![format!(
            "prefill: {:.1} TFLOPS {} ({basis}) ÷ {:.2} GFLOP per token (2 × {:.2}B active \
             params + {:.2} GFLOP attention at {context} tokens)",
            effective / 1e12,
            match (accumulate_rate.is_some(), use_fp16_rate) {
                (true, _) => "fp16 with fp32 accumulation (half rate on this card)",
                (false, true) => "fp16",
                (false, false) => "fp32",
            },
            flops_per_token / 1e9,
            active_params as f64 / 1e9,
            attn / 1e9
        )],
    }
}

/// Operations (two per multiply-add) llama.cpp's quantized matrix kernels (MMQ) complete per
/// streaming multiprocessor and clock on NVIDIA GPUs: 570.
///
/// At a prompt's batch (more than 8–16 tokens) llama.cpp multiplies quantized GGUF weights with
/// MMQ on every NVIDIA GPU since Turing (`ggml_cuda_should_use_mmq` returns true wherever
/// `turing_mma_available`): tiles of weights and of the activations (quantized to q8_1) go
/// through shared memory, are unpacked to int8 and multiplied with `mma.sync` int8 tensor-core
/// instructions (`m16n8k32`, the Turing/Ampere form, also on Hopper and Blackwell), and every
/// 32-element block's product is scaled in fp32. What limits it is not the tensor cores: an
/// A100 SM has twice, an H100 SM nearly four times the int8 rate of a GeForce SM, yet the
/// published llama-bench pp512 results of the current kernels reach the same rate per SM and
/// clock on all of them — 460–610 operations per SM-clock over the seven GPUs of the CUDA
/// scoreboard (RTX 3060, 3090, 4090, 5080, 5090, A100, H100 SXM: llama.cpp discussion #15013,
/// Llama-2-7B Q4_0), median 570. That is about 28% of a GeForce SM's int8 tensor rate; what
/// scales alike on every architecture since Volta is the SM's instruction issue (four
/// schedulers, one instruction per clock each), which the loads, unpacking and scaling of the
/// tiles keep busy — the likely limit, and why the rate follows SMs × clock. The formats run
/// at similar rates (llama.cpp PRs #7676 and #8062, mid-2024 MMQ on an RTX 3090, Llama-3-8B with
/// 512-token micro-batches: Q5_0, Q5_1, Q5_K_S and Q6_K prompts at 3,400–3,700 tokens/s), so one
/// rate serves every quantized format.
pub const LLAMA_CPP_MMQ_OPS_PER_SM_CLOCK: f64 = 570.0;

/// llama.cpp's MMQ rate on `device`, operations per second: SMs × boost clock ×
/// [`LLAMA_CPP_MMQ_OPS_PER_SM_CLOCK`]; `None` where the catalog has no SM figures (non-NVIDIA
/// devices, a device known only from a probe report).
pub fn llama_cpp_mmq_ops_per_s(device: &DeviceSpec) -> Option<f64> {
    if !device.vendor.eq_ignore_ascii_case("nvidia") {
        return None;
    }
    device
        .sm_clocks_per_s()
        .map(|c| c * LLAMA_CPP_MMQ_OPS_PER_SM_CLOCK)
}

/// Whether llama.cpp runs `format`'s matrix products through MMQ on `device` at a prompt's batch:
/// quantized GGUF weights on an NVIDIA GPU whose SM figures the catalog has.
pub fn llama_cpp_uses_mmq(device: &DeviceSpec, format: &WeightFormat) -> bool {
    format.is_gguf() && format.is_quantized() && llama_cpp_mmq_ops_per_s(device).is_some()
}

/// Prefill tokens/s for llama.cpp: quantized GGUF weights on NVIDIA GPUs go through MMQ at
/// [`llama_cpp_mmq_ops_per_s`] with attention (flash attention's f16 tensor-core kernels) at the
/// fp16 rate; everything else (F16 weights through cuBLAS with f16 accumulation, Metal, other
/// GPUs) at the fp16 rate as [`prefill_tokens_per_s`] gives it.
pub fn llama_cpp_prefill_tokens_per_s(
    device: &DeviceSpec,
    model: &ModelSpec,
    active_params: u64,
    context: u64,
    format: &WeightFormat,
) -> SpeedEstimate {
    let use_fp16_rate = !matches!(format, WeightFormat::F32);
    let mmq = llama_cpp_mmq_ops_per_s(device).filter(|r| r.is_finite() && *r > 0.0);
    let Some(mmq) = mmq.filter(|_| llama_cpp_uses_mmq(device, format)) else {
        let mut p = prefill_tokens_per_s(device, model, active_params, context, use_fp16_rate);
        if mmq.is_some() && !format.is_quantized() {
            // An NVIDIA GPU with unquantized weights: cuBLAS, which no current build's published
            // result holds (`core/data/published_speeds.json`: only pre-June-2024 F16 rows).
            p.assumptions.push(
                "prefill: unquantized weights go through cuBLAS (F16 with f16 accumulation); the \
                 published llama.cpp results on NVIDIA that the band holds are of quantized \
                 weights (MMQ), and builds of 2023 to mid-2024 ran F16 prompts at 13–56% of the \
                 fp16 tensor rate, so this estimate may be optimistic"
                    .to_string(),
            );
        }
        return p;
    };
    let eff = if device.compute_measured {
        1.0
    } else {
        DATASHEET_COMPUTE_EFFICIENCY
    };
    let attn_rate = device.fp16_flops * eff;
    let matmul = 2.0 * active_params as f64;
    let attn = attention_flops_per_token(model, context);
    let attn_s = if attn_rate.is_finite() && attn_rate > 0.0 {
        attn / attn_rate
    } else {
        0.0
    };
    // A MoE's routed experts each get only their share of the micro-batch's tokens.
    let routed = (2 * routed_active_params(model)).min(2 * active_params) as f64;
    let tokens_per_expert = model.moe.as_ref().map_or(f64::INFINITY, |m| {
        (context.clamp(1, LLAMA_CPP_PREFILL_UBATCH_TOKENS) * m.experts_per_token) as f64
            / m.num_experts.max(1) as f64
    });
    let slowdown = mmq_tile_slowdown(tokens_per_expert);
    let seconds = (matmul - routed) / mmq + routed * slowdown / mmq + attn_s;
    let tps = if seconds > 0.0 { 1.0 / seconds } else { 0.0 };
    let mut assumptions = Vec::new();
    if routed > 0.0 && slowdown > 1.0 {
        assumptions.push(format!(
            "prefill: the routed experts' {:.2} GFLOP per token run {slowdown:.2}× slower: each \
             expert gets {tokens_per_expert:.0} of a {}-token micro-batch's tokens, fewer than \
             MMQ's {LLAMA_CPP_MMQ_FULL_TILE_TOKENS:.0}-token tile, so its weight tiles are unpacked \
             for fewer tokens ({:.0}% of MMQ's time at a full tile; derived from one measured MoE, \
             Qwen3-30B-A3B on an H100)",
            routed / 1e9,
            LLAMA_CPP_PREFILL_UBATCH_TOKENS,
            100.0 * LLAMA_CPP_MMQ_WEIGHT_TILE_SHARE
        ));
    }
    SpeedEstimate {
        tokens_per_s: tps,
        assumptions: vec![format!(
            "prefill: llama.cpp's int8 MMQ kernels at {:.0} TOPS ({} SMs × {:.0} MHz × {:.0} \
             operations per SM and clock, what they reach in published llama-bench results) for \
             {:.2} GFLOP per token (2 × {:.2}B active params), plus {:.2} GFLOP attention at \
             {context} tokens at {:.0} TFLOPS fp16",
            mmq / 1e12,
            device.sm_count.unwrap_or(0),
            device.boost_clock_mhz.unwrap_or(0.0),
            LLAMA_CPP_MMQ_OPS_PER_SM_CLOCK,
            matmul / 1e9,
            active_params as f64 / 1e9,
            attn / 1e9,
            attn_rate / 1e12
        )]
        .into_iter()
        .chain(assumptions)
        .collect(),
    }
}

/// Tokens llama.cpp's MMQ kernels multiply per weight tile at most (`mmq_x`, 128 on the GPUs
/// that matter here).
pub const LLAMA_CPP_MMQ_FULL_TILE_TOKENS: f64 = 128.0;

/// Share of MMQ's time per token at a full tile that goes to the weight tiles (loading and
/// unpacking the quantized weights to int8), which a tile of fewer tokens pays all the same:
/// 0.83. Derived from one measurement, llama-bench pp512 of Qwen3-30B-A3B Q4_0 on an H100 (9,833
/// tokens/s; 128 experts, 8 per token: 32 tokens per expert of a 512-token micro-batch), where
/// the routed experts ran 3.5× slower per FLOP than the dense rate
/// ([`LLAMA_CPP_MMQ_OPS_PER_SM_CLOCK`]) that Llama-3.1-8B reached within 11% on the same machine
/// (`tests/data/measured/llama-cpp-cuda-h100.json`). MoEs whose experts get a full tile
/// (Mixtral: 8 experts, 2 per token) pay nothing.
pub const LLAMA_CPP_MMQ_WEIGHT_TILE_SHARE: f64 = 0.83;

/// Micro-batch llama.cpp splits a prompt into (`-ub`, default 512).
const LLAMA_CPP_PREFILL_UBATCH_TOKENS: u64 = 512;

/// How much slower per FLOP MMQ runs when a weight tile meets `tokens` tokens instead of a full
/// tile: the weight tiles' share is paid per tile whatever the tokens.
fn mmq_tile_slowdown(tokens: f64) -> f64 {
    if !(tokens.is_finite() && tokens > 0.0) || tokens >= LLAMA_CPP_MMQ_FULL_TILE_TOKENS {
        return 1.0;
    }
    (1.0 - LLAMA_CPP_MMQ_WEIGHT_TILE_SHARE)
        + LLAMA_CPP_MMQ_WEIGHT_TILE_SHARE * LLAMA_CPP_MMQ_FULL_TILE_TOKENS / tokens
}

/// Routed-expert parameters one token goes through (gate, up and down of each chosen expert in
/// every MoE layer); 0 for a dense model.
fn routed_active_params(model: &ModelSpec) -> u64 {
    let Some(m) = model.moe.as_ref() else {
        return 0;
    };
    let moe_layers = (0..model.num_layers)
        .filter(|i| !m.dense_layers.contains(i))
        .count() as u64;
    moe_layers * m.experts_per_token * 3 * model.hidden_size * m.expert_intermediate_size
}

/// Time one hop of an all-reduce takes besides moving the bytes (a kernel launch and a link
/// round trip): 3 µs, the order of the small-message latency per ring step that NCCL's tests
/// show between GPUs of one host. A ring all-reduce over N devices takes 2(N − 1) hops.
pub const ALLREDUCE_HOP_LATENCY_S: f64 = 3e-6;

/// Bandwidth between devices assumed for tensor parallelism: 25 GB/s, what PCIe 4.0 x16 achieves
/// (32 GB/s raw). Most cards this is asked about have no NVLink; with it communication is
/// cheaper, so the estimate errs low.
pub const INTERCONNECT_BYTES_PER_S: f64 = 25e9;

/// Bytes of one activation element sent between devices (fp16/bf16).
const ACTIVATION_BYTES: f64 = 2.0;

/// Speed-up of `devices` identical devices in tensor parallelism (Megatron-LM's split) over one,
/// for a step that takes `one_device_step_s` on one device and carries `tokens` tokens through
/// every layer. Each device reads and computes 1/N of the weights, then every layer pays two
/// all-reduces of `tokens × hidden_size` activations (after attention and after the MLP), each a
/// ring of 2(N − 1) hops moving 2(N − 1)/N of the data. The slowest device sets the pace (the
/// devices are identical here). The speed-up is below N for every N > 1 and falls again once
/// communication outweighs the shrinking share of work.
pub fn tensor_parallel_speedup(
    one_device_step_s: f64,
    devices: u32,
    layers: u64,
    hidden_size: u64,
    tokens: u64,
) -> f64 {
    if devices <= 1 || !(one_device_step_s.is_finite() && one_device_step_s > 0.0) {
        return 1.0;
    }
    let n = f64::from(devices);
    let allreduces = 2.0 * layers.max(1) as f64;
    let bytes = tokens.max(1) as f64 * hidden_size as f64 * ACTIVATION_BYTES;
    let per_allreduce = 2.0 * (n - 1.0) * ALLREDUCE_HOP_LATENCY_S
        + 2.0 * (n - 1.0) / n * bytes / INTERCONNECT_BYTES_PER_S;
    one_device_step_s / (one_device_step_s / n + allreduces * per_allreduce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_on_nvidia_runs_at_its_kernels_rate_per_sm() {
        let rtx = crate::devices::find("rtx-4090").unwrap();
        let h100 = crate::devices::find("h100-sxm").unwrap();
        let m3 = crate::devices::find("m3-max-40c-64gb").unwrap();
        // 128 SMs × 2.52 GHz × 570 = 184 TOPS: far below the card's int8 tensor peak.
        let mmq = llama_cpp_mmq_ops_per_s(&rtx).unwrap();
        assert!((mmq / 1e12 - 183.9).abs() < 0.1, "{mmq}");
        assert!(mmq < rtx.fp16_flops);
        let q4: WeightFormat = "Q4_0".parse().unwrap();
        let f16: WeightFormat = "F16".parse().unwrap();
        assert!(llama_cpp_uses_mmq(&rtx, &q4));
        assert!(!llama_cpp_uses_mmq(&rtx, &f16), "F16 goes through cuBLAS");
        assert!(!llama_cpp_uses_mmq(&m3, &q4), "Metal has no MMQ");
        assert!(llama_cpp_mmq_ops_per_s(&m3).is_none());
        // An H100 SXM's MMQ rate is about the RTX 4090's although its tensor cores are three
        // times as fast: the kernels are bound per SM and clock.
        let ratio = llama_cpp_mmq_ops_per_s(&h100).unwrap() / mmq;
        assert!((0.75..0.9).contains(&ratio), "{ratio}");
        // Prefill of a quantized model follows the MMQ rate, F16 the fp16 tensor rate.
        let model = crate::model_catalog::find("llama-2-7b").unwrap();
        let p = 6_607_000_000;
        let quant = llama_cpp_prefill_tokens_per_s(&rtx, &model, p, 512, &q4);
        let half = llama_cpp_prefill_tokens_per_s(&rtx, &model, p, 512, &f16);
        assert!(quant.tokens_per_s < half.tokens_per_s);
        assert!(
            quant.assumptions[0].contains("int8 MMQ"),
            "{:?}",
            quant.assumptions
        );
        let expected = 1.0 / (2.0 * p as f64 / mmq);
        assert!(quant.tokens_per_s < expected && quant.tokens_per_s > 0.95 * expected);
    }

    #[test]
    fn moe_layers_cost_more_on_cuda_only() {
        let rtx = crate::devices::find("rtx-4090").unwrap();
        let m3 = crate::devices::find("m3-max-40c-64gb").unwrap();
        let moe = crate::model_catalog::find("qwen3-30b-a3b").unwrap();
        let dense = crate::model_catalog::find("llama-3.1-8b").unwrap();
        // 48 MoE layers × 30 µs.
        let extra = llama_cpp_moe_step_overhead_s(&rtx, &moe);
        assert!((extra - 48.0 * 30e-6).abs() < 1e-12, "{extra}");
        assert_eq!(llama_cpp_moe_step_overhead_s(&rtx, &dense), 0.0);
        assert_eq!(llama_cpp_moe_step_overhead_s(&m3, &moe), 0.0);
        // Without SM figures the all-in-one 70 µs per layer stands.
        let mut unknown = rtx.clone();
        unknown.sm_count = None;
        assert_eq!(llama_cpp_moe_step_overhead_s(&unknown, &moe), 0.0);
        assert!(
            llama_cpp_decode_step_overhead_s(&unknown, 32)
                > llama_cpp_decode_step_overhead_s(&rtx, 32)
        );
    }

    #[test]
    fn llama_cpp_decode_stops_below_hbm_bandwidth() {
        let rtx = crate::devices::find("rtx-4090").unwrap();
        let h100 = crate::devices::find("h100-sxm").unwrap();
        // GDDR6X is reached before the kernels' limit; HBM3 is not.
        assert!(llama_cpp_decode_bandwidth_cap(&rtx).unwrap() > achieved_bandwidth(&rtx));
        let cap = llama_cpp_decode_bandwidth_cap(&h100).unwrap();
        assert!(cap < 0.6 * achieved_bandwidth(&h100), "{cap}");
        let d = decode_tokens_per_s(&h100, 3_800_000_000, 0, 1);
        let capped = with_llama_cpp_bandwidth_cap(d.clone(), &h100);
        let expected = d.tokens_per_s * cap / achieved_bandwidth(&h100);
        assert!((capped.tokens_per_s - expected).abs() < 1e-9);
        assert_eq!(capped.assumptions.len(), 2);
        let uncapped =
            with_llama_cpp_bandwidth_cap(decode_tokens_per_s(&rtx, 3_800_000_000, 0, 1), &rtx);
        assert_eq!(uncapped.assumptions.len(), 1);
    }

    #[test]
    fn tensor_parallel_speed_grows_less_than_the_device_count() {
        // An 8B model's decode step on one 24 GB card: about 18 ms.
        let step_s = 0.018;
        let mut last = 1.0;
        for n in [2, 4, 8] {
            let s = tensor_parallel_speedup(step_s, n, 32, 4096, 1);
            assert!(s > last && s < f64::from(n), "{n} devices: × {s}");
            last = s;
        }
        assert_eq!(tensor_parallel_speedup(step_s, 1, 32, 4096, 1), 1.0);
        // Far past the point where communication dominates, more devices are slower.
        assert!(tensor_parallel_speedup(step_s, 64, 32, 4096, 1) < last);
        // A long prompt moves far more activations: prefill scales worse than decode.
        let prefill = tensor_parallel_speedup(1.0, 8, 32, 4096, 8192);
        assert!(prefill < tensor_parallel_speedup(1.0, 8, 32, 4096, 1));
        assert_eq!(tensor_parallel_speedup(f64::NAN, 8, 32, 4096, 1), 1.0);
    }
}
