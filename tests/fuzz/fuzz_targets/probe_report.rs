//! A probe report of any bytes: validated, turned into a measured device and used in an answer.
#![no_main]

use headroom_core::{
    answer::{Question, answer},
    devices::{self, DeviceSpec},
    model_catalog,
    report::ProbeReport,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(report) = ProbeReport::from_json(&text) {
        let measured = report.measured_device();
        let device = DeviceSpec::from_measured(&measured);
        if let Ok(catalog) = devices::find("rtx-4090") {
            let _ = catalog.with_measurements(&measured);
        }
        if let Ok(model) = model_catalog::find("llama-3.2-1b") {
            let _ = answer(&Question::new(model, device));
        }
    }
});
