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

/// What `--out` names, resolved once before the run: the path itself when nothing is there or a
/// regular file is, the file a symlink names (so the report replaces that file, not the link),
/// and an error for anything else — renaming over a device node, a FIFO or a folder would
/// replace it (as root, `--out /dev/null` would replace the system's `/dev/null`).
fn resolve_out(path: &Path) -> anyhow::Result<PathBuf> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "--out {}: cannot look at this path",
                path.display()
            )));
        }
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).with_context(|| {
            format!(
                "--out {} is a symlink to a file that does not exist; give a file path",
                path.display()
            )
        })?;
        return match std::fs::metadata(&target) {
            Ok(m) if m.is_file() => Ok(target),
            _ => bail!(
                "--out {} is a symlink to {}, which is not a regular file; give a file path",
                path.display(),
                target.display()
            ),
        };
    }
    if !meta.is_file() {
        bail!(
            "--out {} is {}, not a regular file: the report would replace it; give a file path",
            path.display(),
            crate::user_file::kind_of(&meta)
        );
    }
    Ok(path.to_path_buf())
}

/// Writes the report to a new temporary file beside `path`, then renames it over `path`: readers
/// and an interrupted run only ever see a whole, valid file. `path` comes from [`resolve_out`];
/// it is checked again here because the run takes minutes and the path may change meanwhile.
fn write_atomic(path: &Path, report: &ProbeReport) -> anyhow::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_file()
    {
        bail!(
            "{} is no longer a regular file; the report was not written",
            path.display()
        );
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A stale temporary file (or a symlink planted in its place) is removed, and the new one is
    // created exclusively, so the write never goes through a link to somewhere else.
    match std::fs::remove_file(&tmp) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::new(err).context(format!(
                "cannot replace the stale temporary file {}",
                tmp.display()
            )));
        }
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| file.write_all((report.to_json() + "\n").as_bytes()))
        .with_context(|| format!("cannot write the report to {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// What Wayland's client library accepts as `XDG_RUNTIME_DIR`: an absolute path to a folder.
fn usable_runtime_dir(value: Option<&std::ffi::OsStr>) -> bool {
    value
        .map(Path::new)
        .is_some_and(|dir| dir.is_absolute() && dir.is_dir())
}

/// Wayland's client library (loaded by Mesa's Vulkan drivers) prints `error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment` on every run without a usable one, as under `sudo`,
/// in containers and in CI. A private, empty folder satisfies it (nothing listens there, so no
/// display is found, which a compute-only run does not need). Returns the folder to remove at
/// the end, if one was made.
fn give_mesa_a_runtime_dir() -> Option<PathBuf> {
    const VAR: &str = "XDG_RUNTIME_DIR";
    if usable_runtime_dir(std::env::var_os(VAR).as_deref()) || !cfg!(target_os = "linux") {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("headroom-runtime-{}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&dir).ok()?;
    // SAFETY: called from `run` before the wgpu instance, the progress bar or any other thread
    // exists: nothing reads the environment concurrently.
    unsafe { std::env::set_var(VAR, &dir) };
    Some(dir)
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
    let out = resolve_out(&args.out)?;
    let simulate_oom = match std::env::var(SIMULATE_OOM_ENV) {
        Ok(text) => Some(parse_size(&text).with_context(|| SIMULATE_OOM_ENV.to_string())?),
        Err(_) => None,
    };

    // Discovery.
    let runtime_dir = give_mesa_a_runtime_dir();
    let result = probe(&args, only, backends, budget_bytes, simulate_oom, &out);
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

/// The run itself, from discovery to the summary, with the arguments checked.
fn probe(
    args: &ProbeArgs,
    only: Vec<Stage>,
    backends: wgpu::Backends,
    budget_bytes: Option<u64>,
    simulate_oom: Option<u64>,
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
    fn xdg_runtime_dir_is_replaced_when_unset_relative_or_missing() {
        use std::ffi::OsStr;
        assert!(!usable_runtime_dir(None));
        assert!(!usable_runtime_dir(Some(OsStr::new("run/user/1000"))));
        assert!(!usable_runtime_dir(Some(OsStr::new(
            "/nonexistent/headroom/runtime"
        ))));
        assert!(usable_runtime_dir(Some(std::env::temp_dir().as_os_str())));
    }

    #[test]
    fn out_refuses_what_is_not_a_regular_file_and_follows_symlinks() {
        let dir = std::env::temp_dir().join(format!("headroom-out-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("folder")).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("report.json");
        std::fs::write(&file, "{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(resolve_out(&dir.join("folder")).is_err());
        assert!(resolve_out(Path::new("/dev/null")).is_err());
        assert_eq!(resolve_out(&file).ok(), Some(file.clone()));
        let new = dir.join("new.json");
        assert_eq!(resolve_out(&new).ok(), Some(new));
        #[cfg(unix)]
        {
            let link = dir.join("link.json");
            std::os::unix::fs::symlink(&file, &link).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resolve_out(&link).ok(), std::fs::canonicalize(&file).ok());
            let to_dev = dir.join("to-dev");
            std::os::unix::fs::symlink("/dev/null", &to_dev).unwrap_or_else(|e| panic!("{e}"));
            assert!(resolve_out(&to_dev).is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
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
