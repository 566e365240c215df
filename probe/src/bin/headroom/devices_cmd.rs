//! `headroom devices [FILTER] [--json]`: the bundled device catalog.

use anyhow::bail;
use headroom_core::{
    devices::{self, DeviceSpec, MemoryKind},
    quant::WeightFormat,
    runtime::Runtime,
    usable_memory::usable_memory,
};
use serde::Serialize;

use crate::fit::{
    model_input::normalize,
    table::{Align, Table, gib},
};

/// Arguments of `headroom devices`.
#[derive(clap::Args)]
pub struct DevicesArgs {
    /// Show only devices whose id, name or vendor contain every word of FILTER (case and
    /// punctuation ignored), e.g. `m3 max`, `rtx`, `h100`.
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,

    /// Print a JSON array of device objects (bytes, bytes per second and FLOP/s as numbers)
    /// instead of a table.
    #[arg(long)]
    json: bool,
}

/// 10^9, for GB/s and GFLOP/s columns (decimal, as datasheets quote them).
const GIGA: f64 = 1e9;
/// 10^12, for TFLOPS columns.
const TERA: f64 = 1e12;

/// One device in `--json`: the catalog entry plus what its usual runtime may use.
#[derive(Serialize)]
struct DeviceJson<'a> {
    #[serde(flatten)]
    device: &'a DeviceSpec,
    /// Usable memory for 16-bit weights on the device's usual runtime (see `usable_runtime`).
    usable_bytes: u64,
    /// The runtime `usable_bytes` is for.
    usable_runtime: String,
}

/// Memory the device's usual runtime may use for a 16-bit model, and that runtime.
fn usable(device: &DeviceSpec) -> (u64, Runtime) {
    let runtime = Runtime::default_for(device, &WeightFormat::Bf16);
    (usable_memory(device, runtime, None).usable_bytes, runtime)
}

/// Whether every word of `filter` occurs in the device's id, name or vendor.
pub fn matches(device: &DeviceSpec, filter: &str) -> bool {
    let haystack = normalize(&format!("{} {} {}", device.id, device.name, device.vendor));
    filter
        .split_whitespace()
        .map(normalize)
        .all(|word| haystack.contains(&word))
}

/// Run the command.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let filter = args.filter.join(" ");
    let filter = filter.as_str();
    let selected: Vec<&DeviceSpec> = devices::catalog()
        .iter()
        .filter(|d| matches(d, filter))
        .collect();
    if selected.is_empty() {
        bail!(
            "no device in the catalog matches `{filter}`; run `headroom devices` for the full list \
             (or measure this machine with `headroom probe`)"
        );
    }
    let mut out = String::new();
    if args.json {
        let items: Vec<DeviceJson<'_>> = selected
            .iter()
            .map(|device| {
                let (usable_bytes, runtime) = usable(device);
                DeviceJson {
                    device,
                    usable_bytes,
                    usable_runtime: runtime.to_string(),
                }
            })
            .collect();
        out.push_str(&serde_json::to_string_pretty(&items)?);
        out.push('\n');
    } else {
        let mut table = Table::new(&[
            ("id", Align::Left),
            ("name", Align::Left),
            ("memory", Align::Right),
            ("usable", Align::Right),
            ("kind", Align::Left),
            ("bandwidth", Align::Right),
            ("FP32", Align::Right),
            ("FP16", Align::Right),
        ]);
        for d in &selected {
            table.row(vec![
                d.id.clone(),
                d.name.clone(),
                gib(d.memory_bytes),
                gib(usable(d).0),
                match d.memory_kind {
                    MemoryKind::Unified => "unified",
                    MemoryKind::Discrete => "discrete",
                }
                .to_owned(),
                format!("{:.0} GB/s", d.bandwidth_bytes_per_s / GIGA),
                format!("{:.1} TFLOPS", d.fp32_flops / TERA),
                format!("{:.1} TFLOPS", d.fp16_flops / TERA),
            ]);
        }
        out.push_str(&table.render());
        out.push_str(&format!(
            "\n{} devices. Memory in GiB (2^30 bytes); usable: what the usual runtime may use \
             (Apple: Metal's working set); bandwidth and FLOPS are \
             datasheet peaks (`headroom probe` measures them).\n\
             Use an id with `headroom fit MODEL --device ID`.\n",
            table.len()
        ));
    }
    crate::fit::write_stdout(&out)
}
