//! `headroom probe`: parses the arguments, discovers the machine, hands the probe library's plan
//! and run an indicatif progress bar, and writes the JSON report whenever it changes (temporary
//! file + rename, so Ctrl-C, a crash or the OOM killer leaves every finished step in a valid
//! file), then prints a summary.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use headroom_core::report::{
    AdapterInfo, Measurement, ProbeReport, ProbeSettings, SCHEMA_VERSION, Stage, StageRecord,
    ToolInfo,
};
use headroom_probe::kernels::{GIB, MIB};
use headroom_probe::plan::{Capabilities, Plan, PlanError, Request, Target, pick_adapter};
use headroom_probe::run::{Outcome, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Environment variable (tests): allocations beyond this many bytes fail as a simulated
/// out-of-memory in the largest-buffer search and the allocation stage.
const SIMULATE_OOM_ENV: &str = "HEADROOM_PROBE_SIMULATE_OOM_BYTES";

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
    /// Memory the allocation stage and the largest buffer may use, e.g. 16GiB, 20GB, 512MiB or bytes.
    #[arg(long)]
    budget: Option<String>,
    /// Let the allocation stage go past the point where the host starts to swap.
    #[arg(long)]
    allow_swap: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "headroom-probe.json")]
    out: PathBuf,
}

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

fn no_adapter_message(backends: wgpu::Backends) -> String {
    format!(
        "no GPU adapter found (backends searched: {backends:?}).\n\
         Install your GPU's driver (NVIDIA, AMD or Intel; Apple GPUs need macOS 11 or newer).\n\
         On Linux without a GPU, Mesa's lavapipe gives a CPU Vulkan driver for a correctness check:\n\
         \x20   sudo apt-get install mesa-vulkan-drivers libvulkan1\n\
         Then run `vulkaninfo --summary` (package vulkan-tools) to see the adapters."
    )
}

/// The progress bar (one tick per step) and the report file, saved at every change.
struct Bar {
    bar: ProgressBar,
    out: PathBuf,
    /// The first failed save: the run stops at the next step and the command reports it.
    save_error: Option<anyhow::Error>,
}

impl Progress for Bar {
    fn step_started(&mut self, step: &headroom_probe::plan::Step) {
        self.bar
            .set_message(format!("{}: {}", step.stage(), step.label()));
    }

    fn step_finished(
        &mut self,
        _step: &headroom_probe::plan::Step,
        _measurements: &[Measurement],
        _record: &StageRecord,
    ) {
        self.bar.inc(1);
    }

    fn report_changed(&mut self, report: &ProbeReport) {
        if self.save_error.is_none()
            && let Err(err) = write_atomic(&self.out, report)
        {
            self.save_error = Some(err);
        }
    }

    async fn go_on(&mut self) -> bool {
        self.save_error.is_none()
    }
}

fn adapter_error(err: PlanError) -> anyhow::Error {
    match err {
        PlanError::AdapterIndex { index, count } => anyhow::anyhow!(
            "--adapter {index}: there are {count} adapters (0 to {})",
            count.saturating_sub(1)
        ),
        PlanError::AdapterName { wanted, found } => {
            anyhow::anyhow!("--adapter `{wanted}` matches no adapter; found: {found}")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// Run the command.
pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    // First everything the user typed, before touching the system.
    let only = args
        .only
        .iter()
        .map(|name| {
            name.parse::<Stage>().map_err(|_| {
                anyhow::anyhow!(
                    "--only: unknown stage `{name}`; the stages are {}",
                    Stage::ALL.map(Stage::name).join(", ")
                )
            })
        })
        .collect::<anyhow::Result<Vec<Stage>>>()?;
    let backends = match &args.backend {
        Some(name) => parse_backend(name)?,
        None => wgpu::Backends::all(),
    };
    let budget_bytes = args.budget.as_deref().map(parse_size).transpose()?;
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
    let chosen = pick_adapter(&infos, args.adapter.as_deref()).map_err(adapter_error)?;
    let (adapter, info) = (&adapters[chosen], &infos[chosen]);
    let mut host = headroom_probe::discovery::host();
    headroom_probe::discovery::add_metal_working_set(&mut host, adapter);
    let request = Request {
        target: Target::Native { quick: args.quick },
        only: only.clone(),
        budget_bytes,
        allow_swap: args.allow_swap,
        simulate_oom_above_bytes: simulate_oom,
    };
    let plan = Plan::new(&request, info, Capabilities::of(adapter), &host);
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
        settings: ProbeSettings {
            quick: args.quick,
            only,
            budget_bytes: plan.budget.bytes,
            budget_source: plan.budget_source(),
            allow_swap: args.allow_swap,
        },
        stages: Vec::new(),
    };
    eprintln!(
        "headroom probe: {} ({}, {}, driver {} {}); budget {}",
        info.name,
        info.backend,
        info.device_type,
        info.driver,
        info.driver_info,
        plan.budget.bytes.map_or_else(
            || "none".to_owned(),
            |b| format!("{:.2} GiB ({})", b as f64 / GIB as f64, plan.budget.source)
        ),
    );
    write_atomic(&args.out, &report)?;

    let (device, queue) = pollster::block_on(headroom_probe::adapter::request_device(adapter))
        .with_context(|| format!("cannot open a device on {}", info.name))?;
    let bar = ProgressBar::new(plan.all_steps().len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} (ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut progress = Bar {
        bar,
        out: args.out.clone(),
        save_error: None,
    };
    let outcome = pollster::block_on(headroom_probe::run::run(
        &device,
        &queue,
        &plan,
        seed,
        &mut report,
        &mut progress,
    ));
    progress.bar.finish_and_clear();
    if let Some(err) = progress.save_error {
        return Err(err);
    }
    if outcome == Outcome::Stopped {
        bail!(
            "the run stopped early; {} keeps the finished steps",
            args.out.display()
        );
    }
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
