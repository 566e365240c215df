//! "This machine": the device a question is about when none is named, from a quick discovery
//! (the host and its adapters, no kernels run) matched to the device catalog.
//!
//! The discovery itself is native I/O and lives in the probe library; this module only decides,
//! from what it found, which device to answer for and says how:
//!
//! * a GPU adapter (discrete first, then integrated, then virtual) matched to a catalog entry by
//!   name and memory: the catalog gives what discovery cannot (bandwidth, compute), discovery
//!   the memory;
//! * a GPU adapter the catalog does not know: its memory only, so no speed;
//! * no GPU adapter, or only a CPU one (Mesa's lavapipe, SwiftShader): the CPU and its RAM, as
//!   llama.cpp on the CPU would use them.

use serde::{Deserialize, Serialize};

use crate::{
    devices::{self, DeviceSpec, MemoryKind},
    report::{AdapterInfo, HostInfo},
    units::GIB,
};

/// Catalog-style id of the CPU-only device.
pub const CPU_DEVICE_ID: &str = "cpu";
/// Vendor of the CPU-only device (its usable memory follows its own rule,
/// [`crate::usable_memory::usable_memory`]).
pub const CPU_VENDOR: &str = "cpu";

/// How the machine's device was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineBasis {
    /// A GPU adapter matched to a catalog entry.
    CatalogMatch,
    /// A GPU adapter the catalog does not know: memory only.
    Unmatched,
    /// No usable GPU adapter: the CPU and its RAM.
    CpuOnly,
}

/// The device of this machine and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThisMachine {
    /// The device to answer for.
    pub device: DeviceSpec,
    /// How it was found.
    pub basis: MachineBasis,
    /// What was found and what the answer uses, in words (names no flag).
    pub description: String,
}

/// Rank of an adapter type: lower is preferred; `None` for CPU adapters, which are software
/// renderers and not a GPU.
fn type_rank(device_type: &str) -> Option<u8> {
    match device_type {
        "discrete_gpu" => Some(0),
        "integrated_gpu" => Some(1),
        "virtual_gpu" => Some(2),
        "cpu" => None,
        _ => Some(3),
    }
}

/// The memory a GPU adapter has: its device-local heap when discrete; the host's RAM when it
/// shares it (Apple: `hw.memsize`).
fn adapter_memory(host: &HostInfo, a: &AdapterInfo) -> Option<u64> {
    if a.unified_memory {
        host.macos
            .as_ref()
            .and_then(|m| m.hw_memsize_bytes)
            .or(host.ram_bytes)
    } else {
        a.device_local_memory_bytes
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// The CPU and its RAM as a device: llama.cpp on the CPU, no speed figures (discovery measures
/// no bandwidth).
pub fn cpu_device(host: &HostInfo) -> Option<DeviceSpec> {
    let ram = host.ram_bytes.filter(|r| *r > 0)?;
    let cpu = host.cpu_model.clone().unwrap_or_else(|| "CPU".to_string());
    Some(DeviceSpec {
        id: CPU_DEVICE_ID.into(),
        name: format!("{cpu} (CPU only)"),
        vendor: CPU_VENDOR.into(),
        memory_kind: MemoryKind::Unified,
        memory_bytes: ram,
        bandwidth_bytes_per_s: 0.0,
        fp32_flops: 0.0,
        fp16_flops: 0.0,
        max_buffer_bytes: None,
        source: "this machine's RAM (discovery)".into(),
        measured_usable_bytes: None,
        measured_usable_basis: None,
        memory_basis: Some("this machine's RAM, as the operating system reports it".into()),
        bandwidth_measured: false,
        compute_measured: false,
        fp16_fp32_accumulate_flops: None,
        sm_count: None,
        boost_clock_mhz: None,
        host: Default::default(),
    })
}

/// The device to answer for on a machine with `host` and `adapters`; `None` when there is no
/// GPU adapter and the host's RAM is unknown too.
pub fn this_machine(host: &HostInfo, adapters: &[AdapterInfo]) -> Option<ThisMachine> {
    let gpu = adapters
        .iter()
        .filter_map(|a| type_rank(&a.device_type).map(|r| (r, a)))
        .min_by_key(|(r, a)| (*r, std::cmp::Reverse(adapter_memory(host, a).unwrap_or(0))))
        .map(|(_, a)| a);
    let mut cpu_adapters: Vec<&str> = adapters
        .iter()
        .filter(|a| a.device_type == "cpu")
        .map(|a| a.name.as_str())
        .collect();
    cpu_adapters.dedup();
    let Some(a) = gpu else {
        let device = cpu_device(host)?;
        let why = if cpu_adapters.is_empty() {
            "no GPU adapter found".to_string()
        } else {
            format!(
                "no GPU: {} is a CPU (software) adapter",
                cpu_adapters.join(", ")
            )
        };
        return Some(ThisMachine {
            description: format!(
                "{why}; answering for the CPU and its {} RAM (llama.cpp on the CPU; speed not \
                 estimated without a measured bandwidth)",
                gib(device.memory_bytes)
            ),
            device,
            basis: MachineBasis::CpuOnly,
        });
    };
    let memory = adapter_memory(host, a);
    let working_set = host
        .macos
        .as_ref()
        .and_then(|m| m.recommended_max_working_set_bytes)
        .filter(|_| a.unified_memory);
    if let Some(mut d) = devices::match_adapter(&a.name, memory) {
        let catalog_name = d.name.clone();
        if let Some(m) = memory {
            d.memory_bytes = m;
        }
        d.measured_usable_bytes = working_set;
        d.source = format!("{}; memory from this machine's discovery", d.source);
        return Some(ThisMachine {
            description: format!(
                "this machine: {} ({}, {}{}), matched to the catalog's {catalog_name} for \
                 bandwidth and compute",
                a.name,
                a.device_type.replace('_', " "),
                memory.map_or_else(|| "memory unknown".to_string(), gib),
                if working_set.is_some() {
                    ", Metal working set measured"
                } else {
                    ""
                }
            ),
            device: d,
            basis: MachineBasis::CatalogMatch,
        });
    }
    let Some(memory) = memory.filter(|m| *m > 0) else {
        let device = cpu_device(host)?;
        return Some(ThisMachine {
            description: format!(
                "this machine's GPU {} is not in the catalog and its memory is unknown; \
                 answering for the CPU and its {} RAM",
                a.name,
                gib(device.memory_bytes)
            ),
            device,
            basis: MachineBasis::CpuOnly,
        });
    };
    let device = DeviceSpec {
        id: "this-machine".into(),
        name: a.name.clone(),
        vendor: "measured".into(),
        memory_kind: if a.unified_memory {
            MemoryKind::Unified
        } else {
            MemoryKind::Discrete
        },
        memory_bytes: memory,
        bandwidth_bytes_per_s: 0.0,
        fp32_flops: 0.0,
        fp16_flops: 0.0,
        max_buffer_bytes: None,
        source: "this machine's discovery (memory only)".into(),
        measured_usable_bytes: working_set,
        measured_usable_basis: working_set.map(|_| "Metal's recommendedMaxWorkingSetSize".into()),
        memory_basis: Some("the adapter's memory, as discovery reports it".into()),
        bandwidth_measured: false,
        compute_measured: false,
        fp16_fp32_accumulate_flops: None,
        sm_count: None,
        boost_clock_mhz: None,
        host: Default::default(),
    };
    Some(ThisMachine {
        description: format!(
            "this machine: {} ({}, {}), not in the catalog: memory only, no speed (a probe \
             measures it)",
            a.name,
            a.device_type.replace('_', " "),
            gib(memory)
        ),
        device,
        basis: MachineBasis::Unmatched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::AdapterLimits;

    fn adapter(name: &str, device_type: &str, memory: Option<u64>) -> AdapterInfo {
        AdapterInfo {
            index: 0,
            name: name.into(),
            backend: "vulkan".into(),
            device_type: device_type.into(),
            driver: String::new(),
            driver_info: String::new(),
            vendor_id: 0,
            device_id: 0,
            unified_memory: matches!(device_type, "integrated_gpu" | "cpu"),
            device_local_memory_bytes: memory,
            limits: AdapterLimits {
                max_buffer_size: 1 << 30,
                max_storage_buffer_binding_size: 1 << 30,
                max_compute_workgroup_storage_size: 32768,
                max_compute_invocations_per_workgroup: 1024,
                max_compute_workgroups_per_dimension: 65535,
                subgroup_min_size: 32,
                subgroup_max_size: 32,
            },
            features: Vec::new(),
            cooperative_matrix: Vec::new(),
        }
    }

    fn host(ram_gib: u64) -> HostInfo {
        HostInfo {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu_model: Some("Test CPU".into()),
            ram_bytes: Some(ram_gib * GIB),
            ..HostInfo::default()
        }
    }

    #[test]
    fn lavapipe_is_the_cpu() {
        let m = this_machine(
            &host(64),
            &[adapter(
                "llvmpipe (LLVM 19.1.7, 256 bits)",
                "cpu",
                Some(64 * GIB),
            )],
        )
        .unwrap_or_else(|| panic!("RAM is known"));
        assert_eq!(m.basis, MachineBasis::CpuOnly);
        assert_eq!(m.device.id, CPU_DEVICE_ID);
        assert_eq!(m.device.memory_bytes, 64 * GIB);
        assert!(m.description.contains("llvmpipe"), "{}", m.description);
        assert!(this_machine(&HostInfo::default(), &[]).is_none());
    }

    #[test]
    fn a_known_gpu_is_matched_with_its_own_memory() {
        let m = this_machine(
            &host(64),
            &[
                adapter("llvmpipe", "cpu", None),
                adapter("NVIDIA GeForce RTX 4090", "discrete_gpu", Some(24 * GIB)),
            ],
        )
        .unwrap_or_else(|| panic!("a GPU"));
        assert_eq!(m.basis, MachineBasis::CatalogMatch);
        assert_eq!(m.device.id, "rtx-4090");
        let h100 = this_machine(
            &host(64),
            &[adapter(
                "NVIDIA H100 80GB HBM3",
                "discrete_gpu",
                Some(80 * GIB),
            )],
        )
        .unwrap_or_else(|| panic!("a GPU"));
        assert!(h100.device.id.starts_with("h100"), "{}", h100.device.id);
        assert_eq!(h100.device.memory_bytes, 80 * GIB);
    }

    #[test]
    fn an_unknown_gpu_gives_memory_only() {
        let m = this_machine(
            &host(32),
            &[adapter("Frobnicator 9000", "discrete_gpu", Some(12 * GIB))],
        )
        .unwrap_or_else(|| panic!("a GPU"));
        assert_eq!(m.basis, MachineBasis::Unmatched);
        assert_eq!(m.device.memory_bytes, 12 * GIB);
        assert_eq!(m.device.bandwidth_bytes_per_s, 0.0);
    }
}
