//! Tests of the checkpoint header readers: exact counts from generated headers, and hostile
//! headers (each regression named after the bug) giving a clear error, no panic and no large
//! allocation.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use super::{
    CheckpointWeights, FileError,
    gguf_header::{self, GgufHeader},
    safetensors_header::{self, SafetensorsHeader},
    spec_from_gguf, writer,
};
use crate::model::Architecture;

/// The system allocator, noting the largest request made on each thread: hostile headers must be
/// rejected without allocating what they claim.
struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(bytes)));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Most bytes one allocation may take while a small hostile header is rejected.
const SMALL_ALLOCATION_BYTES: usize = 1 << 20;

/// Run `f` and return its result with the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// `f` fails with an error whose message contains every word of `words`, allocating little.
#[track_caller]
fn rejects<T: std::fmt::Debug>(
    f: impl FnOnce() -> Result<T, FileError>,
    words: &[&str],
) -> FileError {
    let (result, largest) = largest_allocation(f);
    let err = result.expect_err("a hostile header must be an error");
    let message = err.to_string();
    for w in words {
        assert!(message.contains(w), "`{message}` should mention `{w}`");
    }
    assert!(
        largest < SMALL_ALLOCATION_BYTES,
        "rejecting it allocated {largest} bytes at once: {message}"
    );
    err
}

// ---------- GGUF: a little-endian byte builder for hand-made (hostile) headers ----------

#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn gguf(version: u32, tensor_count: u64, kv_count: u64) -> Bytes {
        Bytes::default()
            .raw(b"GGUF")
            .u32(version)
            .u64(tensor_count)
            .u64(kv_count)
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend(b);
        self
    }
    fn u32(self, v: u32) -> Self {
        self.raw(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Self {
        self.raw(&v.to_le_bytes())
    }
    fn string(self, s: &str) -> Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.string(key).u32(4).u32(v)
    }
    fn tensor(self, name: &str, dims_innermost_first: &[u64], ty: u32, offset: u64) -> Self {
        let mut b = self.string(name).u32(dims_innermost_first.len() as u32);
        for d in dims_innermost_first {
            b = b.u64(*d);
        }
        b.u32(ty).u64(offset)
    }
}

/// ggml type ids used below (llama.cpp `enum ggml_type`).
const F32: u32 = 0;
const Q4_0: u32 = 2;
const Q4_K: u32 = 12;
const Q6_K: u32 = 14;

fn sample() -> writer::HeaderFixture {
    writer::gguf(
        "llama",
        &[("llama.block_count", 2), ("llama.embedding_length", 256)],
        &[
            ("token_embd.weight", &[1000, 256], Q4_K),
            ("blk.0.attn_norm.weight", &[256], F32),
            ("output.weight", &[1000, 256], Q6_K),
        ],
    )
}

fn parse_sample() -> GgufHeader {
    let f = sample();
    gguf_header::parse(&f.header, Some(f.file_bytes)).unwrap()
}

#[test]
fn gguf_reads_tensors_with_exact_bytes_and_offsets() {
    let f = sample();
    let h = parse_sample();
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
    assert_eq!(h.tensor_bytes(), 144_000 + 1024 + 210_000);
    assert_eq!(h.type_breakdown()[0].0, "Q6_K");
    assert_eq!(h.data_offset, f.header.len() as u64);
    assert_eq!(h.tensors[0].file_offset, h.data_offset);
    assert_eq!(h.tensors[1].file_offset, h.data_offset + 144_000);
    // The last tensor's data ends inside the file's final alignment padding.
    let last = &h.tensors[2];
    assert_eq!(
        (last.file_offset + last.bytes).next_multiple_of(32),
        f.file_bytes
    );
    // Without the file's size the header alone parses the same.
    let alone = gguf_header::parse(&f.header, None).unwrap();
    assert_eq!(alone.tensors, h.tensors);
}

#[test]
fn gguf_every_prefix_asks_for_more_bytes_and_the_loop_ends() {
    let f = sample();
    // The fixture's header is padded to the alignment; the header proper ends before.
    let header_bytes = parse_sample().header_bytes as usize;
    for n in 0..header_bytes {
        match gguf_header::parse(&f.header[..n], Some(f.file_bytes)) {
            Err(FileError::NeedMoreBytes { have, need, .. }) => {
                assert_eq!(have, n as u64);
                assert!(need > have, "prefix {n}: need {need}");
            }
            other => panic!("prefix {n}: {other:?}"),
        }
        // The same bytes as the whole file: a truncated download, not a request for more (a
        // count that cannot fit says the file is corrupt or truncated).
        match gguf_header::parse(&f.header[..n], Some(n as u64)) {
            Err(FileError::Truncated { .. }) => {}
            Err(e @ FileError::BadField { .. }) => assert!(e.to_string().contains("truncated")),
            other => panic!("prefix {n} as a whole file: {other:?}"),
        }
    }
    // A caller that reads exactly what is asked for gets there.
    let mut read = 0usize;
    let mut rounds = 0;
    let header = loop {
        rounds += 1;
        assert!(rounds < 100, "the need must grow");
        match gguf_header::parse(&f.header[..read], None) {
            Ok(h) => break h,
            Err(FileError::NeedMoreBytes { need, .. }) => read = need as usize,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(header.tensors.len(), 3);
}

#[test]
fn gguf_rejects_other_files() {
    rejects(
        || gguf_header::parse(b"PK\x03\x04 not gguf", None),
        &["not a GGUF file", "PK"],
    );
    let mut v1 = sample().header;
    v1[4] = 1;
    assert_eq!(
        gguf_header::parse(&v1, None),
        Err(FileError::UnsupportedVersion { version: 1 })
    );
    assert!(
        FileError::UnsupportedVersion { version: 1 }
            .to_string()
            .starts_with("GGUF version 1")
    );
    let bad_type = writer::gguf("llama", &[], &[("x", &[32], 99)]);
    rejects(
        || gguf_header::parse(&bad_type.header, None),
        &["`x`", "ggml type 99"],
    );
    let bad_blocks = writer::gguf("llama", &[], &[("x", &[33], Q4_0)]);
    rejects(
        || gguf_header::parse(&bad_blocks.header, None),
        &["`x`", "33", "block of 32"],
    );
}

#[test]
fn regression_tensor_count_huge_is_an_error_before_reading_tensors() {
    let bytes = Bytes::gguf(3, u64::MAX, 0).0;
    rejects(
        || gguf_header::parse(&bytes, None),
        &["tensor_count", "impossibly large"],
    );
    let bytes = Bytes::gguf(3, 1 << 40, 0).0;
    rejects(
        || gguf_header::parse(&bytes, Some(1 << 20)),
        &["tensor_count", "1099511627776", "corrupt"],
    );
    // Without the file's size: a request for more bytes than any header has, at once.
    let err = rejects(
        || gguf_header::parse(&bytes, None),
        &["GGUF header continues"],
    );
    assert!(matches!(err, FileError::NeedMoreBytes { need, .. } if need > 1 << 44));
}

#[test]
fn regression_site_gguf_tensor_count_0xffffffff_allocates_nothing() {
    // The site's reader once allocated per header count before any range check; it now goes
    // through this parser, which checks the count against the bytes present first.
    let bytes = Bytes::gguf(3, 0xFFFF_FFFF, 0).0;
    rejects(
        || gguf_header::parse(&bytes, Some(64 << 20)),
        &["tensor_count", "4294967295"],
    );
    rejects(
        || gguf_header::parse(&bytes, Some(bytes.len() as u64)),
        &["tensor_count"],
    );
}

#[test]
fn regression_metadata_count_huge_is_an_error() {
    let bytes = Bytes::gguf(3, 0, u64::MAX / 2).0;
    rejects(
        || gguf_header::parse(&bytes, Some(bytes.len() as u64)),
        &["metadata_kv_count", "impossibly large"],
    );
    let bytes = Bytes::gguf(3, 0, 1 << 32).0;
    rejects(
        || gguf_header::parse(&bytes, Some(1 << 30)),
        &["metadata_kv_count", "corrupt"],
    );
}

#[test]
fn regression_string_length_beyond_the_buffer() {
    // A key claiming u64::MAX bytes: its end overflows.
    let bytes = Bytes::gguf(3, 0, 1).u64(u64::MAX).raw(&[0; 16]).0;
    rejects(
        || gguf_header::parse(&bytes, None),
        &["metadata key", "impossible length"],
    );
    // A value string claiming 1 TiB in a 1 MiB file.
    let bytes = Bytes::gguf(3, 0, 1)
        .string("general.name")
        .u32(8)
        .u64(1 << 40)
        .raw(b"tiny")
        .0;
    let err = rejects(
        || gguf_header::parse(&bytes, Some(1 << 20)),
        &["truncated", "general.name"],
    );
    assert!(matches!(err, FileError::Truncated { .. }));
    // Same without the size: asks for the bytes, allocates nothing for them.
    let err = rejects(|| gguf_header::parse(&bytes, None), &["continues"]);
    assert!(matches!(err, FileError::NeedMoreBytes { need, .. } if need > 1 << 40));
    // A string array claiming 2^61 items.
    let bytes = Bytes::gguf(3, 0, 1)
        .string("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(1 << 61)
        .0;
    rejects(
        || gguf_header::parse(&bytes, Some(1 << 20)),
        &["tokenizer.ggml.tokens", "impossibly large"],
    );
    // An integer array claiming 2^62 items of 8 bytes.
    let bytes = Bytes::gguf(3, 0, 1)
        .string("llama.head_counts")
        .u32(9)
        .u32(10)
        .u64(1 << 62)
        .0;
    rejects(
        || gguf_header::parse(&bytes, None),
        &["llama.head_counts", "impossibly large"],
    );
}

#[test]
fn regression_n_dims_above_four() {
    let bytes = Bytes::gguf(3, 1, 0)
        .string("w")
        .u32(u32::MAX)
        .raw(&[0; 64])
        .0;
    rejects(
        || gguf_header::parse(&bytes, None),
        &["`w`", "4294967295 dimensions", "at most 4"],
    );
    let bytes = Bytes::gguf(3, 1, 0)
        .tensor("w", &[32, 1, 1, 1, 1], F32, 0)
        .0;
    rejects(
        || gguf_header::parse(&bytes, None),
        &["`w`", "5 dimensions"],
    );
}

#[test]
fn regression_dims_whose_product_overflows() {
    let bytes = Bytes::gguf(3, 1, 0)
        .tensor("w", &[1 << 32, 1 << 32, 4], F32, 0)
        .0;
    rejects(|| gguf_header::parse(&bytes, None), &["`w`", "overflows"]);
    // Each dimension fits, the element count does not fit ggml's int64.
    let bytes = Bytes::gguf(3, 1, 0)
        .tensor("w", &[1 << 32, 1 << 31], F32, 0)
        .0;
    rejects(|| gguf_header::parse(&bytes, None), &["`w`", "overflows"]);
    // The sum over tensors overflows though each tensor fits: four I8 tensors of 2^62 elements.
    let big = [1u64 << 31, 1 << 31];
    let mut b = Bytes::gguf(3, 4, 0);
    for name in ["a", "b", "c", "d"] {
        b = b.tensor(name, &big, 24, 0);
    }
    rejects(
        || gguf_header::parse(&b.0, None),
        &["`d`", "parameter count"],
    );
}

#[test]
fn regression_offsets_beyond_the_file() {
    let f = sample();
    let h = parse_sample();
    // Move the first tensor's offset far past the end.
    let mut bytes = f.header.clone();
    let name = b"token_embd.weight";
    let at =
        bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 2 * 8 + 4;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = rejects(
        || gguf_header::parse(&bytes, Some(f.file_bytes)),
        &["truncated", "`token_embd.weight`"],
    );
    assert!(matches!(err, FileError::Truncated { file_bytes, .. } if file_bytes == f.file_bytes));
    // An offset that overflows with the data start.
    bytes[at..at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    rejects(
        || gguf_header::parse(&bytes, None),
        &["`token_embd.weight`", "2^64"],
    );
    // Misaligned.
    bytes[at..at + 8].copy_from_slice(&7u64.to_le_bytes());
    rejects(
        || gguf_header::parse(&bytes, None),
        &["`token_embd.weight`", "alignment 32"],
    );
    // Overlapping: the first tensor moved onto the second's data.
    let second = h.tensors[1].file_offset - h.data_offset;
    bytes[at..at + 8].copy_from_slice(&second.to_le_bytes());
    rejects(|| gguf_header::parse(&bytes, None), &["inside tensor"]);
}

#[test]
fn regression_truncated_file_reads_as_an_error_naming_the_tensor() {
    let f = sample();
    let last = &parse_sample().tensors[2];
    let data_end = last.file_offset + last.bytes;
    // Cutting only the final padding leaves every tensor whole.
    assert!(gguf_header::parse(&f.header, Some(data_end)).is_ok());
    let err = rejects(
        || gguf_header::parse(&f.header, Some(data_end - 1)),
        &["truncated", "`output.weight`", "download it again"],
    );
    assert_eq!(
        err,
        FileError::Truncated {
            what: format!(
                "tensor `output.weight`'s data (bytes {}..{data_end})",
                data_end - 210_000,
            ),
            need: data_end,
            file_bytes: data_end - 1,
        }
    );
}

#[test]
fn gguf_duplicates_are_errors() {
    let dup = writer::gguf("llama", &[], &[("x", &[32], F32), ("x", &[32], F32)]);
    rejects(|| gguf_header::parse(&dup.header, None), &["`x`", "twice"]);
    let bytes = Bytes::gguf(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2).0;
    rejects(|| gguf_header::parse(&bytes, None), &["a", "twice"]);
}

#[test]
fn gguf_random_corruption_never_panics() {
    // Deterministic xorshift: flip bytes all over the header; every outcome is Ok or an error.
    let f = sample();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2000 {
        let mut bytes = f.header.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % bytes.len() as u64) as usize;
            bytes[i] = (state >> 32) as u8;
        }
        let (_, largest) = largest_allocation(|| gguf_header::parse(&bytes, Some(f.file_bytes)));
        assert!(largest < SMALL_ALLOCATION_BYTES, "{largest} bytes at once");
    }
}

// ---------- GGUF → ModelSpec ----------

#[test]
fn gguf_metadata_gives_a_spec() {
    let f = writer::gguf(
        "llama",
        &[
            ("llama.block_count", 2),
            ("llama.embedding_length", 64),
            ("llama.attention.head_count", 4),
            ("llama.attention.head_count_kv", 2),
            ("llama.feed_forward_length", 128),
            ("llama.context_length", 2048),
            ("general.file_type", 15),
        ],
        &[
            ("token_embd.weight", &[100, 64], F32),
            ("blk.0.attn_norm.weight", &[64], F32),
            ("blk.1.attn_norm.weight", &[64], F32),
        ],
    );
    let h = gguf_header::parse(&f.header, Some(f.file_bytes)).unwrap();
    let m = spec_from_gguf(&h, "tiny.gguf").unwrap();
    assert_eq!(m.spec.architecture, Architecture::Llama);
    assert_eq!(m.spec.head_dim, 16);
    assert_eq!(m.spec.num_kv_heads, 2);
    assert_eq!(m.spec.vocab_size, 100);
    assert_eq!(m.spec.layer_attention.len(), 2);
    assert!(m.spec.tie_word_embeddings);
    assert_eq!(m.file_type.as_deref(), Some("Q4_K_M"));
    let no_layers = writer::gguf("llama", &[], &[]);
    let h = gguf_header::parse(&no_layers.header, None).unwrap();
    let err = spec_from_gguf(&h, "x").unwrap_err().to_string();
    assert!(err.contains("llama.block_count"), "{err}");
}

#[test]
fn regression_block_count_0xffffffff_allocates_nothing_per_layer() {
    let f = writer::gguf(
        "llama",
        &[
            ("llama.block_count", u32::MAX),
            ("llama.embedding_length", 64),
            ("llama.attention.head_count", 4),
        ],
        &[("token_embd.weight", &[100, 64], F32)],
    );
    let h = gguf_header::parse(&f.header, Some(f.file_bytes)).unwrap();
    rejects(
        || spec_from_gguf(&h, "x.gguf"),
        &["llama.block_count", "4294967295", "corrupt"],
    );
}

// ---------- safetensors ----------

fn st_file(header: &str, data_bytes: u64) -> (Vec<u8>, u64) {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    let size = out.len() as u64 + data_bytes;
    (out, size)
}

#[test]
fn safetensors_reads_tensors_and_checks_size() {
    let h = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}"#;
    let (head, size) = st_file(h, 24);
    let parsed = safetensors_header::parse(&head, Some(size)).unwrap();
    assert_eq!(parsed.tensors[0].name, "a");
    assert_eq!(parsed.tensors[0].dtype, "BF16");
    assert_eq!(parsed.tensors[0].file_offset, 8 + h.len() as u64);
    assert_eq!(parsed.tensors[1].file_offset, 8 + h.len() as u64 + 8);
    assert_eq!(parsed.parameters(), 8);
    assert_eq!(parsed.tensor_bytes(), 24);
    assert_eq!(parsed.header_bytes, head.len() as u64);
    assert_eq!(
        parsed.metadata.get("format").map(String::as_str),
        Some("pt")
    );
    assert_eq!(safetensors_header::parse(&head, None).unwrap(), parsed);
    // Trailing bytes that belong to no tensor.
    rejects(
        || safetensors_header::parse(&head, Some(size + 1)),
        &["data_offsets", "1 bytes"],
    );
}

#[test]
fn safetensors_prefixes_ask_for_the_header_length() {
    let f = writer::safetensors(&[("w", "BF16", &[4, 4])]);
    for n in 0..f.header.len() {
        let need = if n < 8 { 8 } else { f.header.len() as u64 };
        assert_eq!(
            safetensors_header::parse(&f.header[..n], Some(f.file_bytes)),
            Err(FileError::NeedMoreBytes {
                format: "safetensors",
                have: n as u64,
                need
            }),
            "prefix {n}"
        );
    }
}

#[test]
fn safetensors_offsets_beyond_four_gib_parse() {
    let big = 3_000_000_000u64;
    let h = format!(
        r#"{{"x":{{"dtype":"F16","shape":[{big}],"data_offsets":[0,{}]}}}}"#,
        big * 2
    );
    let (head, size) = st_file(&h, big * 2);
    let parsed = safetensors_header::parse(&head, Some(size)).unwrap();
    assert_eq!(parsed.tensor_bytes(), big * 2);
}

#[test]
fn safetensors_names_the_bad_tensor() {
    let (head, size) = st_file(
        r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        8,
    );
    rejects(
        || safetensors_header::parse(&head, Some(size)),
        &["`w`", "needs 12 bytes", "span 8"],
    );
    let (head, size) = st_file("not json", 0);
    rejects(
        || safetensors_header::parse(&head, Some(size)),
        &["not a JSON object"],
    );
    let (head, size) = st_file(
        r#"{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
        2,
    );
    rejects(
        || safetensors_header::parse(&head, Some(size)),
        &["`w`", "12 bits"],
    );
    let (head, size) = st_file(
        r#"{"w":{"dtype":"Q9","shape":[3],"data_offsets":[0,2]}}"#,
        2,
    );
    rejects(
        || safetensors_header::parse(&head, Some(size)),
        &["`w`", "Q9"],
    );
    let (head, size) = st_file(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        6,
    );
    rejects(
        || safetensors_header::parse(&head, Some(size)),
        &["`b`", "overlap"],
    );
}

#[test]
fn regression_safetensors_header_length_beyond_the_file() {
    let bytes = 50_000_000u64.to_le_bytes();
    let err = rejects(
        || safetensors_header::parse(&bytes, Some(4096)),
        &["truncated", "50000000-byte"],
    );
    assert!(matches!(
        err,
        FileError::Truncated {
            need: 50_000_008,
            file_bytes: 4096,
            ..
        }
    ));
    rejects(
        || safetensors_header::parse(&u64::MAX.to_le_bytes(), None),
        &["header length", "not a safetensors file"],
    );
    // Without the size: asks for exactly the header, allocates nothing for it.
    let err = rejects(|| safetensors_header::parse(&bytes, None), &["continues"]);
    assert!(matches!(
        err,
        FileError::NeedMoreBytes {
            need: 50_000_008,
            ..
        }
    ));
}

#[test]
fn regression_safetensors_truncated_file_names_the_tensor() {
    let f = writer::safetensors(&[("a", "BF16", &[8, 8]), ("b", "F32", &[8])]);
    rejects(
        || safetensors_header::parse(&f.header, Some(f.file_bytes - 1)),
        &["truncated", "`b`"],
    );
    rejects(
        || safetensors_header::parse(&f.header, Some(f.file_bytes - 33)),
        &["truncated", "`a`"],
    );
}

#[test]
fn regression_safetensors_dims_whose_product_overflows() {
    let (head, size) = st_file(
        r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#,
        0,
    );
    rejects(
        || safetensors_header::parse(&head, Some(size)),
        &["`w`", "overflows"],
    );
}

// ---------- CheckpointWeights ----------

fn shard(name: &str, tensors: &[writer::SafetensorsTensorDef<'_>]) -> (String, SafetensorsHeader) {
    let f = writer::safetensors(tensors);
    let h = safetensors_header::parse(&f.header, Some(f.file_bytes)).unwrap();
    (name.to_owned(), h)
}

#[test]
fn weights_of_a_gguf_are_exact() {
    let w = CheckpointWeights::from_gguf(&parse_sample(), "m.gguf");
    assert_eq!(w.parameters, 256_000 * 2 + 256);
    assert_eq!(w.bytes, 144_000 + 1024 + 210_000);
    assert_eq!(w.tensor_count, 3);
    assert!(w.parameters_exact);
    assert_eq!(w.by_dtype[0].dtype, "Q6_K");
    assert_eq!(w.by_dtype[0].bytes, 210_000);
    // No general.file_type: the type holding most bytes.
    assert_eq!(w.format_name.as_deref(), Some("Q6_K"));
}

#[test]
fn weights_of_shards_are_summed() {
    let a = shard(
        "model-00001-of-00002.safetensors",
        &[
            ("model.embed_tokens.weight", "BF16", &[1000, 64]),
            ("model.norm.weight", "F32", &[64]),
        ],
    );
    let b = shard(
        "model-00002-of-00002.safetensors",
        &[("lm_head.weight", "BF16", &[1000, 64])],
    );
    let w = CheckpointWeights::from_safetensors(&[a, b]).unwrap();
    assert_eq!(w.parameters, 128_064);
    assert_eq!(w.bytes, 256_000 + 256);
    assert_eq!(w.tensor_count, 3);
    assert_eq!(w.format_name.as_deref(), Some("bf16"));
    assert_eq!(
        w.source,
        "model-00001-of-00002.safetensors, model-00002-of-00002.safetensors"
    );
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(serde_json::from_str::<CheckpointWeights>(&json).unwrap(), w);
}

#[test]
fn regression_duplicate_shard_tensors() {
    let a = shard("a.safetensors", &[("x", "F16", &[4])]);
    let b = shard("b.safetensors", &[("y", "F16", &[4]), ("x", "F16", &[4])]);
    let err = rejects(
        || CheckpointWeights::from_safetensors(&[a.clone(), b]),
        &["`x`", "a.safetensors", "b.safetensors"],
    );
    assert!(matches!(err, FileError::DuplicateTensor { .. }));
    // The same shard dropped twice.
    rejects(
        || CheckpointWeights::from_safetensors(&[a.clone(), a]),
        &["`x`"],
    );
}

#[test]
fn weights_of_fp8_checkpoints() {
    // DeepSeek / Qwen FP8: e4m3 weights, an fp32 scale per 128 × 128 block.
    let s = shard(
        "fp8.safetensors",
        &[
            ("l.q_proj.weight", "F8_E4M3", &[256, 512]),
            ("l.q_proj.weight_scale_inv", "F32", &[2, 4]),
            ("l.norm.weight", "BF16", &[512]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[s]).unwrap();
    assert_eq!(w.parameters, 256 * 512 + 512);
    assert_eq!(w.bytes, 256 * 512 + 8 * 4 + 512 * 2);
    assert_eq!(w.format_name.as_deref(), Some("fp8"));
    assert!(w.parameters_exact);
}

#[test]
fn weights_of_mxfp4_checkpoints() {
    // gpt-oss: experts' [E, out, in / 32, 16] U8 blocks (two fp4 values a byte) and an e8m0 scale
    // per 32 values; attention in bf16.
    let s = shard(
        "gpt-oss.safetensors",
        &[
            ("l.mlp.experts.gate_up_proj_blocks", "U8", &[4, 128, 2, 16]),
            ("l.mlp.experts.gate_up_proj_scales", "U8", &[4, 128, 2]),
            ("l.self_attn.q_proj.weight", "BF16", &[64, 64]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[s]).unwrap();
    assert_eq!(w.parameters, 4 * 128 * 64 + 64 * 64);
    assert_eq!(w.bytes, 4 * 128 * 32 + 4 * 128 * 2 + 64 * 64 * 2);
    assert_eq!(w.format_name.as_deref(), Some("mxfp4"));
}

#[test]
fn weights_of_gptq_and_awq_checkpoints() {
    // GPTQ 4-bit, group 128, in = 512, out = 256: qweight [in / 8, out], qzeros [in / 128, out / 8],
    // scales [in / 128, out], g_idx [in].
    let gptq = shard(
        "gptq.safetensors",
        &[
            ("l.q_proj.qweight", "I32", &[64, 256]),
            ("l.q_proj.qzeros", "I32", &[4, 32]),
            ("l.q_proj.scales", "F16", &[4, 256]),
            ("l.q_proj.g_idx", "I32", &[512]),
            ("l.q_proj.bias", "F16", &[256]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[gptq]).unwrap();
    assert_eq!(w.parameters, 512 * 256 + 256);
    assert_eq!(
        w.bytes,
        64 * 256 * 4 + 4 * 32 * 4 + 4 * 256 * 2 + 512 * 4 + 256 * 2
    );
    assert_eq!(w.format_name.as_deref(), Some("gptq-4bit-g128"));
    assert!(w.parameters_exact);
    // AWQ 4-bit, group 128: qweight [in, out / 8], no g_idx.
    let awq = shard(
        "awq.safetensors",
        &[
            ("l.q_proj.qweight", "I32", &[512, 32]),
            ("l.q_proj.qzeros", "I32", &[4, 32]),
            ("l.q_proj.scales", "F16", &[4, 256]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[awq]).unwrap();
    assert_eq!(w.parameters, 512 * 256);
    assert_eq!(w.format_name.as_deref(), Some("awq-4bit-g128"));
    // GPTQ 8-bit: four values a word.
    let gptq8 = shard(
        "gptq8.safetensors",
        &[
            ("l.q_proj.qweight", "I32", &[128, 256]),
            ("l.q_proj.qzeros", "I32", &[4, 64]),
            ("l.q_proj.scales", "F16", &[4, 256]),
            ("l.q_proj.g_idx", "I32", &[512]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[gptq8]).unwrap();
    assert_eq!(w.parameters, 512 * 256);
    assert_eq!(w.format_name.as_deref(), Some("gptq-8bit-g128"));
}

#[test]
fn weights_of_bitsandbytes_checkpoints() {
    // nf4 with double quantization: [n / 2, 1] U8, absmax per 64 (u8 when nested), nested absmax.
    let n = 256 * 512;
    let nf4 = shard(
        "bnb.safetensors",
        &[
            ("l.q_proj.weight", "U8", &[n / 2, 1]),
            ("l.q_proj.weight.absmax", "U8", &[n / 64]),
            ("l.q_proj.weight.quant_map", "F32", &[16]),
            ("l.q_proj.weight.nested_absmax", "F32", &[n / 64 / 256]),
            ("l.q_proj.weight.nested_quant_map", "F32", &[256]),
            (
                "l.q_proj.weight.quant_state.bitsandbytes__nf4",
                "U8",
                &[100],
            ),
            ("l.norm.weight", "F16", &[512]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[nf4]).unwrap();
    assert_eq!(w.parameters, n + 512);
    assert_eq!(
        w.bytes,
        n / 2 + n / 64 + 16 * 4 + (n / 64 / 256) * 4 + 256 * 4 + 100 + 512 * 2
    );
    assert_eq!(w.format_name.as_deref(), Some("nf4+dq"));
    let int8 = shard(
        "int8.safetensors",
        &[
            ("l.q_proj.weight", "I8", &[256, 512]),
            ("l.q_proj.SCB", "F32", &[256]),
            ("l.q_proj.weight_format", "U8", &[1]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[int8]).unwrap();
    assert_eq!(w.parameters, 256 * 512);
    assert_eq!(w.format_name.as_deref(), Some("int8"));
}

#[test]
fn weights_of_mlx_checkpoints_say_the_bits_are_unknown() {
    // MLX 4-bit g64, in = 512, out = 256: U32 [out, in / 8], f16 scales and biases [out, in / 64].
    let mlx = shard(
        "mlx.safetensors",
        &[
            ("l.q_proj.weight", "U32", &[256, 64]),
            ("l.q_proj.scales", "F16", &[256, 8]),
            ("l.q_proj.biases", "F16", &[256, 8]),
        ],
    );
    let w = CheckpointWeights::from_safetensors(&[mlx]).unwrap();
    assert_eq!(w.bytes, 256 * 64 * 4 + 2 * 256 * 8 * 2);
    assert_eq!(w.parameters, 256 * 64);
    assert!(!w.parameters_exact);
    assert_eq!(w.format_name.as_deref(), Some("mlx"));
    // With config.json's group size the bits follow from the shapes, per tensor: a 4-bit
    // projection and an 8-bit head.
    let mixed = shard(
        "mlx.safetensors",
        &[
            ("l.q_proj.weight", "U32", &[256, 64]),
            ("l.q_proj.scales", "F16", &[256, 8]),
            ("l.q_proj.biases", "F16", &[256, 8]),
            ("lm_head.weight", "U32", &[1000, 128]),
            ("lm_head.scales", "F16", &[1000, 8]),
            ("lm_head.biases", "F16", &[1000, 8]),
            ("l.norm.weight", "BF16", &[512]),
        ],
    );
    let w =
        CheckpointWeights::from_safetensors_with(std::slice::from_ref(&mixed), Some(64)).unwrap();
    assert_eq!(w.parameters, 256 * 512 + 1000 * 512 + 512);
    assert!(w.parameters_exact);
    assert_eq!(w.format_name.as_deref(), Some("mlx-4bit-g64"));
    // A group size that does not fit the shapes leaves the count inexact, not wrong.
    let w = CheckpointWeights::from_safetensors_with(&[mixed], Some(48)).unwrap();
    assert!(!w.parameters_exact);
}

#[test]
fn reads_grow_to_what_the_header_needs() {
    let max = super::GGUF_MAX_HEADER_BYTES;
    assert_eq!(
        super::next_read_bytes(1 << 20, (1 << 20) + 1, None, max),
        Some(4 << 20)
    );
    assert_eq!(
        super::next_read_bytes(1 << 20, 9 << 20, None, max),
        Some(9 << 20)
    );
    assert_eq!(
        super::next_read_bytes(32 << 20, (32 << 20) + 1, None, max),
        Some(max)
    );
    assert_eq!(
        super::next_read_bytes(1 << 20, (1 << 20) + 1, Some(3 << 20), max),
        Some(3 << 20)
    );
    assert_eq!(super::next_read_bytes(1 << 20, max + 1, None, max), None);
}

#[test]
fn safetensors_random_corruption_never_panics() {
    let f = writer::safetensors(&[
        ("a", "BF16", &[8, 8]),
        ("b", "F8_E4M3", &[16]),
        ("c", "I32", &[4, 2]),
    ]);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..2000 {
        let mut bytes = f.header.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % bytes.len() as u64) as usize;
            bytes[i] = (state >> 40) as u8;
        }
        let (_, largest) =
            largest_allocation(|| safetensors_header::parse(&bytes, Some(f.file_bytes)));
        assert!(largest < SMALL_ALLOCATION_BYTES, "{largest} bytes at once");
    }
}
