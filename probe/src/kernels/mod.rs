//! One module per kernel. Each `run` takes `&wgpu::Device, &wgpu::Queue` and its parameters,
//! checks the kernel's output against a CPU reference on fresh random data, and only then
//! reports a speed. A failed check is a [`Measurement`] with status `failed` and the error.
//! The tuned kernels (GEMM, attention, decode) pick their fastest verified variant through one
//! routine, [`search`]. Every kernel's WGSL lives in `kernels/wgsl/*.wgsl`, filled by
//! [`wgsl_template`]: sizes become numbers, and the lines a kernel unrolls per shape (register
//! tiles, per-dimension dot products, cooperative-matrix fragment steps) are generated in Rust
//! and filled in as blocks.

use std::collections::BTreeMap;

use headroom_core::report::{Measurement, Metric, Status};

pub mod allocation;
pub mod attention;
pub mod attention_coop;
pub mod bandwidth;
pub mod decode;
pub mod fill;
pub mod gemm;
#[cfg(not(target_arch = "wasm32"))]
pub mod host_bandwidth;
pub mod max_buffer;
pub mod search;
pub mod transfer;

use crate::ProbeError;

/// Bytes in a GiB (2^30).
pub const GIB: u64 = 1 << 30;
/// Bytes in a MiB (2^20).
pub const MIB: u64 = 1 << 20;
/// Bytes in a GB (10^9).
pub const GB: f64 = 1e9;

/// Alignment of storage-buffer binding offsets that every adapter accepts
/// (WebGPU's `minStorageBufferOffsetAlignment` is at most 256).
pub const BINDING_ALIGN_BYTES: u64 = 256;

/// Relative Frobenius error `‖got − want‖ / ‖want‖` (`f64::MAX` when not finite).
pub fn rel_frobenius(got: &[f64], want: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (g, w) in got.iter().zip(want) {
        num += (g - w) * (g - w);
        den += w * w;
    }
    let err = if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    };
    // NaN or infinity (a kernel wrote garbage) would serialize as JSON null; the largest finite
    // number keeps the report valid and still fails every tolerance.
    if err.is_finite() { err } else { f64::MAX }
}

/// A measurement that failed before it produced a result.
pub fn failed(
    name: Metric,
    params: BTreeMap<String, serde_json::Value>,
    err: &ProbeError,
) -> Measurement {
    Measurement {
        name,
        status: Status::Failed,
        error: Some(err.to_string()),
        params,
        verification: None,
        timing: None,
        flops_per_s: None,
        bytes_per_s: None,
        bytes_counted: None,
        tokens_per_s: None,
        accumulator: None,
    }
}

/// A measurement not run, with the reason.
pub fn skipped(
    name: Metric,
    params: BTreeMap<String, serde_json::Value>,
    reason: &str,
) -> Measurement {
    Measurement {
        status: Status::Skipped,
        error: Some(reason.to_owned()),
        ..failed(name, params, &ProbeError::Unsupported(String::new()))
    }
}

/// Fills a WGSL template (the `.wgsl` files beside the kernels): each `{{NAME}}` becomes its
/// value. WGSL has no double braces of its own, so a placeholder cannot clash with the shader.
pub fn wgsl_template(template: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), &value.to_string());
    }
    debug_assert!(
        !out.contains("{{"),
        "a placeholder was left unfilled:\n{out}"
    );
    out
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureSettings {
    /// Each measurement lasts at least this long, seconds (FACTS.md: ≥ 0.1 s; browsers round
    /// timestamps to 100 µs).
    pub target_s: f64,
    /// Cap on repetitions in one submit.
    pub max_iterations: u32,
}

impl MeasureSettings {
    /// The full probe: 0.2 s per measurement.
    pub const FULL: MeasureSettings = MeasureSettings {
        target_s: 0.2,
        max_iterations: 1000,
    };
    /// `--quick`: 0.05 s per measurement.
    pub const QUICK: MeasureSettings = MeasureSettings {
        target_s: 0.05,
        max_iterations: 200,
    };
    /// Tests on a CPU rasterizer: one repetition.
    pub const ONCE: MeasureSettings = MeasureSettings {
        target_s: 0.0,
        max_iterations: 1,
    };
}

/// Shorthand for building a parameter map.
#[macro_export]
macro_rules! params {
    ($($key:expr => $value:expr),* $(,)?) => {{
        let mut map = std::collections::BTreeMap::<String, serde_json::Value>::new();
        $( map.insert($key.to_string(), serde_json::json!($value)); )*
        map
    }};
}

#[cfg(test)]
mod tests {
    use super::rel_frobenius;

    #[test]
    fn templates_fill_every_placeholder() {
        let out = super::wgsl_template(
            "@workgroup_size({{WG}}) // {{WG}} {{NAME}}",
            &[("WG", &64), ("NAME", &"fill")],
        );
        assert_eq!(out, "@workgroup_size(64) // 64 fill");
    }

    #[test]
    fn frobenius_error_is_relative_and_always_finite() {
        assert_eq!(rel_frobenius(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        let e = rel_frobenius(&[1.1, 2.0], &[1.0, 2.0]);
        assert!((e - 0.1 / 5f64.sqrt()).abs() < 1e-12, "{e}");
        assert_eq!(rel_frobenius(&[f64::NAN], &[1.0]), f64::MAX);
        assert_eq!(rel_frobenius(&[f64::INFINITY], &[1.0]), f64::MAX);
    }
}
