//! An adapter's description for the report, and the device the probe asks for.

use headroom_core::report::{AdapterInfo, AdapterLimits, CoopMatrixShape};

/// Features the probe uses when the adapter has them, with their report names.
pub const PROBE_FEATURES: [(&str, wgpu::Features); 7] = [
    ("SHADER_F16", wgpu::Features::SHADER_F16),
    ("SUBGROUP", wgpu::Features::SUBGROUP),
    ("TIMESTAMP_QUERY", wgpu::Features::TIMESTAMP_QUERY),
    // Times the driver's own buffer fill, the write kernel's second reference (bandwidth.rs).
    (
        "TIMESTAMP_QUERY_INSIDE_ENCODERS",
        wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
    ),
    (
        "TIMESTAMP_QUERY_INSIDE_PASSES",
        wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
    ),
    (
        "EXPERIMENTAL_COOPERATIVE_MATRIX",
        wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
    ),
    ("SHADER_INT64", wgpu::Features::SHADER_INT64),
];

/// Vulkan's `VK_MEMORY_HEAP_DEVICE_LOCAL_BIT` (Vulkan spec, VkMemoryHeapFlagBits).
#[cfg(not(any(target_arch = "wasm32", target_vendor = "apple")))]
const VK_MEMORY_HEAP_DEVICE_LOCAL_BIT: u32 = 0x1;

fn scalar(t: wgpu::CooperativeScalarType) -> &'static str {
    match t {
        wgpu::CooperativeScalarType::F32 => "f32",
        wgpu::CooperativeScalarType::F16 => "f16",
        wgpu::CooperativeScalarType::I32 => "i32",
        wgpu::CooperativeScalarType::U32 => "u32",
    }
}

/// Report name of a backend.
pub fn backend_name(backend: wgpu::Backend) -> &'static str {
    match backend {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "browser_webgpu",
        _ => "other",
    }
}

/// Report name of a device type.
pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// Size of the largest device-local memory heap, where the backend tells (Vulkan natively; wgpu
/// builds no Vulkan backend on Apple platforms, where Metal's working set is used instead).
pub fn device_local_memory_bytes(adapter: &wgpu::Adapter) -> Option<u64> {
    #[cfg(not(any(target_arch = "wasm32", target_vendor = "apple")))]
    {
        // SAFETY: only reads the physical device's memory properties; the raw handles are not
        // kept past this call.
        let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
        let instance = hal.shared_instance().raw_instance();
        let props =
            unsafe { instance.get_physical_device_memory_properties(hal.raw_physical_device()) };
        props
            .memory_heaps_as_slice()
            .iter()
            .filter(|h| h.flags.as_raw() & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT != 0)
            .map(|h| h.size)
            .max()
    }
    #[cfg(any(target_arch = "wasm32", target_vendor = "apple"))]
    {
        let _ = adapter;
        None
    }
}

/// Describes one adapter for the report.
pub fn describe(index: usize, adapter: &wgpu::Adapter) -> AdapterInfo {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterInfo {
        index,
        name: info.name.clone(),
        backend: backend_name(info.backend).to_owned(),
        device_type: device_type_name(info.device_type).to_owned(),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        vendor_id: info.vendor,
        device_id: info.device,
        unified_memory: matches!(
            info.device_type,
            wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::Cpu
        ),
        device_local_memory_bytes: device_local_memory_bytes(adapter),
        limits: AdapterLimits {
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
        },
        features: PROBE_FEATURES
            .iter()
            .filter(|(_, f)| features.contains(*f))
            .map(|(n, _)| (*n).to_owned())
            .collect(),
        cooperative_matrix: adapter
            .cooperative_matrix_properties()
            .iter()
            .map(|p| CoopMatrixShape {
                m: p.m_size,
                n: p.n_size,
                k: p.k_size,
                ab_type: scalar(p.ab_type).to_owned(),
                cr_type: scalar(p.cr_type).to_owned(),
            })
            .collect(),
    }
}

/// Asks for a device with the adapter's own limits (wgpu's defaults cap buffers at 256 MiB) and
/// every probe feature the adapter has. Cooperative matrices are experimental in wgpu 30 and
/// only requested natively.
pub async fn request_device(
    adapter: &wgpu::Adapter,
) -> Result<(wgpu::Device, wgpu::Queue), wgpu::RequestDeviceError> {
    let mut wanted = PROBE_FEATURES
        .iter()
        .fold(wgpu::Features::empty(), |acc, (_, f)| acc | *f);
    if cfg!(target_arch = "wasm32") {
        wanted.remove(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    }
    let features = adapter.features() & wanted;
    let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        // SAFETY: the experimental feature is used only by the cooperative-matrix GEMM, whose
        // output is checked against a CPU reference before any speed is reported.
        unsafe { wgpu::ExperimentalFeatures::enabled() }
    } else {
        wgpu::ExperimentalFeatures::disabled()
    };
    adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("headroom probe"),
            required_features: features,
            required_limits: adapter.limits(),
            experimental_features: experimental,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        })
        .await
}
