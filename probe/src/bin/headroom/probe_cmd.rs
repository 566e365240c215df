//! `headroom probe`: parses the arguments, discovers the machine, hands the probe library's plan
//! and run an indicatif progress bar, and writes the JSON report whenever it changes (temporary
//! file + rename, so Ctrl-C, a crash or the OOM killer leaves every finished step in a valid
//! file), then prints a summary.

mod environment;
mod report_file;

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

use self::environment::{give_mesa_a_runtime_dir, no_adapter_message};
use self::report_file::{resolve_out, utc_now, write_atomic};

/// Environment variable (tests): allocations beyond this many bytes fail as a simulated
/// out-of-memory in the largest-buffer search and the allocation stage.
const SIMULATE_OOM_ENV: &str = "HEADROOM_PROBE_SIMULATE_OOM_BYTES";
/// Environment variable (tests): the allocation steps listed, comma-separated with 1 for the
/// first (`3` or `3,4`), are timed as if the host had slowed each by 10 s, to check what the
/// stage makes of a slow step (on Linux, without swap-outs: contention, and it goes on).
const SIMULATE_SLOW_STEPS_ENV: &str = "HEADROOM_PROBE_SIMULATE_SLOW_STEPS";

/// Arguments of `headroom probe`.
#[derive(clap::Args)]
pub struct ProbeArgs {
    /// Smaller sizes and shorter measurements (under a minute on a real GPU).
    #[arg(long)]
    quick: bool,
    /// Run only these stages (comma-separated): gemm, attention, bandwidth, host_bandwidth,
    /// transfer, decode, max_buffer, sweep.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Adapter to measure: its index in the list, or part of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// Graphics backend: metal, vulkan, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
    /// Memory the allocation stage and the largest-buffer search may each hold, e.g. 16GiB,
    /// 20GB, 512MiB or bytes. It bounds those two stages' buffers, not the other stages'
    /// (small, fixed sizes) nor the driver's own overhead, so a run's peak can pass it. A budget
    /// above the machine's memory (RAM for CPU and unified-memory adapters, device memory for a
    /// discrete GPU) is refused unless --force-budget is given.
    #[arg(long)]
    budget: Option<String>,
    /// Accept a --budget above the memory the machine reports (when its figures are wrong).
    #[arg(long, requires = "budget")]
    force_budget: bool,
    /// Let the allocation stage go past the point where the host starts to swap.
    #[arg(long)]
    allow_swap: bool,
    /// Where to write the JSON report: a new file, or an existing regular file, which is
    /// replaced. A symlink is followed (the report replaces the file it names). A folder, device,
    /// FIFO or socket is refused.
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
    let out = resolve_out(&args.out)?;
    let simulate_oom = match std::env::var(SIMULATE_OOM_ENV) {
        Ok(text) => Some(parse_size(&text).with_context(|| SIMULATE_OOM_ENV.to_string())?),
        Err(_) => None,
    };

    let simulate_slow_steps = match std::env::var(SIMULATE_SLOW_STEPS_ENV) {
        Ok(text) => parse_step_list(&text).with_context(|| SIMULATE_SLOW_STEPS_ENV.to_string())?,
        Err(_) => Vec::new(),
    };
    let hooks = TestHooks {
        simulate_oom,
        simulate_slow_steps,
    };

    // Discovery.
    let runtime_dir = give_mesa_a_runtime_dir();
    let result = probe(&args, only, backends, budget_bytes, hooks, &out);
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

/// What the test hooks in the environment asked for.
struct TestHooks {
    /// `HEADROOM_PROBE_SIMULATE_OOM_BYTES`.
    simulate_oom: Option<u64>,
    /// `HEADROOM_PROBE_SIMULATE_SLOW_STEPS`.
    simulate_slow_steps: Vec<u32>,
}

/// Step numbers, comma-separated, each 1 or more (`3` or `3,4`).
fn parse_step_list(text: &str) -> anyhow::Result<Vec<u32>> {
    text.split(',')
        .map(|word| match word.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("`{word}` is not a step number: give steps as 1, 2, … separated by commas"),
        })
        .collect()
}

/// The run itself, from discovery to the summary, with the arguments checked.
fn probe(
    args: &ProbeArgs,
    only: Vec<Stage>,
    backends: wgpu::Backends,
    budget_bytes: Option<u64>,
    hooks: TestHooks,
    out: &Path,
) -> anyhow::Result<()> {
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
    if let Some(bytes) = budget_bytes
        && !args.force_budget
        && let Err(PlanError::BudgetAboveMachine {
            limit_bytes,
            limit_source,
            ..
        }) = headroom_probe::plan::check_budget(bytes, info, &host)
    {
        bail!(
            "--budget {} is more than the {:.1} GiB of {limit_source}: the allocation stage \
             would run into the out-of-memory killer; give at most that, or add \
             --force-budget if the machine's figure is wrong",
            args.budget.as_deref().unwrap_or_default(),
            limit_bytes as f64 / GIB as f64
        );
    }
    let request = Request {
        target: Target::Native { quick: args.quick },
        only: only.clone(),
        budget_bytes,
        allow_swap: args.allow_swap,
        simulate_oom_above_bytes: hooks.simulate_oom,
        simulate_slow_steps: hooks.simulate_slow_steps,
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
    say!(
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
    write_atomic(out, &report)?;

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
        out: out.to_path_buf(),
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
            out.display()
        );
    }
    crate::show_cmd::print_summary(&report, &mut std::io::stdout())?;
    say!("report written to {}", out.display());
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
    fn size_grammar_never_panics_on_random_text() {
        // A seeded fuzz of the --budget grammar (xorshift over a small alphabet).
        const ALPHABET: &[u8] = b"0123456789.eE+-kKmMgGtTiIbB \t";
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..5000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(char::from(
                    ALPHABET[(state % ALPHABET.len() as u64) as usize],
                ));
            }
            if let Ok(bytes) = parse_size(&text) {
                assert!(bytes >= 1, "{text:?}");
            }
        }
        assert!(parse_size("1e400").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
