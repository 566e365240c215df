//! Checkpoint headers: what a `.gguf` file or `.safetensors` shards hold, read from their headers
//! alone (never the weights), shared by the CLI and the site.
//!
//! * [`gguf_header::parse`] — a GGUF header: metadata and every tensor's type, shape and data
//!   range; [`spec_from_gguf`] turns its metadata into a [`crate::model::ModelSpec`].
//! * [`safetensors_header::parse`] — a safetensors header: every tensor's dtype, shape and range.
//! * [`CheckpointWeights`] — what the answer consumes: exact parameters and bytes of the
//!   checkpoint as shipped, per dtype, with the quantization recognised from the tensors.
//! * [`writer`] — small valid headers, for tests and examples.
//!
//! Callers read a prefix of the file and call a parser; [`FileError::NeedMoreBytes`] says how many
//! bytes to read before calling again. Give the file's total size when known: counts that cannot
//! fit are then rejected at once, and a truncated download is an error naming the tensor it cuts.
//! Every length in a header is checked against the bytes present before anything is allocated
//! for it.

pub mod gguf_header;
mod gguf_model;
pub mod safetensors_header;
pub mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use gguf_model::{GgufModel, llama_ftype_name, spec_from_gguf};

use gguf_header::GgufHeader;
use safetensors_header::SafetensorsHeader;

/// Bytes of a GGUF file to read first; callers grow the read (at least ×4, at least to
/// [`FileError::NeedMoreBytes`]'s `need`) until the header parses.
pub const GGUF_FIRST_READ_BYTES: u64 = 1 << 20;

/// Most bytes of a GGUF file read for its header. The largest real headers (a 256K-token
/// vocabulary with its scores and merges) are 10–20 MB; a header asking for more is corrupt.
pub const GGUF_MAX_HEADER_BYTES: u64 = 64 << 20;

/// How many bytes to read next for a header that needs `need` after `have` were read: at least
/// `need`, and at least four times `have`, so a long header takes few reads; capped at
/// `file_bytes` when known. `None` when that would pass `max_bytes`: the caller gives up.
pub fn next_read_bytes(
    have: u64,
    need: u64,
    file_bytes: Option<u64>,
    max_bytes: u64,
) -> Option<u64> {
    if need > max_bytes {
        return None;
    }
    let want = need.max(have.saturating_mul(4)).min(max_bytes);
    Some(file_bytes.map_or(want, |size| want.min(size)))
}

/// What can go wrong reading a checkpoint header. Messages name the field and what to do; the
/// caller adds the file's name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FileError {
    /// The bytes given end inside the header: read at least `need` bytes from the start of the file
    /// and parse again. Distinct from [`FileError::Truncated`]: the file may well be complete.
    #[error(
        "the {format} header continues past the {have} bytes read: read the first {need} bytes of \
         the file and parse again"
    )]
    NeedMoreBytes {
        /// `GGUF` or `safetensors`.
        format: &'static str,
        /// Bytes given.
        have: u64,
        /// Bytes from the start of the file needed at least (more may follow).
        need: u64,
    },
    /// The file ends before something its header describes: a truncated download.
    #[error(
        "the file is truncated: it is {file_bytes} bytes but {what} needs {need}; download it again"
    )]
    Truncated {
        /// What the file ends inside, e.g. tensor `blk.0.attn_q.weight`'s data.
        what: String,
        /// Bytes the file must have for it.
        need: u64,
        /// The file's size.
        file_bytes: u64,
    },
    /// The first bytes are not this format's magic.
    #[error("not a {format} file: it starts with {found:?}; give a .gguf file")]
    WrongFormat {
        /// The format expected.
        format: &'static str,
        /// The first bytes found, as text.
        found: String,
    },
    /// A GGUF version this reader does not know.
    #[error(
        "GGUF version {version} is not supported (versions 2 and 3 are); re-convert the model with \
         a current llama.cpp"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A header field with an impossible, inconsistent or missing value.
    #[error("{format} header: {field} {problem}")]
    BadField {
        /// `GGUF` or `safetensors`.
        format: &'static str,
        /// The field, metadata key or tensor, e.g. `tensor_count` or tensor `output.weight`.
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The same tensor name in two shards.
    #[error(
        "tensor `{name}` is in both {first} and {second}: give the shards of one checkpoint, each \
         once"
    )]
    DuplicateTensor {
        /// The tensor's name.
        name: String,
        /// The shard it was first seen in.
        first: String,
        /// The shard it was seen in again.
        second: String,
    },
}

/// One dtype's share of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtypeShare {
    /// The element type as the file names it: `BF16`, `F8_E4M3`, `I32`, `Q4_K`, ...
    pub dtype: String,
    /// Elements stored in this dtype (packed elements count once: an `I32` holding eight 4-bit
    /// weights is one).
    pub elements: u64,
    /// Bytes stored in this dtype.
    pub bytes: u64,
}

/// A checkpoint's weights exactly as shipped, from its headers: what a model needs in memory
/// before any runtime overhead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointWeights {
    /// The file names, comma-separated.
    pub source: String,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Parameters: every weight's elements, with packed quantized tensors unpacked (GPTQ/AWQ
    /// `qweight`, bitsandbytes 4-bit, MXFP4 blocks) and quantization side data (scales, zeros,
    /// group indices, absmax) left out. Exact unless [`CheckpointWeights::parameters_exact`] is
    /// false.
    pub parameters: u64,
    /// False when some packed tensors' bit width is not in the headers (MLX: it is in
    /// `config.json`'s `quantization`); those count their stored elements.
    pub parameters_exact: bool,
    /// Bytes of every tensor, side data included: the exact weight memory as shipped.
    pub bytes: u64,
    /// Elements and bytes per stored dtype, most bytes first.
    pub by_dtype: Vec<DtypeShare>,
    /// The format, in headroom's format names where one applies: a llama.cpp file type
    /// (`Q4_K_M`, from `general.file_type`) for GGUF; `fp8`, `mxfp4`, `gptq-4bit-g128`,
    /// `awq-4bit-g128`, `nf4`, `nf4+dq`, `fp4`, `int8`, `mlx-4bit-g64` (`mlx` without the group
    /// size), or the main dtype (`bf16`, `fp16`,
    /// `fp32`) for safetensors.
    pub format_name: Option<String>,
}

/// Side data of quantized checkpoints, by tensor-name suffix: stored bytes, not parameters.
/// GPTQ/AWQ (`qzeros`, `scales`, `g_idx`), MLX (`scales`, `biases`), bitsandbytes (`absmax`,
/// `quant_map`, `nested_*`, `quant_state.*`, `SCB`, `weight_format`), FP8 (`weight_scale_inv`,
/// `weight_scale`, `input_scale`, KV `k_scale`/`v_scale`), MXFP4 (`_scales`).
const SIDE_DATA_SUFFIXES: &[&str] = &[
    ".qzeros",
    ".scales",
    ".g_idx",
    ".biases",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".quant_state.bitsandbytes__nf4",
    ".quant_state.bitsandbytes__fp4",
    ".SCB",
    ".weight_format",
    "weight_scale_inv",
    "weight_scale",
    "input_scale",
    ".k_scale",
    ".v_scale",
    "_scales",
];

/// Bits in the `I32` that GPTQ and AWQ pack quantized weights into.
const PACK_WORD_BITS: u64 = 32;
/// 4-bit values per byte (bitsandbytes 4-bit, MXFP4 blocks).
const NIBBLES_PER_BYTE: u64 = 2;

/// One tensor, whatever the file format.
struct TensorRef<'a> {
    name: &'a str,
    dtype: &'a str,
    shape: &'a [u64],
    elements: u64,
    bytes: u64,
}

impl CheckpointWeights {
    /// The weights of a GGUF file (its shapes are logical, so parameters are exact); the format is
    /// `general.file_type`'s name, else the ggml type holding the most bytes.
    pub fn from_gguf(header: &GgufHeader, source: &str) -> CheckpointWeights {
        let by_dtype: Vec<DtypeShare> = header
            .type_breakdown()
            .into_iter()
            .map(|(dtype, elements, bytes)| DtypeShare {
                dtype: dtype.to_owned(),
                elements,
                bytes,
            })
            .collect();
        let format_name = header
            .uint("general.file_type")
            .and_then(llama_ftype_name)
            .map(str::to_owned)
            .or_else(|| by_dtype.first().map(|d| d.dtype.clone()));
        CheckpointWeights {
            source: source.to_owned(),
            tensor_count: header.tensors.len() as u64,
            parameters: header.parameters(),
            parameters_exact: true,
            bytes: header.tensor_bytes(),
            by_dtype,
            format_name,
        }
    }

    /// The weights of one or more safetensors shards, `(file name, header)` each, summed. A tensor
    /// name in two shards is a [`FileError::DuplicateTensor`] (the same shard given twice, or
    /// shards of two checkpoints).
    pub fn from_safetensors(
        shards: &[(String, SafetensorsHeader)],
    ) -> Result<CheckpointWeights, FileError> {
        CheckpointWeights::from_safetensors_with(shards, None)
    }

    /// [`CheckpointWeights::from_safetensors`], given MLX's quantization group size
    /// (`quantization.group_size` in an MLX checkpoint's config.json): each packed tensor's bit
    /// width then follows from its shape and its scales' (`bits = 32 · packed cols / (scale cols ·
    /// group)`), so mixed-bit MLX checkpoints count exactly too.
    pub fn from_safetensors_with(
        shards: &[(String, SafetensorsHeader)],
        mlx_group_size: Option<u64>,
    ) -> Result<CheckpointWeights, FileError> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let mut tensors = Vec::new();
        for (file, header) in shards {
            for t in &header.tensors {
                if let Some(first) = seen.insert(&t.name, file) {
                    return Err(FileError::DuplicateTensor {
                        name: t.name.clone(),
                        first: first.to_owned(),
                        second: file.clone(),
                    });
                }
                tensors.push(TensorRef {
                    name: &t.name,
                    dtype: &t.dtype,
                    shape: &t.shape,
                    elements: t.elements(),
                    bytes: t.bytes,
                });
            }
        }
        let source = shards
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(summarise(source, &tensors, mlx_group_size))
    }
}

fn summarise(
    source: String,
    tensors: &[TensorRef<'_>],
    mlx_group_size: Option<u64>,
) -> CheckpointWeights {
    let by_name: HashMap<&str, &TensorRef<'_>> = tensors.iter().map(|t| (t.name, t)).collect();
    let sibling = |name: &str, from: &str, to: &str| -> Option<&TensorRef<'_>> {
        name.strip_suffix(from)
            .and_then(|stem| by_name.get(format!("{stem}{to}").as_str()).copied())
    };
    let mut scheme = Scheme::default();
    let mut parameters = 0u64;
    let mut parameters_exact = true;
    let mut bytes = 0u64;
    let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for t in tensors {
        bytes = bytes.saturating_add(t.bytes);
        let e = by.entry(t.dtype).or_default();
        e.0 = e.0.saturating_add(t.elements);
        e.1 = e.1.saturating_add(t.bytes);
        if t.name.ends_with(".nested_absmax") {
            scheme.bnb_double_quant = true;
        }
        if t.name.ends_with(".SCB") {
            scheme.bnb_int8 = true;
        }
        if t.name.ends_with(".quant_state.bitsandbytes__nf4") {
            scheme.bnb4 = Some("nf4");
        }
        if t.name.ends_with(".quant_state.bitsandbytes__fp4") {
            scheme.bnb4 = Some("fp4");
        }
        if t.dtype.starts_with("F8_") && t.elements > 1 && !is_side_data(t.name) {
            scheme.fp8 = true;
        }
        if is_side_data(t.name) {
            continue;
        }
        let logical = if t.name.ends_with(".qweight") {
            // GPTQ stores qweight [in / pack, out], AWQ [in, out / pack]; both store qzeros
            // [groups, out / pack] and scales [groups, out], so pack = scales cols / qzeros cols.
            let zeros = sibling(t.name, ".qweight", ".qzeros");
            let scales = sibling(t.name, ".qweight", ".scales");
            let g_idx = sibling(t.name, ".qweight", ".g_idx");
            match packing(t, zeros, scales, g_idx.is_some()) {
                Some(p) => {
                    scheme.packed_int.get_or_insert(p);
                    t.elements.saturating_mul(p.values_per_word)
                }
                None => {
                    parameters_exact = false;
                    t.elements
                }
            }
        } else if t.name.ends_with("_blocks")
            && t.dtype == "U8"
            && sibling(t.name, "_blocks", "_scales").is_some()
        {
            scheme.mxfp4 = true;
            t.elements.saturating_mul(NIBBLES_PER_BYTE)
        } else if t.dtype == "U8"
            && (sibling(t.name, "", ".quant_state.bitsandbytes__nf4").is_some()
                || sibling(t.name, "", ".quant_state.bitsandbytes__fp4").is_some())
        {
            t.elements.saturating_mul(NIBBLES_PER_BYTE)
        } else if t.dtype == "U32"
            && t.name.ends_with(".weight")
            && sibling(t.name, ".weight", ".scales").is_some()
            && sibling(t.name, ".weight", ".biases").is_some()
        {
            // MLX packs b-bit weights into U32 with an fp16 scale and bias per group; without the
            // group size (config.json) the bits are unknown.
            let scales = sibling(t.name, ".weight", ".scales");
            let packed = mlx_group_size.and_then(|g| Some((g, mlx_packing(t, scales?, g)?)));
            match packed {
                Some((group, (bits, in_features))) => {
                    if !matches!(scheme.mlx, Some(Some(_))) {
                        scheme.mlx = Some(Some((bits, group)));
                    }
                    let rows = t.elements / t.shape.last().copied().unwrap_or(1).max(1);
                    rows.saturating_mul(in_features)
                }
                None => {
                    scheme.mlx.get_or_insert(None);
                    parameters_exact = false;
                    t.elements
                }
            }
        } else {
            t.elements
        };
        parameters = parameters.saturating_add(logical);
    }
    let mut by_dtype: Vec<DtypeShare> = by
        .into_iter()
        .map(|(dtype, (elements, bytes))| DtypeShare {
            dtype: dtype.to_owned(),
            elements,
            bytes,
        })
        .collect();
    by_dtype.sort_by_key(|d| std::cmp::Reverse(d.bytes));
    let main_dtype = by_dtype
        .iter()
        .find(|d| matches!(d.dtype.as_str(), "BF16" | "F16" | "F32"))
        .map(|d| match d.dtype.as_str() {
            "F16" => "fp16".to_owned(),
            "F32" => "fp32".to_owned(),
            other => other.to_ascii_lowercase(),
        });
    CheckpointWeights {
        source,
        tensor_count: tensors.len() as u64,
        parameters,
        parameters_exact,
        bytes,
        by_dtype,
        format_name: scheme.name().or(main_dtype),
    }
}

fn is_side_data(name: &str) -> bool {
    SIDE_DATA_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// GPTQ or AWQ packing, from a `qweight` and its side tensors.
#[derive(Debug, Clone, Copy)]
struct Packing {
    /// GPTQ (has `g_idx`) or AWQ.
    gptq: bool,
    /// Quantized values per `I32`.
    values_per_word: u64,
    /// Input features per scale group.
    group_size: u64,
}

fn packing(
    qweight: &TensorRef<'_>,
    zeros: Option<&TensorRef<'_>>,
    scales: Option<&TensorRef<'_>>,
    gptq: bool,
) -> Option<Packing> {
    let (&[q_rows, _], Some(&[z_groups, z_cols]), Some(&[_, s_cols])) = (
        qweight.shape,
        zeros.map(|z| z.shape),
        scales.map(|s| s.shape),
    ) else {
        return None;
    };
    if qweight.dtype != "I32" || z_cols == 0 || z_groups == 0 || s_cols % z_cols != 0 {
        return None;
    }
    let values_per_word = s_cols / z_cols;
    if values_per_word == 0 || !PACK_WORD_BITS.is_multiple_of(values_per_word) {
        return None;
    }
    // GPTQ packs along the input (rows), AWQ along the output (columns).
    let in_features = if gptq {
        q_rows.checked_mul(values_per_word)?
    } else {
        q_rows
    };
    Some(Packing {
        gptq,
        values_per_word,
        group_size: in_features / z_groups,
    })
}

/// An MLX packed tensor's bits and input features, from its `U32` columns, its scales' columns
/// and the group size; `None` when they do not fit together.
fn mlx_packing(
    weight: &TensorRef<'_>,
    scales: &TensorRef<'_>,
    group_size: u64,
) -> Option<(u64, u64)> {
    let packed_cols = *weight.shape.last()?;
    let in_features = scales.shape.last()?.checked_mul(group_size)?;
    let bits_total = packed_cols.checked_mul(PACK_WORD_BITS)?;
    if in_features == 0 || !bits_total.is_multiple_of(in_features) {
        return None;
    }
    let bits = bits_total / in_features;
    (1..=8).contains(&bits).then_some((bits, in_features))
}

/// What the tensors say about the quantization.
#[derive(Debug, Default)]
struct Scheme {
    packed_int: Option<Packing>,
    bnb4: Option<&'static str>,
    bnb_double_quant: bool,
    bnb_int8: bool,
    mxfp4: bool,
    fp8: bool,
    /// MLX seen: with (bits, group size) of the first packed tensor when the group size was given.
    mlx: Option<Option<(u64, u64)>>,
}

impl Scheme {
    /// The format name; the most specific scheme wins (an MXFP4 or GPTQ model may keep a few
    /// layers in fp8 or bf16).
    fn name(&self) -> Option<String> {
        if let Some(p) = self.packed_int {
            let bits = PACK_WORD_BITS / p.values_per_word;
            let method = if p.gptq { "gptq" } else { "awq" };
            return Some(format!("{method}-{bits}bit-g{}", p.group_size));
        }
        if let Some(kind) = self.bnb4 {
            let dq = if self.bnb_double_quant { "+dq" } else { "" };
            return Some(format!("{kind}{dq}"));
        }
        if self.bnb_int8 {
            return Some("int8".into());
        }
        if self.mxfp4 {
            return Some("mxfp4".into());
        }
        match self.mlx {
            Some(Some((bits, group))) => return Some(format!("mlx-{bits}bit-g{group}")),
            Some(None) => return Some("mlx".into()),
            None => {}
        }
        if self.fp8 {
            return Some("fp8".into());
        }
        None
    }
}
