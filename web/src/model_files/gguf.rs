//! GGUF header reader: magic, version, metadata key/values and tensor infos, from the first bytes
//! of a `.gguf` file (the tensor data is never read).
//!
//! Layout (llama.cpp `gguf.c`, GGUF v2/v3, little-endian):
//! `"GGUF"`, `u32 version`, `u64 tensor_count`, `u64 kv_count`, then `kv_count` entries
//! (`string key`, `u32 value_type`, value), then `tensor_count` infos (`string name`, `u32 n_dims`,
//! `u64 ne[n_dims]` innermost first, `u32 ggml_type`, `u64 offset`). A string is `u64 len` + UTF-8.
//! v1 used 32-bit lengths and is not read (no current tool writes it).

use std::collections::BTreeMap;

use thiserror::Error;

/// The file's first four bytes.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// What can go wrong reading a GGUF header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GgufError {
    /// The bytes end before the header does: read at least this many and try again.
    #[error("the GGUF header continues past the {have} bytes read")]
    Truncated {
        /// Bytes available.
        have: usize,
    },
    /// Not a GGUF file.
    #[error("not a GGUF file: it starts with {found:?}, expected \"GGUF\"")]
    BadMagic {
        /// The first bytes found.
        found: String,
    },
    /// A version this reader does not know.
    #[error(
        "GGUF version {0} is not supported (versions 2 and 3 are); re-convert with a current llama.cpp"
    )]
    UnsupportedVersion(u32),
    /// Structurally invalid content.
    #[error("malformed GGUF header: {0}")]
    Malformed(String),
}

/// A metadata value (arrays are summarised: only their length and, for short ones, the values).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Any integer type, widened.
    Int(i128),
    /// `f32` or `f64`.
    Float(f64),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(String),
    /// An array: its length and its integer items when they are integers (per-layer values).
    Array {
        /// Number of items.
        len: u64,
        /// The items if they are integers, else empty.
        ints: Vec<i128>,
    },
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            GgufValue::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

/// A ggml tensor element type with its block layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    /// `ggml_type` number in the file.
    pub id: u32,
    /// Name as llama.cpp prints it, e.g. `Q4_K`.
    pub name: &'static str,
    /// Elements per block.
    pub block_elements: u64,
    /// Bytes per block.
    pub block_bytes: u64,
}

/// ggml types headroom-core's [`headroom_core::gguf::GgmlType`] does not list (they do not occur
/// as quantization targets but may appear in a file): (id, name, elements per block, bytes per
/// block), from llama.cpp `ggml.c` `type_traits`.
const EXTRA_GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (9, "Q8_1", 32, 36),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
];

/// Look up a ggml type by its number: core's block table first, then the extras above.
pub fn ggml_type(id: u32) -> Option<GgmlType> {
    if let Some(t) = headroom_core::gguf::GgmlType::from_ggml_id(id) {
        let (block_bytes, block_elements) = t.block();
        return Some(GgmlType {
            id,
            name: t.name(),
            block_elements,
            block_bytes,
        });
    }
    EXTRA_GGML_TYPES
        .iter()
        .find(|t| t.0 == id)
        .map(|&(id, name, block_elements, block_bytes)| GgmlType {
            id,
            name,
            block_elements,
            block_bytes,
        })
}

/// One tensor as the file stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensor {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Shape, outermost first (GGUF stores innermost first; reversed here to match PyTorch).
    pub shape: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Exact bytes of the tensor's data.
    pub bytes: u64,
}

impl GgufTensor {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Every tensor in file order.
    pub tensors: Vec<GgufTensor>,
    /// Bytes the header occupied (before alignment padding).
    pub header_bytes: usize,
}

impl GgufHeader {
    /// Sum of every tensor's data bytes: the exact weight memory.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// Sum of every tensor's elements: the exact parameter count.
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(GgufTensor::elements).sum()
    }

    /// A metadata string.
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(GgufValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// A metadata unsigned integer (or the first item of a per-layer integer array).
    pub fn uint(&self, key: &str) -> Option<u64> {
        match self.metadata.get(key)? {
            GgufValue::Array { ints, .. } => ints.first().and_then(|v| u64::try_from(*v).ok()),
            v => v.as_u64(),
        }
    }

    /// Bytes and elements per ggml type, largest first: the file's real format mix.
    pub fn type_breakdown(&self) -> Vec<(&'static str, u64, u64)> {
        let mut by_type: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
        for t in &self.tensors {
            let e = by_type.entry(t.ggml_type.name).or_default();
            e.0 += t.elements();
            e.1 += t.bytes;
        }
        let mut v: Vec<_> = by_type.into_iter().map(|(n, (e, b))| (n, e, b)).collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.2));
        v
    }
}

/// Cap on array items kept as integers (per-layer head counts etc.); longer arrays (the
/// tokenizer's vocabulary) are skipped over, only their length kept.
const MAX_KEPT_ARRAY_ITEMS: u64 = 4096;
/// Cap on a single string's length: anything longer is corruption, not a header.
const MAX_STRING_BYTES: u64 = 64 << 20;
/// Cap on tensor dimensions (ggml's GGML_MAX_DIMS).
const MAX_DIMS: u32 = 4;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let n = usize::try_from(n).map_err(|_| GgufError::Malformed("length overflows".into()))?;
        let end = self.pos.checked_add(n).ok_or(GgufError::Truncated {
            have: self.bytes.len(),
        })?;
        let slice = self.bytes.get(self.pos..end).ok_or(GgufError::Truncated {
            have: self.bytes.len(),
        })?;
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > MAX_STRING_BYTES {
            return Err(GgufError::Malformed(format!(
                "string of {len} bytes at offset {}",
                self.pos
            )));
        }
        let s = self.take(len)?;
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    /// Read a scalar of `value_type`; `None` for types that are not scalars.
    fn scalar(&mut self, value_type: u32) -> Result<Option<GgufValue>, GgufError> {
        Ok(Some(match value_type {
            0 => GgufValue::Int(self.array::<1>()?[0].into()),
            1 => GgufValue::Int(i8::from_le_bytes(self.array()?).into()),
            2 => GgufValue::Int(u16::from_le_bytes(self.array()?).into()),
            3 => GgufValue::Int(i16::from_le_bytes(self.array()?).into()),
            4 => GgufValue::Int(self.u32()?.into()),
            5 => GgufValue::Int(i32::from_le_bytes(self.array()?).into()),
            6 => GgufValue::Float(f32::from_le_bytes(self.array()?).into()),
            7 => GgufValue::Bool(self.array::<1>()?[0] != 0),
            8 => GgufValue::String(self.string()?),
            10 => GgufValue::Int(self.u64()?.into()),
            11 => GgufValue::Int(i64::from_le_bytes(self.array()?).into()),
            12 => GgufValue::Float(f64::from_le_bytes(self.array()?)),
            _ => return Ok(None),
        }))
    }

    fn value(&mut self, value_type: u32) -> Result<GgufValue, GgufError> {
        if value_type == 9 {
            let item_type = self.u32()?;
            let len = self.u64()?;
            let mut ints = Vec::new();
            if let Some(size) = fixed_size(item_type) {
                // Fixed-size items: keep short integer arrays, skip the rest in one step.
                if len <= MAX_KEPT_ARRAY_ITEMS && item_type != 6 && item_type != 12 {
                    for _ in 0..len {
                        if let Some(GgufValue::Int(v)) = self.scalar(item_type)? {
                            ints.push(v);
                        }
                    }
                } else {
                    let total = len
                        .checked_mul(size)
                        .ok_or_else(|| GgufError::Malformed("array size overflows".into()))?;
                    self.take(total)?;
                }
            } else if item_type == 8 {
                for _ in 0..len {
                    self.string()?;
                }
            } else {
                return Err(GgufError::Malformed(format!(
                    "array of unsupported item type {item_type}"
                )));
            }
            return Ok(GgufValue::Array { len, ints });
        }
        self.scalar(value_type)?.ok_or_else(|| {
            GgufError::Malformed(format!("unknown metadata value type {value_type}"))
        })
    }
}

/// Size in bytes of a fixed-size GGUF value type.
fn fixed_size(value_type: u32) -> Option<u64> {
    match value_type {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Parse a GGUF header from the first bytes of a file. Returns [`GgufError::Truncated`] when
/// `bytes` ends inside the header: read more of the file and call again.
pub fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    let mut r = Reader { bytes, pos: 0 };
    let magic = r.array::<4>()?;
    if &magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic {
            found: String::from_utf8_lossy(&magic).into_owned(),
        });
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let value_type = r.u32()?;
        let value = r.value(value_type)?;
        metadata.insert(key, value);
    }
    let mut tensors = Vec::new();
    for _ in 0..tensor_count {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::Malformed(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            shape.push(r.u64()?);
        }
        shape.reverse();
        let type_id = r.u32()?;
        let _offset = r.u64()?;
        let ggml_type = ggml_type(type_id).ok_or_else(|| {
            GgufError::Malformed(format!(
                "tensor `{name}` has unknown ggml type {type_id}; a newer llama.cpp may know it"
            ))
        })?;
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| GgufError::Malformed(format!("tensor `{name}` is too large")))?;
        if elements % ggml_type.block_elements != 0 {
            return Err(GgufError::Malformed(format!(
                "tensor `{name}` has {elements} elements, not a multiple of {}'s block of {}",
                ggml_type.name, ggml_type.block_elements
            )));
        }
        let bytes = elements / ggml_type.block_elements * ggml_type.block_bytes;
        tensors.push(GgufTensor {
            name,
            shape,
            ggml_type,
            bytes,
        });
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        header_bytes: r.pos,
    })
}

/// Writes small GGUF files; used by the tests (and kept public so the browser tests can build
/// fixtures in memory).
pub mod writer {
    /// A tensor to write: name, shape outermost first, ggml type id.
    pub type TensorDef<'a> = (&'a str, &'a [u64], u32);

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A GGUF v3 header with string metadata `general.architecture`, u32 metadata `u32s` and
    /// the tensors' infos (no tensor data).
    pub fn header(architecture: &str, u32s: &[(&str, u32)], tensors: &[TensorDef<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(super::GGUF_MAGIC);
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((u32s.len() as u64 + 1).to_le_bytes());
        string(&mut out, "general.architecture");
        out.extend(8u32.to_le_bytes());
        string(&mut out, architecture);
        for (k, v) in u32s {
            string(&mut out, k);
            out.extend(4u32.to_le_bytes());
            out.extend(v.to_le_bytes());
        }
        for (name, shape, ty) in tensors {
            string(&mut out, name);
            out.extend((shape.len() as u32).to_le_bytes());
            for d in shape.iter().rev() {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(0u64.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        writer::header(
            "llama",
            &[("llama.block_count", 2), ("llama.embedding_length", 256)],
            &[
                ("token_embd.weight", &[1000, 256], 12),
                ("blk.0.attn_norm.weight", &[256], 0),
                ("output.weight", &[1000, 256], 14),
            ],
        )
    }

    #[test]
    fn reads_tensors_with_exact_bytes() {
        let h = parse(&sample()).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.string("general.architecture"), Some("llama"));
        assert_eq!(h.uint("llama.block_count"), Some(2));
        assert_eq!(h.tensors.len(), 3);
        assert_eq!(h.tensors[0].shape, vec![1000, 256]);
        // Q4_K: 256 000 elements = 1000 blocks of 144 bytes.
        assert_eq!(h.tensors[0].bytes, 144_000);
        assert_eq!(h.tensors[1].bytes, 1024);
        assert_eq!(h.tensors[2].bytes, 1000 * 210);
        assert_eq!(h.parameters(), 256_000 * 2 + 256);
        assert_eq!(h.type_breakdown()[0].0, "Q6_K");
    }

    #[test]
    fn every_prefix_is_truncated_not_a_panic() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(
                matches!(parse(&bytes[..n]), Err(GgufError::Truncated { .. })),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(
            parse(b"PK\x03\x04 not gguf"),
            Err(GgufError::BadMagic { .. })
        ));
        let mut v1 = sample();
        v1[4] = 1;
        assert_eq!(parse(&v1), Err(GgufError::UnsupportedVersion(1)));
        let bad_type = writer::header("llama", &[], &[("x", &[32], 99)]);
        assert!(matches!(parse(&bad_type), Err(GgufError::Malformed(_))));
        let bad_blocks = writer::header("llama", &[], &[("x", &[33], 2)]);
        assert!(matches!(parse(&bad_blocks), Err(GgufError::Malformed(_))));
    }
}
