//! The probe report: what `headroom probe` and the browser benchmark write, and what the site and
//! `headroom fit --probe` read. Versioned by `schema_version`; the JSON Schema is checked in at
//! `probe/report.schema.json`.

use serde::{Deserialize, Serialize};

/// Measured facts about one device that replace catalog figures in an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredDevice {
    /// Adapter name as reported by the driver.
    pub name: String,
    /// Unified memory (Apple, integrated) or discrete.
    pub unified_memory: bool,
    /// Total device memory (discrete) or RAM (unified), bytes, if known.
    pub memory_bytes: Option<u64>,
    /// Memory the GPU may use: Metal's working set, or the largest model size that fit cleanly
    /// in the allocation sweep, bytes, if measured.
    pub usable_bytes: Option<u64>,
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
}
