//! Small, valid checkpoint headers built in memory: fixtures for the tests of core, the CLI and
//! the site (no fixture files to keep in sync). Only headers are built; the size of the whole file
//! (header, padding and tensor data) is returned beside them, so a parser can check offsets
//! without gigabytes of zeros.

use super::gguf_header::{DEFAULT_ALIGNMENT, GGUF_MAGIC, ggml_type};

/// A header and the size of the file it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFixture {
    /// The header bytes (for GGUF, padded to the data alignment).
    pub header: Vec<u8>,
    /// Size of the whole file: header, padding and every tensor's data.
    pub file_bytes: u64,
}

impl HeaderFixture {
    /// The whole file, tensor data zeroed. Only for small fixtures.
    pub fn file(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        out.resize(usize::try_from(self.file_bytes).unwrap_or(usize::MAX), 0);
        out
    }
}

/// A GGUF tensor to write: name, shape outermost first, ggml type id.
pub type GgufTensorDef<'a> = (&'a str, &'a [u64], u32);

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Bytes of a GGUF tensor's data (0 for an unknown type or an overflowing shape).
fn gguf_tensor_bytes(shape: &[u64], ty: u32) -> u64 {
    let Some(t) = ggml_type(ty) else { return 0 };
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|e| (e / t.block_elements).checked_mul(t.block_bytes))
        .unwrap_or(0)
}

/// A GGUF v3 header with string metadata `general.architecture`, u32 metadata `u32s` and the
/// tensors' infos, each tensor's data placed after the previous one at the default alignment.
pub fn gguf(
    architecture: &str,
    u32s: &[(&str, u32)],
    tensors: &[GgufTensorDef<'_>],
) -> HeaderFixture {
    let mut out = Vec::new();
    out.extend(GGUF_MAGIC);
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((u32s.len() as u64 + 1).to_le_bytes());
    gguf_string(&mut out, "general.architecture");
    out.extend(8u32.to_le_bytes());
    gguf_string(&mut out, architecture);
    for (k, v) in u32s {
        gguf_string(&mut out, k);
        out.extend(4u32.to_le_bytes());
        out.extend(v.to_le_bytes());
    }
    let mut offset = 0u64;
    for (name, shape, ty) in tensors {
        gguf_string(&mut out, name);
        out.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            out.extend(d.to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset = offset
            .saturating_add(gguf_tensor_bytes(shape, *ty))
            .next_multiple_of(DEFAULT_ALIGNMENT);
    }
    out.resize(
        (out.len() as u64).next_multiple_of(DEFAULT_ALIGNMENT) as usize,
        0,
    );
    HeaderFixture {
        file_bytes: (out.len() as u64).saturating_add(offset),
        header: out,
    }
}

/// A safetensors tensor to write: name, dtype as the format names it (`BF16`, `I32`, ...), shape.
pub type SafetensorsTensorDef<'a> = (&'a str, &'a str, &'a [u64]);

/// A safetensors header with `__metadata__` `{"format": "pt"}` and the tensors laid out in the
/// order given. Dtypes the format does not know are written as given (for tests of bad headers)
/// and take no data.
pub fn safetensors(tensors: &[SafetensorsTensorDef<'_>]) -> HeaderFixture {
    let mut entries = vec![format!(r#""__metadata__":{{"format":"pt"}}"#)];
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let bits = serde_json::from_value::<safetensors::Dtype>(serde_json::Value::from(*dtype))
            .map(|d| d.bitsize() as u64)
            .unwrap_or(0);
        let bytes = shape
            .iter()
            .try_fold(bits, |a, &d| a.checked_mul(d))
            .map(|b| b / 8)
            .unwrap_or(0);
        let shape_json = serde_json::to_string(shape).unwrap_or_default();
        let name_json = serde_json::to_string(name).unwrap_or_default();
        let end = offset.saturating_add(bytes);
        entries.push(format!(
            r#"{name_json}:{{"dtype":"{dtype}","shape":{shape_json},"data_offsets":[{offset},{end}]}}"#
        ));
        offset = end;
    }
    let json = format!("{{{}}}", entries.join(","));
    let mut header = (json.len() as u64).to_le_bytes().to_vec();
    header.extend(json.as_bytes());
    HeaderFixture {
        file_bytes: (header.len() as u64).saturating_add(offset),
        header,
    }
}
