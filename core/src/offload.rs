//! Offload: where the weights and cache go when a model does not fit the GPU, and how fast it
//! then runs.
//!
//! ## llama.cpp
//! Two ways to split, both from llama.cpp's own placement (`src/llama-model.cpp`
//! `load_tensors`, `common/arg.cpp`):
//! * **`-ngl N`** (GPU layers). Layer `il` goes to the GPU when `il ≥ n_layer + 1 − N`; the
//!   output layer (output norm and head) counts as layer `n_layer`, so it is on the GPU from
//!   `N = 1`, and `N = n_layer + 1` puts everything on the GPU. The token embedding always stays
//!   on the host ("there is very little benefit to offloading the input layer"). Each layer's
//!   KV cache lives with its layer (`offload_kqv`, the default).
//! * **`--n-cpu-moe N`**: the routed-expert tensors (`blk.i.ffn_(gate|up|down)_exps`) of the
//!   first `N` layers stay in host memory; everything else, attention and the whole KV cache
//!   included, is on the GPU (`-ngl` all). MoE models only.
//!
//! **Decode** reads every active weight and the KV cache once per step on the side that holds
//! it: time per step = GPU bytes ÷ GPU bandwidth + host bytes ÷ host read bandwidth (the CPU runs
//! the host's layers and experts), plus llama.cpp's fixed costs: the per-layer launch cost of the
//! GPU's layers (as on a GPU alone, [`crate::speed::llama_cpp_decode_step_overhead_s`]) and, in a
//! step split between GPU and CPU, a fixed cost per layer the CPU runs
//! ([`LLAMA_CPP_SPLIT_HOST_LAYER_S`], [`LLAMA_CPP_SPLIT_HOST_EXPERTS_S`]). A MoE reads only the
//! routed experts of a token, which is why experts on the host cost far less than whole layers
//! there. Held to llama-bench on an H100 host (`tests/llama_cpp_offload.rs`).
//!
//! **Prefill**: llama.cpp's CUDA backend runs an operation of a batch of at least 32 tokens on
//! the GPU even when its weights live on the host (`offload_op`, `op_offload_min_batch_size`),
//! copying those weights over the host link for each micro-batch of 512 tokens: time per
//! micro-batch = its compute on the GPU + host weight bytes ÷ host→device transfer rate.
//!
//! ## transformers (accelerate `device_map="auto"`)
//! The GPU is filled in module order (embedding, then layers) up to its capacity; the layers
//! beyond it live in host memory and are copied to the GPU on every forward pass (accelerate's
//! CPU offload hooks), so the speed is bound by the host→device transfer rate. The cache and
//! activations stay on the GPU (the execution device).
//!
//! Host read bandwidth and the transfer rate come from a probe report when one measured them
//! ([`crate::devices::HostLink`]), else from stated assumptions.

use serde::{Deserialize, Serialize};

use crate::{
    devices::{DeviceSpec, MemoryKind},
    model::ModelSpec,
    quant::{WeightFormat, tensor_formats},
    speed::{DATASHEET_BANDWIDTH_EFFICIENCY, HOST_OFFLOAD_BANDWIDTH_BYTES_PER_S},
    tensors::TensorRole,
    units::GIB,
};

/// Host→device transfer rate assumed when no probe measured it: 25 GB/s, what PCIe 4.0 x16
/// achieves of its 32 GB/s (the same figure as [`crate::speed::INTERCONNECT_BYTES_PER_S`]).
pub const DEFAULT_HOST_TO_DEVICE_BYTES_PER_S: f64 = crate::speed::INTERCONNECT_BYTES_PER_S;

/// The rate at which accelerate's `device_map` offload moves host-resident weights to the GPU
/// when no probe measured the link: it copies ordinary (pageable) tensors on every forward pass,
/// far below what the link carries from pinned memory. Measured: Llama-3.2-3B with 20 of 28
/// layers on the host of an H200 machine decoded at 1.05 tokens/s, 4.81 GB per token, so 5.05
/// GB/s (PyTorch's pageable copies on the same machine: 6.7 GB/s, pinned: 55 GB/s;
/// tests/data/measured/h200-offload-transformers-llama-3.2-3b.json, h200-host-reference.json).
pub const DEFAULT_ACCELERATE_COPY_BYTES_PER_S: f64 = 5.0e9;

/// llama.cpp's default micro-batch (`n_ubatch`, 512): host weights are copied to the GPU once
/// per micro-batch during prefill.
pub const LLAMA_CPP_UBATCH_TOKENS: u64 = 512;

/// Time a decode step split between GPU and CPU spends per decoder layer whose attention and
/// dense feed-forward run on the CPU (llama.cpp `-ngl` below the layer count), besides reading
/// its weights: 0.33 ms. The CPU backend runs each graph node across all its threads and waits
/// for them at a barrier, and a split step hands the hidden state between the devices; bytes
/// alone predicted llama-bench's decode 14–29% too fast. The figure is the mean excess per host
/// layer of Llama-3.1-8B Q4_0 at `-ngl 24` and `-ngl 16` on a 16-core Xeon host with an H100
/// (`tests/data/measured/llama-cpp-cuda-h100.json`); one machine: a faster or slower CPU moves it.
/// A step that runs wholly on the CPU (`-ngl 0`) pays none: there llama-bench matched the
/// host's read bandwidth alone within 1%.
pub const LLAMA_CPP_SPLIT_HOST_LAYER_S: f64 = 0.33e-3;

/// The same for each layer whose routed experts run on the CPU (`--n-cpu-moe`, or a whole MoE
/// layer on the host, which pays both): 0.19 ms — the expert matmuls (`mul_mat_id`), the sum over
/// the chosen experts and the two hand-overs per layer. Mean excess per host expert layer of
/// Qwen3-30B-A3B Q4_0 at `--n-cpu-moe` 12, 24, 36 and 48 on the same machine; with the host-layer
/// cost it predicted the whole-layer split (`-ngl 24`) within 1% before that row was looked at.
pub const LLAMA_CPP_SPLIT_HOST_EXPERTS_S: f64 = 0.19e-3;

/// Splits a user can ask for; `None` everywhere lets headroom choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OffloadSettings {
    /// llama.cpp `-ngl N`: layers on the GPU (the output layer counts as one).
    #[serde(default)]
    pub gpu_layers: Option<u64>,
    /// llama.cpp `--n-cpu-moe N`: the expert tensors of the first N layers on the host.
    #[serde(default)]
    pub n_cpu_moe: Option<u64>,
}

impl OffloadSettings {
    /// True when the user forced a split.
    pub fn forced(&self) -> bool {
        self.gpu_layers.is_some() || self.n_cpu_moe.is_some()
    }
}

/// How a model is split between the GPU and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SplitKind {
    /// llama.cpp `-ngl N`.
    GpuLayers {
        /// Layers on the GPU, the output layer counted as one (`n_layer + 1` = all).
        n_gpu_layers: u64,
    },
    /// llama.cpp `--n-cpu-moe N` (with `-ngl` all).
    CpuMoe {
        /// Layers whose expert tensors stay in host memory.
        n_cpu_moe: u64,
    },
    /// transformers + accelerate `device_map="auto"`.
    DeviceMap {
        /// Decoder layers on the GPU (the first ones); the rest are on the host.
        gpu_decoder_layers: u64,
    },
}

impl SplitKind {
    /// The split as the runtime's flag, e.g. `-ngl 30`, `--n-cpu-moe 12`.
    pub fn flag(&self) -> String {
        match self {
            SplitKind::GpuLayers { n_gpu_layers } => format!("-ngl {n_gpu_layers}"),
            SplitKind::CpuMoe { n_cpu_moe } => format!("--n-cpu-moe {n_cpu_moe}"),
            SplitKind::DeviceMap { .. } => "device_map=\"auto\"".to_string(),
        }
    }
}

/// One split with its memory per device and its speed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffloadSplit {
    /// The split.
    pub split: SplitKind,
    /// The split in words, e.g. `-ngl 30: 29 of 48 layers and the output layer on the GPU`.
    pub description: String,
    /// Bytes on the GPU(s): their weights and KV cache, activations, runtime overhead.
    pub gpu_bytes: u64,
    /// What the GPU(s) offer, bytes.
    pub gpu_capacity_bytes: u64,
    /// Bytes in host memory: the host's weights and KV cache.
    pub host_bytes: u64,
    /// What host memory offers for offload, bytes.
    pub host_capacity_bytes: u64,
    /// Both sides hold their part.
    pub fits: bool,
    /// Bytes read from GPU memory per decode step.
    pub gpu_read_bytes_per_token: u64,
    /// Bytes read from host memory (or copied over the host link) per decode step.
    pub host_read_bytes_per_token: u64,
    /// Fixed seconds per decode step besides the reads (llama.cpp's launch and split costs).
    pub fixed_step_s: f64,
    /// Decode tokens/s per sequence.
    pub decode_tokens_per_s: f64,
    /// Prefill tokens/s.
    pub prefill_tokens_per_s: f64,
}

/// The offload answer: the chosen split, the other way to split, and the figures used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffloadPlan {
    /// The split headroom recommends (or the one the user forced).
    pub chosen: OffloadSplit,
    /// The other way to split (llama.cpp: `-ngl` for a MoE chosen with `--n-cpu-moe`, and the
    /// reverse), when there is one.
    pub alternative: Option<OffloadSplit>,
    /// Host read bandwidth used, bytes/s.
    pub host_bandwidth_bytes_per_s: f64,
    /// Where it came from, in words.
    pub host_bandwidth_basis: String,
    /// Host→device transfer rate used, bytes/s.
    pub host_to_device_bytes_per_s: f64,
    /// Where it came from, in words.
    pub host_to_device_basis: String,
}

impl OffloadPlan {
    /// The plan in words for the assumptions.
    pub fn statement(&self) -> String {
        let c = &self.chosen;
        // accelerate copies host-resident weights to the GPU on every forward pass, so its decode
        // is bound by the link; llama.cpp reads them where they are, at host RAM speed.
        let (host_rate, host_basis, host_how) = match c.split {
            SplitKind::DeviceMap { .. } => (
                self.host_to_device_bytes_per_s,
                &self.host_to_device_basis,
                "copied to the GPU",
            ),
            _ => (
                self.host_bandwidth_bytes_per_s,
                &self.host_bandwidth_basis,
                "read in host RAM",
            ),
        };
        let mut s = format!(
            "offload split {}: {}; GPU {:.2} of {:.2} GiB, host {:.2} of {:.2} GiB; decode {:.1} \
             tokens/s (GPU reads {:.2} GB per token at the GPU's bandwidth, the host's {:.2} GB \
             are {host_how} at {:.1} GB/s: {}{}), prefill {:.0} tokens/s (host-resident weights \
             copied to the GPU at {:.1} GB/s: {})",
            c.split.flag(),
            c.description,
            gib(c.gpu_bytes),
            gib(c.gpu_capacity_bytes),
            gib(c.host_bytes),
            gib(c.host_capacity_bytes),
            c.decode_tokens_per_s,
            c.gpu_read_bytes_per_token as f64 / 1e9,
            c.host_read_bytes_per_token as f64 / 1e9,
            host_rate / 1e9,
            host_basis,
            if c.fixed_step_s > 0.0 {
                format!(
                    "; plus {:.2} ms per step of llama.cpp's fixed costs: the GPU layers' kernel \
                     launches and, in a step split between GPU and CPU, {:.2} ms per layer and \
                     {:.2} ms per layer's experts the CPU runs, measured on an H100 host",
                    c.fixed_step_s * 1e3,
                    LLAMA_CPP_SPLIT_HOST_LAYER_S * 1e3,
                    LLAMA_CPP_SPLIT_HOST_EXPERTS_S * 1e3
                )
            } else {
                String::new()
            },
            c.prefill_tokens_per_s,
            self.host_to_device_bytes_per_s / 1e9,
            self.host_to_device_basis,
        );
        if let Some(a) = &self.alternative {
            s.push_str(&format!(
                "; alternative {}: {}, GPU {:.2} GiB, host {:.2} GiB, decode {:.1} tokens/s{}",
                a.split.flag(),
                a.description,
                gib(a.gpu_bytes),
                gib(a.host_bytes),
                a.decode_tokens_per_s,
                if a.fits { "" } else { " (does not fit)" }
            ));
        }
        s
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

/// Weight bytes of a model grouped the way the runtimes place them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacementBytes {
    /// Token embedding(s): llama.cpp's input layer, always on the host.
    pub input_bytes: u64,
    /// Bytes a token reads of the input layer.
    pub input_active_bytes: u64,
    /// Every decoder layer's weights except its routed experts.
    pub layer_bytes: Vec<u64>,
    /// Bytes a token reads of those.
    pub layer_active_bytes: Vec<u64>,
    /// Every decoder layer's routed-expert tensors.
    pub expert_bytes: Vec<u64>,
    /// Bytes a token reads of those (its routed experts).
    pub expert_active_bytes: Vec<u64>,
    /// Everything else (output norm and head, encoders, MTP layers): the output layer.
    pub output_bytes: u64,
    /// Bytes a token reads of it.
    pub output_active_bytes: u64,
}

impl PlacementBytes {
    /// The grouping of `model`'s tensors in `format`, tensor by tensor from
    /// [`tensor_formats`] ([`crate::quant::ModelTensors::placement`] gives the same bytes from
    /// the tensor groups, faster).
    pub fn new(model: &ModelSpec, format: &WeightFormat) -> PlacementBytes {
        let mut p = PlacementBytes::with_layers(model.num_layers);
        for (t, s) in tensor_formats(model, format) {
            p.add(t.role, t.layer, s.bytes, s.active_bytes);
        }
        p
    }

    /// Nothing placed yet, for a model of `layers` decoder layers.
    pub fn with_layers(layers: u64) -> PlacementBytes {
        let n = usize::try_from(layers).unwrap_or(0);
        PlacementBytes {
            layer_bytes: vec![0; n],
            layer_active_bytes: vec![0; n],
            expert_bytes: vec![0; n],
            expert_active_bytes: vec![0; n],
            ..PlacementBytes::default()
        }
    }

    /// Places one tensor of `role` in `layer` (`None`, or beyond the decoder layers: MTP
    /// layers, encoders, the head — the output layer) stored in `bytes`, `active` of them read
    /// per token.
    pub fn add(&mut self, role: TensorRole, layer: Option<u64>, bytes: u64, active: u64) {
        let n = self.layer_bytes.len();
        let layer = layer
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l < n);
        let (total, read) = match (role, layer) {
            (TensorRole::TokenEmbedding, _) => {
                (&mut self.input_bytes, &mut self.input_active_bytes)
            }
            (
                TensorRole::FfnGateExperts | TensorRole::FfnUpExperts | TensorRole::FfnDownExperts,
                Some(l),
            ) => (&mut self.expert_bytes[l], &mut self.expert_active_bytes[l]),
            (_, Some(l)) => (&mut self.layer_bytes[l], &mut self.layer_active_bytes[l]),
            (_, None) => (&mut self.output_bytes, &mut self.output_active_bytes),
        };
        *total = total.saturating_add(bytes);
        *read = read.saturating_add(active);
    }

    /// Every byte.
    pub fn total_bytes(&self) -> u64 {
        self.input_bytes
            + self.output_bytes
            + self.layer_bytes.iter().sum::<u64>()
            + self.expert_bytes.iter().sum::<u64>()
    }

    /// True when some layer has routed experts (`--n-cpu-moe` applies).
    pub fn has_experts(&self) -> bool {
        self.expert_bytes.iter().any(|b| *b > 0)
    }

    /// The same grouping scaled so the bytes add up to `total` (a checkpoint's own bytes).
    pub fn scaled_to(&self, total: u64) -> PlacementBytes {
        let have = self.total_bytes();
        if have == 0 || have == total {
            return self.clone();
        }
        let f = total as f64 / have as f64;
        let s = |b: u64| (b as f64 * f) as u64;
        let v = |xs: &[u64]| xs.iter().map(|b| s(*b)).collect::<Vec<_>>();
        PlacementBytes {
            input_bytes: s(self.input_bytes),
            input_active_bytes: s(self.input_active_bytes),
            layer_bytes: v(&self.layer_bytes),
            layer_active_bytes: v(&self.layer_active_bytes),
            expert_bytes: v(&self.expert_bytes),
            expert_active_bytes: v(&self.expert_active_bytes),
            output_bytes: s(self.output_bytes),
            output_active_bytes: s(self.output_active_bytes),
        }
    }
}

/// Which engine's offload to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadEngine {
    /// llama.cpp: `-ngl` or `--n-cpu-moe`.
    LlamaCpp,
    /// transformers with accelerate's `device_map="auto"`.
    Transformers,
}

/// What a plan needs besides the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct OffloadInputs<'a> {
    /// The device (one of `device_count`).
    pub device: &'a DeviceSpec,
    /// Identical devices (llama.cpp splits layers over them: their memory adds up, their
    /// bandwidth does not, since the layers run one after another).
    pub device_count: u32,
    /// KV cache bytes of each decoder layer, all sequences.
    pub kv_layer_bytes: Vec<u64>,
    /// KV cache bytes of each decoder layer read per decode step (the steady cache).
    pub kv_layer_read_bytes: Vec<u64>,
    /// Activations and runtime overhead (on the GPU whatever the split), bytes.
    pub gpu_fixed_bytes: u64,
    /// Usable memory of all devices together, bytes.
    pub gpu_capacity_bytes: u64,
    /// Host memory offload may use, bytes.
    pub host_capacity_bytes: u64,
    /// Prefill tokens/s of the whole model on the GPU (no offload).
    pub gpu_prefill_tokens_per_s: f64,
    /// Prompt tokens per sequence (the context).
    pub context: u64,
}

/// GPU read bandwidth a decode step gets, bytes/s (the datasheet efficiency as in
/// [`crate::speed::decode_tokens_per_s`]).
fn gpu_bandwidth(device: &DeviceSpec) -> f64 {
    if device.bandwidth_measured {
        device.bandwidth_bytes_per_s
    } else {
        device.bandwidth_bytes_per_s * DATASHEET_BANDWIDTH_EFFICIENCY
    }
}

/// Host read bandwidth and its basis: a probe report's measurement, else
/// [`HOST_OFFLOAD_BANDWIDTH_BYTES_PER_S`].
pub fn host_bandwidth(device: &DeviceSpec) -> (f64, String) {
    match device
        .host
        .read_bandwidth_bytes_per_s
        .filter(|b| b.is_finite() && *b > 0.0)
    {
        Some(b) => (b, "host RAM read bandwidth measured by the probe".into()),
        None => (
            HOST_OFFLOAD_BANDWIDTH_BYTES_PER_S,
            "assumed: dual-channel DDR5 as CPUs reach it; a probe report measures it".into(),
        ),
    }
}

/// Host→device transfer rate for `engine` and its basis: a probe report's measurement (wgpu's
/// upload from pageable memory through a staging copy, like accelerate's copies); on unified
/// memory the host bandwidth (nothing crosses a link); else, for transformers,
/// [`DEFAULT_ACCELERATE_COPY_BYTES_PER_S`] and for llama.cpp
/// [`DEFAULT_HOST_TO_DEVICE_BYTES_PER_S`].
pub fn host_to_device(device: &DeviceSpec, engine: OffloadEngine) -> (f64, String) {
    if let Some(b) = device
        .host
        .host_to_device_bytes_per_s
        .filter(|b| b.is_finite() && *b > 0.0)
    {
        return (
            b,
            "host→device upload rate measured by the probe (pageable memory through a staging \
             copy)"
                .into(),
        );
    }
    if device.memory_kind == MemoryKind::Unified {
        let (b, _) = host_bandwidth(device);
        return (
            b,
            "unified memory: no link to cross, read at host speed".into(),
        );
    }
    match engine {
        OffloadEngine::Transformers => (
            DEFAULT_ACCELERATE_COPY_BYTES_PER_S,
            "accelerate's pageable copies, 5.0 GB/s as measured on an H200 machine (PCIe's pinned \
             rate is far higher); a probe report measures this machine's upload"
                .into(),
        ),
        OffloadEngine::LlamaCpp => (
            DEFAULT_HOST_TO_DEVICE_BYTES_PER_S,
            "assumed PCIe 4.0 x16 (25 of 32 GB/s); a probe report measures it".into(),
        ),
    }
}

#[derive(Default)]
struct Sides {
    gpu_bytes: u64,
    host_bytes: u64,
    gpu_read: u64,
    host_read: u64,
    /// Host weight bytes copied to the GPU per prefill micro-batch / forward pass.
    host_weights: u64,
    /// Decoder layers whose attention / dense part runs on the GPU.
    gpu_layers: u64,
    /// Decoder layers whose attention / dense part runs on the host.
    host_layers: u64,
    /// Decoder layers whose routed experts run on the host.
    host_expert_layers: u64,
}

/// Memory and reads of llama.cpp's `-ngl n`.
fn ngl_sides(w: &PlacementBytes, inp: &OffloadInputs<'_>, n: u64) -> Sides {
    let layers = w.layer_bytes.len() as u64;
    let first_gpu = (layers + 1).saturating_sub(n);
    let mut s = Sides {
        gpu_bytes: inp.gpu_fixed_bytes,
        host_bytes: w.input_bytes,
        gpu_read: 0,
        host_read: w.input_active_bytes,
        host_weights: 0,
        ..Sides::default()
    };
    for i in 0..w.layer_bytes.len() {
        let bytes = w.layer_bytes[i] + w.expert_bytes[i];
        let read = w.layer_active_bytes[i] + w.expert_active_bytes[i];
        let kv = inp.kv_layer_bytes.get(i).copied().unwrap_or(0);
        let kv_read = inp.kv_layer_read_bytes.get(i).copied().unwrap_or(0);
        if i as u64 >= first_gpu {
            s.gpu_bytes += bytes + kv;
            s.gpu_read += read + kv_read;
            s.gpu_layers += 1;
        } else {
            s.host_bytes += bytes + kv;
            s.host_read += read + kv_read;
            s.host_weights += bytes;
            s.host_layers += 1;
            if w.expert_bytes[i] > 0 {
                s.host_expert_layers += 1;
            }
        }
    }
    if n >= 1 {
        s.gpu_bytes += w.output_bytes;
        s.gpu_read += w.output_active_bytes;
    } else {
        s.host_bytes += w.output_bytes;
        s.host_read += w.output_active_bytes;
        s.host_weights += w.output_bytes;
    }
    s
}

/// Memory and reads of llama.cpp's `--n-cpu-moe n` (everything else on the GPU).
fn cpu_moe_sides(w: &PlacementBytes, inp: &OffloadInputs<'_>, n: u64) -> Sides {
    let mut s = Sides {
        gpu_bytes: inp.gpu_fixed_bytes + w.output_bytes,
        host_bytes: w.input_bytes,
        gpu_read: w.output_active_bytes,
        host_read: w.input_active_bytes,
        host_weights: 0,
        gpu_layers: w.layer_bytes.len() as u64,
        ..Sides::default()
    };
    for i in 0..w.layer_bytes.len() {
        let kv = inp.kv_layer_bytes.get(i).copied().unwrap_or(0);
        let kv_read = inp.kv_layer_read_bytes.get(i).copied().unwrap_or(0);
        s.gpu_bytes += w.layer_bytes[i] + kv;
        s.gpu_read += w.layer_active_bytes[i] + kv_read;
        if (i as u64) < n {
            s.host_bytes += w.expert_bytes[i];
            s.host_read += w.expert_active_bytes[i];
            s.host_weights += w.expert_bytes[i];
            if w.expert_bytes[i] > 0 {
                s.host_expert_layers += 1;
            }
        } else {
            s.gpu_bytes += w.expert_bytes[i];
            s.gpu_read += w.expert_active_bytes[i];
        }
    }
    s
}

/// Memory and reads of accelerate's `device_map="auto"` with the first `n` decoder layers on
/// the GPU: the embedding first, then layers; the rest (and the head after them) on the host,
/// copied in full to the GPU on every forward pass. The KV cache is on the GPU.
fn device_map_sides(w: &PlacementBytes, inp: &OffloadInputs<'_>, n: u64) -> Sides {
    let layers = w.layer_bytes.len() as u64;
    let kv_all: u64 = inp.kv_layer_bytes.iter().sum();
    let kv_read: u64 = inp.kv_layer_read_bytes.iter().sum();
    let mut s = Sides {
        gpu_bytes: inp.gpu_fixed_bytes + kv_all + w.input_bytes,
        host_bytes: 0,
        gpu_read: kv_read + w.input_active_bytes,
        host_read: 0,
        host_weights: 0,
        ..Sides::default()
    };
    // The hooks bring each offloaded layer onto the GPU before it runs: room for the largest.
    let mut largest_offloaded = 0;
    for i in 0..w.layer_bytes.len() {
        let bytes = w.layer_bytes[i] + w.expert_bytes[i];
        if (i as u64) < n {
            s.gpu_bytes += bytes;
            s.gpu_read += w.layer_active_bytes[i] + w.expert_active_bytes[i];
        } else {
            s.host_bytes += bytes;
            s.host_read += bytes;
            s.host_weights += bytes;
            largest_offloaded = largest_offloaded.max(bytes);
        }
    }
    if n >= layers {
        s.gpu_bytes += w.output_bytes;
        s.gpu_read += w.output_active_bytes;
    } else {
        s.host_bytes += w.output_bytes;
        s.host_read += w.output_bytes;
        s.host_weights += w.output_bytes;
        largest_offloaded = largest_offloaded.max(w.output_bytes);
    }
    s.gpu_bytes += largest_offloaded;
    s
}

fn describe(kind: SplitKind, w: &PlacementBytes) -> String {
    let layers = w.layer_bytes.len() as u64;
    match kind {
        SplitKind::GpuLayers { n_gpu_layers } if n_gpu_layers > layers => format!(
            "all {layers} layers and the output layer on the GPU, the token embedding on the host"
        ),
        SplitKind::GpuLayers { n_gpu_layers: 0 } => format!(
            "all {layers} layers on the host (the CPU runs them), the GPU only computes prompt \
             batches"
        ),
        SplitKind::GpuLayers { n_gpu_layers } => format!(
            "the last {} of {layers} layers and the output layer on the GPU, the first {} layers \
             and the token embedding on the host",
            n_gpu_layers - 1,
            layers + 1 - n_gpu_layers
        ),
        SplitKind::CpuMoe { n_cpu_moe } => format!(
            "the expert tensors of the first {n_cpu_moe} of {layers} layers on the host, \
             attention, the other experts and the whole KV cache on the GPU"
        ),
        SplitKind::DeviceMap { gpu_decoder_layers } => format!(
            "the embedding and the first {gpu_decoder_layers} of {layers} layers on the GPU, the \
             other {} layers{} on the host, copied to the GPU on every forward pass",
            layers.saturating_sub(gpu_decoder_layers),
            if gpu_decoder_layers < layers {
                " and the head"
            } else {
                ""
            }
        ),
    }
}

fn sides(kind: SplitKind, w: &PlacementBytes, inp: &OffloadInputs<'_>) -> Sides {
    match kind {
        SplitKind::GpuLayers { n_gpu_layers } => ngl_sides(w, inp, n_gpu_layers),
        SplitKind::CpuMoe { n_cpu_moe } => cpu_moe_sides(w, inp, n_cpu_moe),
        SplitKind::DeviceMap { gpu_decoder_layers } => device_map_sides(w, inp, gpu_decoder_layers),
    }
}

fn split_of(
    kind: SplitKind,
    w: &PlacementBytes,
    inp: &OffloadInputs<'_>,
    host_bw: f64,
    link_bw: f64,
) -> OffloadSplit {
    let s = sides(kind, w, inp);
    let copies = matches!(kind, SplitKind::DeviceMap { .. });
    // llama.cpp's matrix-vector kernels stop below the memory's bandwidth on some GPUs
    // (`speed::llama_cpp_decode_bandwidth_cap`).
    let gpu_bw = match crate::speed::llama_cpp_decode_bandwidth_cap(inp.device) {
        Some(cap) if !copies => gpu_bandwidth(inp.device).min(cap),
        _ => gpu_bandwidth(inp.device),
    };
    // transformers copies the host's layers over the link; llama.cpp's CPU reads them in place.
    let host_rate = if copies { link_bw } else { host_bw };
    let fixed_step_s = llama_cpp_fixed_s(kind, &s, inp, w.has_experts());
    let step_s = if gpu_bw > 0.0 && host_rate > 0.0 {
        s.gpu_read as f64 / gpu_bw + s.host_read as f64 / host_rate + fixed_step_s
    } else {
        0.0
    };
    let decode = if step_s > 0.0 { 1.0 / step_s } else { 0.0 };
    // Prefill: the GPU computes every token; the host's weights cross the link once per
    // micro-batch (llama.cpp) or once per forward pass over the whole prompt (transformers).
    let chunk = if copies {
        inp.context.max(1)
    } else {
        LLAMA_CPP_UBATCH_TOKENS.min(inp.context.max(1))
    };
    let prefill = if inp.gpu_prefill_tokens_per_s > 0.0 && link_bw > 0.0 {
        let chunk_s = chunk as f64 / inp.gpu_prefill_tokens_per_s + s.host_weights as f64 / link_bw;
        chunk as f64 / chunk_s
    } else {
        0.0
    };
    OffloadSplit {
        split: kind,
        description: describe(kind, w),
        gpu_bytes: s.gpu_bytes,
        gpu_capacity_bytes: inp.gpu_capacity_bytes,
        host_bytes: s.host_bytes,
        host_capacity_bytes: inp.host_capacity_bytes,
        fits: s.gpu_bytes <= inp.gpu_capacity_bytes && s.host_bytes <= inp.host_capacity_bytes,
        gpu_read_bytes_per_token: s.gpu_read,
        host_read_bytes_per_token: s.host_read,
        fixed_step_s,
        decode_tokens_per_s: decode,
        prefill_tokens_per_s: prefill,
    }
}

/// llama.cpp's fixed time per decode step of a split: the GPU layers' launch cost and, when the
/// step is split between GPU and CPU, the cost of each layer (and each layer's experts) the CPU
/// runs. Zero for transformers (its copies are priced by the link rate).
fn llama_cpp_fixed_s(kind: SplitKind, s: &Sides, inp: &OffloadInputs<'_>, moe: bool) -> f64 {
    if matches!(kind, SplitKind::DeviceMap { .. }) {
        return 0.0;
    }
    // A MoE's GPU layers also run its routing kernels (`speed::llama_cpp_moe_layer_overhead_s`).
    let moe_layer_s = if moe {
        crate::speed::llama_cpp_moe_layer_overhead_s(inp.device)
    } else {
        0.0
    };
    let gpu = crate::speed::llama_cpp_decode_step_overhead_s(inp.device, s.gpu_layers)
        + moe_layer_s * s.gpu_layers as f64;
    let split = s.gpu_layers > 0 || s.gpu_read > 0;
    let host = if split {
        s.host_layers as f64 * LLAMA_CPP_SPLIT_HOST_LAYER_S
            + s.host_expert_layers as f64 * LLAMA_CPP_SPLIT_HOST_EXPERTS_S
    } else {
        0.0
    };
    gpu + host
}

/// The split with the most on the GPU among the `count` candidates `kind_at(0..count)`
/// (ordered from most to least on the GPU, so their GPU bytes never grow) whose GPU part fits;
/// the last candidate when none does. A binary search: the GPU bytes are monotonic.
fn largest_gpu_share(
    count: u64,
    kind_at: impl Fn(u64) -> SplitKind,
    w: &PlacementBytes,
    inp: &OffloadInputs<'_>,
    host_bw: f64,
    link_bw: f64,
) -> Option<OffloadSplit> {
    let last = count.checked_sub(1)?;
    let fits = |i: u64| sides(kind_at(i), w, inp).gpu_bytes <= inp.gpu_capacity_bytes;
    // The first index that fits, in [0, last]; `last` when none does.
    let (mut lo, mut hi) = (0, last);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(split_of(kind_at(lo), w, inp, host_bw, link_bw))
}

/// The offload plan for `engine`: the split with the largest GPU share that fits (llama.cpp:
/// the faster of the best `-ngl` and the best `--n-cpu-moe`, the other as the alternative), or
/// the split `forced` names. `weights` must already add up to the estimate's weight bytes.
pub fn plan(
    engine: OffloadEngine,
    weights: &PlacementBytes,
    inputs: &OffloadInputs<'_>,
    forced: OffloadSettings,
) -> OffloadPlan {
    let (host_bw, host_basis) = host_bandwidth(inputs.device);
    let (link_bw, link_basis) = host_to_device(inputs.device, engine);
    let layers = weights.layer_bytes.len() as u64;
    let one = |kind| split_of(kind, weights, inputs, host_bw, link_bw);
    let (chosen, alternative) = match engine {
        OffloadEngine::Transformers => {
            let best = largest_gpu_share(
                layers + 1,
                |i| SplitKind::DeviceMap {
                    gpu_decoder_layers: layers - i,
                },
                weights,
                inputs,
                host_bw,
                link_bw,
            )
            .unwrap_or_else(|| {
                one(SplitKind::DeviceMap {
                    gpu_decoder_layers: 0,
                })
            });
            (best, None)
        }
        OffloadEngine::LlamaCpp => {
            let ngl = largest_gpu_share(
                layers + 2,
                |i| SplitKind::GpuLayers {
                    n_gpu_layers: layers + 1 - i,
                },
                weights,
                inputs,
                host_bw,
                link_bw,
            );
            let moe = if weights.has_experts() {
                largest_gpu_share(
                    layers + 1,
                    |n| SplitKind::CpuMoe { n_cpu_moe: n },
                    weights,
                    inputs,
                    host_bw,
                    link_bw,
                )
            } else {
                None
            };
            let forced_split = match (forced.gpu_layers, forced.n_cpu_moe) {
                (Some(n), _) => Some(one(SplitKind::GpuLayers { n_gpu_layers: n })),
                (None, Some(n)) => Some(one(SplitKind::CpuMoe { n_cpu_moe: n })),
                (None, None) => None,
            };
            match (forced_split, ngl, moe) {
                (Some(f), ngl, moe) => {
                    // The alternative to a forced split is headroom's own choice.
                    let own = [ngl, moe]
                        .into_iter()
                        .flatten()
                        .filter(|s| s.split != f.split)
                        .max_by(|a, b| rank(a).total_cmp(&rank(b)));
                    (f, own)
                }
                (None, Some(a), Some(b)) => {
                    if rank(&b) > rank(&a) {
                        (b, Some(a))
                    } else {
                        (a, Some(b))
                    }
                }
                (None, Some(a), None) | (None, None, Some(a)) => (a, None),
                (None, None, None) => (one(SplitKind::GpuLayers { n_gpu_layers: 0 }), None),
            }
        }
    };
    OffloadPlan {
        chosen,
        alternative,
        host_bandwidth_bytes_per_s: host_bw,
        host_bandwidth_basis: host_basis,
        host_to_device_bytes_per_s: link_bw,
        host_to_device_basis: link_basis,
    }
}

/// Orders splits: one that fits beats one that does not, then the faster decode.
fn rank(s: &OffloadSplit) -> f64 {
    if s.fits {
        1e12 + s.decode_tokens_per_s
    } else {
        s.decode_tokens_per_s
    }
}
