//! Decode simulation: one token of a dense model is a matrix–vector product over every weight,
//! so a dequantizing mat-vec over a weight buffer of a model's size gives tokens per second
//! without downloading a model. Weights are rows of [`HIDDEN`] columns in fp16, q8_0 or q4_0.
//!
//! Block formats keep GGUF's bytes per weight (q8_0: 34 bytes per 32 weights; q4_0: 18 per 32,
//! the low nibbles of a block's 16 bytes are weights 0–15, the high nibbles 16–31) but store the
//! quants and the f16 scales in two arrays, so every load is aligned — the layout GPU engines
//! repack GGUF blocks into.

use headroom_core::report::{DecodeMetric, Measurement, Metric, Status, Verification, params::key};

use crate::gpu::{Gpu, Measured, scoped};
use crate::kernels::fill::{Fill, Filler};
use crate::kernels::search::{Rejected, search};
use crate::kernels::{GIB, MeasureSettings, failed, rel_frobenius, skipped, wgsl_template};
use crate::pattern::{half_pair, pattern, piece_seed};
use crate::{ProbeError, Rng, params};

/// Columns of every weight row (a typical hidden size: Llama-3-8B's 4096).
pub const HIDDEN: u32 = 4096;
/// Weights per quantization block (GGUF q8_0 and q4_0).
const BLOCK: u32 = 32;
/// Invocations per workgroup.
const WORKGROUP_SIZE: u32 = 256;
/// Each region (quants or scales of one chunk) stays under 1 GiB: one binding, one fill seed.
const MAX_REGION_BYTES: u64 = GIB;
/// Rows compared with the CPU reference.
const CHECK_ROWS: u64 = 64;

/// Weight format of the simulated decode model (the three block layouts the decode kernels read;
/// not `headroom_core::quant::WeightFormat`, which names every format a model can be stored in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeFormat {
    /// f16 weights.
    F16,
    /// GGUF q8_0: int8 quants, one f16 scale per 32.
    Q8_0,
    /// GGUF q4_0: 4-bit quants (offset 8), one f16 scale per 32.
    Q4_0,
}

impl DecodeFormat {
    /// Every format, in run order: q4_0 first, the figure `headroom fit` prefers.
    pub const ALL: [DecodeFormat; 3] = [DecodeFormat::Q4_0, DecodeFormat::Q8_0, DecodeFormat::F16];

    /// The report's metric.
    pub fn metric(self) -> Metric {
        Metric::Decode(match self {
            DecodeFormat::F16 => DecodeMetric::Fp16,
            DecodeFormat::Q8_0 => DecodeMetric::Q8_0,
            DecodeFormat::Q4_0 => DecodeMetric::Q4_0,
        })
    }

    /// `fp16`, `q8_0`, `q4_0`.
    pub fn label(self) -> &'static str {
        match self {
            DecodeFormat::F16 => "fp16",
            DecodeFormat::Q8_0 => "q8_0",
            DecodeFormat::Q4_0 => "q4_0",
        }
    }

    /// Bytes of quants (or f16 weights) per row.
    fn quant_row_bytes(self) -> u64 {
        u64::from(HIDDEN)
            * match self {
                DecodeFormat::F16 => 2,
                DecodeFormat::Q8_0 => 1,
                DecodeFormat::Q4_0 => 0,
            }
            + if self == DecodeFormat::Q4_0 {
                u64::from(HIDDEN) / 2
            } else {
                0
            }
    }

    /// Bytes of f16 scales per row.
    fn scale_row_bytes(self) -> u64 {
        match self {
            DecodeFormat::F16 => 0,
            _ => u64::from(HIDDEN / BLOCK) * 2,
        }
    }

    /// Bytes per weight (fp16 2, q8_0 34/32, q4_0 18/32).
    pub fn bytes_per_weight(self) -> f64 {
        (self.quant_row_bytes() + self.scale_row_bytes()) as f64 / f64::from(HIDDEN)
    }
}

/// Invocations of one row slot: a row block is read by 32 invocations (one subgroup where
/// subgroups are 32 wide), each loading whole 16-byte units so a slot's loads of a row are
/// 512 contiguous bytes.
const LANES_PER_ROW: u32 = 32;
/// Row slots per workgroup (256 invocations / 32).
const SLOTS_PER_WORKGROUP: u32 = WORKGROUP_SIZE / LANES_PER_ROW;
/// Largest rows-per-slot candidate; rows are rounded to whole workgroups of it.
const MAX_ROWS_PER_SLOT: u32 = 16;
/// Blocks of the input vector (one int8 quantization block of `x` per weight block).
const X_BLOCKS: u32 = HIDDEN / BLOCK;
/// Largest magnitude of an int8 quant of `x` (q8 symmetric range, as llama.cpp's q8_1).
const X_QUANT_MAX: f32 = 127.0;

/// One kernel variant tried at run time (the fastest verified one is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Rows each slot of 32 invocations reads at once. Several rows per slot reuse the input
    /// vector held in registers across rows, so the cached loads of `x` (128 bytes per q4_0 block
    /// of 18 bytes, 64 per 17 bytes of q8_0) are amortized and more independent weight loads are
    /// in flight per invocation.
    rows_per_slot: u32,
    /// Quants become floats through their bit pattern (`bitcast<f32>(q | 0x4B000000) − 2²³`,
    /// exact for q < 2²³) instead of an int→float conversion: NVIDIA SMs convert 16 values per
    /// clock but do 64 integer ops per clock (CUDA C Programming Guide, arithmetic instruction
    /// throughput, compute capability 9.0), and one conversion per weight bounds the kernel
    /// below the memory rate.
    float_bits: bool,
    /// q4_0 only: each nibble is masked into the top mantissa bits of 1.0 (`1 + q/16`, one shift
    /// and one and-or per weight, no subtraction), and the offsets are taken out once per block:
    /// `Σ (q − 8)·x = 16·(Σ (1 + q/16)·x − 1.5·Σ x)`, with `Σ x` of the block computed once per
    /// step for all the slot's rows. Saves the per-weight subtraction of `float_bits`.
    offset_factored: bool,
    /// q4_0 only: the input vector is held as int8 quants with one f32 scale per 32 (as
    /// llama.cpp's q8_1 activations for its integer-dot mat-vec kernels) and each 4 weights are
    /// multiplied by 4 inputs in one `dot4I8Packed` (DP4A): per 8 weights one mask, one shift
    /// and two integer dots instead of 8 nibble extractions and 8 float multiply-adds. The
    /// probe's `x` is generated exactly representable that way, so the result is exact up to
    /// f32 rounding. Not offered in the browser (a WGSL language extension not every browser
    /// has).
    int_dot: bool,
    /// q4_0 only: consecutive 16-byte units each invocation loads per row per step (1: one
    /// vec4 per row per step, the original kernel; 2 or 4 halve or quarter the steps per row and
    /// the per-step index and scale work; a pair of scales comes from one word).
    units_per_step: u32,
    /// q4_0 float kernels only: the input vector is copied once per workgroup into workgroup
    /// memory (16 KiB) and read from there instead of through the cache (issue 6: `x` traffic
    /// equal to the weight bytes was a suspect). Only where the device allows that much
    /// workgroup memory (WebGPU's default, 16 KiB, is short of x plus the reduction's scratch).
    x_shared: bool,
}

/// `1 + 8/16`: what `Σ (1 + q/16)·x` carries per unit of `Σ x` beyond `Σ (q − 8)·x / 16`.
const FACTORED_OFFSET: f32 = 1.5;
/// The `1/16` scale of a nibble in the top mantissa bits, undone once per row.
const FACTORED_SCALE: f32 = 16.0;

impl Shape {
    /// The original kernels: one 16-byte unit per row per step, floats from the weights.
    const fn plain(rows_per_slot: u32, float_bits: bool, offset_factored: bool) -> Shape {
        Shape {
            rows_per_slot,
            float_bits,
            offset_factored,
            int_dot: false,
            units_per_step: 1,
            x_shared: false,
        }
    }
}

/// Whether `dot4I8Packed` may be used: native builds only (naga lowers it to SPIR-V `OpSDot`
/// where the device has integer dot products, else to a bit-field polyfill); browsers differ
/// in whether they ship WGSL's `packed_4x8_integer_dot_product`.
const INT_DOT_AVAILABLE: bool = cfg!(not(target_arch = "wasm32"));

fn shapes(format: DecodeFormat) -> Vec<Shape> {
    let rows: &[u32] = match format {
        DecodeFormat::F16 => &[1, 2, 4],
        DecodeFormat::Q8_0 | DecodeFormat::Q4_0 => &[2, 4, 8],
    };
    let mut out: Vec<Shape> = rows
        .iter()
        .map(|&rows_per_slot| Shape::plain(rows_per_slot, false, false))
        .collect();
    if format != DecodeFormat::F16 {
        out.extend([4, 8].map(|rows_per_slot| Shape::plain(rows_per_slot, true, false)));
    }
    if format == DecodeFormat::Q8_0 && INT_DOT_AVAILABLE {
        // q8_0 meets its target; the integer dot is tried for margin (4 DP4A per 16 weights).
        out.extend(
            [(8, 1), (16, 1), (8, 2)].map(|(rows_per_slot, units_per_step)| Shape {
                rows_per_slot,
                float_bits: false,
                offset_factored: false,
                int_dot: true,
                units_per_step,
                x_shared: false,
            }),
        );
    }
    if format == DecodeFormat::Q4_0 {
        out.extend([4, 8].map(|rows_per_slot| Shape::plain(rows_per_slot, true, true)));
        // Issue 6, run 3 suspects: the fixed cost per row (16 rows per slot) and per step
        // (2 units per step); then the integer-dot kernel at several rows and units per step.
        out.extend(
            [(16, 1, false), (8, 2, false), (8, 2, true), (16, 1, true)].map(
                |(rows_per_slot, units_per_step, x_shared)| Shape {
                    units_per_step,
                    x_shared,
                    ..Shape::plain(rows_per_slot, true, true)
                },
            ),
        );
        if INT_DOT_AVAILABLE {
            out.extend(
                [(8, 1), (16, 1), (8, 2), (4, 4)].map(|(rows_per_slot, units_per_step)| Shape {
                    rows_per_slot,
                    float_bits: false,
                    offset_factored: false,
                    int_dot: true,
                    units_per_step,
                    x_shared: false,
                }),
            );
        }
    }
    out
}

/// Loop body of the q8_0 integer-dot kernel: a 16-byte unit is half a block, 16 int8 weights
/// against the 16 int8 inputs of one vec4 of `x8` in four `dot4I8Packed`; with 2 units per step
/// both halves of a block share one scale.
fn q8_int_body(shape: Shape) -> String {
    let k = shape.units_per_step;
    let units = HIDDEN / 16;
    let iterations = units / (LANES_PER_ROW * k);
    let rows = 0..shape.rows_per_slot;
    let mut body = String::new();
    for r in rows.clone() {
        body += &format!("    var acc{r} = 0.0;\n");
    }
    body += &format!(
        "    for (var i = 0u; i < {iterations}u; i += 1u) {{\n        let u0 = (lane + i * {LANES_PER_ROW}u) * {k}u;\n"
    );
    for j in 0..k {
        body += &format!(
            "        let xa{j} = x8[u0 + {j}u];\n        let xd{j} = xd[(u0 + {j}u) / 2u];\n"
        );
    }
    for r in rows.clone() {
        for j in 0..k {
            body +=
                &format!("        let q{r}_{j} = quants[(row0 + {r}u) * {units}u + u0 + {j}u];\n");
        }
    }
    for r in rows {
        for j in 0..k {
            // With k = 2, u0 is even: units u0 and u0 + 1 are one block.
            if j == 0 || k == 1 {
                body += &format!(
                    "        let si{r}_{j} = (row0 + {r}u) * {X_BLOCKS}u + (u0 + {j}u) / 2u;\n        let s{r}_{j} = unpack2x16float(scales[si{r}_{j} / 2u])[si{r}_{j} % 2u];\n"
                );
            }
            let dots: Vec<String> = ["x", "y", "z", "w"]
                .iter()
                .map(|c| format!("dot4I8Packed(q{r}_{j}.{c}, xa{j}.{c})"))
                .collect();
            let scale = if k == 1 { j } else { 0 };
            body += &format!(
                "        acc{r} += s{r}_{scale} * xd{j}.x * f32({});\n",
                dots.join(" + ")
            );
        }
    }
    body += "    }\n";
    body
}

/// Loop body of the q4_0 kernels with several units per step or integer dots (`None` for the
/// original kernels, which [`wgsl`] generates itself).
fn q4_body(shape: Shape) -> Option<String> {
    if shape.units_per_step == 1 && !shape.int_dot && !shape.x_shared {
        return None;
    }
    let k = shape.units_per_step;
    // q4_0: one 16-byte unit of quants is one block.
    let units = X_BLOCKS;
    let iterations = units / (LANES_PER_ROW * k);
    let rows = 0..shape.rows_per_slot;
    let mut body = String::new();
    let x_array = if shape.x_shared {
        body += &format!(
            "    for (var t = lid.x; t < {}u; t += {WORKGROUP_SIZE}u) {{ xs[t] = x[t]; }}\n    workgroupBarrier();\n",
            HIDDEN / 4
        );
        "xs"
    } else {
        "x"
    };
    for r in rows.clone() {
        body += &format!("    var acc{r} = 0.0;\n");
    }
    body += &format!(
        "    for (var i = 0u; i < {iterations}u; i += 1u) {{\n        let u0 = (lane + i * {LANES_PER_ROW}u) * {k}u;\n"
    );
    for j in 0..k {
        if shape.int_dot {
            body += &format!(
                "        let xa{j} = x8[(u0 + {j}u) * 2u];\n        let xb{j} = x8[(u0 + {j}u) * 2u + 1u];\n        let xd{j} = xd[u0 + {j}u];\n"
            );
        } else {
            for m in 0..8 {
                body += &format!("        let x{j}_{m} = {x_array}[(u0 + {j}u) * 8u + {m}u];\n");
            }
            body += &format!(
                "        let sx{j} = {FACTORED_OFFSET:?} * dot(((x{j}_0 + x{j}_1) + (x{j}_2 + x{j}_3)) + ((x{j}_4 + x{j}_5) + (x{j}_6 + x{j}_7)), vec4<f32>(1.0));\n"
            );
        }
    }
    for r in rows.clone() {
        for j in 0..k {
            body +=
                &format!("        let q{r}_{j} = quants[(row0 + {r}u) * {units}u + u0 + {j}u];\n");
        }
    }
    for r in rows.clone() {
        if k == 1 {
            body += &format!(
                "        let si{r} = (row0 + {r}u) * {units}u + u0;\n        let s{r}_0 = unpack2x16float(scales[si{r} / 2u])[si{r} % 2u];\n"
            );
        } else {
            // u0 and the row's first block are even: each word holds the scales of two units.
            for pair in 0..k / 2 {
                body += &format!(
                    "        let sp{r}_{pair} = unpack2x16float(scales[((row0 + {r}u) * {units}u + u0) / 2u + {pair}u]);\n        let s{r}_{a} = sp{r}_{pair}.x;\n        let s{r}_{b} = sp{r}_{pair}.y;\n",
                    a = 2 * pair,
                    b = 2 * pair + 1
                );
            }
        }
    }
    for r in rows {
        for j in 0..k {
            let q = format!("q{r}_{j}");
            if shape.int_dot {
                // Low nibbles of bytes 0–15 are weights 0–15 (x bytes in xa), high ones 16–31.
                let lo: Vec<String> = ["x", "y", "z", "w"]
                    .iter()
                    .map(|c| format!("dot4I8Packed({q}.{c} & 0x0F0F0F0Fu, xa{j}.{c})"))
                    .collect();
                let hi: Vec<String> = ["x", "y", "z", "w"]
                    .iter()
                    .map(|c| format!("dot4I8Packed(({q}.{c} >> 4u) & 0x0F0F0F0Fu, xb{j}.{c})"))
                    .collect();
                body += &format!(
                    "        let n{r}_{j} = ({}) + ({});\n        acc{r} += s{r}_{j} * (xd{j}.x * f32(n{r}_{j}) - xd{j}.y);\n",
                    lo.join(" + "),
                    hi.join(" + ")
                );
            } else {
                let d = format!(
                    "dot(lo4m({q}.x), x{j}_0) + dot(hi4m({q}.x), x{j}_4) + dot(lo4m({q}.y), x{j}_1) + dot(hi4m({q}.y), x{j}_5) + \
                     dot(lo4m({q}.z), x{j}_2) + dot(hi4m({q}.z), x{j}_6) + dot(lo4m({q}.w), x{j}_3) + dot(hi4m({q}.w), x{j}_7)"
                );
                body += &format!("        acc{r} += ({d} - sx{j}) * s{r}_{j};\n");
            }
        }
    }
    body += "    }\n";
    Some(body)
}

fn wgsl(format: DecodeFormat, shape: Shape, subgroup_reduce: bool) -> String {
    let rows_per_slot = shape.rows_per_slot;
    let k4 = HIDDEN / 4;
    // 16-byte units of quants per row, and blocks per row.
    let units = (format.quant_row_bytes() / 16) as u32;
    let blocks = HIDDEN / BLOCK;
    let iterations = units / LANES_PER_ROW;
    let rows = 0..rows_per_slot;
    // Input-vector loads for unit `u`, then the dot product of unit `q{r}` with them.
    let (mut x_loads, dot) = match format {
        // 8 halves per unit: x[2u], x[2u + 1].
        DecodeFormat::F16 => (
            "        let xa = x[u * 2u];\n        let xb = x[u * 2u + 1u];\n".to_owned(),
            "dot(vec4<f32>(unpack2x16float(qR.x), unpack2x16float(qR.y)), xa) + \
             dot(vec4<f32>(unpack2x16float(qR.z), unpack2x16float(qR.w)), xb)"
                .to_owned(),
        ),
        // Half a block (16 int8) per unit: x[4u .. 4u + 4].
        DecodeFormat::Q8_0 => (
            (0..4)
                .map(|j| format!("        let x{j} = x[u * 4u + {j}u];\n"))
                .collect(),
            "dot(i8x4(qR.x), x0) + dot(i8x4(qR.y), x1) + dot(i8x4(qR.z), x2) + dot(i8x4(qR.w), x3)"
                .to_owned(),
        ),
        // A whole block per unit: low nibbles are weights 0–15, high nibbles 16–31.
        DecodeFormat::Q4_0 => (
            (0..8)
                .map(|j| format!("        let x{j} = x[u * 8u + {j}u];\n"))
                .collect(),
            "dot(lo4(qR.x), x0) + dot(hi4(qR.x), x4) + dot(lo4(qR.y), x1) + dot(hi4(qR.y), x5) + \
             dot(lo4(qR.z), x2) + dot(hi4(qR.z), x6) + dot(lo4(qR.w), x3) + dot(hi4(qR.w), x7)"
                .to_owned(),
        ),
    };
    let factored = shape.offset_factored && format == DecodeFormat::Q4_0;
    if factored {
        x_loads += &format!(
            "        let sx = {FACTORED_OFFSET:?} * dot(((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)), vec4<f32>(1.0));\n"
        );
    }
    let units_per_block = if format == DecodeFormat::F16 {
        1
    } else {
        units / blocks
    };
    let mut body = String::new();
    for r in rows.clone() {
        body += &format!("    var acc{r} = 0.0;\n");
    }
    body += &format!(
        "    for (var i = 0u; i < {iterations}u; i += 1u) {{\n        let u = lane + i * {LANES_PER_ROW}u;\n"
    );
    for r in rows.clone() {
        body += &format!("        let q{r} = quants[(row0 + {r}u) * {units}u + u];\n");
    }
    if format != DecodeFormat::F16 {
        for r in rows.clone() {
            body += &format!(
                "        let si{r} = (row0 + {r}u) * {blocks}u + u / {units_per_block}u;\n        let s{r} = unpack2x16float(scales[si{r} / 2u])[si{r} % 2u];\n"
            );
        }
    }
    body += &x_loads;
    for r in rows.clone() {
        let d = dot.replace("qR", &format!("q{r}"));
        if format == DecodeFormat::F16 {
            body += &format!("        acc{r} += {d};\n");
        } else if factored {
            let d = d.replace("lo4(", "lo4m(").replace("hi4(", "hi4m(");
            body += &format!("        acc{r} += ({d} - sx) * s{r};\n");
        } else {
            body += &format!("        acc{r} += ({d}) * s{r};\n");
        }
    }
    body += "    }\n";
    let body = match format {
        DecodeFormat::Q4_0 => q4_body(shape).unwrap_or(body),
        DecodeFormat::Q8_0 if shape.int_dot => q8_int_body(shape),
        _ => body,
    };
    // With 32-wide subgroups each slot is one subgroup: one subgroupAdd per row, no barriers.
    // Elsewhere (lavapipe's 8-wide subgroups, WebGPU without subgroups) a tree in shared memory.
    let mut reduce = String::new();
    let unscale = if factored {
        format!(" * {FACTORED_SCALE:?}")
    } else {
        String::new()
    };
    for r in rows {
        if subgroup_reduce {
            reduce += &format!(
                "    let total{r} = subgroupAdd(acc{r}{unscale});\n    if (lane == 0u) {{ y[p.row_offset + row0 + {r}u] = total{r}; }}\n"
            );
        } else {
            reduce += &wgsl_template(
                include_str!("wgsl/decode_reduce_shared.wgsl"),
                &[("R", &r), ("UNSCALE", &unscale)],
            );
        }
    }
    let mut scales_binding = if format == DecodeFormat::F16 {
        String::new()
    } else {
        "@group(0) @binding(4) var<storage, read> scales: array<u32>;\n".to_owned()
    };
    let x_shared_decl = if shape.x_shared {
        format!("var<workgroup> xs: array<vec4<f32>, {k4}>;\n")
    } else {
        String::new()
    };
    let x_binding = if shape.int_dot {
        // x as int8 quants (16 bytes per vec4) and per block (scale, 8 · scale · Σ quants).
        scales_binding += &format!(
            "@group(0) @binding(5) var<storage, read> xd: array<vec2<f32>, {X_BLOCKS}>;\n"
        );
        format!(
            "@group(0) @binding(1) var<storage, read> x8: array<vec4<u32>, {}>;",
            HIDDEN / 16
        )
    } else {
        format!("@group(0) @binding(1) var<storage, read> x: array<vec4<f32>, {k4}>;")
    };
    // Nibble of byte k at bit 8k (low) or 8k + 4 (high) moved to bits 19–22 under 1.0's exponent.
    let factored_fns = if factored {
        include_str!("wgsl/decode_q4_factored.wgsl")
    } else {
        ""
    };
    let convert = if shape.float_bits {
        // 2^23 + q as float bits; the offsets subtract 2^23 and the format's zero point
        // (q4_0: 8; q8_0: bytes are flipped to q + 128 first).
        include_str!("wgsl/decode_convert_float_bits.wgsl")
    } else {
        include_str!("wgsl/decode_convert_int.wgsl")
    };
    wgsl_template(
        include_str!("wgsl/decode.wgsl"),
        &[
            ("X_BINDING", &x_binding),
            ("SCALES_BINDING", &scales_binding),
            ("WORKGROUP_SIZE", &WORKGROUP_SIZE),
            ("X_SHARED_DECL", &x_shared_decl),
            ("CONVERT", &convert),
            ("FACTORED_FNS", &factored_fns),
            ("LANES_PER_ROW", &LANES_PER_ROW),
            ("SLOTS_PER_WORKGROUP", &SLOTS_PER_WORKGROUP),
            ("ROWS_PER_SLOT", &rows_per_slot),
            ("BODY", &body),
            ("REDUCE", &reduce),
        ],
    )
}

/// The input vector: int8 quants with one f16-representable scale per block of 32, so that
/// every value `quant · scale` is exact in f32 (7 + 11 significant bits) and the float kernels
/// and the integer-dot kernels multiply the same numbers.
struct QuantizedX {
    /// `HIDDEN` int8 quants, four per word (element `i` in byte `i % 4` of word `i / 4`).
    quants: Vec<u32>,
    /// One scale per block.
    scales: Vec<f32>,
}

impl QuantizedX {
    fn new(rng: &mut Rng) -> QuantizedX {
        // Scales in [0.5, 1] / 127 so values lie in [-1, 1] as the earlier uniform x did.
        let scales: Vec<f32> = (0..X_BLOCKS)
            .map(|_| half::f16::from_f32((0.75 + 0.25 * rng.next_f32()) / X_QUANT_MAX).to_f32())
            .collect();
        let bytes: Vec<u8> = (0..HIDDEN)
            .map(|_| {
                (rng.next_f32() * X_QUANT_MAX)
                    .round()
                    .clamp(-X_QUANT_MAX, X_QUANT_MAX) as i8 as u8
            })
            .collect();
        let quants = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        QuantizedX { quants, scales }
    }

    fn quant(&self, i: usize) -> i8 {
        (self.quants[i / 4] >> ((i % 4) * 8)) as u8 as i8
    }

    /// The values the float kernels read and the CPU reference uses.
    fn values(&self) -> Vec<f32> {
        (0..HIDDEN as usize)
            .map(|i| f32::from(self.quant(i)) * self.scales[i / BLOCK as usize])
            .collect()
    }

    /// Per block `(scale, 8 · scale · Σ quants)`: q4_0's offset 8 taken out once per block
    /// (exact: |8 Σ q| < 2¹⁵ times an 11-bit scale).
    fn block_terms(&self) -> Vec<f32> {
        (0..X_BLOCKS as usize)
            .flat_map(|b| {
                let sum: i32 = (0..BLOCK as usize)
                    .map(|e| i32::from(self.quant(b * BLOCK as usize + e)))
                    .sum();
                [self.scales[b], 8.0 * self.scales[b] * sum as f32]
            })
            .collect()
    }
}

/// Inputs to one decode simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeParams {
    /// Weight format.
    pub format: DecodeFormat,
    /// Parameters of the simulated model (rounded to whole rows of [`HIDDEN`]).
    pub model_params: u64,
    /// Seed of the weights and the input vector.
    pub seed: u32,
    /// Measurement length.
    pub settings: MeasureSettings,
    /// The adapter's subgroup size if it is fixed (min = max); 32 enables the subgroup
    /// reduction.
    pub subgroup_size: Option<u32>,
}

struct Chunk {
    rows: u64,
    row_offset: u64,
    quants: wgpu::Buffer,
    scales: Option<wgpu::Buffer>,
    quant_seed: u32,
    scale_seed: u32,
}

fn half_at(word: u32, index: u64) -> f64 {
    let bits = if index.is_multiple_of(2) {
        word & 0xFFFF
    } else {
        word >> 16
    };
    f64::from(half::f16::from_bits(bits as u16).to_f32())
}

/// CPU reference of one row of one chunk.
fn reference_row(format: DecodeFormat, chunk: &Chunk, r: u64, x: &[f32]) -> f64 {
    let k = u64::from(HIDDEN);
    match format {
        DecodeFormat::F16 => (0..k)
            .map(|e| {
                let index = r * k + e;
                half_at(
                    half_pair(pattern((index / 2) as u32, chunk.quant_seed)),
                    index,
                ) * f64::from(x[e as usize])
            })
            .sum(),
        DecodeFormat::Q8_0 | DecodeFormat::Q4_0 => {
            let blocks = k / u64::from(BLOCK);
            let mut total = 0.0;
            for blk in 0..blocks {
                let si = r * blocks + blk;
                let scale = half_at(half_pair(pattern((si / 2) as u32, chunk.scale_seed)), si);
                let mut s = 0.0;
                for e in 0..u64::from(BLOCK) {
                    let q = if format == DecodeFormat::Q8_0 {
                        let byte = (r * k + blk * 32 + e) as u32;
                        let word = pattern(byte / 4, chunk.quant_seed);
                        f64::from(((word >> ((byte % 4) * 8)) & 0xFF) as u8 as i8)
                    } else {
                        let block_byte = (r * blocks + blk) * 16;
                        let (byte, shift) = if e < 16 {
                            (block_byte + e, 0)
                        } else {
                            (block_byte + e - 16, 4)
                        };
                        let word = pattern((byte / 4) as u32, chunk.quant_seed);
                        f64::from(((word >> ((byte % 4) * 8 + shift)) & 0xF) as i32 - 8)
                    };
                    s += q * f64::from(x[(blk * 32 + e) as usize]);
                }
                total += s * scale;
            }
            total
        }
    }
}

fn conversion(format: DecodeFormat, shape: Shape) -> &'static str {
    if format == DecodeFormat::F16 {
        "unpack2x16float"
    } else if shape.int_dot {
        "int8 dot: x as int8 blocks, dot4I8Packed"
    } else if shape.offset_factored {
        "float bits, offset factored per block"
    } else if shape.float_bits {
        "float bits"
    } else {
        "int to float"
    }
}

/// One tried variant: its timing and its check.
/// A variant that ran: its timing if its output verified, and its check.
struct Variant {
    shape: Shape,
    measured: Option<Measured>,
    check: Verification,
}

/// Checks sampled rows of `y` against the CPU reference.
fn verify(
    format: DecodeFormat,
    chunks: &[Chunk],
    total_rows: u64,
    y: &[f32],
    x: &[f32],
) -> Verification {
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let checks = CHECK_ROWS.min(total_rows);
    for i in 0..checks {
        let row = i * (total_rows - 1) / (checks - 1).max(1);
        let Some(chunk) = chunks
            .iter()
            .find(|c| row >= c.row_offset && row < c.row_offset + c.rows)
        else {
            continue;
        };
        want.push(reference_row(format, chunk, row - chunk.row_offset, x));
        got.push(f64::from(y[row as usize]));
    }
    let err = rel_frobenius(&got, &want);
    // Only the f32 summation order differs from the f64 reference.
    let tolerance = 1e-4;
    Verification {
        passed: err.is_finite() && err <= tolerance && got.len() as u64 == checks,
        rel_error: err,
        tolerance,
        checked_elements: got.len() as u64,
        reference:
            "f64 dot products on the CPU of sampled rows, weights regenerated from the fill pattern"
                .to_owned(),
    }
}

/// Runs one decode simulation: every variant (rows per slot, conversion) is timed and checked, the fastest
/// is reported (the others are listed in `params.tuning`).
pub async fn run(device: &wgpu::Device, queue: &wgpu::Queue, p: &DecodeParams) -> Measurement {
    let gpu = Gpu::new(device, queue);
    let format = p.format;
    let name = format.metric();
    // Whole workgroups of the largest candidate, so every candidate covers every row.
    let row_quantum = u64::from(SLOTS_PER_WORKGROUP * MAX_ROWS_PER_SLOT);
    let total_rows = (p.model_params / u64::from(HIDDEN)) / row_quantum * row_quantum;
    let weight_bytes = total_rows * (format.quant_row_bytes() + format.scale_row_bytes());
    let mut base = params! {
        "format" => format.label(), key::HIDDEN => HIDDEN, "rows" => total_rows,
        key::MODEL_PARAMS => total_rows * u64::from(HIDDEN), "weight_bytes" => weight_bytes,
        "layout" => "quants and f16 scales in separate arrays (GGUF bytes per weight)",
        "workgroup_size" => WORKGROUP_SIZE, "lanes_per_row" => LANES_PER_ROW,
        "x" => "int8 quants times one f16-representable scale per 32 (exact in f32): float variants read it as f32, int8-dot variants as int8 + per-block (scale, 8·scale·Σ quants), prepared once on the CPU and not timed (llama.cpp quantizes activations to q8_1 the same way)",
    };
    if total_rows == 0 {
        return skipped(name, base, "model smaller than one workgroup of rows");
    }
    let region_limit = MAX_REGION_BYTES.min(gpu.limits.max_storage_buffer_binding_size);
    // The smallest candidate (1 row per slot) needs the most workgroups per chunk.
    let rows_per_chunk = (region_limit / format.quant_row_bytes()).min(
        u64::from(gpu.limits.max_compute_workgroups_per_dimension) * u64::from(SLOTS_PER_WORKGROUP),
    ) / row_quantum
        * row_quantum;
    base.insert("rows_per_chunk".into(), serde_json::json!(rows_per_chunk));
    let subgroup_reduce =
        gpu.has(wgpu::Features::SUBGROUP) && p.subgroup_size == Some(LANES_PER_ROW);
    base.insert(
        "reduction".into(),
        serde_json::json!(if subgroup_reduce {
            "subgroupAdd"
        } else {
            "shared memory"
        }),
    );
    let mut x_rng = Rng::new(u64::from(p.seed) ^ 0xDEC0DE);
    let xq = QuantizedX::new(&mut x_rng);
    let x = xq.values();
    let result = scoped(&gpu, &name.to_string(), async {
        let filler = Filler::new(&gpu).await?;
        let xb = gpu.storage_init("x", bytemuck::cast_slice(&x));
        let x8b = gpu.storage_init("x int8", bytemuck::cast_slice(&xq.quants));
        let xdb = gpu.storage_init("x block scales", bytemuck::cast_slice(&xq.block_terms()));
        let yb = gpu.storage("y", total_rows * 4);
        let mut chunks = Vec::new();
        let mut row_offset = 0;
        let mut index = 0u32;
        while row_offset < total_rows {
            let rows = rows_per_chunk.min(total_rows - row_offset);
            let quant_seed = piece_seed(p.seed, 2 * index);
            let scale_seed = piece_seed(p.seed, 2 * index + 1);
            let quants = gpu.storage("decode quants", rows * format.quant_row_bytes());
            let fill = if format == DecodeFormat::F16 {
                Fill::Halves
            } else {
                Fill::Words
            };
            filler.fill(
                &gpu,
                &quants,
                0,
                rows * format.quant_row_bytes(),
                quant_seed,
                fill,
            );
            let scales = (format != DecodeFormat::F16).then(|| {
                let bytes = (rows * format.scale_row_bytes()).div_ceil(16) * 16;
                let buffer = gpu.storage("decode scales", bytes);
                filler.fill(&gpu, &buffer, 0, bytes, scale_seed, Fill::Halves);
                buffer
            });
            chunks.push(Chunk {
                rows,
                row_offset,
                quants,
                scales,
                quant_seed,
                scale_seed,
            });
            row_offset += rows;
            index += 1;
        }
        let uniforms: Vec<wgpu::Buffer> = chunks
            .iter()
            .map(|c| gpu.uniform(&[c.row_offset as u32, c.rows as u32, 0, 0]))
            .collect();
        // x (f32) plus the reduction's scratch in workgroup memory.
        let x_shared_bytes = HIDDEN * 4 + WORKGROUP_SIZE * 4;
        let candidates: Vec<Shape> = shapes(format)
            .into_iter()
            .filter(|s| {
                !s.x_shared || gpu.limits.max_compute_workgroup_storage_size >= x_shared_bytes
            })
            .collect();
        let label = |shape: &Shape| {
            format!(
                "{name} rows/slot {} bits {} factored {} int dot {} units/step {} x shared {}",
                shape.rows_per_slot,
                shape.float_bits,
                shape.offset_factored,
                shape.int_dot,
                shape.units_per_step,
                shape.x_shared
            )
        };
        let search = search(&candidates, label, p.settings, async |&shape: &Shape| {
            let rows_per_slot = shape.rows_per_slot;
            // A kernel the driver cannot compile is listed (with the driver's message) and
            // skipped; it has no result, so it cannot be a wrong one.
            let pipeline = match gpu
                .pipeline(&label(&shape), &wgsl(format, shape, subgroup_reduce))
                .await
            {
                Ok(pipeline) => pipeline,
                Err(err @ ProbeError::Shader { .. }) => {
                    return Ok(Err(Rejected::NotCompiled(err.to_string())));
                }
                Err(err) => return Err(err),
            };
            let rows_per_workgroup = u64::from(SLOTS_PER_WORKGROUP * rows_per_slot);
            let binds: Vec<(wgpu::BindGroup, u32)> = chunks
                .iter()
                .zip(&uniforms)
                .map(|(c, uniform)| {
                    let mut entries = vec![
                        (&c.quants, 0, None),
                        (if shape.int_dot { &x8b } else { &xb }, 0, None),
                        (&yb, 0, None),
                        (uniform, 0, None),
                    ];
                    if let Some(s) = &c.scales {
                        entries.push((s, 0, None));
                    }
                    if shape.int_dot {
                        entries.push((&xdb, 0, None));
                    }
                    (
                        gpu.bind(&pipeline, &entries),
                        (c.rows / rows_per_workgroup) as u32,
                    )
                })
                .collect();
            // Cleared per variant: a variant that writes nothing cannot pass on another's output.
            gpu.clear(&yb);
            let record = |pass: &mut wgpu::ComputePass<'_>, reps: u32| {
                pass.set_pipeline(&pipeline);
                for _ in 0..reps {
                    for (bind, groups) in &binds {
                        pass.set_bind_group(0, bind, &[]);
                        pass.dispatch_workgroups(*groups, 1, 1);
                    }
                }
            };
            let measured = gpu
                .measure(&record, p.settings.target_s, p.settings.max_iterations)
                .await?;
            let y = gpu.read_back(&yb, 0, total_rows * 4).await?;
            let check = verify(format, &chunks, total_rows, bytemuck::cast_slice(&y), &x);
            Ok(if check.passed {
                Ok((measured, check))
            } else {
                Err(Rejected::Wrong(check))
            })
        })
        .await?;
        let mut variants = Vec::new();
        let mut rejected: Vec<(Shape, String)> = Vec::new();
        for t in search.tried {
            match t.outcome {
                Ok((measured, check)) => variants.push(Variant {
                    shape: *t.candidate,
                    measured: Some(measured),
                    check,
                }),
                Err(Rejected::Wrong(check)) => variants.push(Variant {
                    shape: *t.candidate,
                    measured: None,
                    check,
                }),
                Err(Rejected::NotCompiled(message)) => rejected.push((*t.candidate, message)),
            }
        }
        Ok::<_, ProbeError>((variants, rejected))
    })
    .await;
    let (variants, rejected) = match result {
        Ok(v) => v,
        Err(err) => return failed(name, base, &err),
    };
    let mut tuning: Vec<serde_json::Value> = variants
        .iter()
        .map(|v| {
            serde_json::json!({
                "rows_per_slot": v.shape.rows_per_slot,
                "units_per_step": v.shape.units_per_step,
                "x_in_workgroup_memory": v.shape.x_shared,
                "conversion": conversion(format, v.shape),
                "weight_bytes_per_s": v.measured.map(|m| weight_bytes as f64 / m.per_iter_s()),
                "passed": v.check.passed,
                "rel_error": v.check.rel_error,
            })
        })
        .collect();
    tuning.extend(rejected.iter().map(|(shape, err)| {
        serde_json::json!({
            "rows_per_slot": shape.rows_per_slot,
            "units_per_step": shape.units_per_step,
            "x_in_workgroup_memory": shape.x_shared,
            "conversion": conversion(format, *shape),
            "compile_error": err,
        })
    }));
    base.insert("tuning".into(), serde_json::json!(tuning));
    // A wrong variant fails the whole measurement: every tried shape must be correct.
    let worst = variants.iter().max_by(|a, b| {
        a.check
            .rel_error
            .total_cmp(&b.check.rel_error)
            .then(b.check.passed.cmp(&a.check.passed))
    });
    let Some(worst) = worst else {
        return failed(
            name,
            base,
            &ProbeError::Unsupported("no decode variant ran".to_owned()),
        );
    };
    let best = variants
        .iter()
        .filter_map(|v| v.measured.map(|m| (v.shape, m)))
        .min_by(|a, b| a.1.per_iter_s().total_cmp(&b.1.per_iter_s()));
    let passed = best.is_some() && variants.iter().all(|v| v.check.passed);
    if let Some((shape, _)) = best {
        base.insert(
            "rows_per_slot".into(),
            serde_json::json!(shape.rows_per_slot),
        );
        base.insert(
            "conversion".into(),
            serde_json::json!(conversion(format, shape)),
        );
        base.insert(
            "units_per_step".into(),
            serde_json::json!(shape.units_per_step),
        );
    }
    let mut check = worst.check.clone();
    check.passed = passed;
    check.checked_elements = variants.iter().map(|v| v.check.checked_elements).sum();
    check.reference = format!("{} (every tuned variant; worst shown)", check.reference);
    let err = check.rel_error;
    let tolerance = check.tolerance;
    let per_token_s = best.map(|(_, m)| m.per_iter_s());
    Measurement {
        name,
        status: if passed { Status::Ok } else { Status::Failed },
        error: (!passed)
            .then(|| format!("wrong result: relative error {err:.3e} > tolerance {tolerance:.1e}")),
        params: base,
        verification: Some(check),
        timing: best.map(|(_, m)| m.timing()),
        flops_per_s: None,
        bytes_per_s: per_token_s
            .filter(|_| passed)
            .map(|s| weight_bytes as f64 / s),
        bytes_counted: Some("weights read (quants + scales)".to_owned()),
        tokens_per_s: per_token_s.filter(|_| passed).map(|s| 1.0 / s),
        accumulator: Some("f32".to_owned()),
    }
}
