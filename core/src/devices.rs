//! Devices: a catalog kept as data (`core/data/devices.json`) and the [`DeviceSpec`] the estimates
//! use. A probe report's measurements replace catalog figures (see [`crate::report::MeasuredDevice`]).

use serde::{Deserialize, Serialize};

/// How the device's memory relates to the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// Apple-style unified memory: the GPU gets a share of system RAM (Metal's working set).
    Unified,
    /// A discrete GPU with its own memory.
    Discrete,
}

/// One device as the estimates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Catalog id, e.g. `m2-10c-16gb`, `rtx-4090`, `h100-sxm`.
    pub id: String,
    /// Display name, e.g. `Apple M2 (10-core GPU), 16 GB`.
    pub name: String,
    /// `apple`, `nvidia`, `amd`, `intel`, or `measured`.
    pub vendor: String,
    /// Unified or discrete memory.
    pub memory_kind: MemoryKind,
    /// Total memory in bytes (RAM for unified, VRAM for discrete).
    pub memory_bytes: u64,
    /// Memory bandwidth, bytes per second.
    pub bandwidth_bytes_per_s: f64,
    /// FP32 vector rate, FLOP/s.
    pub fp32_flops: f64,
    /// FP16 rate (matrix units where the device has them), FLOP/s.
    pub fp16_flops: f64,
    /// Largest single buffer, bytes, where known.
    pub max_buffer_bytes: Option<u64>,
    /// Where these numbers came from (datasheet URL or probe report).
    pub source: String,
}
