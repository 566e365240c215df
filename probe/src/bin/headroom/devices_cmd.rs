//! `headroom devices [FILTER] [--json]`: the bundled device catalog; `--limits`: for every
//! device, the largest catalog model that fits at 4-bit and at 8-bit with a 4k context
//! (`headroom_core::ranking::practical_limits`).

use anyhow::bail;
use headroom_core::{
    devices::{self, DeviceSpec, MemoryKind},
    quant::WeightFormat,
    ranking::{LimitModel, practical_limits},
    runtime::Runtime,
    usable_memory::usable_memory,
};
use serde::Serialize;

use crate::fit::{
    model_input::normalize,
    table::{Align, Table, gib, params_short, tokens_per_s},
};

/// Arguments of `headroom devices`.
#[derive(clap::Args)]
pub struct DevicesArgs {
    /// Show only devices whose id, name or vendor contain every word of FILTER (case and
    /// punctuation ignored), e.g. `m3 max`, `rtx`, `h100`.
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,

    /// The practical-limit table: for every device, the largest catalog model that fits at
    /// 4-bit (Q4_K_M) and at 8-bit (Q8_0) with 4,096 tokens of context in llama.cpp.
    #[arg(long)]
    limits: bool,

    /// Print a JSON array of device objects (bytes, bytes per second and FLOP/s as numbers)
    /// instead of a table; with --limits an array of {device_id, device, memory_bytes,
    /// usable_bytes, largest_4bit, largest_8bit}, each largest being {id, params_total,
    /// total_bytes, decode_tokens_per_s} or null.
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
    if args.limits {
        return limits(&selected, args.json);
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

/// `headroom devices --limits`.
fn limits(selected: &[&DeviceSpec], json: bool) -> anyhow::Result<()> {
    let devices: Vec<DeviceSpec> = selected.iter().map(|d| (*d).clone()).collect();
    let rows = practical_limits(&devices)?;
    let mut out = String::new();
    if json {
        out.push_str(&serde_json::to_string_pretty(&rows)?);
        out.push('\n');
        return crate::fit::write_stdout(&out);
    }
    let cell = |m: &Option<LimitModel>| match m {
        Some(m) => format!("{} ({})", m.id, params_short(m.params_total)),
        None => "none".to_owned(),
    };
    let speed = |m: &Option<LimitModel>| {
        m.as_ref()
            .map_or_else(String::new, |m| tokens_per_s(m.decode_tokens_per_s))
    };
    let mut table = Table::new(&[
        ("id", Align::Left),
        ("memory", Align::Right),
        ("usable", Align::Right),
        ("largest at 4-bit (Q4_K_M)", Align::Left),
        ("tok/s", Align::Right),
        ("largest at 8-bit (Q8_0)", Align::Left),
        ("tok/s", Align::Right),
    ]);
    for r in &rows {
        table.row(vec![
            r.device_id.clone(),
            gib(r.memory_bytes),
            gib(r.usable_bytes),
            cell(&r.largest_4bit),
            speed(&r.largest_4bit),
            cell(&r.largest_8bit),
            speed(&r.largest_8bit),
        ]);
    }
    out.push_str(&table.render());
    out.push_str(&format!(
        "\n{} devices. The largest catalog model (by parameters) that fits each, with 4,096 \
         tokens of context, batch 1, in llama.cpp (it runs on every device here); usable: what \
         llama.cpp may use; decode tok/s per sequence. Every model a device runs: headroom \
         models --fits ID.\n",
        table.len()
    ));
    crate::fit::write_stdout(&out)
}
