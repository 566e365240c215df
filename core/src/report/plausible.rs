//! Physical sense of a report's figures. A report is a file anyone can edit, and an estimate
//! takes its figures at face value: 2^64 − 1 bytes of memory "fits" any model, a bandwidth of
//! 10^308 B/s gives absurd speeds, and a zero or negative one gives 0 tokens/s without a word.
//! [`check`] refuses such a report with the field named, in core so that the CLI and the site
//! apply the same bounds.

use crate::CoreError;
use crate::devices::DeviceSpec;

use super::{MeasuredDevice, Measurement, ProbeReport, Status};

/// Most memory a figure may claim: 2^48 bytes = 256 TiB, the 48-bit virtual address space of
/// today's x86-64 and AArch64 processes and far above the largest single machine sold.
pub const MAX_MEMORY_BYTES: u64 = 1 << 48;

/// Highest bandwidth a measurement may claim: 100 TB/s, about twelve times the HBM3e bandwidth
/// of the fastest single accelerators announced (8 TB/s).
pub const MAX_BANDWIDTH_BYTES_PER_S: f64 = 100e12;

/// Highest compute rate a measurement may claim: 10^17 FLOP/s (100 PFLOP/s), about fifty times
/// the dense 16-bit rate of the fastest single accelerators announced.
pub const MAX_FLOPS: f64 = 1e17;

/// Highest decode-simulation rate a measurement may claim: 10^9 tokens/s; even the probe's
/// smallest simulated model (millions of bytes per token) cannot be read that often at
/// [`MAX_BANDWIDTH_BYTES_PER_S`].
pub const MAX_TOKENS_PER_S: f64 = 1e9;

/// How far a measured rate may exceed the datasheet figure of the catalog device the user named:
/// 10×. Achieved rates sit below the datasheet (an H200's copy bandwidth reaches 86% of it,
/// FACTS.md), but a report is matched to a catalog entry by the chip's name, and one name covers
/// variants up to 8× apart (Apple M2 at 100 GB/s to M2 Ultra at 800 GB/s): only a figure beyond
/// every variant is refused.
pub const MAX_RATE_OVER_DATASHEET: f64 = 10.0;

/// Checks a report's measured rates against the catalog entry of the device it claims to be: none
/// above [`MAX_RATE_OVER_DATASHEET`] times the datasheet. (Memory is not compared: one chip name
/// covers memory sizes 3× apart.) Call it only when the report's adapter is that device; figures
/// the catalog does not know (0) are not compared.
pub fn against_catalog(measured: &MeasuredDevice, device: &DeviceSpec) -> Result<(), CoreError> {
    let rates = [
        (
            "read_bandwidth_bytes_per_s",
            measured.read_bandwidth_bytes_per_s,
            device.bandwidth_bytes_per_s,
            "B/s",
        ),
        (
            "fp32_flops",
            measured.fp32_flops,
            device.fp32_flops,
            "FLOP/s",
        ),
        (
            "fp16_flops",
            measured.fp16_flops,
            device.fp16_flops,
            "FLOP/s",
        ),
    ];
    for (field, value, datasheet, unit) in rates {
        if let Some(value) = value
            && datasheet > 0.0
            && value > datasheet * MAX_RATE_OVER_DATASHEET
        {
            return Err(implausible(
                field,
                format!(
                    "is {value:.3e} {unit}, {:.1}× the datasheet's {datasheet:.3e} {unit} for {}: no \
                     device measures that far above its datasheet; the report is from another \
                     device or was edited",
                    value / datasheet,
                    device.name
                ),
            ));
        }
    }
    Ok(())
}

/// Checks every figure an estimate takes from `report` (the host's and the measured adapter's
/// memory, the largest buffer and allocation results, and each successful measurement's rate):
/// memory at most [`MAX_MEMORY_BYTES`], rates finite, above zero and at most their bound.
pub fn check(report: &ProbeReport) -> Result<(), CoreError> {
    let host = &report.host;
    memory("host.ram_bytes", host.ram_bytes)?;
    memory("host.ram_available_bytes", host.ram_available_bytes)?;
    memory("host.swap_total_bytes", host.swap_total_bytes)?;
    if let Some(mac) = &host.macos {
        memory("host.macos.hw_memsize_bytes", mac.hw_memsize_bytes)?;
        memory(
            "host.macos.recommended_max_working_set_bytes",
            mac.recommended_max_working_set_bytes,
        )?;
        let wired_bytes = mac
            .iogpu_wired_limit_mb
            .map(|mb| mb.saturating_mul(1 << 20));
        memory("host.macos.iogpu_wired_limit_mb", wired_bytes)?;
    }
    for (i, adapter) in report.adapters.iter().enumerate() {
        memory(
            &format!("adapters[{i}].device_local_memory_bytes"),
            adapter.device_local_memory_bytes,
        )?;
    }
    for (s, stage) in report.stages.iter().enumerate() {
        if let Some(max) = &stage.max_buffer {
            memory(
                &format!("stages[{s}].max_buffer.largest_verified_bytes"),
                Some(max.largest_verified_bytes),
            )?;
        }
        if let Some(sweep) = &stage.allocation {
            memory(
                &format!("stages[{s}].sweep.largest_clean_bytes"),
                Some(sweep.largest_clean_bytes),
            )?;
        }
        for (m, measurement) in stage.measurements.iter().enumerate() {
            if measurement.status == Status::Ok {
                rates(&format!("stages[{s}].measurements[{m}]"), measurement)?;
            }
        }
    }
    Ok(())
}

fn memory(field: &str, bytes: Option<u64>) -> Result<(), CoreError> {
    match bytes {
        Some(b) if b > MAX_MEMORY_BYTES => Err(implausible(
            field,
            format!(
                "is {b} bytes, more than the {} TiB any machine has: the report was edited or \
                 damaged; run `headroom probe` again",
                MAX_MEMORY_BYTES >> 40
            ),
        )),
        _ => Ok(()),
    }
}

fn rates(at: &str, m: &Measurement) -> Result<(), CoreError> {
    for (name, value, max, unit) in [
        (
            "bytes_per_s",
            m.bytes_per_s,
            MAX_BANDWIDTH_BYTES_PER_S,
            "B/s",
        ),
        ("flops_per_s", m.flops_per_s, MAX_FLOPS, "FLOP/s"),
        ("tokens_per_s", m.tokens_per_s, MAX_TOKENS_PER_S, "tokens/s"),
    ] {
        let Some(value) = value else { continue };
        if !(value.is_finite() && value > 0.0 && value <= max) {
            return Err(implausible(
                &format!("{at}.{name}"),
                format!(
                    "is {value:e} {unit} ({}), outside (0, {max:e}]: no device measures that; \
                     the report was edited or damaged; run `headroom probe` again",
                    m.name
                ),
            ));
        }
    }
    Ok(())
}

fn implausible(field: &str, problem: String) -> CoreError {
    CoreError::BadField {
        what: "probe report".to_owned(),
        field: field.to_owned(),
        problem,
    }
}
