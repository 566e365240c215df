//! A safetensors file's first bytes: the header parsed against several claimed file sizes, then
//! its weights summed.
#![no_main]

use headroom_core::files::{CheckpointWeights, safetensors_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for size in [None, Some(bytes.len() as u64), Some(1 << 30)] {
        if let Ok(header) = safetensors_header::parse(bytes, size) {
            let _ = CheckpointWeights::from_safetensors(&[("fuzz.safetensors".to_owned(), header)]);
        }
    }
});
