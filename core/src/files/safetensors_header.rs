//! `.safetensors` header reader: the 8-byte little-endian header length, then the JSON header
//! naming every tensor's dtype, shape and byte range. Only those bytes are read from the file.
//!
//! The `safetensors` crate supplies the dtype vocabulary ([`safetensors::Dtype`]) and element
//! sizes, and its limits and rules are followed here: a header of at most 100,000,000 bytes,
//! tensors contiguous and in order from offset 0, each range exactly its shape × dtype, and whole
//! bytes per tensor. Its own `SafeTensors::read_metadata` cannot be called on a header alone: it
//! wants the whole file in memory (it checks the buffer's length against the last offset) and
//! stores offsets as `usize`, which is 32 bits in the browser, where a 5 GB shard (the usual size)
//! would not parse. So the same checks run here on `u64`, after the length pre-check.

use std::collections::BTreeMap;

use safetensors::Dtype;
use serde::Deserialize;

use super::FileError;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: u64 = 8;
/// Largest header the `safetensors` crate accepts (its `MAX_HEADER_SIZE`).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Format name used in errors.
const FORMAT: &str = "safetensors";

/// One tensor entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsTensor {
    /// Name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Element type name as the file writes it, e.g. `BF16`.
    pub dtype: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// Bytes of data.
    pub bytes: u64,
    /// Where the data starts, in bytes from the start of the file.
    pub file_offset: u64,
}

impl SafetensorsTensor {
    /// Number of elements (checked not to overflow when the header was parsed).
    pub fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// Tensors in data order.
    pub tensors: Vec<SafetensorsTensor>,
    /// The free-form `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
    /// Bytes of the length prefix and the JSON header: where the data starts.
    pub header_bytes: u64,
}

impl SafetensorsHeader {
    /// Exact element count of this file's tensors.
    pub fn parameters(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0, |a, t| a.saturating_add(t.elements()))
    }

    /// Exact tensor data bytes of this file.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0, |a, t| a.saturating_add(t.bytes))
    }

    /// Elements and bytes per dtype, largest first.
    pub fn dtype_breakdown(&self) -> Vec<(String, u64, u64)> {
        let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for t in &self.tensors {
            let e = by.entry(&t.dtype).or_default();
            e.0 = e.0.saturating_add(t.elements());
            e.1 = e.1.saturating_add(t.bytes);
        }
        let mut v: Vec<_> = by
            .into_iter()
            .map(|(n, (e, b))| (n.to_string(), e, b))
            .collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.2));
        v
    }
}

/// How many bytes from the start of the file hold the header, from its first 8 bytes; `file_bytes`
/// (the whole file's size, when known) is checked against it.
pub fn header_end(prefix: &[u8], file_bytes: Option<u64>) -> Result<u64, FileError> {
    let arr: [u8; 8] = match prefix.get(..8).and_then(|s| s.try_into().ok()) {
        Some(a) => a,
        None => {
            return Err(short(
                prefix,
                LENGTH_PREFIX_BYTES,
                file_bytes,
                "length prefix",
            ));
        }
    };
    let n = u64::from_le_bytes(arr);
    if n > MAX_HEADER_BYTES {
        return Err(FileError::BadField {
            format: FORMAT,
            field: "header length".into(),
            problem: format!(
                "is {n} bytes, above the {MAX_HEADER_BYTES}-byte limit of the safetensors format: \
                 this is not a safetensors file"
            ),
        });
    }
    // n <= MAX_HEADER_BYTES, so this cannot overflow.
    let end = LENGTH_PREFIX_BYTES + n;
    if let Some(file_bytes) = file_bytes
        && end > file_bytes
    {
        return Err(FileError::Truncated {
            what: format!("its {n}-byte safetensors header"),
            need: end,
            file_bytes,
        });
    }
    Ok(end)
}

fn short(bytes: &[u8], need: u64, file_bytes: Option<u64>, what: &str) -> FileError {
    match file_bytes {
        Some(file_bytes) if need > file_bytes => FileError::Truncated {
            what: format!("the safetensors {what}"),
            need,
            file_bytes,
        },
        _ => FileError::NeedMoreBytes {
            format: FORMAT,
            have: bytes.len() as u64,
            need,
        },
    }
}

#[derive(Deserialize)]
struct RawInfo {
    dtype: Dtype,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

fn bad(field: &str, problem: String) -> FileError {
    FileError::BadField {
        format: FORMAT,
        field: field.to_owned(),
        problem,
    }
}

/// Parse the header. `bytes` holds at least the length prefix and the JSON header (else
/// [`FileError::NeedMoreBytes`] says how many bytes to read); `file_bytes` is the whole file's size
/// when known: the tensors must then cover the file's data exactly, and a truncated file is a
/// [`FileError::Truncated`] naming the first tensor it cuts.
pub fn parse(bytes: &[u8], file_bytes: Option<u64>) -> Result<SafetensorsHeader, FileError> {
    let end = header_end(bytes, file_bytes)?;
    let json = usize::try_from(end)
        .ok()
        .and_then(|e| bytes.get(LENGTH_PREFIX_BYTES as usize..e))
        .ok_or_else(|| short(bytes, end, file_bytes, "header"))?;
    let text = std::str::from_utf8(json).map_err(|e| {
        bad(
            "header",
            format!("is not UTF-8 ({e}): this is not a safetensors file"),
        )
    })?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| {
        bad(
            "header",
            format!("is not a JSON object of tensors ({e}): this is not a safetensors file"),
        )
    })?;
    let mut metadata = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, value) in raw {
        if name == "__metadata__" {
            metadata = serde_json::from_value(value)
                .map_err(|e| bad("__metadata__", format!("must map strings to strings: {e}")))?;
            continue;
        }
        let info: RawInfo = serde_json::from_value(value).map_err(|e| {
            bad(
                &format!("tensor `{name}`"),
                format!("is not {{dtype, shape, data_offsets}}: {e}"),
            )
        })?;
        entries.push((name, info));
    }
    entries.sort_by_key(|(_, i)| i.data_offsets);
    let mut data_end = 0u64;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, info) in entries {
        let field = format!("tensor `{name}`");
        let (start, stop) = info.data_offsets;
        if start != data_end || stop < start {
            return Err(bad(
                &field,
                format!(
                    "has data_offsets [{start}, {stop}], which leave a gap or overlap at byte \
                     {data_end}: the header is corrupt"
                ),
            ));
        }
        let bits = info
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|e| e.checked_mul(info.dtype.bitsize() as u64))
            .ok_or_else(|| {
                bad(
                    &field,
                    format!("has shape {:?}, whose size overflows", info.shape),
                )
            })?;
        if bits % 8 != 0 {
            return Err(bad(
                &field,
                format!(
                    "has shape {:?} of {}: {bits} bits, not whole bytes",
                    info.shape, info.dtype
                ),
            ));
        }
        let tensor_bytes = bits / 8;
        if stop - start != tensor_bytes {
            return Err(bad(
                &field,
                format!(
                    "has shape {:?} of {}, which needs {tensor_bytes} bytes, but its data_offsets \
                     span {}",
                    info.shape,
                    info.dtype,
                    stop - start
                ),
            ));
        }
        let file_start = end
            .checked_add(start)
            .ok_or_else(|| bad(&field, "has data past 2^64 bytes".into()))?;
        let file_end = end
            .checked_add(stop)
            .ok_or_else(|| bad(&field, "has data past 2^64 bytes".into()))?;
        if let Some(file_bytes) = file_bytes
            && file_end > file_bytes
        {
            return Err(FileError::Truncated {
                what: format!("{field}'s data (bytes {file_start}..{file_end})"),
                need: file_end,
                file_bytes,
            });
        }
        data_end = stop;
        tensors.push(SafetensorsTensor {
            name,
            dtype: info.dtype.to_string(),
            shape: info.shape,
            bytes: tensor_bytes,
            file_offset: file_start,
        });
    }
    if let Some(file_bytes) = file_bytes {
        // The loop checked every range against the file; what remains is data after the last one.
        let needed = end.saturating_add(data_end);
        if needed != file_bytes {
            return Err(bad(
                "data_offsets",
                format!(
                    "cover the file up to byte {needed}, but it is {file_bytes} bytes: {} bytes \
                     after the last tensor belong to no tensor; the file is corrupt",
                    file_bytes.saturating_sub(needed)
                ),
            ));
        }
    }
    Ok(SafetensorsHeader {
        tensors,
        metadata,
        header_bytes: end,
    })
}
