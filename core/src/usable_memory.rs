//! Usable memory: Metal's working-set share of unified memory (and the `iogpu.wired_limit_mb`
//! override), VRAM on discrete GPUs (the runtime's own overhead is a separate component of the
//! estimate), vLLM's pre-allocated share, N identical devices.
//!
//! ## Apple unified memory
//! Metal reports `MTLDevice.recommendedMaxWorkingSetSize`, the memory the GPU may keep resident.
//! It depends on the RAM size and the macOS release: [`crate::macos`] keeps the reported values
//! and answers for any size. [`apple_working_set_bytes`] is the older rule (macOS 13–14
//! `ggml_metal_init` logs: 8 GB → 5461.34 MiB, 16 GB → 10922.67 MiB, 32 GB → 21845.34 MiB, all
//! exactly 2/3 of RAM; 64 GB → 49152 MiB, 192 GB → 147456 MiB, exactly 3/4). A probe report's
//! measured working set replaces the table; `sudo sysctl iogpu.wired_limit_mb=N` replaces both
//! (pass it as `wired_limit_bytes`).

use serde::{Deserialize, Serialize};

use crate::{
    devices::{DeviceSpec, MemoryKind},
    runtime::Runtime,
    units::GIB,
};

/// RAM at and above which Metal's working set is 3/4 of RAM rather than 2/3 (36 GB is the
/// smallest configuration observed at 3/4; 32 GB reports 21845.34 MiB = 2/3).
pub const APPLE_LARGE_RAM_THRESHOLD_BYTES: u64 = 36 * GIB;

/// Working-set share below [`APPLE_LARGE_RAM_THRESHOLD_BYTES`]: 2/3 (numerator, denominator).
pub const APPLE_SMALL_WORKING_SET_SHARE: (u64, u64) = (2, 3);

/// Working-set share from [`APPLE_LARGE_RAM_THRESHOLD_BYTES`]: 3/4.
pub const APPLE_LARGE_WORKING_SET_SHARE: (u64, u64) = (3, 4);

/// Largest single Metal buffer as a share of RAM when not measured: published measurements
/// found about half of RAM (12 GB on a 24 GB M5; FACTS.md).
pub const APPLE_MAX_BUFFER_SHARE: (u64, u64) = (1, 2);

/// Host RAM assumed beside a discrete GPU when the caller gives none, for the offload check:
/// 32 GiB, a common desktop configuration.
pub const DEFAULT_HOST_MEMORY_BYTES: u64 = 32 * GIB;

/// Share of host RAM that offloaded layers may use (the OS and the runtime keep the rest):
/// the same 3/4 as Metal's large-machine working set, a deliberately cautious figure.
pub const HOST_OFFLOAD_SHARE: (u64, u64) = (3, 4);

/// How much memory one device offers the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsableMemory {
    /// Bytes the model (weights, KV, activations, runtime overhead) may take on one device.
    pub usable_bytes: u64,
    /// Largest single buffer, bytes (Apple: Metal's `maxBufferLength` estimate or measurement).
    pub max_buffer_bytes: Option<u64>,
    /// How `usable_bytes` was found, in words.
    pub basis: String,
}

fn share(bytes: u64, (num, den): (u64, u64)) -> u64 {
    // Exact integer share without overflow: (bytes / den) * num + remainder part.
    (bytes / den)
        .saturating_mul(num)
        .saturating_add((bytes % den).saturating_mul(num) / den)
}

/// Metal's `recommendedMaxWorkingSetSize` for a Mac with `ram_bytes` of unified memory under the
/// older rule of macOS 11–15 (see the module docs; [`crate::macos::working_set`] covers every
/// release).
pub fn apple_working_set_bytes(ram_bytes: u64) -> u64 {
    if ram_bytes >= APPLE_LARGE_RAM_THRESHOLD_BYTES {
        share(ram_bytes, APPLE_LARGE_WORKING_SET_SHARE)
    } else {
        share(ram_bytes, APPLE_SMALL_WORKING_SET_SHARE)
    }
}

/// Usable memory of one `device` for `runtime`. `wired_limit_bytes` is macOS'
/// `iogpu.wired_limit_mb` (in bytes) when an administrator set it; it replaces the working-set
/// rule on unified-memory devices (capped at RAM); 0 means the default, as it does for the sysctl.
/// Macs are taken to run the newest macOS release with reports ([`usable_memory_on`] names one).
pub fn usable_memory(
    device: &DeviceSpec,
    runtime: Runtime,
    wired_limit_bytes: Option<u64>,
) -> UsableMemory {
    usable_memory_on(device, runtime, wired_limit_bytes, None)
}

/// [`usable_memory`] on a Mac running `macos` (`None`: the newest release with reports): the
/// working set comes from [`crate::macos::working_set`]. The order of precedence is the wired
/// limit, then a probe report's measured working set, then the table.
pub fn usable_memory_on(
    device: &DeviceSpec,
    runtime: Runtime,
    wired_limit_bytes: Option<u64>,
    macos: Option<crate::macos::MacosVersion>,
) -> UsableMemory {
    let (base, mut basis) = match device.memory_kind {
        MemoryKind::Unified => {
            // `sysctl iogpu.wired_limit_mb=0` is macOS' "use the default": 0 is no override.
            if let Some(limit) = wired_limit_bytes.filter(|l| *l > 0) {
                (
                    limit.min(device.memory_bytes),
                    format!(
                        "iogpu.wired_limit_mb override: {:.2} GiB of {:.0} GiB unified memory",
                        limit.min(device.memory_bytes) as f64 / GIB as f64,
                        device.memory_bytes as f64 / GIB as f64
                    ),
                )
            } else if let Some(measured) = device.measured_usable_bytes {
                (
                    measured,
                    device.measured_usable_basis.clone().unwrap_or_else(|| {
                        format!(
                            "measured GPU working set {:.2} GiB (probe report)",
                            measured as f64 / GIB as f64
                        )
                    }),
                )
            } else if device.vendor == crate::machine::CPU_VENDOR {
                let usable = share(device.memory_bytes, HOST_OFFLOAD_SHARE);
                (
                    usable,
                    format!(
                        "CPU only: 3/4 of {:.0} GiB RAM = {:.2} GiB (the OS and other programs \
                         keep the rest)",
                        device.memory_bytes as f64 / GIB as f64,
                        usable as f64 / GIB as f64
                    ),
                )
            } else {
                if device.is_apple_silicon() {
                    let ws = crate::macos::working_set(device.memory_bytes, macos);
                    (ws.bytes, ws.basis)
                } else {
                    // Another adapter sharing host memory (an integrated GPU, a software
                    // renderer): no release table applies; the cautious older share does.
                    let ws = apple_working_set_bytes(device.memory_bytes);
                    (
                        ws,
                        format!(
                            "memory shared with the host: {:.2} GiB of {:.0} GiB, the share \
                             Metal's older rule gives a Mac of this size (2/3, or 3/4 from 36 \
                             GiB); this adapter's own limit was not measured",
                            ws as f64 / GIB as f64,
                            device.memory_bytes as f64 / GIB as f64
                        ),
                    )
                }
            }
        }
        MemoryKind::Discrete => {
            if let Some(measured) = device.measured_usable_bytes {
                (
                    measured,
                    device.measured_usable_basis.clone().unwrap_or_else(|| {
                        format!(
                            "measured usable device memory {:.2} GiB (probe report)",
                            measured as f64 / GIB as f64
                        )
                    }),
                )
            } else {
                (
                    device.memory_bytes,
                    format!(
                        "{:.2} GiB of device memory; the runtime's own overhead is counted as \
                         a component of the total",
                        device.memory_bytes as f64 / GIB as f64
                    ),
                )
            }
        }
    };
    if device.measured_usable_bytes.is_none() {
        // A probe report that gave memory but no usable figure: say where the memory came from
        // and why the probe's own allocation figure was left out.
        if let Some(memory) = &device.memory_basis {
            basis = format!("{basis}; memory size from {memory}");
        }
        if let Some(why) = &device.measured_usable_basis {
            basis = format!("{basis}; {why}");
        }
    }
    let mut usable = base;
    if let Some(s) = runtime.memory_share() {
        let s = if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            1.0
        };
        // vLLM's budget is a share of *total* GPU memory (vLLM `gpu_memory_utilization`).
        usable = ((device.memory_bytes as f64) * s).min(base as f64) as u64;
        basis = format!(
            "{basis}; vLLM takes gpu_memory_utilization {s} × {:.2} GiB = {:.2} GiB",
            device.memory_bytes as f64 / GIB as f64,
            usable as f64 / GIB as f64
        );
    }
    let max_buffer_bytes = device.max_buffer_bytes.or(match device.memory_kind {
        MemoryKind::Unified => Some(share(device.memory_bytes, APPLE_MAX_BUFFER_SHARE)),
        MemoryKind::Discrete => None,
    });
    UsableMemory {
        usable_bytes: usable,
        max_buffer_bytes,
        basis,
    }
}

/// Host memory available for offloaded layers: for unified memory, what the GPU working set
/// leaves of RAM; for discrete GPUs, a share of the host's RAM (`host_memory_bytes` or
/// [`DEFAULT_HOST_MEMORY_BYTES`]).
pub fn offload_capacity_bytes(
    device: &DeviceSpec,
    usable_bytes: u64,
    host_memory_bytes: Option<u64>,
) -> u64 {
    match device.memory_kind {
        // A CPU-only run already holds everything in RAM: there is nowhere to offload to.
        MemoryKind::Unified if device.vendor == crate::machine::CPU_VENDOR => 0,
        // On a Mac the CPU and GPU share one pool: what the GPU cannot hold the CPU can run
        // from the rest of RAM, minus what macOS keeps (we keep the working-set share's
        // complement as the OS reserve, so only the part of RAM beyond usable is counted and
        // then only HOST_OFFLOAD_SHARE of it).
        MemoryKind::Unified => share(
            device.memory_bytes.saturating_sub(usable_bytes),
            HOST_OFFLOAD_SHARE,
        ),
        MemoryKind::Discrete => share(
            host_memory_bytes.unwrap_or(DEFAULT_HOST_MEMORY_BYTES),
            HOST_OFFLOAD_SHARE,
        ),
    }
}

/// Bytes each of `device_count` identical devices holds when `shared_bytes` (weights, KV,
/// activations: split evenly by tensor or pipeline parallelism) are spread over them and each
/// carries its own `per_device_bytes` (runtime context).
pub fn per_device_bytes(
    shared_bytes: u64,
    per_device_overhead_bytes: u64,
    device_count: u32,
) -> u64 {
    let n = u64::from(device_count.max(1));
    shared_bytes
        .div_ceil(n)
        .saturating_add(per_device_overhead_bytes)
}

/// The fewest identical devices that hold `shared_bytes` plus `per_device_overhead_bytes` each
/// within `usable_bytes` each; `None` if even `max_devices` do not (or one device's overhead
/// alone exceeds its memory).
pub fn devices_needed(
    shared_bytes: u64,
    per_device_overhead_bytes: u64,
    usable_bytes: u64,
    max_devices: u32,
) -> Option<u32> {
    let room = usable_bytes.checked_sub(per_device_overhead_bytes)?;
    if room == 0 {
        return None;
    }
    let n = shared_bytes.div_ceil(room).max(1);
    u32::try_from(n).ok().filter(|n| *n <= max_devices)
}
