//! The text grammars a user types: weight formats, training modes and LoRA layer lists. A layer
//! list that parses names only layers of the model, in order, once each.
#![no_main]

use std::str::FromStr;

use headroom_core::{
    quant::WeightFormat,
    training::{Mode, parse_lora_layers},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let _ = WeightFormat::from_str(&text);
    let _ = Mode::from_str(&text);
    let (layers, spec) = text.split_once('|').unwrap_or(("32", &text));
    let layers = layers.parse::<u64>().unwrap_or(32).min(10_000);
    if let Ok(Some(list)) = parse_lora_layers(spec, layers) {
        assert!(list.iter().all(|&i| i < layers), "{spec}: {list:?}");
        assert!(list.windows(2).all(|w| w[0] < w[1]), "{spec}: {list:?}");
    }
});
