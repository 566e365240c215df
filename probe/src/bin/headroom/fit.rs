//! `headroom fit`: will MODEL fit on a device, and how fast will it run?
//!
//! Two layers, as in ripgrep: [`FitArgs`] is checked first ([`args`]: numbers in range, names
//! that parse, a device given) without touching the file system or the network; only then is the
//! model read, fetched or looked up, and the estimate computed by `headroom-core`. This file is
//! the glue: check the arguments, resolve the device and the model, build the [`Question`], ask
//! [`answer`], and hand the answer to [`render`] (tables) or [`json`] (`--json`).

pub mod args;
mod json;
pub mod model_input;
mod needs;
mod render;
pub mod table;

use anyhow::Context;
use headroom_core::{
    CoreError,
    answer::{CheckpointSize, ContextAsk, Question, answer},
    devices::{self, DeviceSpec},
    error::Setting,
    extra_models::{DraftAsk, ExtraAsk, launch_flags},
    kv_cache::KvDtype,
    launch::{ModelRef, launch_command},
    llama_cpp::LlamaCppSettings,
    model::ModelSpec,
    offload::OffloadSettings,
    ranking::devices_that_fit,
    units::{GIB, MIB},
};

pub use self::args::FitArgs;
use self::{
    args::{Checked, ContextArg, QuantChoice, check, flag},
    json::FitJson,
    model_input::{ModelSource, ResolvedModel},
    table::thousands,
};

/// Run the command.
pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let checked = check(&args)?;
    let chosen = if args.devices_that_fit {
        None
    } else {
        crate::machine::choose(args.device.as_deref(), args.probe.as_deref(), "--device")?
    };
    let ResolvedModel {
        spec,
        source,
        checkpoint,
    } = model_input::resolve(&args.model)?;
    if let Some(weights) = &checkpoint {
        say!("{}", model_input::describe_checkpoint(weights));
    }
    let draft = match args.draft.as_deref() {
        None => None,
        Some(text) => {
            let d = model_input::resolve(text).with_context(|| format!("--draft `{text}`"))?;
            // A .gguf draft is in its own format unless --draft-quant says otherwise.
            let own_format = d
                .checkpoint
                .as_ref()
                .and_then(|c| c.format_name.as_deref())
                .and_then(|f| f.parse().ok());
            let path = match &d.source {
                ModelSource::Gguf(path) | ModelSource::File(path) => {
                    Some(path.display().to_string())
                }
                ModelSource::Catalog(_) | ModelSource::Hub(_) => None,
            };
            Some(DraftAsk {
                model: d.spec,
                format: checked.draft_format.clone().or(own_format),
                tokens: args.draft_tokens,
                acceptance: checked.draft_acceptance,
                path,
            })
        }
    };
    let extras = ExtraAsk {
        mmproj: args.mmproj,
        draft,
    };
    let Some(chosen) = chosen else {
        if !args.devices_that_fit {
            eprintln!(
                "note: no GPU adapter found and this machine's RAM is unknown: showing the \
                 catalog devices that hold {} (pass --device NAME for one)",
                spec.name
            );
        }
        let device = first_catalog_device()?;
        let question = question_for(
            &args,
            &checked,
            &spec,
            device,
            checkpoint.as_ref(),
            None,
            &extras,
        );
        let needs = devices_that_fit(&question, devices::catalog()).map_err(|err| {
            anyhow::anyhow!(
                "{}: {}",
                spec.name,
                err.worded(|s| flag(s).to_owned(), |s, v| format!("{} {v}", flag(s)))
            )
        })?;
        let out = if args.json {
            let mut text = serde_json::to_string_pretty(&needs)?;
            text.push('\n');
            text
        } else {
            needs::render(&needs)
        };
        return write_stdout(&out);
    };
    // The table says it in its header; JSON readers see it on stderr too.
    if let (Some(how), true) = (&chosen.this_machine, args.json) {
        eprintln!("note: {how}");
    }
    let device = chosen.device.clone();
    let question = question_for(
        &args,
        &checked,
        &spec,
        device.clone(),
        checkpoint.as_ref(),
        chosen.host_ram_bytes,
        &extras,
    );
    let mut answer = answer(&question).map_err(|err| {
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
    // A local checkpoint is launched from its own path, not from a Hub id.
    let local = match &source {
        ModelSource::Gguf(path) => Some((path.display().to_string(), true)),
        ModelSource::File(path) => {
            let folder = if path.is_dir() {
                Some(path.as_path())
            } else {
                path.parent()
            };
            folder
                .filter(|f| !f.as_os_str().is_empty())
                .map(|f| (f.display().to_string(), false))
        }
        ModelSource::Catalog(_) | ModelSource::Hub(_) => None,
    };
    if let (Some(launch), Some((path, is_gguf_file))) = (answer.launch.as_mut(), local) {
        let main = ModelRef { path, is_gguf_file };
        *launch = headroom_core::launch::with_offload(
            launch_command(&answer.request, &main),
            answer.offload.as_ref(),
        );
        let flags = launch_flags(
            answer.request.runtime,
            &main.path,
            &answer.extra_models,
            answer.speculation.as_ref(),
            &extras,
            answer.with_mtp,
            &mut launch.notes,
        );
        launch.command.push_str(&flags);
    }
    let ctx = OutputContext {
        args: &args,
        checked: &checked,
        device: &device,
        spec: &spec,
        source: &source,
        this_machine: chosen.this_machine.as_deref(),
        measured: chosen.report.is_some(),
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

/// The question the arguments ask about `spec` on `device`.
fn question_for(
    args: &FitArgs,
    checked: &Checked,
    spec: &ModelSpec,
    device: DeviceSpec,
    checkpoint: Option<&headroom_core::files::CheckpointWeights>,
    host_ram_bytes: Option<u64>,
    extras: &ExtraAsk,
) -> Question {
    Question {
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
        device,
        device_count: args.device_count,
        wired_limit_bytes: args.wired_limit_mb.map(|mb| mb * MIB),
        host_memory_bytes: args.host_memory_gib.map(|g| g * GIB).or(host_ram_bytes),
        text_only: args.text_only,
        with_mtp: args.mtp,
        checkpoint: checkpoint.map(CheckpointSize::from),
        macos: checked.macos,
        users: checked.users,
        llama_cpp: {
            let d = LlamaCppSettings::default();
            LlamaCppSettings {
                flash_attn: args.flash_attn.map_or(d.flash_attn, |v| v.is_on()),
                n_ubatch: args.ubatch.unwrap_or(d.n_ubatch),
                kv_unified: args.kv_unified.map_or(d.kv_unified, |v| v.is_on()),
            }
        },
        offload: OffloadSettings {
            gpu_layers: args.gpu_layers,
            n_cpu_moe: args.n_cpu_moe,
        },
        extras: extras.clone(),
    }
}

/// A stand-in device for questions whose answer tries every catalog device.
fn first_catalog_device() -> anyhow::Result<DeviceSpec> {
    devices::catalog()
        .first()
        .cloned()
        .context("the device catalog is empty (a build defect)")
}

/// Write everything at once, control characters escaped; a closed pipe surfaces as an
/// `io::Error` that `main` treats as success.
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
    /// How this machine was found, when no flag named the device.
    this_machine: Option<&'a str>,
    /// The device's figures came from a probe report.
    measured: bool,
}
