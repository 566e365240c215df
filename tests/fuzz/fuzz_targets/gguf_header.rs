//! A GGUF file's first bytes: the header parsed against several claimed file sizes, then its
//! weights and model read and answered.
#![no_main]

use headroom_core::{
    answer::{Question, answer},
    devices,
    files::{CheckpointWeights, gguf_header, spec_from_gguf},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for size in [None, Some(bytes.len() as u64), Some(1 << 30)] {
        if let Ok(header) = gguf_header::parse(bytes, size) {
            let _ = CheckpointWeights::from_gguf(&header, "fuzz.gguf");
            if let Ok(model) = spec_from_gguf(&header, "fuzz.gguf")
                && let Ok(device) = devices::find("rtx-4090")
            {
                let _ = answer(&Question::new(model.spec, device));
            }
        }
    }
});
