//! `headroom probe`: discover the machine, run every stage on one GPU, write the JSON report
//! after each stage (temporary file + rename, so Ctrl-C or a crash leaves the finished stages in
//! a valid file), and print a summary.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use headroom_core::report::{
    AdapterInfo, Measurement, ProbeReport, ProbeSettings, SCHEMA_VERSION, StageRecord, Status,
    ToolInfo,
};
use headroom_probe::kernels::attention::{self, AttentionParams};
use headroom_probe::kernels::bandwidth::{self, BandwidthParams};
use headroom_probe::kernels::decode::{self, DecodeParams, WeightFormat};
use headroom_probe::kernels::gemm::{self, GemmParams, GemmVariant, Tile};
use headroom_probe::kernels::max_buffer::{self, MaxBufferParams};
use headroom_probe::kernels::sweep::{self, DEFAULT_SWAP_FACTOR, SweepParams};
use headroom_probe::kernels::{GIB, MIB, MeasureSettings};
use indicatif::{ProgressBar, ProgressStyle};

/// The stages, in the order they run.
pub const STAGES: [&str; 6] = [
    "gemm",
    "attention",
    "bandwidth",
    "decode",
    "max_buffer",
    "sweep",
];

/// Environment variable (tests): allocations beyond this many bytes fail as a simulated
/// out-of-memory in the largest-buffer search and the sweep.
const SIMULATE_OOM_ENV: &str = "HEADROOM_PROBE_SIMULATE_OOM_BYTES";

/// Share of a discrete GPU's device-local memory the sweep may take by default (issue 3).
const DISCRETE_BUDGET_FRACTION: f64 = 0.9;
/// Share of available RAM the sweep may take on unified memory without a Metal working set
/// (Linux integrated GPUs, CPU rasterizers): stays clear of swap.
const UNIFIED_AVAILABLE_FRACTION: f64 = 0.8;
/// When the backend does not say how much memory the GPU has: half of RAM.
const UNKNOWN_MEMORY_RAM_FRACTION: f64 = 0.5;

/// Arguments of `headroom probe`.
#[derive(clap::Args)]
pub struct ProbeArgs {
    /// Smaller sizes and shorter measurements (under a minute on a real GPU).
    #[arg(long)]
    quick: bool,
    /// Run only these stages (comma-separated): gemm, attention, bandwidth, decode, max_buffer, sweep.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Adapter to measure: its index in the list, or part of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// Graphics backend: metal, vulkan, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
    /// Memory the sweep and the largest buffer may use, e.g. 16GiB, 20GB, 512MiB or bytes.
    #[arg(long)]
    budget: Option<String>,
    /// Let the sweep go past the point where the host starts to swap.
    #[arg(long)]
    allow_swap: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "headroom-probe.json")]
    out: PathBuf,
}

/// Sizes per kind of run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sizes {
    label: &'static str,
    gemm_n: &'static [u32],
    attention: (u32, u32, u32),
    bandwidth_bytes: u64,
    decode_params: u64,
    sweep_step_params: u64,
    stage_time_limit_s: f64,
    measure: MeasureSettings,
    /// Attention key tile override (`None`: as large as shared memory allows).
    attention_key_block: Option<u32>,
}

const FULL: Sizes = Sizes {
    label: "full",
    gemm_n: &[4096, 8192],
    // Issue 6's comparison shape: B8 H32 S2048.
    attention: (8, 32, 2048),
    bandwidth_bytes: 4 * GIB,
    // An 8B-parameter model.
    decode_params: 8_000_000_000,
    sweep_step_params: 1_000_000_000,
    stage_time_limit_s: 600.0,
    measure: MeasureSettings::FULL,
    attention_key_block: None,
};

const QUICK: Sizes = Sizes {
    label: "quick",
    gemm_n: &[2048],
    attention: (4, 16, 1024),
    bandwidth_bytes: GIB,
    decode_params: 1_000_000_000,
    sweep_step_params: 4_000_000_000,
    stage_time_limit_s: 60.0,
    measure: MeasureSettings::QUICK,
    attention_key_block: None,
};

/// A CPU rasterizer (lavapipe, ~1 GFLOP/s) checks correctness, not speed: tiny sizes.
const CPU_ADAPTER: Sizes = Sizes {
    label: "cpu adapter (correctness sizes)",
    gemm_n: &[256],
    attention: (1, 2, 128),
    bandwidth_bytes: 32 * MIB,
    decode_params: 16 * MIB,
    sweep_step_params: 16 * MIB,
    // lavapipe compiles shaders with LLVM: a cold compile of the attention kernels takes
    // minutes on a 2-core machine.
    stage_time_limit_s: 900.0,
    measure: MeasureSettings::ONCE,
    attention_key_block: Some(4),
};

/// Parses `16GiB`, `20GB`, `512MiB`, `1.5GiB`, `1000000` (bytes).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().with_context(|| {
        format!("--budget `{text}`: expected a number with an optional unit, e.g. 16GiB")
    })?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => MIB as f64,
        "gib" => GIB as f64,
        "tib" => (GIB as f64) * 1024.0,
        other => bail!(
            "--budget `{text}`: unknown unit `{other}`; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
        ),
    };
    let bytes = value * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        bail!("--budget `{text}` is out of range: give a positive size such as 16GiB");
    }
    Ok(bytes as u64)
}

fn parse_backend(name: &str) -> anyhow::Result<wgpu::Backends> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "metal" => wgpu::Backends::METAL,
        "vulkan" => wgpu::Backends::VULKAN,
        "dx12" => wgpu::Backends::DX12,
        "gl" => wgpu::Backends::GL,
        other => bail!("--backend `{other}`: use metal, vulkan, dx12 or gl"),
    })
}

/// RFC 3339 UTC from the system clock (civil-from-days: H. Hinnant, "chrono-compatible
/// low-level date algorithms").
fn utc_now() -> String {
    utc_from_unix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

fn utc_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Writes the report to a temporary file beside `path`, then renames it over `path`: readers
/// and an interrupted run only ever see a whole, valid file.
fn write_atomic(path: &Path, report: &ProbeReport) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, report.to_json() + "\n")
        .with_context(|| format!("cannot write the report to {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn pick_adapter(
    adapters: &[wgpu::Adapter],
    infos: &[AdapterInfo],
    wanted: Option<&str>,
) -> anyhow::Result<usize> {
    if let Some(wanted) = wanted {
        if let Ok(index) = wanted.parse::<usize>() {
            if index < adapters.len() {
                return Ok(index);
            }
            bail!(
                "--adapter {index}: there are {} adapters (0 to {})",
                adapters.len(),
                adapters.len().saturating_sub(1)
            );
        }
        let lower = wanted.to_ascii_lowercase();
        return infos
            .iter()
            .position(|a| a.name.to_ascii_lowercase().contains(&lower))
            .with_context(|| {
                let names: Vec<String> = infos
                    .iter()
                    .map(|a| format!("{}: {} ({})", a.index, a.name, a.backend))
                    .collect();
                format!(
                    "--adapter `{wanted}` matches no adapter; found: {}",
                    names.join("; ")
                )
            });
    }
    // Prefer a discrete GPU, then integrated, then anything; native APIs over GL.
    let rank = |a: &AdapterInfo| {
        let kind = match a.device_type.as_str() {
            "discrete_gpu" => 0,
            "integrated_gpu" => 1,
            "virtual_gpu" => 2,
            "cpu" => 4,
            _ => 3,
        };
        (kind, u8::from(a.backend == "gl"))
    };
    infos
        .iter()
        .enumerate()
        .min_by_key(|(_, a)| rank(a))
        .map(|(i, _)| i)
        .context("no adapter")
}

fn no_adapter_message(backends: wgpu::Backends) -> String {
    format!(
        "no GPU adapter found (backends searched: {backends:?}).\n\
         Install your GPU's driver (NVIDIA, AMD or Intel; Apple GPUs need macOS 11 or newer).\n\
         On Linux without a GPU, Mesa's lavapipe gives a CPU Vulkan driver for a correctness check:\n\
         \x20   sudo apt-get install mesa-vulkan-drivers libvulkan1\n\
         Then run `vulkaninfo --summary` (package vulkan-tools) to see the adapters."
    )
}

/// The memory budget and where it came from.
fn budget(
    args: &ProbeArgs,
    adapter: &AdapterInfo,
    report: &ProbeReport,
) -> anyhow::Result<(Option<u64>, String)> {
    if let Some(text) = &args.budget {
        return Ok((Some(parse_size(text)?), "--budget".to_owned()));
    }
    if adapter.unified_memory {
        if let Some(ws) = report
            .host
            .macos
            .as_ref()
            .and_then(|m| m.recommended_max_working_set_bytes)
        {
            return Ok((Some(ws), "Metal recommendedMaxWorkingSetSize".to_owned()));
        }
        if args.allow_swap {
            return Ok((None, "none (--allow-swap on unified memory)".to_owned()));
        }
        if let Some(avail) = report.host.ram_available_bytes.or(report.host.ram_bytes) {
            let b = (avail as f64 * UNIFIED_AVAILABLE_FRACTION) as u64;
            return Ok((
                Some(b),
                format!(
                    "{:.0}% of available RAM (unified memory, never into swap)",
                    UNIFIED_AVAILABLE_FRACTION * 100.0
                ),
            ));
        }
    } else if let Some(mem) = adapter.device_local_memory_bytes {
        return Ok((
            Some((mem as f64 * DISCRETE_BUDGET_FRACTION) as u64),
            format!(
                "{:.0}% of device-local memory",
                DISCRETE_BUDGET_FRACTION * 100.0
            ),
        ));
    }
    let ram = report.host.ram_bytes.unwrap_or(4 * GIB);
    Ok((
        Some((ram as f64 * UNKNOWN_MEMORY_RAM_FRACTION) as u64),
        format!(
            "{:.0}% of RAM (the backend does not report device memory)",
            UNKNOWN_MEMORY_RAM_FRACTION * 100.0
        ),
    ))
}

/// One measurement to run inside a stage: a label for the progress bar and the work.
type Item<'a, R> = (String, Box<dyn FnOnce(&mut R) -> Vec<Measurement> + 'a>);

struct Run<'a> {
    device: &'a wgpu::Device,
    queue: &'a wgpu::Queue,
    adapter: &'a wgpu::Adapter,
    sizes: Sizes,
    seed: u64,
    budget: Option<u64>,
    memory_cap: u64,
    allow_swap: bool,
    simulate_oom: Option<u64>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    bar: ProgressBar,
}

impl Run<'_> {
    fn next_seed(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.seed
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    fn step(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    fn done_one(&self) {
        self.bar.inc(1);
    }

    /// Runs `items` measurement closures with the stage's time limit.
    fn measurements(&mut self, stage: &str, items: Vec<Item<'_, Self>>) -> StageRecord {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut reason = None;
        for (label, item) in items {
            if let Some(lost) = self.lost() {
                reason = Some(format!("device lost: {lost}"));
                break;
            }
            if start.elapsed().as_secs_f64() > self.sizes.stage_time_limit_s {
                reason = Some(format!(
                    "time limit of {:.0} s reached before {label}",
                    self.sizes.stage_time_limit_s
                ));
                break;
            }
            self.step(&format!("{stage}: {label}"));
            out.extend(item(self));
            self.done_one();
        }
        let any_failed = out.iter().any(|m| m.status == Status::Failed);
        let status = if reason.is_some() || any_failed {
            Status::Failed
        } else {
            Status::Ok
        };
        if reason.is_none() && any_failed {
            reason = Some("one or more measurements failed (see their errors)".to_owned());
        }
        StageRecord {
            stage: stage.to_owned(),
            status,
            reason,
            duration_s: start.elapsed().as_secs_f64(),
            measurements: out,
            max_buffer: None,
            sweep: None,
        }
    }

    fn gemm(&mut self) -> StageRecord {
        let coop = self.adapter.cooperative_matrix_properties();
        let subgroup = self.adapter.get_info().subgroup_max_size;
        let mut items: Vec<Item<'_, Self>> = Vec::new();
        for &n in self.sizes.gemm_n {
            for variant in GemmVariant::ALL {
                let coop = coop.clone();
                items.push((
                    format!("{} {n}³", variant.name()),
                    Box::new(move |run: &mut Self| {
                        let p = GemmParams {
                            variant,
                            n,
                            seed: run.next_seed(),
                            settings: run.sizes.measure,
                            tiles: Tile::CANDIDATES.to_vec(),
                            coop_properties: coop,
                            subgroup_size: subgroup,
                        };
                        vec![pollster::block_on(gemm::run(run.device, run.queue, &p))]
                    }),
                ));
            }
        }
        self.measurements("gemm", items)
    }

    fn attention(&mut self) -> StageRecord {
        let (batch, heads, seq) = self.sizes.attention;
        let mut items: Vec<Item<'_, Self>> = Vec::new();
        for head_dim in [128, 64] {
            for causal in [false, true] {
                items.push((
                    format!("d{head_dim}{}", if causal { " causal" } else { "" }),
                    Box::new(move |run: &mut Self| {
                        let p = AttentionParams {
                            batch,
                            heads,
                            seq,
                            head_dim,
                            causal,
                            seed: run.next_seed(),
                            settings: run.sizes.measure,
                            key_block: run.sizes.attention_key_block,
                            coop_properties: run.adapter.cooperative_matrix_properties(),
                            subgroup_size: {
                                let info = run.adapter.get_info();
                                (info.subgroup_min_size == info.subgroup_max_size)
                                    .then_some(info.subgroup_max_size)
                            },
                        };
                        vec![pollster::block_on(attention::run(
                            run.device, run.queue, &p,
                        ))]
                    }),
                ));
            }
        }
        self.measurements("attention", items)
    }

    fn bandwidth(&mut self) -> StageRecord {
        // Two buffers: keep both within a third of the budget (the kernel also clamps each to
        // the adapter's max_buffer_size).
        let size = self.sizes.bandwidth_bytes.min(self.memory_cap / 6).max(MIB);
        let items: Vec<Item<'_, Self>> = vec![(
            "read, write, copy".to_owned(),
            Box::new(move |run: &mut Self| {
                let p = BandwidthParams {
                    size_bytes: size,
                    seed: run.next_seed() as u32,
                    settings: run.sizes.measure,
                };
                pollster::block_on(bandwidth::run(run.device, run.queue, &p))
            }),
        )];
        self.measurements("bandwidth", items)
    }

    fn decode(&mut self) -> StageRecord {
        let mut items: Vec<Item<'_, Self>> = Vec::new();
        for format in [WeightFormat::Q4_0, WeightFormat::Q8_0, WeightFormat::F16] {
            // Keep the weights within half the budget.
            let cap_params = (self.memory_cap as f64 / 2.0 / format.bytes_per_weight()) as u64;
            let params = self.sizes.decode_params.min(cap_params);
            items.push((
                format!("{} {:.1}B params", format.label(), params as f64 / 1e9),
                Box::new(move |run: &mut Self| {
                    let info = run.adapter.get_info();
                    let p = DecodeParams {
                        format,
                        model_params: params,
                        seed: run.next_seed() as u32,
                        settings: run.sizes.measure,
                        subgroup_size: (info.subgroup_min_size == info.subgroup_max_size)
                            .then_some(info.subgroup_max_size),
                    };
                    vec![pollster::block_on(decode::run(run.device, run.queue, &p))]
                }),
            ));
        }
        self.measurements("decode", items)
    }

    fn max_buffer(&mut self) -> StageRecord {
        let start = Instant::now();
        self.step("max_buffer: allocate, fill, read back");
        let p = MaxBufferParams {
            cap_bytes: self.memory_cap,
            seed: self.next_seed() as u32,
            simulate_oom_above_bytes: self.simulate_oom,
            time_limit_s: self.sizes.stage_time_limit_s,
        };
        let result = pollster::block_on(max_buffer::run(self.device, self.queue, &p));
        self.done_one();
        let mut record = StageRecord::new("max_buffer", Status::Ok);
        match result {
            Ok(r) => {
                if r.largest_verified_bytes == 0 {
                    record.status = Status::Failed;
                    record.reason =
                        Some("no buffer size could be allocated and verified".to_owned());
                }
                record.max_buffer = Some(r);
            }
            Err(err) => {
                record.status = Status::Failed;
                record.reason = Some(err.to_string());
            }
        }
        record.duration_s = start.elapsed().as_secs_f64();
        record
    }

    fn sweep(&mut self) -> StageRecord {
        let start = Instant::now();
        self.step("sweep: allocating fp16 parameters step by step");
        let p = SweepParams {
            step_params: self.sizes.sweep_step_params,
            budget_bytes: self.budget,
            swap_factor: DEFAULT_SWAP_FACTOR,
            allow_swap: self.allow_swap,
            time_limit_s: self.sizes.stage_time_limit_s,
            seed: self.next_seed() as u32,
            simulate_oom_above_bytes: self.simulate_oom,
        };
        let result = pollster::block_on(sweep::run(self.device, self.queue, &p));
        self.done_one();
        let mut record = StageRecord::new("sweep", Status::Ok);
        match result {
            Ok(r) => {
                record.reason = Some(format!("stopped: {}", r.stop_detail));
                record.sweep = Some(r);
            }
            Err(err) => {
                record.status = Status::Failed;
                record.reason = Some(err.to_string());
            }
        }
        record.duration_s = start.elapsed().as_secs_f64();
        record
    }
}

fn stage_units(stage: &str, sizes: &Sizes) -> u64 {
    match stage {
        "gemm" => (sizes.gemm_n.len() * GemmVariant::ALL.len()) as u64,
        "attention" => 4,
        "decode" => 3,
        _ => 1,
    }
}

/// Run the command.
pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    // First everything the user typed, before touching the system.
    for stage in &args.only {
        if !STAGES.contains(&stage.as_str()) {
            bail!(
                "--only: unknown stage `{stage}`; the stages are {}",
                STAGES.join(", ")
            );
        }
    }
    let backends = match &args.backend {
        Some(name) => parse_backend(name)?,
        None => wgpu::Backends::all(),
    };
    if let Some(text) = &args.budget {
        parse_size(text)?;
    }
    let simulate_oom = match std::env::var(SIMULATE_OOM_ENV) {
        Ok(text) => Some(parse_size(&text).with_context(|| SIMULATE_OOM_ENV.to_string())?),
        Err(_) => None,
    };

    // Discovery.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    if adapters.is_empty() {
        bail!(no_adapter_message(backends));
    }
    let infos: Vec<AdapterInfo> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| headroom_probe::adapter::describe(i, a))
        .collect();
    let chosen = pick_adapter(&adapters, &infos, args.adapter.as_deref())?;
    let adapter = &adapters[chosen];
    let mut host = headroom_probe::discovery::host();
    headroom_probe::discovery::add_metal_working_set(&mut host, adapter);
    let mut report = ProbeReport {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "headroom".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        date_utc: utc_now(),
        complete: false,
        host,
        adapters: infos.clone(),
        selected_adapter: Some(chosen),
        settings: ProbeSettings::default(),
        stages: Vec::new(),
    };
    let info = &infos[chosen];
    let (budget_bytes, budget_source) = budget(&args, info, &report)?;
    let sizes = if info.device_type == "cpu" {
        CPU_ADAPTER
    } else if args.quick {
        QUICK
    } else {
        FULL
    };
    report.settings = ProbeSettings {
        quick: args.quick,
        only: args.only.clone(),
        budget_bytes,
        budget_source: format!("{budget_source}; sizes: {}", sizes.label),
        allow_swap: args.allow_swap,
    };
    eprintln!(
        "headroom probe: {} ({}, {}, driver {} {}); budget {}",
        info.name,
        info.backend,
        info.device_type,
        info.driver,
        info.driver_info,
        budget_bytes.map_or_else(
            || "none".to_owned(),
            |b| format!("{:.2} GiB ({budget_source})", b as f64 / GIB as f64)
        ),
    );
    write_atomic(&args.out, &report)?;

    let (device, queue) = pollster::block_on(headroom_probe::adapter::request_device(adapter))
        .with_context(|| format!("cannot open a device on {}", info.name))?;
    let lost = Arc::new(Mutex::new(None));
    {
        let lost = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
    }
    let uncaptured = Arc::new(Mutex::new(Vec::new()));
    {
        let uncaptured = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            if let Ok(mut list) = uncaptured.lock() {
                list.push(err.to_string());
            }
        }));
    }

    let selected: Vec<&str> = STAGES
        .iter()
        .copied()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s))
        .collect();
    let total_units: u64 = selected.iter().map(|s| stage_units(s, &sizes)).sum();
    let bar = ProgressBar::new(total_units);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} (ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let memory_cap = budget_bytes
        .or(info.device_local_memory_bytes)
        .or(report.host.ram_bytes)
        .unwrap_or(4 * GIB);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut run = Run {
        device: &device,
        queue: &queue,
        adapter,
        sizes,
        seed,
        budget: budget_bytes,
        memory_cap,
        allow_swap: args.allow_swap,
        simulate_oom,
        lost,
        uncaptured,
        bar,
    };
    for stage in &selected {
        let mut record = if let Some(lost) = run.lost() {
            StageRecord::skipped(stage, format!("device lost earlier: {lost}"))
        } else {
            match *stage {
                "gemm" => run.gemm(),
                "attention" => run.attention(),
                "bandwidth" => run.bandwidth(),
                "decode" => run.decode(),
                "max_buffer" => run.max_buffer(),
                _ => run.sweep(),
            }
        };
        let errors: Vec<String> = run
            .uncaptured
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        if !errors.is_empty() {
            let note = format!("uncaptured GPU errors: {}", errors.join("; "));
            record.reason = Some(match record.reason.take() {
                Some(r) => format!("{r}; {note}"),
                None => note,
            });
        }
        report.stages.push(record);
        write_atomic(&args.out, &report)?;
    }
    for stage in STAGES.iter().filter(|s| !selected.contains(s)) {
        report
            .stages
            .push(StageRecord::skipped(stage, "not selected by --only"));
    }
    report.complete = true;
    write_atomic(&args.out, &report)?;
    run.bar.finish_and_clear();
    crate::show_cmd::print_summary(&report, &mut std::io::stdout())?;
    eprintln!("report written to {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("16GiB").ok(), Some(16 * GIB));
        assert_eq!(parse_size("20GB").ok(), Some(20_000_000_000));
        assert_eq!(parse_size("512 MiB").ok(), Some(512 * MIB));
        assert_eq!(parse_size("1.5GiB").ok(), Some(3 * GIB / 2));
        assert_eq!(parse_size("1000").ok(), Some(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn date_is_rfc3339() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.ends_with('Z') && d.as_bytes()[10] == b'T', "{d}");
    }
}
