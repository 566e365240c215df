//! A `config.json` of any bytes: parsed into a model and, when it parses, answered in full.
#![no_main]

use headroom_core::{
    answer::{Question, answer},
    config::model_from_config_json,
    devices,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(model) = model_from_config_json("fuzz", &text)
        && let Ok(device) = devices::find("rtx-4090")
    {
        let _ = answer(&Question::new(model, device));
    }
});
