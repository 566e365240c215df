//! The probe plan: which stages run, at which sizes, within which memory budget, with which of
//! the adapter's capabilities — decided once, here, for the `headroom probe` CLI and the site's
//! benchmark alike. [`crate::run`] carries a plan out.
//!
//! Sizes come in four sets: [`FULL`] and [`QUICK`] for a native GPU, [`CPU_ADAPTER`] for a CPU
//! rasterizer (lavapipe, SwiftShader: correctness, not speed), and [`BROWSER_GPU`] and
//! [`BROWSER_CPU`] for a browser tab, which reports no memory figure and is killed when it
//! allocates too much.

use headroom_core::report::{AdapterInfo, HostInfo, Stage};
use thiserror::Error;

use crate::kernels::decode::DecodeFormat;
use crate::kernels::gemm::GemmVariant;
use crate::kernels::{GIB, MIB, MeasureSettings};

/// Share of a discrete GPU's device-local memory the memory stages may take by default.
pub const DISCRETE_BUDGET_FRACTION: f64 = 0.9;
/// Share of available RAM the memory stages may take on unified memory without a Metal working
/// set (Linux integrated GPUs, CPU rasterizers): stays clear of swap.
pub const UNIFIED_AVAILABLE_FRACTION: f64 = 0.8;
/// When the backend does not say how much memory the GPU has: half of RAM.
pub const UNKNOWN_MEMORY_RAM_FRACTION: f64 = 0.5;
/// RAM assumed when the host does not say (only to size the memory stages' cap).
const UNKNOWN_RAM_BYTES: u64 = 4 * GIB;
/// The bandwidth stage holds two buffers: each stays within a sixth of the memory cap, so both
/// together take at most a third of it.
const BANDWIDTH_CAP_SHARE: u64 = 6;
/// The decode simulation's weights stay within half of the memory cap.
const DECODE_CAP_FRACTION: f64 = 0.5;

/// Problem sizes and limits of one kind of run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    /// Written into the report's `budget_source`.
    pub label: &'static str,
    /// GEMM sizes n (n×n×n).
    pub gemm_n: &'static [u32],
    /// Attention (batch, heads, sequence).
    pub attention: (u32, u32, u32),
    /// Bandwidth buffer size, bytes (each of two buffers; capped by the memory cap).
    pub bandwidth_bytes: u64,
    /// Decode-simulation model size, parameters (capped by the memory cap).
    pub decode_params: u64,
    /// Parameters (fp16) added per step of the allocation stage.
    pub allocation_step_params: u64,
    /// A stage stops starting new steps after this many seconds; the memory stages stop inside.
    pub stage_time_limit_s: f64,
    /// Measurement length.
    pub measure: MeasureSettings,
    /// Attention keys per tile; `None`: as many as the adapter's workgroup storage allows.
    /// CPU adapters take a small tile: LLVM compiles the unrolled 32-key body for minutes.
    pub attention_key_block: Option<u32>,
    /// A fixed memory cap (the browser's); `None`: from the budget policy.
    pub memory_cap_bytes: Option<u64>,
    /// Host buffer summed by the host-bandwidth stage, bytes: far beyond any last-level cache
    /// (the largest are about 1 GiB, AMD's Genoa-X), so RAM itself is read; 0 where the stage
    /// does not run (a browser tab).
    pub host_bandwidth_bytes: u64,
    /// Buffer moved each way by the transfer stage, bytes.
    pub transfer_bytes: u64,
}

/// The full native run.
pub const FULL: Sizes = Sizes {
    label: "full",
    gemm_n: &[4096, 8192],
    // The comparison shape of probe/BENCHMARKS.md: B8 H32 S2048.
    attention: (8, 32, 2048),
    bandwidth_bytes: 4 * GIB,
    // An 8B-parameter model.
    decode_params: 8_000_000_000,
    allocation_step_params: 1_000_000_000,
    stage_time_limit_s: 600.0,
    measure: MeasureSettings::FULL,
    attention_key_block: None,
    memory_cap_bytes: None,
    host_bandwidth_bytes: 2 * GIB,
    transfer_bytes: GIB,
};

/// `--quick`: under a minute on a real GPU.
pub const QUICK: Sizes = Sizes {
    label: "quick",
    gemm_n: &[2048],
    attention: (4, 16, 1024),
    bandwidth_bytes: GIB,
    decode_params: 1_000_000_000,
    allocation_step_params: 4_000_000_000,
    stage_time_limit_s: 60.0,
    measure: MeasureSettings::QUICK,
    attention_key_block: None,
    memory_cap_bytes: None,
    host_bandwidth_bytes: GIB,
    transfer_bytes: 256 * MIB,
};

/// A native CPU rasterizer (lavapipe, ~1 GFLOP/s) checks correctness, not speed: tiny sizes.
pub const CPU_ADAPTER: Sizes = Sizes {
    label: "cpu adapter (correctness sizes)",
    gemm_n: &[256],
    attention: (1, 2, 128),
    bandwidth_bytes: 32 * MIB,
    decode_params: 16 * MIB,
    allocation_step_params: 16 * MIB,
    // lavapipe compiles shaders with LLVM: a cold compile of the attention kernels takes
    // minutes on a 2-core machine.
    stage_time_limit_s: 900.0,
    measure: MeasureSettings::ONCE,
    attention_key_block: Some(4),
    memory_cap_bytes: None,
    host_bandwidth_bytes: 64 * MIB,
    transfer_bytes: 16 * MIB,
};

/// A real GPU in a browser: the quick run's kernel sizes, memory capped at 4 GiB for the tab.
pub const BROWSER_GPU: Sizes = Sizes {
    label: "browser quick",
    gemm_n: &[2048],
    attention: (4, 16, 1024),
    bandwidth_bytes: 256 * MIB,
    decode_params: 1_000_000_000,
    allocation_step_params: 256 * MIB,
    stage_time_limit_s: 60.0,
    measure: MeasureSettings::QUICK,
    attention_key_block: None,
    memory_cap_bytes: Some(4 * GIB),
    host_bandwidth_bytes: 0,
    transfer_bytes: 64 * MIB,
};

/// A CPU fallback adapter in a browser (SwiftShader): correctness sizes, like [`CPU_ADAPTER`].
pub const BROWSER_CPU: Sizes = Sizes {
    label: "browser cpu fallback (correctness sizes)",
    gemm_n: &[256],
    attention: (1, 2, 128),
    bandwidth_bytes: 32 * MIB,
    decode_params: 16 * MIB,
    allocation_step_params: 16 * MIB,
    // As for lavapipe: SwiftShader compiles the attention kernels slowly.
    stage_time_limit_s: CPU_ADAPTER.stage_time_limit_s,
    measure: MeasureSettings::ONCE,
    attention_key_block: Some(4),
    memory_cap_bytes: Some(256 * MIB),
    host_bandwidth_bytes: 0,
    transfer_bytes: 4 * MIB,
};

/// Where the run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The `headroom probe` binary; `quick` for the shorter run.
    Native {
        /// Smaller sizes and shorter measurements.
        quick: bool,
    },
    /// A browser tab through WebGPU.
    Browser,
}

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Native or browser.
    pub target: Target,
    /// Stages to run; empty: all.
    pub only: Vec<Stage>,
    /// A memory budget given by the user, bytes.
    pub budget_bytes: Option<u64>,
    /// Let the allocation stage go past the point where the host starts to swap.
    pub allow_swap: bool,
    /// Test hook: allocations beyond this many bytes fail as a simulated out-of-memory.
    pub simulate_oom_above_bytes: Option<u64>,
    /// Test hook: these allocation steps (1 for the first) are timed as if the host had slowed
    /// them (see `kernels::allocation::AllocationParams::simulate_slow_steps`).
    pub simulate_slow_steps: Vec<u32>,
}

/// The adapter's capabilities the kernels choose by, read once from the adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Cooperative-matrix configurations the adapter offers (empty: none, or in a browser).
    pub coop: Vec<wgpu::CooperativeMatrixProperties>,
    /// The largest subgroup size (0 if unknown): the coop GEMM's lanes per subgroup.
    pub subgroup_max_size: u32,
    /// The subgroup size where it is fixed and known (`subgroup_min_size ==
    /// subgroup_max_size > 0`); kernels that split work by subgroup size need it.
    pub fixed_subgroup_size: Option<u32>,
}

impl Capabilities {
    /// Reads the capabilities of `adapter`.
    pub fn of(adapter: &wgpu::Adapter) -> Capabilities {
        let info = adapter.get_info();
        Capabilities {
            coop: adapter.cooperative_matrix_properties(),
            subgroup_max_size: info.subgroup_max_size,
            fixed_subgroup_size: fixed_subgroup_size(
                info.subgroup_min_size,
                info.subgroup_max_size,
            ),
        }
    }
}

/// The subgroup size when the adapter fixes it: min = max, and known (not 0).
pub fn fixed_subgroup_size(min: u32, max: u32) -> Option<u32> {
    (min == max && max > 0).then_some(max)
}

/// The memory budget and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Bytes the memory stages may hold; `None`: no budget (only `allow_swap` on unified memory).
    pub bytes: Option<u64>,
    /// Where the figure came from, for the report.
    pub source: String,
}

/// One step of a stage: one measurement (or one memory stage) and its own progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// One GEMM variant at one size.
    Gemm {
        /// The variant.
        variant: GemmVariant,
        /// M = N = K.
        n: u32,
    },
    /// One attention configuration.
    Attention {
        /// Head size.
        head_dim: u32,
        /// Causal mask.
        causal: bool,
    },
    /// Read, write and copy bandwidth.
    Bandwidth {
        /// Each buffer's size, bytes.
        bytes: u64,
    },
    /// The decode simulation of one weight format.
    Decode {
        /// The format.
        format: DecodeFormat,
        /// Model size, parameters.
        params: u64,
    },
    /// The largest single buffer.
    MaxBuffer,
    /// The model-size allocation stage.
    Allocation,
    /// Host RAM read by every core.
    HostBandwidth {
        /// Buffer size, bytes.
        bytes: u64,
    },
    /// Host→device upload and device→host download.
    Transfer {
        /// Buffer size, bytes.
        bytes: u64,
    },
}

impl Step {
    /// The stage this step belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            Step::Gemm { .. } => Stage::Gemm,
            Step::Attention { .. } => Stage::Attention,
            Step::Bandwidth { .. } => Stage::Bandwidth,
            Step::Decode { .. } => Stage::Decode,
            Step::MaxBuffer => Stage::MaxBuffer,
            Step::Allocation => Stage::Allocation,
            Step::HostBandwidth { .. } => Stage::HostBandwidth,
            Step::Transfer { .. } => Stage::Transfer,
        }
    }

    /// A line for a progress display.
    pub fn label(&self) -> String {
        match self {
            Step::Gemm { variant, n } => format!("GEMM {} {n}³", variant.metric()),
            Step::Attention { head_dim, causal } => format!(
                "attention d{head_dim}{}",
                if *causal { " causal" } else { "" }
            ),
            Step::Bandwidth { .. } => "bandwidth read / write / copy".to_owned(),
            Step::Decode { format, params } => format!(
                "decode simulation {} {:.2}B params",
                format.label(),
                *params as f64 / 1e9
            ),
            Step::MaxBuffer => "largest buffer".to_owned(),
            Step::Allocation => "model-size allocation, step by step".to_owned(),
            Step::HostBandwidth { bytes } => format!(
                "host RAM read, every core, {:.0} MiB",
                *bytes as f64 / MIB as f64
            ),
            Step::Transfer { bytes } => format!(
                "host↔device transfer, {:.0} MiB each way",
                *bytes as f64 / MIB as f64
            ),
        }
    }
}

/// Why no plan could be made from what was asked.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PlanError {
    /// No adapter was found at all.
    #[error("no GPU adapter found")]
    NoAdapter,
    /// An adapter index past the end of the list.
    #[error("adapter {index}: there are {count} adapters")]
    AdapterIndex {
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// No adapter's name contains the text asked for.
    #[error("`{wanted}` matches no adapter; found: {found}")]
    AdapterName {
        /// The text asked for.
        wanted: String,
        /// Every adapter, `index: name (backend)`, separated by `; `.
        found: String,
    },
    /// A budget larger than the memory the machine can give the adapter.
    #[error(
        "a budget of {budget_bytes} bytes is more than the {limit_bytes} bytes of {limit_source}"
    )]
    BudgetAboveMachine {
        /// The budget asked for, bytes.
        budget_bytes: u64,
        /// What the machine can give, bytes.
        limit_bytes: u64,
        /// Where that figure comes from (`physical RAM`, `device-local memory`).
        limit_source: String,
    },
}

/// The adapter to measure: `wanted` as an index or part of a name; without it, a discrete GPU
/// before an integrated one before anything else, native APIs before GL.
pub fn pick_adapter(infos: &[AdapterInfo], wanted: Option<&str>) -> Result<usize, PlanError> {
    if infos.is_empty() {
        return Err(PlanError::NoAdapter);
    }
    if let Some(wanted) = wanted {
        if let Ok(index) = wanted.parse::<usize>() {
            return if index < infos.len() {
                Ok(index)
            } else {
                Err(PlanError::AdapterIndex {
                    index,
                    count: infos.len(),
                })
            };
        }
        let lower = wanted.to_ascii_lowercase();
        return infos
            .iter()
            .position(|a| a.name.to_ascii_lowercase().contains(&lower))
            .ok_or_else(|| PlanError::AdapterName {
                wanted: wanted.to_owned(),
                found: infos
                    .iter()
                    .map(|a| format!("{}: {} ({})", a.index, a.name, a.backend))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
    }
    let rank = |a: &AdapterInfo| {
        let kind = match a.device_type.as_str() {
            "discrete_gpu" => 0,
            "integrated_gpu" => 1,
            "virtual_gpu" => 2,
            "cpu" => 4,
            _ => 3,
        };
        (kind, u8::from(a.backend == "gl"))
    };
    infos
        .iter()
        .enumerate()
        .min_by_key(|(_, a)| rank(a))
        .map(|(i, _)| i)
        .ok_or(PlanError::NoAdapter)
}

/// The sizes for a target and adapter.
pub fn sizes(target: Target, adapter: &AdapterInfo) -> Sizes {
    let cpu = adapter.device_type == "cpu";
    match (target, cpu) {
        (Target::Browser, true) => BROWSER_CPU,
        (Target::Browser, false) => BROWSER_GPU,
        (Target::Native { .. }, true) => CPU_ADAPTER,
        (Target::Native { quick: true }, false) => QUICK,
        (Target::Native { quick: false }, false) => FULL,
    }
}

/// The memory budget: what the user gave; else the browser's fixed cap; else Metal's working
/// set on unified memory, or a share of available RAM there (never into swap); a share of a
/// discrete GPU's memory; or half of RAM when the backend does not say.
pub fn budget(request: &Request, sizes: &Sizes, adapter: &AdapterInfo, host: &HostInfo) -> Budget {
    if let Some(bytes) = request.budget_bytes {
        return Budget {
            bytes: Some(bytes),
            source: "--budget".to_owned(),
        };
    }
    if let Some(cap) = sizes.memory_cap_bytes {
        return Budget {
            bytes: Some(cap),
            source: "the browser tab's memory cap".to_owned(),
        };
    }
    if adapter.unified_memory {
        if let Some(ws) = host
            .macos
            .as_ref()
            .and_then(|m| m.recommended_max_working_set_bytes)
        {
            return Budget {
                bytes: Some(ws),
                source: "Metal recommendedMaxWorkingSetSize".to_owned(),
            };
        }
        if request.allow_swap {
            return Budget {
                bytes: None,
                source: "none (--allow-swap on unified memory)".to_owned(),
            };
        }
        if let Some(avail) = host.ram_available_bytes.or(host.ram_bytes) {
            return Budget {
                bytes: Some((avail as f64 * UNIFIED_AVAILABLE_FRACTION) as u64),
                source: format!(
                    "{:.0}% of available RAM (unified memory, never into swap)",
                    UNIFIED_AVAILABLE_FRACTION * 100.0
                ),
            };
        }
    } else if let Some(mem) = adapter.device_local_memory_bytes {
        return Budget {
            bytes: Some((mem as f64 * DISCRETE_BUDGET_FRACTION) as u64),
            source: format!(
                "{:.0}% of device-local memory",
                DISCRETE_BUDGET_FRACTION * 100.0
            ),
        };
    }
    let ram = host.ram_bytes.unwrap_or(UNKNOWN_RAM_BYTES);
    Budget {
        bytes: Some((ram as f64 * UNKNOWN_MEMORY_RAM_FRACTION) as u64),
        source: format!(
            "{:.0}% of RAM (the backend does not report device memory)",
            UNKNOWN_MEMORY_RAM_FRACTION * 100.0
        ),
    }
}

/// The most memory the machine can give `adapter`, bytes, and where the figure comes from:
/// physical RAM for CPU and unified-memory adapters (macOS `hw.memsize` where known), the
/// device-local memory of a discrete GPU where the backend reports it, else physical RAM.
/// `None` when nothing is known.
pub fn machine_memory_bytes(adapter: &AdapterInfo, host: &HostInfo) -> Option<(u64, String)> {
    let ram = host
        .macos
        .as_ref()
        .and_then(|m| m.hw_memsize_bytes)
        .or(host.ram_bytes)
        .map(|b| (b, "physical RAM".to_owned()));
    if adapter.unified_memory || adapter.device_type == "cpu" {
        return ram;
    }
    adapter
        .device_local_memory_bytes
        .filter(|&b| b > 0)
        .map(|b| (b, format!("device-local memory on {}", adapter.name)))
        .or(ram)
}

/// Refuses a budget above [`machine_memory_bytes`]: the allocation stage would run into the
/// out-of-memory killer (or, on a discrete GPU, spill over into host memory) before the budget
/// stops it. A front end offers an explicit override for a machine whose figures are wrong.
pub fn check_budget(
    budget_bytes: u64,
    adapter: &AdapterInfo,
    host: &HostInfo,
) -> Result<(), PlanError> {
    match machine_memory_bytes(adapter, host) {
        Some((limit_bytes, limit_source)) if budget_bytes > limit_bytes => {
            Err(PlanError::BudgetAboveMachine {
                budget_bytes,
                limit_bytes,
                limit_source,
            })
        }
        _ => Ok(()),
    }
}

/// What the budget bounds, in the report's words: the allocation stage and the largest-buffer
/// search each stay within it; the other stages' buffers (small, fixed sizes) and the driver's
/// own allocations come on top, so a run's peak can pass it.
pub const BUDGET_BOUNDS: &str = "bounds the sweep's and the largest-buffer search's buffers, \
     each on its own; other stages' small buffers and the driver's overhead come on top";

/// Everything a run needs to know, decided before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The sizes.
    pub sizes: Sizes,
    /// The stages to run, in run order.
    pub stages: Vec<Stage>,
    /// The memory budget.
    pub budget: Budget,
    /// What the memory stages and the bandwidth and decode buffers stay within, bytes: the
    /// budget, else the device's memory, else RAM.
    pub memory_cap_bytes: u64,
    /// Let the allocation stage go past the swap knee.
    pub allow_swap: bool,
    /// Test hook: allocations beyond this many bytes fail as a simulated out-of-memory.
    pub simulate_oom_above_bytes: Option<u64>,
    /// Test hook: these allocation steps (1 for the first) are timed as if the host had slowed
    /// them (see `kernels::allocation::AllocationParams::simulate_slow_steps`).
    pub simulate_slow_steps: Vec<u32>,
    /// The adapter's capabilities.
    pub capabilities: Capabilities,
    /// Stages left out of this plan for a reason other than `--only`, with the reason (the
    /// report records them as skipped).
    pub skipped: Vec<(Stage, String)>,
    /// The host's RAM, bytes, when known (caps the host-bandwidth buffer).
    pub host_ram_bytes: Option<u64>,
}

/// Why a browser run has no host-bandwidth stage.
pub const BROWSER_HOST_BANDWIDTH_SKIP: &str = "a browser tab cannot read host RAM with every core \
     (WebAssembly here runs on one thread, without shared memory): run `headroom probe` natively";

/// Why a CPU adapter has no transfer stage.
pub const CPU_TRANSFER_SKIP: &str =
    "the adapter is the CPU: its memory is host memory, nothing crosses a link";

/// Share of host RAM the host-bandwidth buffer may take at most: 1/8.
const HOST_BANDWIDTH_RAM_SHARE: u64 = 8;

impl Plan {
    /// The plan for `request` on the adapter described by `adapter` (its `device_type` decides
    /// the CPU-adapter sizes) with `capabilities`, on `host`.
    pub fn new(
        request: &Request,
        adapter: &AdapterInfo,
        capabilities: Capabilities,
        host: &HostInfo,
    ) -> Plan {
        let sizes = sizes(request.target, adapter);
        let budget = budget(request, &sizes, adapter, host);
        let memory_cap_bytes = budget
            .bytes
            .or(adapter.device_local_memory_bytes)
            .or(host.ram_bytes)
            .unwrap_or(UNKNOWN_RAM_BYTES);
        let mut skipped = Vec::new();
        if request.target == Target::Browser {
            skipped.push((Stage::HostBandwidth, BROWSER_HOST_BANDWIDTH_SKIP.to_owned()));
        }
        if adapter.device_type == "cpu" {
            skipped.push((Stage::Transfer, CPU_TRANSFER_SKIP.to_owned()));
        }
        Plan {
            sizes,
            stages: Stage::ALL
                .into_iter()
                .filter(|s| request.only.is_empty() || request.only.contains(s))
                .filter(|s| !skipped.iter().any(|(k, _)| k == s))
                .collect(),
            skipped,
            host_ram_bytes: host.ram_bytes,
            budget,
            memory_cap_bytes,
            allow_swap: request.allow_swap,
            simulate_oom_above_bytes: request.simulate_oom_above_bytes,
            simulate_slow_steps: request.simulate_slow_steps.clone(),
            capabilities,
        }
    }

    /// The report's `budget_source`: the budget's source, what it bounds, and the sizes' label.
    pub fn budget_source(&self) -> String {
        format!(
            "{}; {BUDGET_BOUNDS}; sizes: {}",
            self.budget.source, self.sizes.label
        )
    }

    /// The steps of one stage, in run order.
    pub fn steps(&self, stage: Stage) -> Vec<Step> {
        match stage {
            Stage::Gemm => self
                .sizes
                .gemm_n
                .iter()
                .flat_map(|&n| {
                    GemmVariant::ALL
                        .into_iter()
                        .map(move |variant| Step::Gemm { variant, n })
                })
                .collect(),
            Stage::Attention => ATTENTION_SHAPES
                .into_iter()
                .map(|(head_dim, causal)| Step::Attention { head_dim, causal })
                .collect(),
            Stage::Bandwidth => vec![Step::Bandwidth {
                bytes: self
                    .sizes
                    .bandwidth_bytes
                    .min(self.memory_cap_bytes / BANDWIDTH_CAP_SHARE)
                    .max(MIB),
            }],
            Stage::Decode => DecodeFormat::ALL
                .into_iter()
                .map(|format| {
                    let cap = (self.memory_cap_bytes as f64 * DECODE_CAP_FRACTION
                        / format.bytes_per_weight()) as u64;
                    Step::Decode {
                        format,
                        params: self.sizes.decode_params.min(cap),
                    }
                })
                .collect(),
            Stage::MaxBuffer => vec![Step::MaxBuffer],
            Stage::Allocation => vec![Step::Allocation],
            Stage::HostBandwidth => vec![Step::HostBandwidth {
                bytes: self
                    .sizes
                    .host_bandwidth_bytes
                    .min(
                        self.host_ram_bytes
                            .map_or(u64::MAX, |r| r / HOST_BANDWIDTH_RAM_SHARE),
                    )
                    .max(MIB),
            }],
            Stage::Transfer => vec![Step::Transfer {
                bytes: self
                    .sizes
                    .transfer_bytes
                    .min(self.memory_cap_bytes / BANDWIDTH_CAP_SHARE)
                    .max(MIB),
            }],
        }
    }

    /// Every step of every planned stage, in run order.
    pub fn all_steps(&self) -> Vec<Step> {
        self.stages.iter().flat_map(|&s| self.steps(s)).collect()
    }
}

/// The attention configurations measured, `(head_dim, causal)`: head sizes 128 and 64, each
/// without and with the causal mask.
const ATTENTION_SHAPES: [(u32, bool); 4] = [(128, false), (128, true), (64, false), (64, true)];

#[cfg(test)]
mod tests {
    use headroom_core::report::AdapterLimits;

    use super::*;

    fn adapter(device_type: &str, memory: Option<u64>) -> AdapterInfo {
        AdapterInfo {
            index: 0,
            name: format!("test {device_type}"),
            backend: "vulkan".to_owned(),
            device_type: device_type.to_owned(),
            driver: String::new(),
            driver_info: String::new(),
            vendor_id: 0,
            device_id: 0,
            unified_memory: device_type != "discrete_gpu",
            device_local_memory_bytes: memory,
            limits: AdapterLimits::default(),
            features: Vec::new(),
            cooperative_matrix: Vec::new(),
        }
    }

    fn request(target: Target) -> Request {
        Request {
            target,
            only: Vec::new(),
            budget_bytes: None,
            allow_swap: false,
            simulate_oom_above_bytes: None,
            simulate_slow_steps: Vec::new(),
        }
    }

    fn caps() -> Capabilities {
        Capabilities {
            coop: Vec::new(),
            subgroup_max_size: 32,
            fixed_subgroup_size: Some(32),
        }
    }

    #[test]
    fn sizes_follow_target_and_adapter_kind() {
        let gpu = adapter("discrete_gpu", Some(80 * GIB));
        let cpu = adapter("cpu", None);
        assert_eq!(sizes(Target::Native { quick: false }, &gpu), FULL);
        assert_eq!(sizes(Target::Native { quick: true }, &gpu), QUICK);
        assert_eq!(sizes(Target::Native { quick: false }, &cpu), CPU_ADAPTER);
        assert_eq!(sizes(Target::Browser, &gpu), BROWSER_GPU);
        assert_eq!(sizes(Target::Browser, &cpu), BROWSER_CPU);
    }

    #[test]
    fn offload_stages_run_where_they_mean_something() {
        let host = HostInfo {
            ram_bytes: Some(16 * GIB),
            ..HostInfo::default()
        };
        let gpu = adapter("discrete_gpu", Some(80 * GIB));
        let cpu = adapter("cpu", None);
        let plan = |target, a: &AdapterInfo| Plan::new(&request(target), a, caps(), &host);
        // A native GPU run measures both; the host buffer stays within 1/8 of RAM.
        let full = plan(Target::Native { quick: false }, &gpu);
        assert!(
            full.stages.contains(&Stage::HostBandwidth) && full.stages.contains(&Stage::Transfer)
        );
        assert_eq!(
            full.steps(Stage::HostBandwidth),
            vec![Step::HostBandwidth { bytes: 2 * GIB }]
        );
        assert_eq!(
            full.steps(Stage::Transfer),
            vec![Step::Transfer { bytes: GIB }]
        );
        // A CPU adapter: host bandwidth only, and the reason transfer is left out.
        let lavapipe = plan(Target::Native { quick: false }, &cpu);
        assert!(lavapipe.stages.contains(&Stage::HostBandwidth));
        assert!(!lavapipe.stages.contains(&Stage::Transfer));
        assert_eq!(
            lavapipe.skipped,
            vec![(Stage::Transfer, CPU_TRANSFER_SKIP.to_owned())]
        );
        // A browser tab: no host bandwidth, and why.
        let browser = plan(Target::Browser, &gpu);
        assert!(!browser.stages.contains(&Stage::HostBandwidth));
        assert!(browser.stages.contains(&Stage::Transfer));
        assert_eq!(browser.skipped[0].0, Stage::HostBandwidth);
        // --only keeps its meaning.
        let only = Plan::new(
            &Request {
                only: vec![Stage::Transfer],
                ..request(Target::Native { quick: true })
            },
            &gpu,
            caps(),
            &host,
        );
        assert_eq!(only.stages, vec![Stage::Transfer]);
    }

    #[test]
    fn budget_above_the_machine_is_refused() {
        let host = HostInfo {
            ram_bytes: Some(24 * GIB),
            ..HostInfo::default()
        };
        let cpu = adapter("cpu", Some(2 * GIB));
        let gpu = adapter("discrete_gpu", Some(80 * GIB));
        assert!(check_budget(16 * GIB, &cpu, &host).is_ok());
        // A CPU adapter's "device-local" heap is host RAM: RAM is the limit.
        let err = check_budget(1024 * 1024 * GIB, &cpu, &host).map_err(|e| e.to_string());
        assert!(
            matches!(&err, Err(m) if m.contains("physical RAM")),
            "{err:?}"
        );
        assert!(check_budget(64 * GIB, &gpu, &host).is_ok());
        assert!(check_budget(81 * GIB, &gpu, &host).is_err());
        // Nothing known: nothing to check against.
        assert!(check_budget(u64::MAX, &adapter("cpu", None), &HostInfo::default()).is_ok());
    }

    #[test]
    fn budget_policy() {
        let host = HostInfo {
            ram_bytes: Some(64 * GIB),
            ram_available_bytes: Some(40 * GIB),
            ..HostInfo::default()
        };
        let gpu = adapter("discrete_gpu", Some(80 * GIB));
        let native = request(Target::Native { quick: true });
        let b = budget(&native, &QUICK, &gpu, &host);
        assert_eq!(b.bytes, Some((80.0 * GIB as f64 * 0.9) as u64));
        let given = Request {
            budget_bytes: Some(GIB),
            ..native.clone()
        };
        assert_eq!(budget(&given, &QUICK, &gpu, &host).bytes, Some(GIB));
        let cpu = adapter("cpu", None);
        assert_eq!(
            budget(&native, &CPU_ADAPTER, &cpu, &host).bytes,
            Some((40.0 * GIB as f64 * 0.8) as u64)
        );
        let swap = Request {
            allow_swap: true,
            ..native
        };
        assert_eq!(budget(&swap, &CPU_ADAPTER, &cpu, &host).bytes, None);
        let browser = request(Target::Browser);
        assert_eq!(
            budget(&browser, &BROWSER_GPU, &gpu, &HostInfo::default()).bytes,
            Some(4 * GIB)
        );
    }

    #[test]
    fn steps_stay_within_the_memory_cap() {
        let gpu = adapter("discrete_gpu", Some(80 * GIB));
        let tight = Request {
            budget_bytes: Some(600 * MIB),
            ..request(Target::Native { quick: true })
        };
        let plan = Plan::new(&tight, &gpu, caps(), &HostInfo::default());
        assert_eq!(plan.memory_cap_bytes, 600 * MIB);
        assert_eq!(
            plan.steps(Stage::Bandwidth),
            vec![Step::Bandwidth { bytes: 100 * MIB }]
        );
        let decode = plan.steps(Stage::Decode);
        assert_eq!(decode.len(), 3);
        for step in &decode {
            let Step::Decode { format, params } = step else {
                panic!("{step:?}");
            };
            assert!(*params as f64 * format.bytes_per_weight() <= 300.0 * MIB as f64);
        }
        // q4_0 first: the figure `headroom fit` prefers survives an interrupted run.
        assert!(matches!(
            decode[0],
            Step::Decode {
                format: DecodeFormat::Q4_0,
                ..
            }
        ));
    }

    #[test]
    fn only_keeps_run_order_and_counts_steps() {
        let gpu = adapter("discrete_gpu", Some(80 * GIB));
        let only = Request {
            only: vec![Stage::Allocation, Stage::Gemm],
            ..request(Target::Native { quick: false })
        };
        let plan = Plan::new(&only, &gpu, caps(), &HostInfo::default());
        assert_eq!(plan.stages, vec![Stage::Gemm, Stage::Allocation]);
        assert_eq!(plan.all_steps().len(), 2 * GemmVariant::ALL.len() + 1);
    }

    #[test]
    fn subgroup_size_is_fixed_only_when_known_and_equal() {
        assert_eq!(fixed_subgroup_size(32, 32), Some(32));
        assert_eq!(fixed_subgroup_size(16, 64), None);
        assert_eq!(fixed_subgroup_size(0, 0), None);
    }

    #[test]
    fn adapter_choice() {
        let list = vec![
            adapter("cpu", None),
            AdapterInfo {
                index: 1,
                backend: "gl".to_owned(),
                ..adapter("discrete_gpu", None)
            },
            AdapterInfo {
                index: 2,
                ..adapter("discrete_gpu", None)
            },
        ];
        assert_eq!(pick_adapter(&list, None), Ok(2));
        assert_eq!(pick_adapter(&list, Some("0")), Ok(0));
        assert_eq!(pick_adapter(&list, Some("CPU")), Ok(0));
        assert!(matches!(
            pick_adapter(&list, Some("7")),
            Err(PlanError::AdapterIndex { index: 7, count: 3 })
        ));
        assert!(matches!(
            pick_adapter(&list, Some("radeon")),
            Err(PlanError::AdapterName { .. })
        ));
        assert_eq!(pick_adapter(&[], None), Err(PlanError::NoAdapter));
    }
}
