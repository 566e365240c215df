//! `headroom fit MODEL --devices-that-fit`: what the model needs, and which catalog devices hold
//! it, per device class (`headroom_core::ranking::devices_that_fit`).

use std::fmt::Write;

use headroom_core::ranking::{DeviceFit, DeviceNeeds};

use super::table::{Align, Table, gib, thousands, tokens_per_s};

/// `2 × NVIDIA H200 141 GB` or the device alone.
fn devices(fit: &DeviceFit) -> String {
    if fit.device_count > 1 {
        format!("{} × {}", fit.device_count, fit.device)
    } else {
        fit.device.clone()
    }
}

/// The answer as text: the need, a table per class, the launch command of each smallest
/// device, the assumptions.
pub(super) fn render(needs: &DeviceNeeds) -> String {
    let mut out = String::new();
    let total = if needs.min_total_bytes == needs.max_total_bytes {
        gib(needs.min_total_bytes)
    } else {
        format!(
            "{} to {} (depending on the engine)",
            gib(needs.min_total_bytes),
            gib(needs.max_total_bytes)
        )
    };
    let _ = writeln!(
        out,
        "{} needs {total} on one device in {} at {} tokens of context ({}); weights {}",
        needs.model,
        needs.format,
        thousands(needs.context),
        needs.mode,
        gib(needs.weights_bytes)
    );
    let _ = writeln!(
        out,
        "devices that hold it ({}):\n",
        if needs.format_fixed {
            format!("in {}", needs.format)
        } else {
            "each in the best format that fits it".to_owned()
        }
    );
    let largest_title = format!("or several of the largest, in {}", needs.format);
    let mut table = Table::new(&[
        ("class", Align::Left),
        ("smallest that holds it", Align::Left),
        ("format", Align::Left),
        ("uses / usable", Align::Right),
        ("decode tok/s", Align::Right),
        (&largest_title, Align::Left),
        ("decode tok/s", Align::Right),
    ]);
    let mut notes = Vec::new();
    for class in &needs.classes {
        let mut row = vec![class.label.clone()];
        match &class.smallest {
            Some(s) => row.extend([
                s.device.clone(),
                s.format.clone(),
                format!("{} / {}", gib(s.per_device_bytes), gib(s.usable_bytes)),
                tokens_per_s(s.decode_tokens_per_s),
            ]),
            None => row.extend([
                "none".to_owned(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
        match &class.largest {
            Some(l) => row.extend([devices(l), tokens_per_s(l.decode_tokens_per_s)]),
            None => row.extend(["-".to_owned(), String::new()]),
        }
        if let Some(why) = &class.none_reason {
            notes.push(why.clone());
        }
        table.row(row);
    }
    out.push_str(&table.render());
    for why in notes {
        let _ = writeln!(out, "{why}");
    }
    let _ = writeln!(out, "\nlaunch on the smallest of each class:");
    for class in &needs.classes {
        if let Some(s) = &class.smallest {
            let _ = writeln!(out, "  {} ({}):", s.device, s.launch.runtime);
            for line in s.launch.command.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    let _ = writeln!(out, "\nassumptions:");
    for a in &needs.assumptions {
        let _ = writeln!(out, "  - {a}");
    }
    let _ = writeln!(
        out,
        "GiB = 2^30 bytes. One device in detail: headroom fit {} --device ID",
        needs.model
    );
    out
}
