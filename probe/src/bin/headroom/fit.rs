//! `headroom fit`: will MODEL fit on a device, and how fast will it run?
//!
//! Two layers, as in ripgrep: [`FitArgs`] is checked first ([`args`]: numbers in range, names
//! that parse, a device given) without touching the file system or the network; only then is the
//! model read, fetched or looked up, and the estimate computed by `headroom-core`. This file is
//! the glue: check the arguments, resolve the device and the model, build the [`Question`], ask
//! [`answer`], and hand the answer to [`render`] (tables) or [`json`] (`--json`).

mod args;
mod json;
pub mod model_input;
mod render;
pub mod table;

use anyhow::{Context, bail};
use headroom_core::{
    CoreError,
    answer::{CheckpointSize, ContextAsk, Question, answer},
    devices::{self, DeviceSpec},
    error::Setting,
    kv_cache::KvDtype,
    limits::MAX_REPORT_JSON_BYTES,
    model::ModelSpec,
    report::{ProbeReport, plausible},
    units::{GIB, MIB},
};

pub use self::args::FitArgs;
use self::{
    args::{Checked, ContextArg, QuantChoice, check, flag},
    json::FitJson,
    model_input::{ModelSource, ResolvedModel},
    table::thousands,
};

/// The device from the catalog, a probe report, or both.
fn resolve_device(args: &FitArgs) -> anyhow::Result<DeviceSpec> {
    let catalog = match args.device.as_deref() {
        Some(name) => Some(devices::find(name).context("--device")?),
        None => None,
    };
    let Some(path) = args.probe.as_deref() else {
        // `check` made sure one of the two was given.
        return catalog.context("no device given: pass --device NAME or --probe REPORT.json");
    };
    let text = crate::user_file::read_text(path, "probe report", MAX_REPORT_JSON_BYTES)
        .context("--probe (write a report with `headroom probe`)")?;
    let report = ProbeReport::from_json(&text)
        .with_context(|| format!("probe report {}", path.display()))?;
    let ignored: Vec<String> = report
        .unverified_measurements()
        .map(|m| m.name.to_string())
        .collect();
    if !ignored.is_empty() {
        say!(
            "note: {} marks {} ok although its check against the CPU reference failed; not used",
            path.display(),
            ignored.join(", ")
        );
    }
    let measured = report.measured_device();
    Ok(match catalog {
        Some(device) => {
            if same_device(&device, &measured.name) {
                plausible::against_catalog(&measured, &device)
                    .with_context(|| format!("probe report {}", path.display()))?;
            } else {
                say!(
                    "note: {} measured `{}`; its figures replace the catalog's for `{}`",
                    path.display(),
                    measured.name,
                    device.name
                );
            }
            device.with_measurements(&measured)
        }
        None => {
            if measured.memory_bytes.is_none() && measured.usable_bytes.is_none() {
                bail!(
                    "probe report {} does not say how much memory {} has; add --device NAME \
                     to take the memory size from the catalog (`headroom devices`)",
                    path.display(),
                    measured.name
                );
            }
            DeviceSpec::from_measured(&measured)
        }
    })
}

/// Whether a probe's adapter name plausibly names the catalog `device`: the first part of the
/// catalog id that holds a digit (`h100`, `4090`, `m2`) appears in the adapter name, ignoring case
/// and punctuation.
fn same_device(device: &DeviceSpec, adapter_name: &str) -> bool {
    let adapter = model_input::normalize(adapter_name);
    device
        .id
        .split('-')
        .find(|part| part.chars().any(|c| c.is_ascii_digit()))
        .is_none_or(|part| adapter.contains(&model_input::normalize(part)))
}

/// Run the command.
pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let checked = check(&args)?;
    let device = resolve_device(&args)?;
    let ResolvedModel {
        spec,
        source,
        checkpoint,
    } = model_input::resolve(&args.model)?;
    if let Some(weights) = &checkpoint {
        say!("{}", model_input::describe_checkpoint(weights));
    }
    let question = Question {
        model: spec.clone(),
        format: match &checked.quant {
            QuantChoice::One(format) => Some(format.clone()),
            QuantChoice::Default | QuantChoice::All => None,
        },
        context: match args.context {
            None => ContextAsk::Default,
            Some(ContextArg::Max) => ContextAsk::Max,
            Some(ContextArg::Tokens(tokens)) => ContextAsk::Tokens(tokens),
        },
        batch: args.batch,
        mode: checked.mode.clone(),
        lora_layers: args.lora_layers.clone(),
        runtime: checked.runtime,
        kv_dtype: args.kv_dtype.map(KvDtype::from),
        device: device.clone(),
        device_count: args.device_count,
        wired_limit_bytes: args.wired_limit_mb.map(|mb| mb * MIB),
        host_memory_bytes: args.host_memory_gib.map(|g| g * GIB),
        text_only: args.text_only,
        with_mtp: args.mtp,
        checkpoint: checkpoint.as_ref().map(CheckpointSize::from),
        macos: checked.macos,
        users: checked.users,
    };
    let answer = answer(&question).map_err(|err| {
        let about = match (&err, &question.format) {
            (
                CoreError::Setting {
                    setting: Setting::LoraLayers,
                    ..
                },
                _,
            ) => {
                format!("{} ({} layers)", spec.name, spec.num_layers)
            }
            (_, Some(format)) => format!("{} as {format}", spec.name),
            (_, None) => spec.name.clone(),
        };
        anyhow::anyhow!(
            "{about}: {}",
            err.worded(|s| flag(s).to_owned(), |s, v| format!("{} {v}", flag(s)))
        )
    })?;
    if answer.context_beyond_model_max {
        // Not an error: people run models past their trained length with rope scaling, but the
        // answer must say so.
        say!(
            "note: --context {} is beyond {}'s max_position_embeddings ({}); quality past it is \
             not guaranteed",
            thousands(answer.estimate.context),
            spec.name,
            thousands(spec.max_context)
        );
    }
    let ctx = OutputContext {
        args: &args,
        checked: &checked,
        device: &device,
        spec: &spec,
        source: &source,
    };
    let mut out = String::new();
    if matches!(checked.quant, QuantChoice::All) {
        if args.json {
            let all: Vec<FitJson<'_>> = answer
                .formats
                .iter()
                .filter_map(|row| row.estimate().map(|e| ctx.json(e, None)))
                .collect();
            out.push_str(&serde_json::to_string_pretty(&all)?);
            out.push('\n');
        } else {
            ctx.comparison(&mut out, &answer);
        }
    } else if args.json {
        let json = ctx.json(&answer.estimate, Some(&answer));
        out.push_str(&serde_json::to_string_pretty(&json)?);
        out.push('\n');
    } else {
        ctx.human(&mut out, &answer);
    }
    write_stdout(&out)
}

/// Write everything at once, control characters escaped; a closed pipe surfaces as an `io::Error` that `main` treats as
/// success.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(crate::printable::printable(text).as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Everything the output needs besides one result.
struct OutputContext<'a> {
    args: &'a FitArgs,
    checked: &'a Checked,
    device: &'a DeviceSpec,
    spec: &'a ModelSpec,
    source: &'a ModelSource,
}
