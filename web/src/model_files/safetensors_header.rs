//! `.safetensors` header reader: the 8-byte little-endian header length, then the JSON header
//! naming every tensor's dtype, shape and byte range. Only those bytes are read from the file.
//!
//! The `safetensors` crate supplies the dtype vocabulary and element sizes. Its own
//! `Metadata` type stores offsets as `usize`, which is 32 bits in the browser: a 5 GB shard (the
//! usual size) would not parse there, so offsets are read as `u64` here and validated the same way
//! the crate does (contiguous, in order, covering the data exactly).

use std::collections::BTreeMap;

use safetensors::Dtype;
use serde::Deserialize;
use thiserror::Error;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: u64 = 8;
/// Largest header the `safetensors` crate accepts (its `MAX_HEADER_SIZE`).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What can go wrong reading a safetensors header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SafetensorsError {
    /// The file is shorter than its header claims.
    #[error(
        "the file is {file_bytes} bytes but its header claims {needed} bytes: truncated or not a safetensors file"
    )]
    Truncated {
        /// Size of the file.
        file_bytes: u64,
        /// Bytes the header says the file has.
        needed: u64,
    },
    /// The header length is implausible.
    #[error(
        "header length {0} bytes is larger than the {MAX_HEADER_BYTES}-byte limit: not a safetensors file"
    )]
    HeaderTooLarge(u64),
    /// The JSON header does not parse.
    #[error("malformed safetensors header: {0}")]
    Malformed(String),
}

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
}

impl SafetensorsTensor {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// Tensors in data order.
    pub tensors: Vec<SafetensorsTensor>,
    /// The free-form `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

impl SafetensorsHeader {
    /// Exact parameter count of this file.
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(SafetensorsTensor::elements).sum()
    }
    /// Exact tensor data bytes of this file.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }
    /// Bytes and elements per dtype, largest first.
    pub fn dtype_breakdown(&self) -> Vec<(String, u64, u64)> {
        let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for t in &self.tensors {
            let e = by.entry(&t.dtype).or_default();
            e.0 += t.elements();
            e.1 += t.bytes;
        }
        let mut v: Vec<_> = by
            .into_iter()
            .map(|(n, (e, b))| (n.to_string(), e, b))
            .collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.2));
        v
    }
}

/// The header length from the first 8 bytes; the caller then reads `8 + len` bytes.
pub fn header_length(prefix: &[u8]) -> Result<u64, SafetensorsError> {
    let arr: [u8; 8] =
        prefix
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(SafetensorsError::Truncated {
                file_bytes: prefix.len() as u64,
                needed: LENGTH_PREFIX_BYTES,
            })?;
    let n = u64::from_le_bytes(arr);
    if n > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLarge(n));
    }
    Ok(n)
}

#[derive(Deserialize)]
struct RawInfo {
    dtype: Dtype,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Parse the header. `bytes` holds at least the prefix and the JSON header; `file_bytes` is the
/// whole file's size, checked against the header's offsets.
pub fn parse(bytes: &[u8], file_bytes: u64) -> Result<SafetensorsHeader, SafetensorsError> {
    let n = header_length(bytes)?;
    let end = LENGTH_PREFIX_BYTES + n;
    let json = bytes
        .get(LENGTH_PREFIX_BYTES as usize..end as usize)
        .ok_or(SafetensorsError::Truncated {
            file_bytes: bytes.len() as u64,
            needed: end,
        })?;
    let text = std::str::from_utf8(json)
        .map_err(|e| SafetensorsError::Malformed(format!("header is not UTF-8: {e}")))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| SafetensorsError::Malformed(e.to_string()))?;
    let mut metadata = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, value) in raw {
        if name == "__metadata__" {
            metadata = serde_json::from_value(value).map_err(|e| {
                SafetensorsError::Malformed(format!(
                    "`__metadata__` must map strings to strings: {e}"
                ))
            })?;
            continue;
        }
        let info: RawInfo = serde_json::from_value(value)
            .map_err(|e| SafetensorsError::Malformed(format!("tensor `{name}`: {e}")))?;
        entries.push((name, info));
    }
    entries.sort_by_key(|(_, i)| i.data_offsets);
    let mut expected_start = 0u64;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, info) in entries {
        let (start, stop) = info.data_offsets;
        if start != expected_start || stop < start {
            return Err(SafetensorsError::Malformed(format!(
                "tensor `{name}` data_offsets [{start}, {stop}] leave a gap or overlap at byte {expected_start}"
            )));
        }
        let elements = info
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| SafetensorsError::Malformed(format!("tensor `{name}` is too large")))?;
        let bits = elements
            .checked_mul(info.dtype.bitsize() as u64)
            .ok_or_else(|| SafetensorsError::Malformed(format!("tensor `{name}` is too large")))?;
        let bytes = bits.div_ceil(8);
        if stop - start != bytes {
            return Err(SafetensorsError::Malformed(format!(
                "tensor `{name}`: shape {:?} of {:?} needs {bytes} bytes but data_offsets span {}",
                info.shape,
                info.dtype,
                stop - start
            )));
        }
        expected_start = stop;
        tensors.push(SafetensorsTensor {
            name,
            dtype: format!("{:?}", info.dtype),
            shape: info.shape,
            bytes,
        });
    }
    let needed = end + expected_start;
    if needed != file_bytes {
        return Err(SafetensorsError::Truncated { file_bytes, needed });
    }
    Ok(SafetensorsHeader { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_bytes: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data_bytes));
        out
    }

    #[test]
    fn reads_tensors_and_checks_size() {
        let h = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}"#;
        let f = file(h, 24);
        let parsed = parse(&f, f.len() as u64).unwrap();
        assert_eq!(parsed.tensors[0].name, "a");
        assert_eq!(parsed.tensors[0].dtype, "BF16");
        assert_eq!(parsed.parameters(), 8);
        assert_eq!(parsed.tensor_bytes(), 24);
        assert_eq!(
            parsed.metadata.get("format").map(String::as_str),
            Some("pt")
        );
        // Only the header bytes are needed, given the real file size.
        let header_only = &f[..8 + h.len()];
        assert_eq!(parse(header_only, f.len() as u64).unwrap(), parsed);
        assert!(matches!(
            parse(&f, f.len() as u64 - 1),
            Err(SafetensorsError::Truncated { .. })
        ));
    }

    #[test]
    fn offsets_beyond_four_gib_parse() {
        let big = 3_000_000_000u64;
        let h = format!(
            r#"{{"x":{{"dtype":"F16","shape":[{big}],"data_offsets":[0,{}]}}}}"#,
            big * 2
        );
        let f = file(&h, 0);
        let parsed = parse(&f, f.len() as u64 + big * 2).unwrap();
        assert_eq!(parsed.tensor_bytes(), big * 2);
    }

    #[test]
    fn names_the_bad_tensor() {
        let h = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        let f = file(h, 8);
        let err = parse(&f, f.len() as u64).unwrap_err().to_string();
        assert!(err.contains("`w`"), "{err}");
        let f = file("not json", 0);
        assert!(matches!(
            parse(&f, f.len() as u64),
            Err(SafetensorsError::Malformed(_))
        ));
        assert!(matches!(
            header_length(&u64::MAX.to_le_bytes()),
            Err(SafetensorsError::HeaderTooLarge(_))
        ));
    }
}
