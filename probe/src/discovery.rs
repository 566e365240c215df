//! Native host discovery: OS, CPU, RAM and swap (`/proc` on Linux, `sysctl` on macOS), the
//! adapters (no device opened), and on macOS the GPU's share of unified memory (`hw.memsize`,
//! `iogpu.wired_limit_mb`, Metal's `recommendedMaxWorkingSetSize`).

use headroom_core::report::{HostInfo, MacMemoryInfo};

/// Bytes in a KiB (`/proc/meminfo` reports kB meaning KiB).
#[cfg(target_os = "linux")]
const KIB: u64 = 1024;

/// The host as far as the OS tells without privileges.
pub fn host() -> HostInfo {
    let mut host = HostInfo {
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cpu_cores: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u32),
        ..HostInfo::default()
    };
    #[cfg(target_os = "linux")]
    {
        host.os_version = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            });
        host.cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            });
        if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
            let field = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|kib| kib * KIB)
            };
            host.ram_bytes = field("MemTotal:");
            host.ram_available_bytes = field("MemAvailable:");
            host.swap_total_bytes = field("SwapTotal:");
        }
    }
    #[cfg(target_os = "macos")]
    {
        host.os_version = command_output("sw_vers", &["-productVersion"]);
        host.cpu_model = sysctl("machdep.cpu.brand_string");
        let memsize = sysctl("hw.memsize").and_then(|v| v.parse::<u64>().ok());
        host.ram_bytes = memsize;
        host.swap_total_bytes = sysctl("vm.swapusage").and_then(|v| parse_swap_total(&v));
        host.macos = Some(MacMemoryInfo {
            hw_memsize_bytes: memsize,
            iogpu_wired_limit_mb: sysctl("iogpu.wired_limit_mb").and_then(|v| v.parse().ok()),
            recommended_max_working_set_bytes: None,
        });
    }
    host
}

/// Fills Metal's `recommendedMaxWorkingSetSize` from the adapter (macOS, Metal backend only).
pub fn add_metal_working_set(host: &mut HostInfo, adapter: &wgpu::Adapter) {
    #[cfg(target_os = "macos")]
    {
        use objc2_metal::MTLDevice;
        // SAFETY: reads one property of the Metal device; the handle is not kept.
        if let Some(hal) = unsafe { adapter.as_hal::<wgpu::hal::api::Metal>() } {
            let bytes = hal.raw_device().recommendedMaxWorkingSetSize();
            host.macos
                .get_or_insert_with(MacMemoryInfo::default)
                .recommended_max_working_set_bytes = Some(bytes);
        }
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = (host, adapter);
        let _unused: Option<MacMemoryInfo> = None;
    }
}

#[cfg(target_os = "macos")]
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(target_os = "macos")]
fn sysctl(name: &str) -> Option<String> {
    command_output("sysctl", &["-n", name])
}

/// `vm.swapusage` reads like `total = 2048.00M  used = 1024.00M  free = ...`.
#[cfg(target_os = "macos")]
fn parse_swap_total(text: &str) -> Option<u64> {
    let total = text.split("total = ").nth(1)?.split_whitespace().next()?;
    let mib: f64 = total.trim_end_matches('M').parse().ok()?;
    Some((mib * 1024.0 * 1024.0) as u64)
}

/// Every adapter wgpu finds, described for the report, without opening a device or running a
/// kernel (what `headroom fit` without a device uses to find this machine's GPU). The backends
/// are wgpu's `WGPU_BACKEND` setting when given (`vulkan`, `metal`, `dx12`, `gl`), else Vulkan,
/// Metal and DX12: OpenGL only repeats their adapters, and its EGL start-up writes to stderr on
/// headless Linux.
pub fn adapters() -> Vec<headroom_core::report::AdapterInfo> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .enumerate()
        .map(|(i, a)| crate::adapter::describe(i, a))
        .collect()
}

/// This machine's host facts with Metal's working set filled in from the first Metal adapter
/// (macOS), and its adapters ([`adapters`]).
pub fn quick() -> (HostInfo, Vec<headroom_core::report::AdapterInfo>) {
    #[cfg_attr(not(target_os = "macos"), allow(unused_mut))]
    let mut host = host();
    #[cfg(target_os = "macos")]
    {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::METAL,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        if let Some(adapter) =
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::METAL)).first()
        {
            add_metal_working_set(&mut host, adapter);
        }
    }
    (host, adapters())
}
