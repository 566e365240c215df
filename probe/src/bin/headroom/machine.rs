//! Which device a command answers for: `--device` (the catalog), `--probe` (a report), both, or
//! neither — then this machine: `./headroom-probe.json` when present, else a quick discovery
//! (adapters and RAM, no kernels) matched to the catalog by `headroom_core::machine`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use headroom_core::{
    devices::{self, DeviceSpec},
    limits::MAX_REPORT_JSON_BYTES,
    machine::{ThisMachine, this_machine},
    report::{ProbeReport, plausible},
};

use crate::fit::model_input;

/// The report `headroom probe` writes by default, looked for in the working directory.
pub const DEFAULT_REPORT: &str = "headroom-probe.json";

/// The device to answer for, and how it was chosen when neither flag named it.
pub struct ChosenDevice {
    /// The device.
    pub device: DeviceSpec,
    /// How this machine was found, in words; `None` when a flag named the device.
    pub this_machine: Option<String>,
    /// The probe report the figures came from, if any.
    pub report: Option<PathBuf>,
    /// This machine's RAM (discovered, or from the probe report): the host memory offload may
    /// use when the question gives none.
    pub host_ram_bytes: Option<u64>,
}

/// The device from `--device NAME`, `--probe REPORT`, both, or (neither) this machine; `None`
/// when neither is given and this machine cannot be described (no GPU adapter, RAM unknown).
/// `flag` is the flag's name for messages (`--device`, `--fits`).
pub fn choose(
    device: Option<&str>,
    probe: Option<&Path>,
    flag: &str,
) -> anyhow::Result<Option<ChosenDevice>> {
    if device.is_some() || probe.is_some() {
        return from_flags(device, probe, flag).map(Some);
    }
    let default = Path::new(DEFAULT_REPORT);
    if default.is_file() {
        let mut chosen = from_flags(None, Some(default), flag)?;
        chosen.this_machine = Some(format!(
            "this machine, measured: ./{DEFAULT_REPORT} ({}); pass {flag} NAME to ask about \
             another device",
            chosen.device.name
        ));
        return Ok(Some(chosen));
    }
    let (host, adapters) = headroom_probe::discovery::quick();
    Ok(this_machine(&host, &adapters).map(
        |ThisMachine {
             device,
             description,
             ..
         }| ChosenDevice {
            device,
            this_machine: Some(format!(
                "{description}; no ./{DEFAULT_REPORT} (`headroom probe` measures this machine), \
                 pass {flag} NAME to ask about another device"
            )),
            report: None,
            host_ram_bytes: host.ram_bytes,
        },
    ))
}

/// The device from the catalog, a probe report, or both.
fn from_flags(
    device: Option<&str>,
    probe: Option<&Path>,
    flag: &str,
) -> anyhow::Result<ChosenDevice> {
    let catalog = match device {
        Some(name) => Some(devices::find(name).with_context(|| flag.to_owned())?),
        None => None,
    };
    let Some(path) = probe else {
        return Ok(ChosenDevice {
            device: catalog.context("no device given")?,
            this_machine: None,
            report: None,
            host_ram_bytes: None,
        });
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
    let device = match catalog {
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
            let (device, catalog_entry) = DeviceSpec::from_report(&measured);
            if device.memory_bytes == 0 && measured.usable_bytes.is_none() {
                bail!(
                    "probe report {} does not say how much memory {} has; add {flag} NAME \
                     to take the memory size from the catalog (`headroom devices`)",
                    path.display(),
                    measured.name
                );
            }
            if let Some(entry) = catalog_entry {
                say!(
                    "note: {} measured `{}`, the catalog's {entry}: figures the report does not \
                     have come from its datasheet (give {flag} NAME to choose another entry)",
                    path.display(),
                    measured.name
                );
            }
            device
        }
    };
    Ok(ChosenDevice {
        device,
        this_machine: None,
        report: Some(path.to_path_buf()),
        host_ram_bytes: report.host.ram_bytes,
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
