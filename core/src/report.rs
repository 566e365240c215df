//! The probe report: what `headroom probe` and the browser benchmark write, and what the site and
//! `headroom fit --probe` read. Versioned by `schema_version`; the JSON Schema sits beside these
//! types (`core/src/report.schema.json`, also [`SCHEMA_JSON`]); tests hold it to the types and
//! validate written reports against it. Stage and metric names are the enums of [`names`].
//!
//! A report is written after every step (temporary file, then rename), so a report whose
//! `complete` is `false` is a partial run (interrupted, crashed, or still running) whose finished
//! stages are all valid.
//!
//! # Example
//!
//! ```
//! use headroom_core::report::ProbeReport;
//!
//! let json = r#"{
//!   "schema_version": 1,
//!   "tool": { "name": "headroom", "version": "0.1.0" },
//!   "date_utc": "2026-11-22T03:00:00Z",
//!   "complete": true,
//!   "host": { "os": "linux", "arch": "x86_64", "cpu_model": "AMD EPYC", "cpu_cores": 16,
//!             "ram_bytes": 137438953472 },
//!   "adapters": [{
//!     "index": 0, "name": "NVIDIA H100 80GB HBM3", "backend": "vulkan", "device_type": "discrete_gpu",
//!     "driver": "NVIDIA", "driver_info": "580.95", "vendor_id": 4318, "device_id": 8960,
//!     "unified_memory": false, "device_local_memory_bytes": 85520809984,
//!     "limits": { "max_buffer_size": 18446744073709551615, "max_storage_buffer_binding_size": 4294967292,
//!                 "max_compute_workgroup_storage_size": 49152,
//!                 "max_compute_invocations_per_workgroup": 1024,
//!                 "max_compute_workgroups_per_dimension": 65535,
//!                 "subgroup_min_size": 32, "subgroup_max_size": 32 },
//!     "features": ["SHADER_F16", "SUBGROUP", "TIMESTAMP_QUERY"],
//!     "cooperative_matrix": [{ "m": 16, "n": 16, "k": 16, "ab_type": "f16", "cr_type": "f32" }]
//!   }],
//!   "selected_adapter": 0,
//!   "settings": { "quick": true, "only": [], "budget_bytes": 76968728985,
//!                 "budget_source": "90% of device-local memory", "allow_swap": false },
//!   "stages": [{
//!     "stage": "gemm", "status": "ok", "duration_s": 2.5,
//!     "measurements": [{
//!       "name": "gemm.f32", "status": "ok",
//!       "params": { "m": 4096, "n": 4096, "k": 4096, "tile": "128x128x8/8x8" },
//!       "verification": { "passed": true, "rel_error": 1.2e-7, "tolerance": 1e-4,
//!                         "checked_elements": 524288, "reference": "f64 CPU on sampled rows" },
//!       "timing": { "timer": "gpu_timestamp", "iterations": 20, "total_s": 0.3, "per_iter_s": 0.015 },
//!       "flops_per_s": 9.1e12
//!     }]
//!   }]
//! }"#;
//! let report = ProbeReport::from_json(json).unwrap();
//! let device = report.measured_device();
//! assert_eq!(device.name, "NVIDIA H100 80GB HBM3");
//! assert_eq!(device.fp32_flops, Some(9.1e12));
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::limits::MAX_REPORT_JSON_BYTES;

pub mod names;
pub mod params;
pub mod plausible;

pub use names::{
    AttentionMetric, AttentionStorage, BandwidthMetric, DecodeMetric, GemmMetric, HostMetric,
    Metric, Stage, UnknownName,
};

/// The report's JSON Schema (draft 2020-12).
pub const SCHEMA_JSON: &str = include_str!("report.schema.json");

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Measured facts about one device that replace catalog figures in an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredDevice {
    /// Adapter name as reported by the driver.
    pub name: String,
    /// Unified memory (Apple, integrated) or discrete.
    pub unified_memory: bool,
    /// Total device memory (discrete) or RAM (unified), bytes, if known.
    pub memory_bytes: Option<u64>,
    /// Where `memory_bytes` came from, in words (the adapter's device-local heap, macOS'
    /// `hw.memsize`, the host's RAM), if known.
    #[serde(default)]
    pub memory_basis: Option<String>,
    /// Memory the GPU may use as the platform reports it (Metal's working set), or the largest
    /// model size the allocation stage held when it stopped at the device's own limit (an
    /// allocation failed or the host began to swap), bytes. A stage stopped by its budget or
    /// time limit only gives a lower bound and is not used ([`MeasuredDevice::usable_basis`]
    /// says so).
    pub usable_bytes: Option<u64>,
    /// Where `usable_bytes` came from, or why the allocation stage's figure was not used.
    #[serde(default)]
    pub usable_basis: Option<String>,
    /// Measured read bandwidth, bytes per second.
    pub read_bandwidth_bytes_per_s: Option<f64>,
    /// Measured f32 GEMM rate, FLOP/s.
    pub fp32_flops: Option<f64>,
    /// Measured best f16 GEMM rate (matrix units if used), FLOP/s.
    pub fp16_flops: Option<f64>,
    /// Largest single buffer verified, bytes.
    pub max_buffer_bytes: Option<u64>,
    /// Measured decode tokens/s from the decode simulation, if run.
    pub decode_simulation_tokens_per_s: Option<f64>,
    /// Measured host RAM read bandwidth (every core), bytes per second.
    #[serde(default)]
    pub host_read_bandwidth_bytes_per_s: Option<f64>,
    /// Measured host→device upload rate, bytes per second.
    #[serde(default)]
    pub host_to_device_bytes_per_s: Option<f64>,
    /// Measured device→host download rate, bytes per second.
    #[serde(default)]
    pub device_to_host_bytes_per_s: Option<f64>,
    /// The host's RAM beside a discrete GPU (what layers can be offloaded to), bytes; `None` on
    /// unified memory, where the RAM is the device's memory.
    #[serde(default)]
    pub host_ram_bytes: Option<u64>,
}

/// One run of `headroom probe` (or the browser benchmark).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Version of this schema ([`SCHEMA_VERSION`] when written by this build).
    pub schema_version: u32,
    /// The program that wrote the report.
    pub tool: ToolInfo,
    /// When the run started, RFC 3339 in UTC (filled by the binary: core has no clock).
    pub date_utc: String,
    /// `false` while the run is going on or when it was interrupted: finished stages are valid.
    pub complete: bool,
    /// The machine.
    pub host: HostInfo,
    /// Every adapter found, in enumeration order.
    pub adapters: Vec<AdapterInfo>,
    /// Index into `adapters` of the one measured, if any.
    pub selected_adapter: Option<usize>,
    /// How the run was asked for.
    pub settings: ProbeSettings,
    /// Every stage run or skipped, in order.
    pub stages: Vec<StageRecord>,
}

/// The program that wrote a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `headroom` (CLI) or `headroom-web` (browser benchmark).
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The host machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Operating system (`linux`, `macos`, `windows`, `browser`).
    pub os: String,
    /// OS version string, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// CPU architecture (`x86_64`, `aarch64`, `wasm32`).
    pub arch: String,
    /// CPU model name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Logical CPU cores, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<u32>,
    /// Physical RAM, bytes, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_bytes: Option<u64>,
    /// RAM available when the probe started, bytes, if known (Linux `MemAvailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_available_bytes: Option<u64>,
    /// Swap space configured, bytes, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_total_bytes: Option<u64>,
    /// macOS memory facts for the GPU, on macOS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macos: Option<MacMemoryInfo>,
}

/// What macOS says about how much memory the GPU may take.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MacMemoryInfo {
    /// `sysctl hw.memsize`, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hw_memsize_bytes: Option<u64>,
    /// `sysctl iogpu.wired_limit_mb` (0 = the OS default), MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iogpu_wired_limit_mb: Option<u64>,
    /// Metal's `recommendedMaxWorkingSetSize` of the default device, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_max_working_set_bytes: Option<u64>,
}

/// One GPU adapter as the driver describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// Position in enumeration order (what `--adapter N` takes).
    pub index: usize,
    /// Name reported by the driver.
    pub name: String,
    /// `vulkan`, `metal`, `dx12`, `gl` or `browser_webgpu`.
    pub backend: String,
    /// `discrete_gpu`, `integrated_gpu`, `virtual_gpu`, `cpu` or `other`.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version / details.
    pub driver_info: String,
    /// PCI vendor id (0 if unknown).
    pub vendor_id: u32,
    /// PCI device id (0 if unknown).
    pub device_id: u32,
    /// The GPU shares memory with the CPU (integrated, Apple silicon, CPU rasterizers).
    pub unified_memory: bool,
    /// Size of the largest device-local memory heap, bytes, where the backend tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_local_memory_bytes: Option<u64>,
    /// The limits that matter for the probe.
    pub limits: AdapterLimits,
    /// Features relevant to the probe (wgpu names).
    pub features: Vec<String>,
    /// Cooperative-matrix configurations offered (empty if none).
    pub cooperative_matrix: Vec<CoopMatrixShape>,
}

/// Adapter limits that decide the probe's sizes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdapterLimits {
    /// Largest buffer the adapter accepts, bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Workgroup shared memory, bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Smallest subgroup size (0 if unknown).
    pub subgroup_min_size: u32,
    /// Largest subgroup size (0 if unknown).
    pub subgroup_max_size: u32,
}

/// One cooperative-matrix (matrix unit) configuration: `C[m×n] += A[m×k] · B[k×n]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoopMatrixShape {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of B and C.
    pub n: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// Element type of A and B (`f16`, `f32`, ...).
    pub ab_type: String,
    /// Element type of C, the accumulator.
    pub cr_type: String,
}

/// How the run was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeSettings {
    /// `--quick`: smaller sizes and shorter measurements.
    pub quick: bool,
    /// `--only`: the stages asked for (empty = all).
    pub only: Vec<Stage>,
    /// Memory budget, bytes, if any: the allocation stage and the largest-buffer search each
    /// stay within it; the other stages' (small, fixed) buffers and the driver's own memory are
    /// not counted, so a run's peak can pass it.
    pub budget_bytes: Option<u64>,
    /// Where the budget came from (`--budget`, 90% of device memory, Metal working set, ...).
    pub budget_source: String,
    /// `--allow-swap`: the allocation stage may go past the swap knee.
    pub allow_swap: bool,
}

/// Whether a stage or a measurement produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Ran and, where there is a check, passed it.
    Ok,
    /// Ran and failed (error, failed check, out of memory, device lost, time limit).
    Failed,
    /// Not run; `reason` says why.
    Skipped,
}

/// One stage of the probe run and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage.
    pub stage: Stage,
    /// Outcome of the stage as a whole.
    pub status: Status,
    /// Why it was skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time the stage took, seconds.
    pub duration_s: f64,
    /// Kernel measurements (GEMM, attention, bandwidth, decode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// Result of the largest-buffer stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffer: Option<MaxBufferResult>,
    /// Result of the model-size allocation stage (JSON `sweep`).
    #[serde(rename = "sweep", default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<AllocationResult>,
}

impl StageRecord {
    /// A record of `stage` with `status` and nothing measured yet (no reason, no time, no results).
    pub fn new(stage: Stage, status: Status) -> StageRecord {
        StageRecord {
            stage,
            status,
            reason: None,
            duration_s: 0.0,
            measurements: Vec::new(),
            max_buffer: None,
            allocation: None,
        }
    }

    /// A stage that did not run, and why.
    pub fn skipped(stage: Stage, reason: impl Into<String>) -> StageRecord {
        StageRecord {
            reason: Some(reason.into()),
            ..StageRecord::new(stage, Status::Skipped)
        }
    }
}

/// One timed, verified kernel run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured, e.g. `gemm.f32`, `gemm.coop.f16.acc_f32`,
    /// `attention.f16.d128.causal`, `bandwidth.copy`, `decode.q4_0`.
    pub name: Metric,
    /// Outcome; a failed check is `failed` with `error` set and no speed.
    pub status: Status,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Shapes, tile choice and other parameters.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The check against a CPU reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// How the time was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// Floating-point operations per second (multiply-add = 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_s: Option<f64>,
    /// Bytes per second; `bytes_counted` says which bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<f64>,
    /// Which bytes `bytes_per_s` counts (`read`, `written`, `read + written`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_counted: Option<String>,
    /// Tokens per second (decode simulation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Accumulator type of half-precision matrix work (`f32`, `f16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accumulator: Option<String>,
}

/// A kernel's output compared with a CPU reference computed in higher precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The error was within `tolerance`.
    pub passed: bool,
    /// Relative error (Frobenius norm of the difference over that of the reference, or
    /// mismatching elements over checked elements for exact checks).
    pub rel_error: f64,
    /// Largest accepted `rel_error`.
    pub tolerance: f64,
    /// Output elements compared.
    pub checked_elements: u64,
    /// How the reference was computed.
    pub reference: String,
}

/// How a measurement was timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// `gpu_timestamp` or `wall_clock`.
    pub timer: String,
    /// Kernel runs inside the timed interval.
    pub iterations: u32,
    /// Length of the timed interval, seconds.
    pub total_s: f64,
    /// `total_s / iterations`.
    pub per_iter_s: f64,
}

/// The largest single buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxBufferResult {
    /// The adapter's `max_buffer_size`, bytes.
    pub adapter_limit_bytes: u64,
    /// The search's upper end (limit, budget and device memory), bytes.
    pub searched_up_to_bytes: u64,
    /// Largest size the driver accepted without an error, bytes.
    pub largest_accepted_bytes: u64,
    /// Largest size whose every word was written with a pattern and read back correctly, bytes.
    pub largest_verified_bytes: u64,
    /// Each size tried, in order.
    pub attempts: Vec<AllocationAttempt>,
}

/// One allocation tried by the largest-buffer search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationAttempt {
    /// Size asked for, bytes.
    pub bytes: u64,
    /// Created without an out-of-memory or validation error.
    pub accepted: bool,
    /// Pattern written and read back correctly.
    pub verified: bool,
    /// The error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why the model-size allocation stage stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationStopReason {
    /// The next step would pass the memory budget.
    Budget,
    /// An allocation, fill or check failed (out of memory, validation error, device lost).
    Error,
    /// A step's time per GB jumped far above the earlier steps and the host swapped pages out
    /// during it (or, where the OS gives no swap counters, two steps in a row were that slow).
    Swapping,
    /// The stage's time limit was reached.
    TimeLimit,
    /// The adapter's buffer limits leave nothing to allocate.
    NothingToAllocate,
}

/// The model-size allocation stage: fp16 weights held in growing steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationResult {
    /// Parameters added per step.
    pub step_params: u64,
    /// Bytes per parameter (2: fp16).
    pub bytes_per_param: u64,
    /// Size of each allocated buffer, bytes (at most the binding limit).
    pub chunk_bytes: u64,
    /// Budget the stage stayed within, bytes, if any.
    pub budget_bytes: Option<u64>,
    /// A step whose seconds per GB exceed this factor times the median of the earlier steps
    /// is slow; a slow step is the swap knee only if the host swapped pages out during it
    /// (`swap_counters`), or, without counters, if the next step is slow too.
    pub swap_factor: f64,
    /// Where the stage read the host's swap activity (e.g. `Linux /proc/vmstat pswpout`);
    /// absent: the host gave no counters (browser, Windows, older reports), so only two slow
    /// steps in a row counted as the knee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_counters: Option<String>,
    /// Every step taken, in order (the failed one last, if any).
    pub steps: Vec<AllocationStep>,
    /// Why the stage ended.
    pub stop_reason: AllocationStopReason,
    /// Details of the stop (the error, the budget, the jump).
    pub stop_detail: String,
    /// Largest model that fit cleanly (allocated, filled, verified, before any swap knee),
    /// parameters.
    pub largest_clean_params: u64,
    /// The same in bytes.
    pub largest_clean_bytes: u64,
}

/// One step of the allocation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationStep {
    /// Model size held after the step, parameters.
    pub params: u64,
    /// Bytes held after the step.
    pub total_bytes: u64,
    /// Wall time of the step (allocate, fill, verify), seconds.
    pub step_s: f64,
    /// `step_s` per GB (10^9 bytes) added.
    pub s_per_gb: f64,
    /// Every new buffer was allocated, filled and read back correctly.
    pub ok: bool,
    /// The error, if the step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Pages (the OS's page size) the host swapped out during the step; absent where the OS
    /// gives no counter (browser, Windows) or the report predates the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages_swapped_out: Option<u64>,
    /// Pages the host swapped in during the step, where the OS counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages_swapped_in: Option<u64>,
    /// Why a slow step was or was not the swap knee (e.g. `slow step, no pages swapped out:
    /// contention, not swapping`); absent for an ordinary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AllocationResult {
    /// What the stage saw of the host's swapping, in words the CLI and the site both show: the
    /// pages swapped out over all steps (where the OS counted them), which steps were slow, and
    /// the first slow step's note (the others read alike). `None` when there is neither (no
    /// counters and no slow step, or an older report).
    pub fn swap_summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(source) = &self.swap_counters {
            let out: u64 = self.steps.iter().filter_map(|s| s.pages_swapped_out).sum();
            parts.push(format!(
                "{out} pages swapped out by the host during the sweep ({source})"
            ));
        }
        let noted: Vec<(usize, &AllocationStep, &str)> = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.note.as_deref().map(|n| (i + 1, s, n)))
            .collect();
        if let Some(&(first, step, note)) = noted.first() {
            let numbers: Vec<String> = noted.iter().map(|(n, _, _)| n.to_string()).collect();
            let held = format!(
                "{:.2} GiB held",
                step.total_bytes as f64 / crate::units::GIB as f64
            );
            parts.push(if noted.len() == 1 {
                format!("step {first} ({held}): {note}")
            } else {
                format!(
                    "{} slow steps ({}); the first, step {first} ({held}): {note}",
                    noted.len(),
                    numbers.join(", ")
                )
            });
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl ProbeReport {
    /// Parses a report, checking its `schema_version` and the physical sense of its figures
    /// ([`plausible::check`]). Errors name the field and what to do.
    pub fn from_json(text: &str) -> Result<ProbeReport, CoreError> {
        if text.len() as u64 > MAX_REPORT_JSON_BYTES {
            return Err(CoreError::TooLarge {
                what: "probe report".to_owned(),
                bytes: text.len() as u64,
                cap_bytes: MAX_REPORT_JSON_BYTES,
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| CoreError::MalformedJson {
                what: "probe report".to_owned(),
                detail: err.to_string(),
            })?;
        let version = value
            .get("schema_version")
            .ok_or_else(|| CoreError::BadField {
                what: "probe report".to_owned(),
                field: "schema_version".to_owned(),
                problem: "is missing: is this a file written by `headroom probe`?".to_owned(),
            })?;
        match version.as_u64() {
            Some(v) if v >= 1 && v <= u64::from(SCHEMA_VERSION) => {}
            _ => {
                return Err(CoreError::BadField {
                    what: "probe report".to_owned(),
                    field: "schema_version".to_owned(),
                    problem: format!(
                        "is {version}; this build reads versions 1 to {SCHEMA_VERSION}: \
                         update headroom or re-run `headroom probe`"
                    ),
                });
            }
        }
        let report: ProbeReport =
            serde_json::from_value(value).map_err(|err| CoreError::MalformedJson {
                what: "probe report".to_owned(),
                detail: err.to_string(),
            })?;
        plausible::check(&report)?;
        Ok(report)
    }

    /// Serializes the report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serialization of these plain types cannot fail (string keys, finite or null floats
        // are handled by serde_json by writing `null` for non-finite numbers).
        serde_json::to_string_pretty(self).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
    }

    /// The measured adapter, if one was selected.
    pub fn adapter(&self) -> Option<&AdapterInfo> {
        self.selected_adapter.and_then(|i| self.adapters.get(i))
    }

    /// A stage's record, if it ran or was skipped.
    pub fn stage(&self, stage: Stage) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.stage == stage)
    }

    /// Every successful measurement of every stage whose check against the CPU reference, if it
    /// has one, passed: a report that says `ok` beside a failed check is contradictory, and its
    /// figure is not trusted.
    pub fn ok_measurements(&self) -> impl Iterator<Item = &Measurement> {
        self.stages
            .iter()
            .flat_map(|s| s.measurements.iter())
            .filter(|m| m.status == Status::Ok && m.verification.as_ref().is_none_or(|v| v.passed))
    }

    /// Measurements marked `ok` whose check against the CPU reference failed: left out of
    /// [`ProbeReport::ok_measurements`] and [`ProbeReport::measured_device`], listed so that a
    /// front end can say which figures it ignored.
    pub fn unverified_measurements(&self) -> impl Iterator<Item = &Measurement> {
        self.stages
            .iter()
            .flat_map(|s| s.measurements.iter())
            .filter(|m| {
                m.status == Status::Ok && m.verification.as_ref().is_some_and(|v| !v.passed)
            })
    }

    /// The facts an estimate uses, taken from the measured stages. Only verified measurements
    /// count; a figure that was not measured is `None`.
    pub fn measured_device(&self) -> MeasuredDevice {
        let adapter = self.adapter();
        let unified_memory = adapter.is_some_and(|a| a.unified_memory);
        let memory_bytes = if unified_memory {
            self.host
                .macos
                .as_ref()
                .and_then(|m| m.hw_memsize_bytes)
                .or(self.host.ram_bytes)
        } else {
            adapter.and_then(|a| a.device_local_memory_bytes)
        };
        let best = |wanted: fn(Metric) -> bool, field: fn(&Measurement) -> Option<f64>| {
            self.ok_measurements()
                .filter(|m| wanted(m.name))
                .filter_map(field)
                .fold(None, |acc: Option<f64>, x| {
                    Some(acc.map_or(x, |a| a.max(x)))
                })
        };
        let memory_basis = if unified_memory {
            match (
                self.host.macos.as_ref().and_then(|m| m.hw_memsize_bytes),
                self.host.ram_bytes,
            ) {
                (Some(_), _) => Some("unified memory: macOS hw.memsize".to_owned()),
                (None, Some(_)) => Some("unified memory: the host's RAM".to_owned()),
                (None, None) => None,
            }
        } else {
            memory_bytes.map(|_| "the adapter's device-local memory (driver)".to_owned())
        };
        let allocation = self
            .stage(Stage::Allocation)
            .and_then(|s| s.allocation.as_ref())
            .filter(|a| a.largest_clean_bytes > 0);
        let working_set = self
            .host
            .macos
            .as_ref()
            .and_then(|m| m.recommended_max_working_set_bytes);
        let gib = |b: u64| b as f64 / crate::units::GIB as f64;
        // Only a stage that ran into the device's own limit measured usable memory; one stopped
        // by its budget (the browser's 256 MiB–4 GiB cap, `--budget`) or its clock held what
        // it was allowed to, a lower bound.
        let (usable_bytes, usable_basis) = match (working_set, allocation) {
            (Some(ws), _) => (
                Some(ws),
                Some(format!(
                    "Metal's recommendedMaxWorkingSetSize, {:.2} GiB (probe report)",
                    gib(ws)
                )),
            ),
            (None, Some(a))
                if matches!(
                    a.stop_reason,
                    AllocationStopReason::Error | AllocationStopReason::Swapping
                ) =>
            {
                (
                    Some(a.largest_clean_bytes),
                    Some(format!(
                        "the probe's allocation stage held {:.2} GiB before the device {} (probe \
                         report)",
                        gib(a.largest_clean_bytes),
                        if a.stop_reason == AllocationStopReason::Error {
                            "refused more"
                        } else {
                            "began to swap"
                        }
                    )),
                )
            }
            (None, Some(a)) => (
                None,
                Some(format!(
                    "the probe's allocation stage held {:.2} GiB and stopped at its {} — a lower \
                     bound, not the device's limit, so it is not used",
                    gib(a.largest_clean_bytes),
                    match a.stop_reason {
                        AllocationStopReason::Budget => "budget",
                        AllocationStopReason::TimeLimit => "time limit",
                        _ => "buffer limits",
                    }
                )),
            ),
            (None, None) => (None, None),
        };
        // Prefer q4_0 (the common local format), else the first decode figure.
        let decodes: Vec<(Metric, f64)> = self
            .ok_measurements()
            .filter(|m| matches!(m.name, Metric::Decode(_)))
            .filter_map(|m| m.tokens_per_s.map(|t| (m.name, t)))
            .collect();
        let decode = decodes
            .iter()
            .find(|(m, _)| *m == Metric::Decode(DecodeMetric::Q4_0))
            .or(decodes.first())
            .map(|&(_, t)| t);
        MeasuredDevice {
            name: adapter.map_or_else(String::new, |a| a.name.clone()),
            unified_memory,
            memory_bytes,
            memory_basis,
            usable_bytes,
            usable_basis,
            read_bandwidth_bytes_per_s: best(
                |m| m == Metric::Bandwidth(BandwidthMetric::Read),
                |m| m.bytes_per_s,
            ),
            fp32_flops: best(|m| m == Metric::Gemm(GemmMetric::F32), |m| m.flops_per_s),
            fp16_flops: best(
                |m| matches!(m, Metric::Gemm(g) if g != GemmMetric::F32),
                |m| m.flops_per_s,
            ),
            max_buffer_bytes: self
                .stage(Stage::MaxBuffer)
                .and_then(|s| s.max_buffer.as_ref())
                .map(|m| m.largest_verified_bytes)
                .filter(|&b| b > 0),
            decode_simulation_tokens_per_s: decode,
            host_read_bandwidth_bytes_per_s: best(
                |m| m == Metric::Host(HostMetric::Read),
                |m| m.bytes_per_s,
            ),
            host_to_device_bytes_per_s: best(
                |m| m == Metric::Host(HostMetric::Upload),
                |m| m.bytes_per_s,
            ),
            device_to_host_bytes_per_s: best(
                |m| m == Metric::Host(HostMetric::Download),
                |m| m.bytes_per_s,
            ),
            host_ram_bytes: if unified_memory {
                None
            } else {
                self.host.ram_bytes.filter(|&b| b > 0)
            },
        }
    }
}

#[cfg(test)]
mod schema_tests {
    //! The schema beside the types: every stage and metric name the code knows appears in it,
    //! and a report this code writes validates against it. The validator below covers the
    //! keywords the schema uses (`type`, `enum`, `const`, `minimum`, `maximum`, `properties`,
    //! `required`, `additionalProperties`, `items`, `$ref`, `anyOf`, `allOf`, `if`/`then`,
    //! `not`); `pattern` is only checked by the Python `jsonschema` run of the probe's tests.
    use serde_json::{Value, json};

    use super::*;

    fn schema() -> Value {
        serde_json::from_str(SCHEMA_JSON).unwrap_or_else(|e| panic!("schema is not JSON: {e}"))
    }

    fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
        let name = reference
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        &root["$defs"][name]
    }

    fn type_matches(kind: &str, value: &Value) -> bool {
        match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            other => panic!("unsupported type {other}"),
        }
    }

    /// Every violation of `schema` by `value`, each with its JSON path.
    fn violations(root: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Some(rules) = schema.as_object() else {
            return out;
        };
        if let Some(reference) = rules.get("$ref").and_then(Value::as_str) {
            out.extend(violations(root, resolve(root, reference), value, path));
        }
        if let Some(kind) = rules.get("type") {
            let ok = match kind {
                Value::String(k) => type_matches(k, value),
                Value::Array(ks) => ks
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|k| type_matches(k, value)),
                _ => true,
            };
            if !ok {
                out.push(format!("{path}: {value} is not of type {kind}"));
            }
        }
        if let Some(Value::Array(allowed)) = rules.get("enum")
            && !allowed.contains(value)
        {
            out.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        if let Some(constant) = rules.get("const")
            && constant != value
        {
            out.push(format!("{path}: {value} is not {constant}"));
        }
        if let (Some(min), Some(x)) = (rules.get("minimum").and_then(Value::as_f64), value.as_f64())
            && x < min
        {
            out.push(format!("{path}: {x} < minimum {min}"));
        }
        if let (Some(max), Some(x)) = (rules.get("maximum").and_then(Value::as_f64), value.as_f64())
            && x > max
        {
            out.push(format!("{path}: {x} > maximum {max}"));
        }
        if let Some(object) = value.as_object() {
            let properties = rules.get("properties").and_then(Value::as_object);
            for name in rules
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str()
                    && !object.contains_key(name)
                {
                    out.push(format!("{path}: required `{name}` is missing"));
                }
            }
            for (key, item) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => out.extend(violations(root, sub, item, &format!("{path}.{key}"))),
                    None if rules.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        out.push(format!("{path}: `{key}` is not in the schema"));
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(array)) = (rules.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                out.extend(violations(root, items, item, &format!("{path}[{i}]")));
            }
        }
        if let Some(Value::Array(options)) = rules.get("anyOf")
            && !options
                .iter()
                .any(|o| violations(root, o, value, path).is_empty())
        {
            out.push(format!("{path}: {value} matches none of anyOf"));
        }
        for sub in rules
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(violations(root, sub, value, path));
        }
        if let (Some(condition), Some(then)) = (rules.get("if"), rules.get("then"))
            && violations(root, condition, value, path).is_empty()
        {
            out.extend(violations(root, then, value, path));
        }
        if let Some(not) = rules.get("not")
            && violations(root, not, value, path).is_empty()
        {
            out.push(format!("{path}: {value} matches a `not`"));
        }
        out
    }

    fn strings(value: &Value) -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn the_schema_lists_every_stage_and_metric_name() {
        let root = schema();
        let defs = &root["$defs"];
        let stages: Vec<String> = Stage::ALL.iter().map(|s| s.name().to_owned()).collect();
        assert_eq!(
            strings(&defs["stage"]["properties"]["stage"]["enum"]),
            stages
        );
        assert_eq!(
            strings(&defs["settings"]["properties"]["only"]["items"]["enum"]),
            stages
        );
        let metrics: Vec<String> = Metric::all().iter().map(Metric::to_string).collect();
        assert_eq!(
            strings(&defs["measurement"]["properties"]["name"]["enum"]),
            metrics
        );
        let stops = strings(&defs["sweep"]["properties"]["stop_reason"]["enum"]);
        for reason in [
            AllocationStopReason::Budget,
            AllocationStopReason::Error,
            AllocationStopReason::Swapping,
            AllocationStopReason::TimeLimit,
            AllocationStopReason::NothingToAllocate,
        ] {
            let name = serde_json::to_value(reason).unwrap_or_default();
            assert!(
                stops.iter().any(|s| Some(s.as_str()) == name.as_str()),
                "{name}"
            );
        }
    }

    /// A report with every kind of record: each stage, a verified measurement of every metric,
    /// a failed and a skipped one, the largest buffer and the allocation stage.
    fn full_report() -> ProbeReport {
        let mut stages: Vec<StageRecord> = Vec::new();
        for stage in Stage::ALL {
            let mut record = StageRecord::new(stage, Status::Ok);
            record.duration_s = 1.5;
            for metric in Metric::all().into_iter().filter(|m| m.stage() == stage) {
                record.measurements.push(Measurement {
                    name: metric,
                    status: Status::Ok,
                    error: None,
                    params: BTreeMap::from([("n".to_owned(), json!(256))]),
                    verification: Some(Verification {
                        passed: true,
                        rel_error: 1e-6,
                        tolerance: 1e-4,
                        checked_elements: 256,
                        reference: "f64 on the CPU".to_owned(),
                    }),
                    timing: Some(Timing {
                        timer: "gpu_timestamp".to_owned(),
                        iterations: 3,
                        total_s: 0.3,
                        per_iter_s: 0.1,
                    }),
                    flops_per_s: matches!(metric, Metric::Gemm(_) | Metric::Attention(_))
                        .then_some(1e12),
                    bytes_per_s: matches!(metric, Metric::Bandwidth(_) | Metric::Decode(_))
                        .then_some(1e11),
                    bytes_counted: matches!(metric, Metric::Bandwidth(_))
                        .then(|| "read".to_owned()),
                    tokens_per_s: matches!(metric, Metric::Decode(_)).then_some(50.0),
                    accumulator: matches!(metric, Metric::Gemm(_)).then(|| "f32".to_owned()),
                });
            }
            if let Some(first) = record.measurements.first().cloned() {
                record.measurements.push(Measurement {
                    status: Status::Failed,
                    error: Some("wrong result".to_owned()),
                    verification: None,
                    timing: None,
                    flops_per_s: None,
                    bytes_per_s: None,
                    bytes_counted: None,
                    tokens_per_s: None,
                    ..first
                });
            }
            match stage {
                Stage::MaxBuffer => {
                    record.max_buffer = Some(MaxBufferResult {
                        adapter_limit_bytes: 1 << 31,
                        searched_up_to_bytes: 1 << 30,
                        largest_accepted_bytes: 1 << 30,
                        largest_verified_bytes: 1 << 30,
                        attempts: vec![AllocationAttempt {
                            bytes: 1 << 30,
                            accepted: true,
                            verified: true,
                            error: None,
                        }],
                    });
                }
                Stage::Allocation => {
                    record.reason = Some("stopped: budget".to_owned());
                    record.allocation = Some(AllocationResult {
                        step_params: 1 << 20,
                        bytes_per_param: 2,
                        chunk_bytes: 1 << 21,
                        budget_bytes: Some(1 << 22),
                        swap_factor: 4.0,
                        swap_counters: Some("Linux /proc/vmstat pswpout".to_owned()),
                        steps: vec![AllocationStep {
                            params: 1 << 20,
                            total_bytes: 1 << 21,
                            step_s: 0.01,
                            s_per_gb: 0.5,
                            ok: true,
                            error: None,
                            pages_swapped_out: Some(0),
                            pages_swapped_in: Some(0),
                            note: Some(
                                "slow step, no pages swapped out: contention, not swapping"
                                    .to_owned(),
                            ),
                        }],
                        stop_reason: AllocationStopReason::Budget,
                        stop_detail: "budget".to_owned(),
                        largest_clean_params: 1 << 20,
                        largest_clean_bytes: 1 << 21,
                    });
                }
                _ => {}
            }
            stages.push(record);
        }
        stages.push(StageRecord::skipped(Stage::Gemm, "not selected by --only"));
        ProbeReport {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo {
                name: "headroom".to_owned(),
                version: "0.1.0".to_owned(),
            },
            date_utc: "2026-11-22T03:00:00Z".to_owned(),
            complete: true,
            host: HostInfo {
                os: "linux".to_owned(),
                arch: "x86_64".to_owned(),
                cpu_cores: Some(2),
                ram_bytes: Some(1 << 33),
                ..HostInfo::default()
            },
            adapters: vec![AdapterInfo {
                index: 0,
                name: "llvmpipe".to_owned(),
                backend: "vulkan".to_owned(),
                device_type: "cpu".to_owned(),
                driver: "llvmpipe".to_owned(),
                driver_info: "Mesa".to_owned(),
                vendor_id: 0,
                device_id: 0,
                unified_memory: true,
                device_local_memory_bytes: None,
                limits: AdapterLimits::default(),
                features: vec!["SHADER_F16".to_owned()],
                cooperative_matrix: Vec::new(),
            }],
            selected_adapter: Some(0),
            settings: ProbeSettings {
                quick: true,
                only: vec![Stage::Gemm, Stage::Allocation],
                budget_bytes: Some(1 << 30),
                budget_source: "--budget".to_owned(),
                allow_swap: false,
            },
            stages,
        }
    }

    #[test]
    fn the_swap_summary_counts_pages_and_names_the_slow_steps() {
        let step = |note: Option<&str>| AllocationStep {
            params: 1 << 30,
            total_bytes: 1 << 31,
            step_s: 1.0,
            s_per_gb: 1.0,
            ok: true,
            error: None,
            pages_swapped_out: Some(3),
            pages_swapped_in: None,
            note: note.map(str::to_owned),
        };
        let mut sweep = AllocationResult {
            step_params: 1 << 30,
            bytes_per_param: 2,
            chunk_bytes: 1 << 30,
            budget_bytes: None,
            swap_factor: 4.0,
            swap_counters: Some("Linux /proc/vmstat pswpout".to_owned()),
            steps: vec![
                step(None),
                step(Some("slow step, no pages swapped out")),
                step(None),
            ],
            stop_reason: AllocationStopReason::Budget,
            stop_detail: String::new(),
            largest_clean_params: 0,
            largest_clean_bytes: 0,
        };
        assert_eq!(
            sweep.swap_summary().as_deref(),
            Some(
                "9 pages swapped out by the host during the sweep (Linux /proc/vmstat pswpout); \
                 step 2 (2.00 GiB held): slow step, no pages swapped out"
            )
        );
        sweep.steps[2].note = Some("slow again".to_owned());
        assert!(
            sweep
                .swap_summary()
                .is_some_and(|s| s.contains("2 slow steps (2, 3); the first, step 2")),
            "{:?}",
            sweep.swap_summary()
        );
        // An older report: no counters, no notes, nothing to say.
        sweep.swap_counters = None;
        for s in &mut sweep.steps {
            s.note = None;
        }
        assert_eq!(sweep.swap_summary(), None);
    }

    #[test]
    fn a_written_report_validates_against_the_schema() {
        let root = schema();
        let written: Value = serde_json::from_str(&full_report().to_json())
            .unwrap_or_else(|e| panic!("written report is not JSON: {e}"));
        let errors = violations(&root, &root, &written, "$");
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn the_validator_rejects_what_the_schema_forbids() {
        let root = schema();
        let good: Value = serde_json::from_str(&full_report().to_json()).unwrap_or_default();
        let mut bad = good.clone();
        bad["stages"][0]["stage"] = json!("warmup");
        bad["stages"][0]["measurements"][0]["name"] = json!("gemm.f64");
        bad["stages"][1]["colour"] = json!("red");
        bad["settings"]
            .as_object_mut()
            .map(|o| o.remove("budget_source"));
        let errors = violations(&root, &root, &bad, "$");
        for needle in ["warmup", "gemm.f64", "`colour`", "budget_source"] {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{needle}: {errors:#?}"
            );
        }
    }
}
