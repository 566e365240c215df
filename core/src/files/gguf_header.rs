//! GGUF header reader: magic, version, metadata key/values and tensor infos, from the first bytes
//! of a `.gguf` file (the tensor data is never read).
//!
//! Layout (llama.cpp `ggml/src/gguf.cpp`, GGUF v2/v3, little-endian):
//! `"GGUF"`, `u32 version`, `u64 tensor_count`, `u64 kv_count`, then `kv_count` entries
//! (`string key`, `u32 value_type`, value), then `tensor_count` infos (`string name`, `u32 n_dims`,
//! `u64 ne[n_dims]` innermost first, `u32 ggml_type`, `u64 offset`). A string is `u64 len` + bytes.
//! The tensor data starts at the header's end rounded up to `general.alignment` (default 32); each
//! tensor's `offset` is relative to that start. v1 used 32-bit lengths and is not read (no current
//! tool writes it).
//!
//! Every count and length is checked against the bytes present (and the file's size, when given)
//! before anything is allocated for it, so a corrupt or hostile header is an error, never a panic
//! or a large allocation.

use std::collections::{BTreeMap, BTreeSet};

use super::FileError;

/// The file's first four bytes.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Data alignment when `general.alignment` is absent (llama.cpp `GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Format name used in errors.
const FORMAT: &str = "GGUF";

/// Cap on array items kept as integers (per-layer head counts etc.); longer arrays (the
/// tokenizer's vocabulary) are skipped over, only their length kept.
const MAX_KEPT_ARRAY_ITEMS: u64 = 4096;
/// Cap on tensor dimensions (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Fewest bytes one metadata entry can take: an empty key (u64 length), the u32 value type and a
/// one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes one tensor info can take: an empty name (u64 length), u32 n_dims of 0, the u32
/// type and the u64 offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Fewest bytes a string array item can take: its u64 length.
const MIN_STRING_BYTES: u64 = 8;
/// ggml stores dimensions as `int64_t`: anything above is not a shape.
const MAX_DIM: u64 = i64::MAX as u64;

/// GGUF metadata value type numbers (`enum gguf_type`).
mod value_type {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
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
    /// `string` (invalid UTF-8 replaced).
    String(String),
    /// An array: its length and its integer items when they are integers (per-layer values).
    Array {
        /// Number of items.
        len: u64,
        /// The items if they are integers and at most 4,096 of them, else empty.
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

/// A tensor's ggml type as a file names it, with its block layout: any type a file may hold,
/// where [`crate::gguf::GgmlType`] lists only the types llama.cpp quantizes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileGgmlType {
    /// `ggml_type` number in the file.
    pub id: u32,
    /// Name as llama.cpp prints it, e.g. `Q4_K`.
    pub name: &'static str,
    /// Elements per block.
    pub block_elements: u64,
    /// Bytes per block.
    pub block_bytes: u64,
}

/// ggml types that [`crate::gguf::GgmlType`] does not list (they are not quantization targets but
/// may appear in a file): (id, name, elements per block, bytes per block), from llama.cpp
/// `ggml.c` `type_traits`.
const EXTRA_GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (9, "Q8_1", 32, 36),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
];

/// Look up a ggml type by its number: core's block table first, then the extras above.
pub fn ggml_type(id: u32) -> Option<FileGgmlType> {
    if let Some(t) = crate::gguf::GgmlType::from_ggml_id(id) {
        let (block_bytes, block_elements) = t.block();
        return Some(FileGgmlType {
            id,
            name: t.name(),
            block_elements,
            block_bytes,
        });
    }
    EXTRA_GGML_TYPES
        .iter()
        .find(|t| t.0 == id)
        .map(|&(id, name, block_elements, block_bytes)| FileGgmlType {
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
    pub ggml_type: FileGgmlType,
    /// Exact bytes of the tensor's data.
    pub bytes: u64,
    /// Where the data starts, in bytes from the start of the file.
    pub file_offset: u64,
}

impl GgufTensor {
    /// Number of elements (checked not to overflow when the header was parsed).
    pub fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
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
    pub header_bytes: u64,
    /// Where the tensor data starts: the header's end rounded up to the alignment.
    pub data_offset: u64,
    /// The file's size when the caller gave it; every tensor's data was checked to lie inside it.
    pub file_bytes: Option<u64>,
}

impl GgufHeader {
    /// Sum of every tensor's data bytes: the exact weight memory.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0, |a, t| a.saturating_add(t.bytes))
    }

    /// Sum of every tensor's elements: the exact parameter count.
    pub fn parameters(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0, |a, t| a.saturating_add(t.elements()))
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

    /// Elements and bytes per ggml type, largest first: the file's real format mix.
    pub fn type_breakdown(&self) -> Vec<(&'static str, u64, u64)> {
        let mut by_type: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
        for t in &self.tensors {
            let e = by_type.entry(t.ggml_type.name).or_default();
            e.0 = e.0.saturating_add(t.elements());
            e.1 = e.1.saturating_add(t.bytes);
        }
        let mut v: Vec<_> = by_type.into_iter().map(|(n, (e, b))| (n, e, b)).collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.2));
        v
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    file_bytes: Option<u64>,
}

impl<'a> Reader<'a> {
    /// Bytes present, as u64 (a slice never holds more than `u64::MAX` bytes).
    fn have(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn pos(&self) -> u64 {
        self.pos as u64
    }

    /// The error for "`what` needs the file's first `need` bytes, which are not here".
    fn short(&self, need: u64, what: &str) -> FileError {
        match self.file_bytes {
            Some(file_bytes) if need > file_bytes => FileError::Truncated {
                what: format!("the GGUF header ({what})"),
                need,
                file_bytes,
            },
            _ => FileError::NeedMoreBytes {
                format: FORMAT,
                have: self.have(),
                need,
            },
        }
    }

    /// Check that `count` items of at least `min_bytes` each can follow; `field` names the count.
    fn check_count(&self, count: u64, min_bytes: u64, field: &str) -> Result<(), FileError> {
        let need = count
            .checked_mul(min_bytes)
            .and_then(|b| b.checked_add(self.pos()))
            .ok_or_else(|| {
                bad(
                    field,
                    format!("= {count} is impossibly large: the header is corrupt"),
                )
            })?;
        if let Some(file_bytes) = self.file_bytes
            && need > file_bytes
        {
            return Err(bad(
                field,
                format!(
                    "= {count} needs at least {need} bytes but the file has {file_bytes}: the header \
                     is corrupt or the file is truncated; download it again"
                ),
            ));
        }
        if need > self.have() {
            return Err(self.short(need, field));
        }
        Ok(())
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], FileError> {
        let need = self
            .pos()
            .checked_add(n)
            .ok_or_else(|| bad(what, format!("has an impossible length {n}")))?;
        if need > self.have() {
            return Err(self.short(need, what));
        }
        // `need <= bytes.len()`, so it fits in usize.
        let end = usize::try_from(need).map_err(|_| self.short(need, what))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.short(need, what))?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FileError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FileError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FileError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, FileError> {
        let len = self.u64(what)?;
        // `take` checks the length against the bytes present before anything is copied.
        let s = self.take(len, what)?;
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    /// Read a scalar of type `ty`; `None` for types that are not scalars.
    fn scalar(&mut self, ty: u32, what: &str) -> Result<Option<GgufValue>, FileError> {
        use value_type as v;
        Ok(Some(match ty {
            v::U8 => GgufValue::Int(u8::from_le_bytes(self.array(what)?).into()),
            v::I8 => GgufValue::Int(i8::from_le_bytes(self.array(what)?).into()),
            v::U16 => GgufValue::Int(u16::from_le_bytes(self.array(what)?).into()),
            v::I16 => GgufValue::Int(i16::from_le_bytes(self.array(what)?).into()),
            v::U32 => GgufValue::Int(self.u32(what)?.into()),
            v::I32 => GgufValue::Int(i32::from_le_bytes(self.array(what)?).into()),
            v::F32 => GgufValue::Float(f32::from_le_bytes(self.array(what)?).into()),
            v::BOOL => GgufValue::Bool(u8::from_le_bytes(self.array(what)?) != 0),
            v::STRING => GgufValue::String(self.string(what)?),
            v::U64 => GgufValue::Int(self.u64(what)?.into()),
            v::I64 => GgufValue::Int(i64::from_le_bytes(self.array(what)?).into()),
            v::F64 => GgufValue::Float(f64::from_le_bytes(self.array(what)?)),
            _ => return Ok(None),
        }))
    }

    fn value(&mut self, ty: u32, key: &str) -> Result<GgufValue, FileError> {
        if ty != value_type::ARRAY {
            return self.scalar(ty, key)?.ok_or_else(|| {
                bad(
                    key,
                    format!("has unknown value type {ty}; a newer llama.cpp may write it"),
                )
            });
        }
        let item_type = self.u32(key)?;
        let len = self.u64(key)?;
        let mut ints = Vec::new();
        if let Some(size) = fixed_size(item_type) {
            let is_int = item_type != value_type::F32
                && item_type != value_type::F64
                && item_type != value_type::BOOL;
            if is_int && len <= MAX_KEPT_ARRAY_ITEMS {
                self.check_count(len, size, key)?;
                for _ in 0..len {
                    if let Some(GgufValue::Int(v)) = self.scalar(item_type, key)? {
                        ints.push(v);
                    }
                }
            } else {
                let total = len.checked_mul(size).ok_or_else(|| {
                    bad(key, format!("is an array of {len} items: impossibly large"))
                })?;
                self.take(total, key)?;
            }
        } else if item_type == value_type::STRING {
            self.check_count(len, MIN_STRING_BYTES, key)?;
            for _ in 0..len {
                self.string(key)?;
            }
        } else {
            return Err(bad(
                key,
                format!(
                    "is an array of unsupported item type {item_type} (nested arrays are not read)"
                ),
            ));
        }
        Ok(GgufValue::Array { len, ints })
    }
}

/// Size in bytes of a fixed-size GGUF value type.
fn fixed_size(ty: u32) -> Option<u64> {
    use value_type as v;
    match ty {
        v::U8 | v::I8 | v::BOOL => Some(1),
        v::U16 | v::I16 => Some(2),
        v::U32 | v::I32 | v::F32 => Some(4),
        v::U64 | v::I64 | v::F64 => Some(8),
        _ => None,
    }
}

fn bad(field: &str, problem: String) -> FileError {
    FileError::BadField {
        format: FORMAT,
        field: field.to_owned(),
        problem,
    }
}

/// Parse a GGUF header from the first bytes of a file.
///
/// `file_bytes` is the whole file's size when known: then a count that cannot fit the file is an
/// error at once, and every tensor's data must lie inside the file (a truncated download is a
/// [`FileError::Truncated`] naming the first tensor it cuts). Returns
/// [`FileError::NeedMoreBytes`] when `bytes` ends inside the header: read at least that many bytes
/// of the file and call again.
pub fn parse(bytes: &[u8], file_bytes: Option<u64>) -> Result<GgufHeader, FileError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        file_bytes,
    };
    let magic = r.array::<4>("magic")?;
    if &magic != GGUF_MAGIC {
        return Err(FileError::WrongFormat {
            format: FORMAT,
            found: String::from_utf8_lossy(&magic).into_owned(),
        });
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(FileError::UnsupportedVersion { version });
    }
    let tensor_count = r.u64("tensor_count")?;
    let kv_count = r.u64("metadata_kv_count")?;
    r.check_count(kv_count, MIN_KV_BYTES, "metadata_kv_count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string("metadata key")?;
        let ty = r.u32(&key)?;
        let value = r.value(ty, &key)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(bad(
                &key,
                "appears twice in the metadata: the file is corrupt".into(),
            ));
        }
    }
    r.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, "tensor_count")?;
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(bad(
                    "general.alignment",
                    format!("is {v:?}; it must be a power of two"),
                ));
            }
        },
    };
    let mut tensors = Vec::new();
    let mut names = BTreeSet::new();
    let mut total_elements = 0u64;
    for _ in 0..tensor_count {
        let name = r.string("tensor name")?;
        let field = format!("tensor `{name}`");
        let n_dims = r.u32(&field)?;
        if n_dims > MAX_DIMS {
            return Err(bad(
                &field,
                format!("has {n_dims} dimensions; ggml allows at most {MAX_DIMS}"),
            ));
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            shape.push(r.u64(&field)?);
        }
        shape.reverse();
        let type_id = r.u32(&field)?;
        let offset = r.u64(&field)?;
        let ggml_type = ggml_type(type_id).ok_or_else(|| {
            bad(
                &field,
                format!("has unknown ggml type {type_id}; a newer llama.cpp may know it"),
            )
        })?;
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d).filter(|&e| e <= MAX_DIM))
            .ok_or_else(|| {
                bad(
                    &field,
                    format!("has shape {shape:?}, whose element count overflows"),
                )
            })?;
        let row = shape.last().copied().unwrap_or(1);
        if row % ggml_type.block_elements != 0 {
            return Err(bad(
                &field,
                format!(
                    "has rows of {row} elements, not a multiple of {}'s block of {}",
                    ggml_type.name, ggml_type.block_elements
                ),
            ));
        }
        let tensor_bytes = (elements / ggml_type.block_elements)
            .checked_mul(ggml_type.block_bytes)
            .ok_or_else(|| bad(&field, format!("has shape {shape:?}, whose size overflows")))?;
        total_elements = total_elements
            .checked_add(elements)
            .ok_or_else(|| bad(&field, "brings the parameter count past 2^64".into()))?;
        if offset % alignment != 0 {
            return Err(bad(
                &field,
                format!("has data offset {offset}, not a multiple of the alignment {alignment}"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(bad(&field, "appears twice: the file is corrupt".into()));
        }
        tensors.push((offset, tensor_bytes, name, shape, ggml_type));
    }
    let header_bytes = r.pos();
    let data_offset = header_bytes
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| bad("general.alignment", "overflows the data offset".into()))?;
    // Data ranges: in offset order, none may overlap the next, and with the file's size known,
    // each must end inside the file.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors.get(i).map(|t| t.0));
    let mut previous: Option<(u64, &str)> = None;
    let mut file_offsets = vec![0u64; tensors.len()];
    for i in order {
        let Some((offset, tensor_bytes, name, _, _)) = tensors.get(i) else {
            continue;
        };
        let field = format!("tensor `{name}`");
        let start = data_offset
            .checked_add(*offset)
            .ok_or_else(|| bad(&field, format!("has data offset {offset} past 2^64")))?;
        let end = start
            .checked_add(*tensor_bytes)
            .ok_or_else(|| bad(&field, format!("has data offset {offset} past 2^64")))?;
        if let Some((previous_end, previous_name)) = previous
            && start < previous_end
        {
            return Err(bad(
                &field,
                format!(
                    "has data starting at byte {start}, inside tensor `{previous_name}`'s data"
                ),
            ));
        }
        if let Some(file_bytes) = file_bytes
            && end > file_bytes
        {
            return Err(FileError::Truncated {
                what: format!("tensor `{name}`'s data (bytes {start}..{end})"),
                need: end,
                file_bytes,
            });
        }
        if let Some(slot) = file_offsets.get_mut(i) {
            *slot = start;
        }
        previous = Some((end, name));
    }
    let tensors = tensors
        .into_iter()
        .zip(file_offsets)
        .map(
            |((_, bytes, name, shape, ggml_type), file_offset)| GgufTensor {
                name,
                shape,
                ggml_type,
                bytes,
                file_offset,
            },
        )
        .collect();
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        header_bytes,
        data_offset,
        file_bytes,
    })
}
