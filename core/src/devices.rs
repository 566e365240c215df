//! Devices: a catalog kept as data (`core/data/devices.json`) and the [`DeviceSpec`] the estimates
//! use. A probe report's measurements replace catalog figures (see [`crate::report::MeasuredDevice`]).
//!
//! The catalog holds Apple M1–M5 in every GPU-core and RAM configuration sold (binned chips have
//! their FP32/FP16 rates scaled by GPU-core count from the top bin), NVIDIA RTX 30/40/50, A100,
//! H100, H200, B200, L4, L40S, AMD RX 7900 and MI300X, and Intel Arc. Every entry names its source.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{CoreError, report::MeasuredDevice};

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
    /// Memory the GPU may use as measured by a probe (Metal's `recommendedMaxWorkingSetSize`, or
    /// the largest clean step of the allocation sweep); replaces the rule-of-thumb share.
    #[serde(default)]
    pub measured_usable_bytes: Option<u64>,
    /// Where `measured_usable_bytes` came from, or why a probe's figure was not used (a sweep
    /// stopped by its budget), in words; part of the usable-memory basis an answer states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_usable_basis: Option<String>,
    /// Where `memory_bytes` came from when a probe report gave it (the adapter, the host's
    /// RAM); `None` for the catalog's datasheet figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_basis: Option<String>,
    /// True when `bandwidth_bytes_per_s` was measured (then speed estimates apply no datasheet
    /// efficiency factor).
    #[serde(default)]
    pub bandwidth_measured: bool,
    /// True when `fp16_flops`/`fp32_flops` were measured.
    #[serde(default)]
    pub compute_measured: bool,
    /// FP16/BF16 matrix rate with fp32 accumulation, FLOP/s, where it is lower than
    /// `fp16_flops`: GeForce RTX cards run fp32-accumulate tensor math at half their
    /// fp16-accumulate rate (NVIDIA Ampere/Ada/Blackwell GeForce specifications), and PyTorch's
    /// fp16/bf16 GEMMs accumulate in fp32. `None` where both rates are equal (datacenter GPUs).
    #[serde(default)]
    pub fp16_fp32_accumulate_flops: Option<f64>,
    /// Streaming multiprocessors (NVIDIA), where NVIDIA publishes them: llama.cpp's quantized
    /// matrix kernels run at a rate per SM and clock ([`crate::speed::llama_cpp_mmq_ops_per_s`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_count: Option<u32>,
    /// Boost clock, MHz (NVIDIA), beside `sm_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boost_clock_mhz: Option<f64>,
    /// The host beside the device as a probe measured it (for offload); empty when not measured.
    #[serde(default, skip_serializing_if = "HostLink::is_empty")]
    pub host: HostLink,
}

/// The host's memory and its link to the device, as a probe report measured them; offload
/// ([`crate::offload`]) reads them instead of its assumptions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct HostLink {
    /// Host RAM read bandwidth with every core reading, bytes per second.
    #[serde(default)]
    pub read_bandwidth_bytes_per_s: Option<f64>,
    /// Host→device upload rate, bytes per second.
    #[serde(default)]
    pub host_to_device_bytes_per_s: Option<f64>,
    /// Device→host download rate, bytes per second.
    #[serde(default)]
    pub device_to_host_bytes_per_s: Option<f64>,
    /// The host's RAM beside a discrete GPU, bytes, as the probe's machine reported it: the
    /// offload verdict's host memory when the question gives none.
    #[serde(default)]
    pub ram_bytes: Option<u64>,
}

impl HostLink {
    /// Nothing measured.
    pub fn is_empty(&self) -> bool {
        *self == HostLink::default()
    }
}

#[derive(Deserialize)]
struct CatalogFile {
    devices: Vec<DeviceSpec>,
}

/// The bundled catalog's JSON text.
pub const CATALOG_JSON: &str = include_str!("../data/devices.json");

/// Parse the bundled catalog, reporting a malformed file (a build-time mistake) as an error.
pub fn catalog_result() -> Result<Vec<DeviceSpec>, CoreError> {
    serde_json::from_str::<CatalogFile>(CATALOG_JSON)
        .map(|c| c.devices)
        .map_err(|e| CoreError::MalformedJson {
            what: "core/data/devices.json".into(),
            detail: e.to_string(),
        })
}

/// Every device in the bundled catalog (parsed once). Empty only if the bundled file is
/// malformed, which a test rules out.
pub fn catalog() -> &'static [DeviceSpec] {
    static CATALOG: OnceLock<Vec<DeviceSpec>> = OnceLock::new();
    CATALOG.get_or_init(|| catalog_result().unwrap_or_default())
}

/// Words that say nothing about which device is meant.
const NOISE_WORDS: &[&str] = &[
    "apple", "nvidia", "geforce", "amd", "radeon", "intel", "gpu", "core", "cores", "the",
];

/// Words that name a different product tier of the same chip or card.
const TIER_WORDS: &[&str] = &["pro", "max", "ultra", "ti", "super"];

/// Lower-case alphanumeric tokens, with "16 gb" / "16g" merged into "16gb" and noise dropped.
fn tokens(text: &str) -> Vec<String> {
    let raw: Vec<String> = text
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let t = &raw[i];
        let is_number = t.chars().all(|c| c.is_ascii_digit());
        if is_number && raw.get(i + 1).is_some_and(|n| n == "gb" || n == "g") {
            out.push(format!("{t}gb"));
            i += 2;
            continue;
        }
        if let Some(n) = t.strip_suffix('g')
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
        {
            out.push(format!("{n}gb"));
        } else if let Some(n) = t.strip_suffix('c')
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
        {
            // "10c" and "10-core" mean the same.
            out.push(n.to_string());
        } else if !NOISE_WORDS.contains(&t.as_str()) {
            out.push(t.clone());
        }
        i += 1;
    }
    out
}

fn compact(text: &str) -> String {
    text.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn candidate_tokens(d: &DeviceSpec) -> Vec<String> {
    let mut t = tokens(&d.id);
    t.extend(tokens(&d.name));
    t
}

/// Find a catalog device by id or name, case-insensitively and forgivingly: `m2 16gb`,
/// `rtx 4090`, `h100`, `M3 Max 40-core 64GB`. When several match and they differ only in speed
/// (GPU-core bins, SXM vs PCIe), the fastest is taken; when they differ in memory size the
/// answer is an error listing them. Unknown names give [`CoreError::Unknown`] with close matches.
pub fn find(name: &str) -> Result<DeviceSpec, CoreError> {
    find_in(catalog(), name)
}

/// [`find`] over any list of devices.
pub fn find_in(devices: &[DeviceSpec], name: &str) -> Result<DeviceSpec, CoreError> {
    let query = name.trim();
    if query.is_empty() {
        return Err(CoreError::Unknown {
            kind: "device".into(),
            name: name.to_string(),
            hint: "give a device name or id; `headroom devices` lists them".into(),
        });
    }
    let lower = query.to_ascii_lowercase();
    if let Some(d) = devices
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(&lower) || d.name.eq_ignore_ascii_case(query))
    {
        return Ok(d.clone());
    }
    let q_tokens = tokens(query);
    let mut matches: Vec<&DeviceSpec> = devices
        .iter()
        .filter(|d| {
            let c = candidate_tokens(d);
            !q_tokens.is_empty() && q_tokens.iter().all(|t| c.contains(t))
        })
        .collect();
    // "m2" means the plain M2, not the M2 Pro; "rtx 4060" not the 4060 Ti: drop matches
    // carrying a tier word the query lacks, unless that leaves none.
    let untiered: Vec<&DeviceSpec> = matches
        .iter()
        .copied()
        .filter(|d| {
            candidate_tokens(d)
                .iter()
                .all(|t| !TIER_WORDS.contains(&t.as_str()) || q_tokens.contains(t))
        })
        .collect();
    if !untiered.is_empty() {
        matches = untiered;
    }
    if matches.is_empty() {
        let q = compact(query);
        matches = devices
            .iter()
            .filter(|d| compact(&d.name).contains(&q) || compact(&d.id).contains(&q))
            .collect();
    }
    if matches.is_empty() {
        return Err(CoreError::Unknown {
            kind: "device".into(),
            name: name.to_string(),
            hint: close_matches_hint(devices, &q_tokens),
        });
    }
    let first_memory = matches[0].memory_bytes;
    if matches.iter().any(|d| d.memory_bytes != first_memory) {
        let mut ids: Vec<&str> = matches.iter().map(|d| d.id.as_str()).collect();
        ids.truncate(12);
        return Err(CoreError::Unknown {
            kind: "device".into(),
            name: name.to_string(),
            hint: format!(
                "it matches devices with different memory sizes; name one of: {}",
                ids.join(", ")
            ),
        });
    }
    let best = matches
        .iter()
        .max_by(|a, b| {
            (a.fp16_flops + a.bandwidth_bytes_per_s)
                .total_cmp(&(b.fp16_flops + b.bandwidth_bytes_per_s))
        })
        .copied()
        .unwrap_or(matches[0]);
    Ok(best.clone())
}

/// The catalog entry an adapter name (as a GPU driver reports it: `NVIDIA GeForce RTX 4090`,
/// `NVIDIA H100 80GB HBM3`, `AMD Radeon RX 7900 XTX (RADV NAVI31)`, `Apple M2 Pro`) stands for.
/// Words no catalog entry uses (`HBM3`, `RADV`, `Laptop`) are dropped; an entry must carry
/// every remaining word and no tier word (`Pro`, `Ti`, ...) the name lacks. Among several, the
/// one whose memory is closest to `memory_bytes` wins, then the fastest (GPU-core bins cannot be
/// told apart by name); without a memory size, entries that differ in memory are ambiguous and
/// give `None`.
pub fn match_adapter(name: &str, memory_bytes: Option<u64>) -> Option<DeviceSpec> {
    let devices = catalog();
    let known: Vec<Vec<String>> = devices.iter().map(candidate_tokens).collect();
    let wanted: Vec<String> = tokens(name)
        .into_iter()
        // Memory sizes are matched by `memory_bytes`, not by name.
        .filter(|t| {
            !(t.ends_with("gb")
                && t.len() > 2
                && t[..t.len() - 2].chars().all(|c| c.is_ascii_digit()))
        })
        .filter(|t| known.iter().any(|k| k.contains(t)))
        .collect();
    if !wanted.iter().any(|t| t.chars().any(|c| c.is_ascii_digit())) {
        return None;
    }
    let matches: Vec<&DeviceSpec> = devices
        .iter()
        .zip(&known)
        .filter(|(_, k)| {
            wanted.iter().all(|t| k.contains(t))
                && k.iter()
                    .all(|t| !TIER_WORDS.contains(&t.as_str()) || wanted.contains(t))
        })
        .map(|(d, _)| d)
        .collect();
    let first = matches.first()?;
    if memory_bytes.is_none() && matches.iter().any(|d| d.memory_bytes != first.memory_bytes) {
        return None;
    }
    matches
        .iter()
        .min_by(|a, b| {
            let gap = |d: &DeviceSpec| memory_bytes.map_or(0, |m| d.memory_bytes.abs_diff(m));
            gap(a).cmp(&gap(b)).then_with(|| {
                (b.fp16_flops + b.bandwidth_bytes_per_s)
                    .total_cmp(&(a.fp16_flops + a.bandwidth_bytes_per_s))
            })
        })
        .map(|d| (*d).clone())
}

fn close_matches_hint(devices: &[DeviceSpec], q_tokens: &[String]) -> String {
    let mut scored: Vec<(usize, &DeviceSpec)> = devices
        .iter()
        .map(|d| {
            let c = candidate_tokens(d);
            (q_tokens.iter().filter(|t| c.contains(t)).count(), d)
        })
        .filter(|(s, _)| *s > 0)
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    let names: Vec<&str> = scored.iter().take(6).map(|(_, d)| d.id.as_str()).collect();
    if names.is_empty() {
        "`headroom devices` lists the catalog".into()
    } else {
        format!(
            "close matches: {}; `headroom devices` lists all",
            names.join(", ")
        )
    }
}

impl DeviceSpec {
    /// SM cycles per second (`sm_count × boost clock`), where the catalog has both.
    pub fn sm_clocks_per_s(&self) -> Option<f64> {
        let sms = f64::from(self.sm_count?);
        let mhz = self.boost_clock_mhz.filter(|c| c.is_finite() && *c > 0.0)?;
        (sms > 0.0).then_some(sms * mhz * 1e6)
    }

    /// Apple silicon: a catalog entry of vendor `apple`, or a measured unified-memory adapter whose
    /// name says Apple (Metal names its adapters `Apple M2 Pro`, ...). Decides which engines can
    /// run here (MLX and PyTorch's MPS backend exist only on Apple silicon, CUDA never does).
    pub fn is_apple_silicon(&self) -> bool {
        self.vendor.eq_ignore_ascii_case("apple")
            || (self.memory_kind == MemoryKind::Unified
                && self
                    .name
                    .trim_start()
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case("apple")))
    }

    /// A device made only from a probe report's measurements. Figures the probe did not
    /// measure are 0 (speed estimates then report no number rather than a guess).
    pub fn from_measured(m: &MeasuredDevice) -> DeviceSpec {
        let base = DeviceSpec {
            id: "measured".into(),
            name: m.name.clone(),
            vendor: "measured".into(),
            memory_kind: if m.unified_memory {
                MemoryKind::Unified
            } else {
                MemoryKind::Discrete
            },
            memory_bytes: 0,
            bandwidth_bytes_per_s: 0.0,
            fp32_flops: 0.0,
            fp16_flops: 0.0,
            max_buffer_bytes: None,
            source: String::new(),
            measured_usable_bytes: None,
            measured_usable_basis: None,
            memory_basis: None,
            bandwidth_measured: false,
            compute_measured: false,
            fp16_fp32_accumulate_flops: None,
            sm_count: None,
            boost_clock_mhz: None,
            host: Default::default(),
        };
        let mut d = base.with_measurements(m);
        d.source = format!("probe report for {}", m.name);
        d
    }

    /// The device a probe report measured, for answering: the catalog entry its adapter name
    /// stands for ([`match_adapter`], by name and measured memory) with every measured figure
    /// replacing the catalog's, so what the report did not measure — a `--quick --only` run's
    /// GEMM rate, the SM figures llama.cpp's kernels are priced by — comes from the datasheet;
    /// the measurements alone ([`DeviceSpec::from_measured`]) for an adapter the catalog does
    /// not know or whose measured rates are implausible for the entry. Keeps the adapter's name
    /// and the id `measured`; the second value names the catalog entry used, if any.
    pub fn from_report(m: &MeasuredDevice) -> (DeviceSpec, Option<String>) {
        let Some(entry) = match_adapter(&m.name, m.memory_bytes)
            .filter(|e| crate::report::plausible::against_catalog(m, e).is_ok())
        else {
            return (DeviceSpec::from_measured(m), None);
        };
        let catalog_name = entry.name.clone();
        let mut d = entry.with_measurements(m);
        d.id = "measured".into();
        d.name = m.name.clone();
        d.source = format!(
            "probe report for {}; figures it did not measure from the catalog's {catalog_name}",
            m.name
        );
        (d, Some(catalog_name))
    }

    /// This catalog entry with every figure the probe measured replacing the catalog's.
    pub fn with_measurements(mut self, m: &MeasuredDevice) -> DeviceSpec {
        if let Some(bytes) = m.memory_bytes {
            self.memory_bytes = bytes;
            self.memory_basis = m.memory_basis.clone();
        } else if self.memory_bytes > 0 {
            self.memory_basis = Some("the catalog's datasheet figure".to_owned());
        }
        if let Some(bytes) = m.usable_bytes {
            self.measured_usable_bytes = Some(bytes);
        }
        self.measured_usable_basis = m.usable_basis.clone();
        if let Some(bw) = m
            .read_bandwidth_bytes_per_s
            .filter(|v| v.is_finite() && *v > 0.0)
        {
            self.bandwidth_bytes_per_s = bw;
            self.bandwidth_measured = true;
        }
        if let Some(f) = m.fp32_flops.filter(|v| v.is_finite() && *v > 0.0) {
            self.fp32_flops = f;
            self.compute_measured = true;
        }
        if let Some(f) = m.fp16_flops.filter(|v| v.is_finite() && *v > 0.0) {
            self.fp16_flops = f;
            // The measured rate is what a real kernel achieved: no datasheet split remains.
            self.fp16_fp32_accumulate_flops = None;
            self.compute_measured = true;
        }
        if let Some(b) = m.max_buffer_bytes {
            self.max_buffer_bytes = Some(b);
        }
        let positive = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
        self.host = HostLink {
            read_bandwidth_bytes_per_s: positive(m.host_read_bandwidth_bytes_per_s)
                .or(self.host.read_bandwidth_bytes_per_s),
            host_to_device_bytes_per_s: positive(m.host_to_device_bytes_per_s)
                .or(self.host.host_to_device_bytes_per_s),
            device_to_host_bytes_per_s: positive(m.device_to_host_bytes_per_s)
                .or(self.host.device_to_host_bytes_per_s),
            ram_bytes: m.host_ram_bytes.filter(|&b| b > 0).or(self.host.ram_bytes),
        };
        if !self.source.is_empty() {
            self.source = format!("{}; measured figures from a probe report", self.source);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm_counts_and_clocks_agree_with_the_fp32_rate() {
        // FP32 = SMs × FP32 lanes per SM × 2 × boost clock: 64 lanes on A100 (GA100), 128 on
        // GeForce Ampere/Ada/Blackwell, Hopper and the Ada data-centre cards. A typo in either
        // figure shows here.
        let mut checked = 0;
        for d in catalog() {
            let Some(sm_clocks) = d.sm_clocks_per_s() else {
                assert!(
                    d.sm_count.is_none() && d.boost_clock_mhz.is_none(),
                    "{}: SM count and boost clock come together",
                    d.id
                );
                continue;
            };
            let lanes = d.fp32_flops / (2.0 * sm_clocks);
            assert!(
                [64.0, 128.0].iter().any(|l| (lanes / l - 1.0).abs() < 0.01),
                "{}: FP32 {:.1} TFLOPS is {lanes:.1} lanes per SM",
                d.id,
                d.fp32_flops / 1e12
            );
            checked += 1;
        }
        assert!(checked >= 30, "{checked} NVIDIA entries carry SM figures");
    }
}
