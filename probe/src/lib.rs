//! # headroom-probe
//!
//! WGSL kernels and their wgpu runners that measure a machine: GEMM (f32, f16, cooperative
//! matrix), attention, bandwidth, largest buffer, the model-size allocation stage and decode
//! simulation. Runners take `&wgpu::Device, &wgpu::Queue` and never create a device themselves,
//! so the same code runs natively (the `headroom` binary) and in the browser (the site).
//!
//! * [`plan`] — what a probe run measures, at which sizes and within which budget, decided once
//!   for the CLI and the site.
//! * [`run`] — the `async` loop that carries a plan out and reports progress through a trait.
//!
//! * [`kernels`] — one module per kernel; each `run` checks its output against a CPU reference on
//!   fresh random data before a speed counts, and returns report types from
//!   [`headroom_core::report`].
//! * [`gpu`] — pipelines, error scopes, read-back and timing shared by the kernels.
//! * [`swap`] — the host's swap counters, which tell the allocation stage's swap knee from a
//!   busy CPU or GPU.
//! * [`adapter`] — an adapter's description for the report, and the device request the probe uses.
//! * `discovery` (native only) — OS, CPU, RAM and, on macOS, Metal's working set.
#![deny(missing_docs)]

pub mod adapter;
#[cfg(not(target_arch = "wasm32"))]
pub mod discovery;
pub mod gpu;
pub mod kernels;
pub mod pattern;
pub mod plan;
pub mod run;
pub mod swap;

use thiserror::Error;

/// What can go wrong while running a kernel. Each becomes a recorded failure in the report.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProbeError {
    /// A shader failed to compile or validate.
    #[error("shader `{kernel}` failed to compile: {detail}")]
    Shader {
        /// The kernel.
        kernel: String,
        /// The compiler's message.
        detail: String,
    },
    /// The device ran out of memory (or a simulated out-of-memory, see `kernels::allocation`).
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// A validation or internal error from wgpu.
    #[error("GPU error: {0}")]
    Validation(String),
    /// Mapping a buffer for read-back failed.
    #[error("read-back failed: {0}")]
    ReadBack(String),
    /// The device was lost (driver reset, removed GPU) or polling failed.
    #[error("device lost: {0}")]
    DeviceLost(String),
    /// The kernel cannot run on this device or shape.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The output did not match the CPU reference.
    #[error("wrong result: {0}")]
    WrongResult(String),
}

/// A small deterministic generator for test data (SplitMix64): fresh data comes from a fresh
/// seed, which the caller picks (the CLI uses the clock).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values uniform in [-1, 1).
    pub fn vec_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}
