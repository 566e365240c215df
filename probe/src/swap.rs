//! The host's swap counters, which the allocation stage reads before and after every step to tell
//! a step slowed by swapping from one slowed by a busy CPU or GPU: timing alone cannot (a step of a
//! lavapipe sweep took 11.4 s/GB against a 2.0 s/GB median while a compiler ran, with no page
//! swapped out).
//!
//! * Linux: `/proc/vmstat` (`pswpout`, `pswpin`: pages since boot) and `/proc/meminfo`
//!   (`SwapTotal`: with no swap configured there is no swap knee; `MemAvailable` for the notes).
//! * macOS: `vm_stat` (`Swapouts`, `Swapins`). macOS makes swap files on demand, so an empty
//!   `vm.swapusage` does not mean swap is off; no total is given there.
//! * Elsewhere (Windows, the browser): [`NoSwapCounters`], and the stage falls back to timing,
//!   made harder to fool (see `kernels::allocation`).
//!
//! The source is a trait so that tests hand in scripted counters.

/// One reading of the host's swap counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SwapSample {
    /// Pages swapped out since boot (a counter that only grows).
    pub pages_out: u64,
    /// Pages swapped in since boot.
    pub pages_in: u64,
    /// Swap space configured, bytes, where the OS gives a fixed figure (Linux `SwapTotal`);
    /// `Some(0)`: swap is off, so the host cannot swap.
    pub swap_total_bytes: Option<u64>,
    /// Memory the OS could still hand out without swapping, bytes (Linux `MemAvailable`).
    pub mem_available_bytes: Option<u64>,
}

/// Where the allocation stage reads the host's swap activity.
pub trait SwapCounters {
    /// The counters' source in words for the report (`Linux /proc/vmstat pswpout`); `None`: this
    /// host gives none, and [`SwapCounters::sample`] always returns `None`.
    fn source(&self) -> Option<String>;
    /// The counters now; `None` if they cannot be read. The stage reads them once before and
    /// once after every step.
    fn sample(&mut self) -> Option<SwapSample>;
}

/// A host without swap counters (a browser tab, Windows).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSwapCounters;

impl SwapCounters for NoSwapCounters {
    fn source(&self) -> Option<String> {
        None
    }
    fn sample(&mut self) -> Option<SwapSample> {
        None
    }
}

/// This host's swap counters: `/proc` on Linux, `vm_stat` on macOS, none elsewhere and in the
/// browser.
pub fn host_counters() -> Box<dyn SwapCounters> {
    #[cfg(target_os = "linux")]
    {
        Box::new(ProcCounters)
    }
    #[cfg(target_os = "macos")]
    {
        Box::new(VmStatCounters)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        Box::new(NoSwapCounters)
    }
}

/// Linux: `/proc/vmstat` and `/proc/meminfo`.
#[cfg(target_os = "linux")]
struct ProcCounters;

#[cfg(target_os = "linux")]
impl SwapCounters for ProcCounters {
    fn source(&self) -> Option<String> {
        Some("Linux /proc/vmstat pswpout".to_owned())
    }
    fn sample(&mut self) -> Option<SwapSample> {
        let vmstat = std::fs::read_to_string("/proc/vmstat").ok()?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        parse_proc(&vmstat, &meminfo)
    }
}

/// macOS: the `Swapouts` and `Swapins` counters of `vm_stat` (the same figures as
/// `host_statistics64`, without unsafe code or a new dependency; a step of the sweep takes far
/// longer than the few milliseconds the command does, and the reads sit outside the step's timing).
#[cfg(target_os = "macos")]
struct VmStatCounters;

#[cfg(target_os = "macos")]
impl SwapCounters for VmStatCounters {
    fn source(&self) -> Option<String> {
        Some("macOS vm_stat Swapouts".to_owned())
    }
    fn sample(&mut self) -> Option<SwapSample> {
        let out = std::process::Command::new("vm_stat").output().ok()?;
        if !out.status.success() {
            return None;
        }
        parse_vm_stat(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Bytes in a KiB (`/proc/meminfo` writes kB meaning KiB).
const KIB: u64 = 1024;

/// Reads `pswpout`, `pswpin` from `/proc/vmstat` text and `SwapTotal`, `MemAvailable` from
/// `/proc/meminfo` text; `None` if `vmstat` lacks the swap counters.
pub fn parse_proc(vmstat: &str, meminfo: &str) -> Option<SwapSample> {
    let counter = |name: &str| {
        vmstat.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name))
                .then(|| words.next()?.parse::<u64>().ok())
                .flatten()
        })
    };
    let kib_field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|kib| kib.saturating_mul(KIB))
        })
    };
    Some(SwapSample {
        pages_out: counter("pswpout")?,
        pages_in: counter("pswpin")?,
        swap_total_bytes: kib_field("SwapTotal"),
        mem_available_bytes: kib_field("MemAvailable"),
    })
}

/// Reads `Swapouts` and `Swapins` from `vm_stat` output (`Swapouts:     1234.`); `None` if
/// they are missing.
pub fn parse_vm_stat(text: &str) -> Option<SwapSample> {
    let counter = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().trim_end_matches('.').parse::<u64>().ok()
        })
    };
    Some(SwapSample {
        pages_out: counter("Swapouts")?,
        pages_in: counter("Swapins")?,
        swap_total_bytes: None,
        mem_available_bytes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_give_the_counters_and_the_swap_total() {
        let vmstat = "nr_free_pages 123\npswpin 7\npswpout 4096\npswpout_zero 1\n";
        let meminfo =
            "MemTotal:       32000000 kB\nMemAvailable:   2000 kB\nSwapTotal:             0 kB\n";
        assert_eq!(
            parse_proc(vmstat, meminfo),
            Some(SwapSample {
                pages_out: 4096,
                pages_in: 7,
                swap_total_bytes: Some(0),
                mem_available_bytes: Some(2000 * 1024),
            })
        );
        assert_eq!(parse_proc("nr_free_pages 1\n", meminfo), None);
        assert_eq!(
            parse_proc(vmstat, "").map(|s| s.swap_total_bytes),
            Some(None)
        );
    }

    #[test]
    fn vm_stat_output_gives_the_counters() {
        let text = "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n\
                    Pages free:                               12345.\n\
                    Swapins:                                     12.\n\
                    Swapouts:                                  3456.\n";
        assert_eq!(
            parse_vm_stat(text),
            Some(SwapSample {
                pages_out: 3456,
                pages_in: 12,
                swap_total_bytes: None,
                mem_available_bytes: None,
            })
        );
        assert_eq!(parse_vm_stat("Pages free: 1.\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_linux_host_has_counters() {
        let mut counters = host_counters();
        assert!(counters.source().is_some());
        assert!(counters.sample().is_some());
    }
}
