//! The register-tiled vector kernel (f32 and f16 without matrix units): a workgroup computes a
//! `BM × BN` tile of C from `BK`-deep slices of A and B staged in shared memory; each invocation
//! keeps a `TM × TN` block of C in registers (fully unrolled, vec4 loads).

use super::{GROUP_M, GemmVariant, swizzle_wgsl};

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
    let mut s = format!(
        r#"{enable}
struct Dims {{ m: u32, n: u32, k: u32, pad: u32 }}
@group(0) @binding(0) var<storage, read> mat_a: array<vec4<{tin}>>;
@group(0) @binding(1) var<storage, read> mat_b: array<vec4<{tin}>>;
@group(0) @binding(2) var<storage, read_write> mat_c: array<vec4<{t}>>;
@group(0) @binding(3) var<uniform> dims: Dims;
// A slice, transposed: as_t[k * {bm} + m]; B slice: bs[k * {bn} + n], both as vec4.
var<workgroup> as_t: array<vec4<{t}>, {a_len}>;
var<workgroup> bs: array<vec4<{t}>, {b_len}>;
@compute @workgroup_size({wgx}, {wgy}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {{
{swz}    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * {wgx}u + tx;
    let row0 = tile_m * {bm}u;
    let col0 = tile_n * {bn}u;
    let k4 = dims.k / 4u;
    let n4 = dims.n / 4u;
"#,
        a_len = bm * bk / 4,
        b_len = bn * bk / 4,
        swz = swizzle_wgsl(GROUP_M),
    );
    for i in 0..tm {
        for j in 0..tn / 4 {
            s += &format!("    var c{i}_{j} = vec4<{t}>();\n");
        }
    }
    s += &format!("    for (var k0 = 0u; k0 < dims.k; k0 += {bk}u) {{\n");
    // Stage A: BM×BK as BM*BK/4 vec4 along k, stored transposed.
    let a_vec4 = bm * bk / 4;
    let mut v = 0;
    while v < a_vec4 {
        let guard = v + threads > a_vec4;
        s += &format!("        {{ let v = tid + {v}u;\n");
        if guard {
            s += &format!("        if (v < {a_vec4}u) {{\n");
        }
        s += &format!(
            "        let r = v / {kq}u; let kq = v % {kq}u;\n        let a = vec4<{t}>(mat_a[(row0 + r) * k4 + k0 / 4u + kq]);\n",
            kq = bk / 4
        );
        for c in 0..4 {
            let comp = ["x", "y", "z", "w"][c];
            s +=
                &format!("        as_t[((kq * 4u + {c}u) * {bm}u + r) / 4u][r % 4u] = a.{comp};\n");
        }
        if guard {
            s += "        }\n";
        }
        s += "        }\n";
        v += threads;
    }
    let b_vec4 = bn * bk / 4;
    let mut v = 0;
    while v < b_vec4 {
        let guard = v + threads > b_vec4;
        s += &format!("        {{ let v = tid + {v}u;\n");
        if guard {
            s += &format!("        if (v < {b_vec4}u) {{\n");
        }
        s += &format!(
            "        let kr = v / {nq}u; let nq = v % {nq}u;\n        bs[v] = vec4<{t}>(mat_b[(k0 + kr) * n4 + col0 / 4u + nq]);\n",
            nq = bn / 4
        );
        if guard {
            s += "        }\n";
        }
        s += "        }\n";
        v += threads;
    }
    s += "        workgroupBarrier();\n";
    for k in 0..bk {
        // Rows of this invocation: ty*4 + c + q*WGY*4 (q-th group of 4); columns tx*4 + j*WGX*4:
        // neighbouring invocations read neighbouring vec4s (no bank conflicts, coalesced stores).
        for q in 0..tm / 4 {
            s += &format!(
                "        let a{q}_{k} = as_t[{k}u * {bm4}u + ty + {off}u];\n",
                bm4 = bm / 4,
                off = q * wgy
            );
        }
        for j in 0..tn / 4 {
            s += &format!(
                "        let b{j}_{k} = bs[{k}u * {bn4}u + tx + {off}u];\n",
                bn4 = bn / 4,
                off = j * wgx
            );
        }
        for i in 0..tm {
            let comp = ["x", "y", "z", "w"][(i % 4) as usize];
            for j in 0..tn / 4 {
                s += &format!(
                    "        c{i}_{j} = fma(vec4<{t}>(a{q}_{k}.{comp}), b{j}_{k}, c{i}_{j});\n",
                    q = i / 4
                );
            }
        }
    }
    s += "        workgroupBarrier();\n    }\n";
    for i in 0..tm {
        for j in 0..tn / 4 {
            s += &format!(
                "    mat_c[(row0 + ty * 4u + {r}u) * n4 + col0 / 4u + tx + {cj}u] = c{i}_{j};\n",
                r = (i % 4) + (i / 4) * wgy * 4,
                cj = j * wgx
            );
        }
    }
    s += "}\n";
    s
}
