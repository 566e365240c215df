//! The register-tiled vector kernel (f32 and f16 without matrix units): a workgroup computes a
//! `BM × BN` tile of C from `BK`-deep slices of A and B staged in shared memory; each invocation
//! keeps a `TM × TN` block of C in registers (fully unrolled, vec4 loads).

use super::{GROUP_M, GemmVariant, swizzle_wgsl};
use crate::kernels::wgsl_template;

/// One tile shape of the vector kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Rows of C per workgroup.
    pub bm: u32,
    /// Columns of C per workgroup.
    pub bn: u32,
    /// Depth of each staged slice.
    pub bk: u32,
    /// Rows of C per invocation (multiple of 4).
    pub tm: u32,
    /// Columns of C per invocation (multiple of 4).
    pub tn: u32,
}

impl Tile {
    /// Candidates tried at run time, largest register block first.
    pub const CANDIDATES: [Tile; 4] = [
        Tile {
            bm: 128,
            bn: 128,
            bk: 16,
            tm: 8,
            tn: 8,
        },
        Tile {
            bm: 128,
            bn: 128,
            bk: 8,
            tm: 8,
            tn: 8,
        },
        Tile {
            bm: 64,
            bn: 128,
            bk: 8,
            tm: 4,
            tn: 8,
        },
        Tile {
            bm: 64,
            bn: 64,
            bk: 8,
            tm: 4,
            tn: 4,
        },
    ];

    pub(super) fn threads(self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// `BMxBNxBK/TMxTN`.
    pub fn label(self) -> String {
        format!(
            "{}x{}x{}/{}x{}",
            self.bm, self.bn, self.bk, self.tm, self.tn
        )
    }

    pub(super) fn shared_bytes(self, acc_bytes: u32) -> u32 {
        (self.bm + self.bn) * self.bk * acc_bytes
    }
}

/// WGSL for the register-tiled vector kernel.
pub fn vector_wgsl(variant: GemmVariant, tile: Tile) -> String {
    let tin = variant.input();
    let t = variant.accumulator();
    let Tile { bm, bn, bk, tm, tn } = tile;
    let wgx = bn / tn;
    let wgy = bm / tm;
    let threads = wgx * wgy;
    let enable = if tin == "f16" || t == "f16" {
        "enable f16;\n"
    } else {
        ""
    };
    let mut accumulators = String::new();
    for i in 0..tm {
        for j in 0..tn / 4 {
            accumulators += &format!("    var c{i}_{j} = vec4<{t}>();\n");
        }
    }
    // Stage A: BM×BK as BM*BK/4 vec4 along k, stored transposed.
    let mut stage_a = String::new();
    let a_vec4 = bm * bk / 4;
    let mut v = 0;
    while v < a_vec4 {
        let guard = v + threads > a_vec4;
        stage_a += &format!("        {{ let v = tid + {v}u;\n");
        if guard {
            stage_a += &format!("        if (v < {a_vec4}u) {{\n");
        }
        stage_a += &format!(
            "        let r = v / {kq}u; let kq = v % {kq}u;\n        let a = vec4<{t}>(mat_a[(row0 + r) * k4 + k0 / 4u + kq]);\n",
            kq = bk / 4
        );
        for c in 0..4 {
            let comp = ["x", "y", "z", "w"][c];
            stage_a +=
                &format!("        as_t[((kq * 4u + {c}u) * {bm}u + r) / 4u][r % 4u] = a.{comp};\n");
        }
        if guard {
            stage_a += "        }\n";
        }
        stage_a += "        }\n";
        v += threads;
    }
    let mut stage_b = String::new();
    let b_vec4 = bn * bk / 4;
    let mut v = 0;
    while v < b_vec4 {
        let guard = v + threads > b_vec4;
        stage_b += &format!("        {{ let v = tid + {v}u;\n");
        if guard {
            stage_b += &format!("        if (v < {b_vec4}u) {{\n");
        }
        stage_b += &format!(
            "        let kr = v / {nq}u; let nq = v % {nq}u;\n        bs[v] = vec4<{t}>(mat_b[(k0 + kr) * n4 + col0 / 4u + nq]);\n",
            nq = bn / 4
        );
        if guard {
            stage_b += "        }\n";
        }
        stage_b += "        }\n";
        v += threads;
    }
    let mut multiply = String::new();
    for k in 0..bk {
        // Rows of this invocation: ty*4 + c + q*WGY*4 (q-th group of 4); columns tx*4 + j*WGX*4:
        // neighbouring invocations read neighbouring vec4s (no bank conflicts, coalesced stores).
        for q in 0..tm / 4 {
            multiply += &format!(
                "        let a{q}_{k} = as_t[{k}u * {bm4}u + ty + {off}u];\n",
                bm4 = bm / 4,
                off = q * wgy
            );
        }
        for j in 0..tn / 4 {
            multiply += &format!(
                "        let b{j}_{k} = bs[{k}u * {bn4}u + tx + {off}u];\n",
                bn4 = bn / 4,
                off = j * wgx
            );
        }
        for i in 0..tm {
            let comp = ["x", "y", "z", "w"][(i % 4) as usize];
            for j in 0..tn / 4 {
                multiply += &format!(
                    "        c{i}_{j} = fma(vec4<{t}>(a{q}_{k}.{comp}), b{j}_{k}, c{i}_{j});\n",
                    q = i / 4
                );
            }
        }
    }
    let mut store_c = String::new();
    for i in 0..tm {
        for j in 0..tn / 4 {
            store_c += &format!(
                "    mat_c[(row0 + ty * 4u + {r}u) * n4 + col0 / 4u + tx + {cj}u] = c{i}_{j};\n",
                r = (i % 4) + (i / 4) * wgy * 4,
                cj = j * wgx
            );
        }
    }
    wgsl_template(
        include_str!("../wgsl/gemm_vector.wgsl"),
        &[
            ("ENABLE", &enable),
            ("TIN", &tin),
            ("T", &t),
            ("BM", &bm),
            ("BN", &bn),
            ("BK", &bk),
            ("A_LEN", &(bm * bk / 4)),
            ("B_LEN", &(bn * bk / 4)),
            ("WGX", &wgx),
            ("WGY", &wgy),
            ("SWIZZLE", &swizzle_wgsl(GROUP_M)),
            ("ACCUMULATORS", &accumulators),
            ("STAGE_A", &stage_a),
            ("STAGE_B", &stage_b),
            ("MULTIPLY", &multiply),
            ("STORE_C", &store_c),
        ],
    )
}
