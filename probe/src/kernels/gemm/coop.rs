//! The GEMM kernels on matrix units (WGSL `wgpu_cooperative_matrix`, native only): the
//! shared-memory-staged kernel ([`StagedTile`], [`staged_wgsl`]) and, where it cannot run, the
//! kernel that loads fragments straight from global memory ([`CoopTile`], [`coop_wgsl`]).

use super::{GROUP_M, GemmVariant, swizzle_wgsl};
use crate::kernels::wgsl_template;

/// One cooperative-matrix configuration: fragment size and fragments per subgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoopTile {
    /// Fragment edge (8 or 16).
    pub frag: u32,
    /// Fragments per subgroup along M.
    pub fm: u32,
    /// Fragments per subgroup along N.
    pub fn_: u32,
    /// Subgroup size (one subgroup per workgroup).
    pub subgroup: u32,
}

impl CoopTile {
    pub(super) fn block_m(self) -> u32 {
        self.frag * self.fm
    }
    pub(super) fn block_n(self) -> u32 {
        self.frag * self.fn_
    }
    /// `FRAGxFRAG FMxFN sgS`.
    pub fn label(self) -> String {
        format!(
            "{f}x{f} frags {}x{} sg{}",
            self.fm,
            self.fn_,
            self.subgroup,
            f = self.frag
        )
    }
}

/// WGSL for the cooperative-matrix kernel. naga 30 traps (TOOLCHAIN.md): bindings must not be
/// named `A`/`B`/`C`, and every index inside `coopLoad`/`coopStore` is bound with `let` first.
pub fn coop_wgsl(variant: GemmVariant, tile: CoopTile) -> String {
    let t = variant.accumulator();
    let CoopTile {
        frag,
        fm,
        fn_,
        subgroup,
    } = tile;
    let ty = format!("coop_mat{frag}x{frag}");
    let mut accumulators = String::new();
    let mut multiply = String::new();
    let mut store_c = String::new();
    for i in 0..fm {
        for j in 0..fn_ {
            accumulators += &format!("    var acc{i}_{j} = {ty}<{t}, C>();\n");
            multiply += &format!("        acc{i}_{j} = coopMultiplyAdd(a{i}, b{j}, acc{i}_{j});\n");
            store_c += &format!(
                "    let pc{i}_{j} = (r0 + {ro}u) * nn + c0 + {co}u;\n    coopStoreT(acc{i}_{j}, &mat_c[pc{i}_{j}], nn);\n",
                ro = i * frag,
                co = j * frag
            );
        }
    }
    let mut loads = String::new();
    for i in 0..fm {
        loads += &format!("        let pa{i} = (r0 + {o}u) * kk + k;\n", o = i * frag);
        loads += &format!("        let a{i} = coopLoadT<{ty}<f16, A>>(&mat_a[pa{i}], kk);\n");
    }
    for j in 0..fn_ {
        loads += &format!("        let pb{j} = k * nn + c0 + {o}u;\n", o = j * frag);
        loads += &format!("        let b{j} = coopLoadT<{ty}<f16, B>>(&mat_b[pb{j}], nn);\n");
    }
    wgsl_template(
        include_str!("../wgsl/gemm_coop.wgsl"),
        &[
            ("T", &t),
            ("SUBGROUP", &subgroup),
            ("SWIZZLE", &swizzle_wgsl(GROUP_M)),
            ("BM", &tile.block_m()),
            ("BN", &tile.block_n()),
            ("FRAG", &frag),
            ("ACCUMULATORS", &accumulators),
            ("LOADS", &loads),
            ("MULTIPLY", &multiply),
            ("STORE_C", &store_c),
        ],
    )
}

/// How the staged kernel reads A and B from global memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalLoad {
    /// One 16-byte `vec4<u32>` load per 8 halves; halves come out through `unpack2x16float`
    /// (naga lowers `bitcast` without changing the width) when shared memory holds halves.
    Words4,
    /// Two 8-byte `vec4<f16>` loads per 8 halves: no conversion on the way to shared memory.
    Halves4,
}

/// How the staged kernel keeps its slices in shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedLayout {
    /// `array<f16>`: 8 scalar stores per 8 halves; coopLoad reads halves.
    Halves,
    /// `array<vec4<f16>>` (with [`GlobalLoad::Halves4`]): 2 vector stores per 8 halves; coopLoad
    /// through a vector pointer, offsets and strides in 4-half vectors (compiles on NVIDIA's
    /// driver, where the `u32` layouts below do not: the pointer's component type must be the
    /// fragment's).
    HalfVectors,
    /// `array<u32>` (with [`GlobalLoad::Words4`]): 4 word stores per 8 halves; coopLoad reads f16
    /// fragments through a `u32` pointer. NVIDIA's Vulkan driver 580 fails to compile naga's
    /// SPIR-V for it ("NVVM compilation failed").
    Words,
    /// `array<vec4<u32>>` (with [`GlobalLoad::Words4`]): 1 store per 8 halves; coopLoad through
    /// a `vec4<u32>` pointer (NVIDIA's vk_cooperative_matrix_perf sample does this in GLSL).
    /// NVIDIA's Vulkan driver 580 fails to compile naga's SPIR-V for it.
    Vectors,
}

impl SharedLayout {
    /// Halves per element of the shared array.
    fn halves(self) -> u32 {
        match self {
            SharedLayout::Halves => 1,
            SharedLayout::Words => 2,
            SharedLayout::HalfVectors => 4,
            SharedLayout::Vectors => HALVES_PER_VEC4,
        }
    }
    fn wgsl_type(self) -> &'static str {
        match self {
            SharedLayout::Halves => "f16",
            SharedLayout::Words => "u32",
            SharedLayout::HalfVectors => "vec4<f16>",
            SharedLayout::Vectors => "vec4<u32>",
        }
    }
    fn label(self) -> &'static str {
        match self {
            SharedLayout::Halves => "halves",
            SharedLayout::Words => "words",
            SharedLayout::HalfVectors => "halfvec",
            SharedLayout::Vectors => "vectors",
        }
    }
}

/// One shared-memory-staged cooperative-matrix configuration: a workgroup of `wm × wn`
/// subgroups computes a `bm × bn` tile of C; each `bk`-deep slice of A and B is copied into
/// shared memory (staged in registers one slice ahead, so the global loads of the next slice
/// overlap the matrix work on this one), then every subgroup loads its 16×16 fragments from
/// shared memory and reuses each across its row/column of fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedTile {
    /// Rows of C per workgroup.
    pub bm: u32,
    /// Columns of C per workgroup.
    pub bn: u32,
    /// Depth of each staged slice (a multiple of 16).
    pub bk: u32,
    /// Subgroups along M.
    pub wm: u32,
    /// Subgroups along N.
    pub wn: u32,
    /// Global load width.
    pub global: GlobalLoad,
    /// Shared-memory element type.
    pub shared: SharedLayout,
    /// Two shared stages: the next slice is stored into one while the other is read, one
    /// barrier per slice instead of two.
    pub double_buffer: bool,
    /// Rows of tiles walked together in the grouped order (see [`GROUP_M`]).
    pub group_m: u32,
    /// Each workgroup starts its walk over K at a different slice (wrapping around), so the
    /// workgroups running at once read different columns of A and rows of B.
    pub rotate_k: bool,
    /// Slices held in registers ahead of the one in shared memory (single-buffered kernels):
    /// with 2, the global loads of slice `s + 2` are issued while slice `s` is multiplied, so
    /// each load has two slices of matrix work to arrive in (on an H100 the one-slice-ahead
    /// kernel waits on L2: 195 → 231 TFLOP/s at 4096³). The loop is unrolled by this count
    /// (each step uses its own register set), so it must divide the number of slices.
    pub prefetch: u32,
}

/// Halves per 16-byte vector.
const HALVES_PER_VEC4: u32 = 8;
/// Padding per shared-memory row, in halves (one 16-byte vector), against bank conflicts
/// (NVIDIA's vk_cooperative_matrix_perf sample pads rows the same way).
const ROW_PAD_HALVES: u32 = 8;
/// Fragment edge of the staged kernel (WGSL's `coop_mat16x16`).
pub(super) const STAGED_FRAG: u32 = 16;
/// Most slices a staged kernel may hold ahead in registers (one register set each).
const MAX_PREFETCH: u32 = 4;
/// Names of the register sets holding prefetched slices.
const REGISTER_SETS: [&str; MAX_PREFETCH as usize] = ["r", "q", "t", "v"];

impl StagedTile {
    const fn new(bm: u32, bn: u32, bk: u32, wm: u32, wn: u32) -> StagedTile {
        StagedTile {
            bm,
            bn,
            bk,
            wm,
            wn,
            global: GlobalLoad::Words4,
            shared: SharedLayout::Halves,
            double_buffer: false,
            group_m: GROUP_M,
            rotate_k: false,
            prefetch: 1,
        }
    }

    /// Candidates tried at run time: only layouts NVIDIA's driver compiled (one kernel the
    /// driver fails to compile loses the device for everything after it).
    pub const CANDIDATES: [StagedTile; 9] = [
        StagedTile {
            shared: SharedLayout::HalfVectors,
            rotate_k: true,
            group_m: 16,
            prefetch: 2,
            ..StagedTile::new(128, 128, 32, 2, 2)
        },
        StagedTile {
            rotate_k: true,
            group_m: 16,
            prefetch: 2,
            ..StagedTile::new(128, 128, 32, 2, 2)
        },
        StagedTile {
            rotate_k: true,
            group_m: 16,
            prefetch: 4,
            ..StagedTile::new(128, 128, 16, 2, 2)
        },
        StagedTile {
            rotate_k: true,
            group_m: 16,
            ..StagedTile::new(128, 128, 32, 2, 2)
        },
        StagedTile {
            shared: SharedLayout::HalfVectors,
            rotate_k: true,
            ..StagedTile::new(128, 128, 32, 2, 2)
        },
        StagedTile {
            shared: SharedLayout::HalfVectors,
            rotate_k: true,
            ..StagedTile::new(128, 128, 16, 2, 2)
        },
        StagedTile {
            shared: SharedLayout::HalfVectors,
            rotate_k: true,
            ..StagedTile::new(128, 64, 32, 2, 2)
        },
        StagedTile {
            rotate_k: true,
            ..StagedTile::new(256, 128, 32, 4, 2)
        },
        StagedTile {
            global: GlobalLoad::Halves4,
            shared: SharedLayout::HalfVectors,
            ..StagedTile::new(128, 256, 32, 2, 4)
        },
    ];

    pub(super) fn subgroups(self) -> u32 {
        self.wm * self.wn
    }
    fn frags_m(self) -> u32 {
        self.bm / self.wm / STAGED_FRAG
    }
    fn frags_n(self) -> u32 {
        self.bn / self.wn / STAGED_FRAG
    }
    fn stages(self) -> u32 {
        if self.double_buffer { 2 } else { 1 }
    }
    /// Shared memory the kernel declares.
    pub fn shared_bytes(self) -> u32 {
        (self.bm * (self.bk + ROW_PAD_HALVES) + self.bk * (self.bn + ROW_PAD_HALVES))
            * 2
            * self.stages()
    }
    /// Whether the tile is well formed for this subgroup size (every invocation copies a whole
    /// number of 16-byte vectors of each slice; fragments tile each subgroup's block; the
    /// shared layout fits the load width).
    pub fn valid(self, subgroup: u32) -> bool {
        let threads = self.subgroups() * subgroup;
        let layout_ok = match self.shared {
            SharedLayout::Halves => true,
            SharedLayout::HalfVectors => true,
            SharedLayout::Words | SharedLayout::Vectors => self.global == GlobalLoad::Words4,
        };
        layout_ok
            && self.group_m > 0
            && (1..=MAX_PREFETCH).contains(&self.prefetch)
            && (self.prefetch == 1 || !self.double_buffer)
            && self.bk.is_multiple_of(STAGED_FRAG)
            && self.bm.is_multiple_of(self.wm * STAGED_FRAG)
            && self.bn.is_multiple_of(self.wn * STAGED_FRAG)
            && threads > 0
            && (self.bm * self.bk / HALVES_PER_VEC4).is_multiple_of(threads)
            && (self.bk * self.bn / HALVES_PER_VEC4).is_multiple_of(threads)
            && threads.is_multiple_of(self.bk / HALVES_PER_VEC4)
            && threads.is_multiple_of(self.bn / HALVES_PER_VEC4)
    }
    /// e.g. `staged 128x128x32 sg 2x2 h4>halves db g8`.
    pub fn label(self) -> String {
        format!(
            "staged {}x{}x{} sg {}x{} {}>{}{} g{}{}{}",
            self.bm,
            self.bn,
            self.bk,
            self.wm,
            self.wn,
            match self.global {
                GlobalLoad::Words4 => "w4",
                GlobalLoad::Halves4 => "h4",
            },
            self.shared.label(),
            if self.double_buffer { " db" } else { "" },
            self.group_m,
            if self.rotate_k { " rot" } else { "" },
            if self.prefetch > 1 {
                format!(" pf{}", self.prefetch)
            } else {
                String::new()
            }
        )
    }
}

/// WGSL for the shared-memory-staged cooperative-matrix kernel, laid out as `tile` says.
/// Global indices are in 16-byte vectors (`vec4<u32>`) or 8-byte ones (`vec4<f16>`); shared
/// row strides and coopLoad offsets in the shared array's element. naga traps as in
/// [`coop_wgsl`]. The subgroup index is `@builtin(subgroup_id)`.
pub fn staged_wgsl(variant: GemmVariant, tile: StagedTile, subgroup: u32) -> String {
    let t = variant.accumulator();
    let StagedTile {
        bm,
        bn,
        bk,
        wm: _,
        wn,
        global,
        shared,
        double_buffer,
        group_m,
        rotate_k,
        prefetch,
    } = tile;
    let threads = tile.subgroups() * subgroup;
    let (fm, fnn) = (tile.frags_m(), tile.frags_n());
    let unit = shared.halves();
    let sa = (bk + ROW_PAD_HALVES) / unit;
    let sb = (bn + ROW_PAD_HALVES) / unit;
    let (a_stage, b_stage) = (bm * sa, bk * sb);
    let a_vec_per_row = bk / HALVES_PER_VEC4;
    let b_vec_per_row = bn / HALVES_PER_VEC4;
    let a_rows_per_pass = threads / a_vec_per_row;
    let b_rows_per_pass = threads / b_vec_per_row;
    let a_loads = bm / a_rows_per_pass;
    let b_loads = bk / b_rows_per_pass;
    let ty = "coop_mat16x16";
    let sh_ty = shared.wgsl_type();
    let g_ty = match global {
        GlobalLoad::Words4 => "vec4<u32>",
        GlobalLoad::Halves4 => "vec4<f16>",
    };
    let first_slice = if rotate_k {
        "(tile_m + tile_n) % nk"
    } else {
        "0u"
    };
    // The body after the prologue in kernels/wgsl/gemm_staged.wgsl.
    let mut s = String::new();
    for i in 0..fm {
        for j in 0..fnn {
            s += &format!("    var acc{i}_{j} = {ty}<{t}, C>();\n");
        }
    }
    // Registers holding one slice per register set (`{set}a{i}`, `{set}b{j}`): per 16-byte
    // vector one vec4<u32> or two vec4<f16>.
    let sets = &REGISTER_SETS[..prefetch as usize];
    let regs: Vec<String> = sets
        .iter()
        .flat_map(|set| {
            (0..a_loads)
                .map(move |i| format!("{set}a{i}"))
                .chain((0..b_loads).map(move |j| format!("{set}b{j}")))
        })
        .collect();
    for r in &regs {
        match global {
            GlobalLoad::Words4 => s += &format!("    var {r}: vec4<u32>;\n"),
            GlobalLoad::Halves4 => {
                s += &format!("    var {r}_0: vec4<f16>;\n    var {r}_1: vec4<f16>;\n")
            }
        }
    }
    // Loads of one slice (`slice` names its index) into register set `set`.
    let load_slice = |indent: &str, slice: &str, set: &str| -> String {
        let mut out = format!(
            "{indent}let ka = {slice} * {kv_per}u;\n{indent}let kb = {slice} * {bk}u;\n",
            kv_per = bk / HALVES_PER_VEC4
        );
        let mut one = |reg: String, arr: &str, idx: String| match global {
            GlobalLoad::Words4 => out += &format!("{indent}{reg} = {arr}[{idx}];\n"),
            GlobalLoad::Halves4 => {
                out += &format!(
                    "{indent}{reg}_0 = {arr}[2u * ({idx})];\n{indent}{reg}_1 = {arr}[2u * ({idx}) + 1u];\n"
                )
            }
        };
        for i in 0..a_loads {
            one(
                format!("{set}a{i}"),
                "mat_a",
                format!("ga + {}u * kv + ka", i * a_rows_per_pass),
            );
        }
        for j in 0..b_loads {
            one(
                format!("{set}b{j}"),
                "mat_b",
                format!("gb + (kb + {}u) * nv", j * b_rows_per_pass),
            );
        }
        out
    };
    // Stores of register set `set` into one stage (`stage_a`/`stage_b` name its offsets).
    let store_slice = |indent: &str, stage_a: &str, stage_b: &str, set: &str| -> String {
        let mut out = String::new();
        let mut one = |arr: &str, reg: String, stage: &str, row: String, col: &str, stride: u32| {
            // First element of this 16-byte vector in the shared array.
            out += &format!(
                "{indent}{{\n{indent}    let base = {stage} + ({row}) * {stride}u + {col} * {per}u;\n",
                per = HALVES_PER_VEC4 / unit
            );
            match (global, shared) {
                (GlobalLoad::Words4, SharedLayout::Vectors) => {
                    out += &format!("{indent}    {arr}[base] = {reg};\n")
                }
                (GlobalLoad::Words4, SharedLayout::HalfVectors) => {
                    out += &format!(
                        "{indent}    let l = vec4<f32>(unpack2x16float({reg}.x), unpack2x16float({reg}.y));\n{indent}    let h = vec4<f32>(unpack2x16float({reg}.z), unpack2x16float({reg}.w));\n{indent}    {arr}[base] = vec4<f16>(l);\n{indent}    {arr}[base + 1u] = vec4<f16>(h);\n"
                    );
                }
                (GlobalLoad::Words4, SharedLayout::Words) => {
                    for (w, c) in ["x", "y", "z", "w"].iter().enumerate() {
                        out += &format!("{indent}    {arr}[base + {w}u] = {reg}.{c};\n");
                    }
                }
                (GlobalLoad::Words4, _) => {
                    for (w, c) in ["x", "y", "z", "w"].iter().enumerate() {
                        out += &format!(
                            "{indent}    let h{w} = vec2<f16>(unpack2x16float({reg}.{c}));\n{indent}    {arr}[base + {lo}u] = h{w}.x;\n{indent}    {arr}[base + {hi}u] = h{w}.y;\n",
                            lo = 2 * w,
                            hi = 2 * w + 1
                        );
                    }
                }
                (GlobalLoad::Halves4, SharedLayout::HalfVectors) => {
                    out += &format!(
                        "{indent}    {arr}[base] = {reg}_0;\n{indent}    {arr}[base + 1u] = {reg}_1;\n"
                    );
                }
                (GlobalLoad::Halves4, _) => {
                    for (h, half) in ["0", "1"].iter().enumerate() {
                        for (w, c) in ["x", "y", "z", "w"].iter().enumerate() {
                            out += &format!(
                                "{indent}    {arr}[base + {o}u] = {reg}_{half}.{c};\n",
                                o = 4 * h + w
                            );
                        }
                    }
                }
            }
            out += &format!("{indent}}}\n");
        };
        for i in 0..a_loads {
            one(
                "sh_a",
                format!("{set}a{i}"),
                stage_a,
                format!("a_row + {}u", i * a_rows_per_pass),
                "a_col",
                sa,
            );
        }
        for j in 0..b_loads {
            one(
                "sh_b",
                format!("{set}b{j}"),
                stage_b,
                format!("b_row + {}u", j * b_rows_per_pass),
                "b_col",
                sb,
            );
        }
        out
    };
    // The matrix work on the stage at `stage_a`/`stage_b`.
    let mut math = String::new();
    for kf in 0..bk / STAGED_FRAG {
        for i in 0..fm {
            math += &format!(
                "        let pa{kf}_{i} = so_a + (sg_m * {rows}u + {ro}u) * {sa}u + {ko}u;\n        let a{kf}_{i} = coopLoadT<{ty}<f16, A>>(&sh_a[pa{kf}_{i}], {sa}u);\n",
                rows = fm * STAGED_FRAG,
                ro = i * STAGED_FRAG,
                ko = kf * STAGED_FRAG / unit,
            );
        }
        for j in 0..fnn {
            math += &format!(
                "        let pb{kf}_{j} = so_b + {ko}u * {sb}u + sg_n * {cols}u + {co}u;\n        let b{kf}_{j} = coopLoadT<{ty}<f16, B>>(&sh_b[pb{kf}_{j}], {sb}u);\n",
                ko = kf * STAGED_FRAG,
                cols = fnn * STAGED_FRAG / unit,
                co = j * STAGED_FRAG / unit,
            );
        }
        for i in 0..fm {
            for j in 0..fnn {
                math += &format!(
                    "        acc{i}_{j} = coopMultiplyAdd(a{kf}_{i}, b{kf}_{j}, acc{i}_{j});\n"
                );
            }
        }
    }
    // The first `prefetch` slices, one per register set.
    for (i, set) in sets.iter().enumerate() {
        s += &format!("    {{\n        let sp = (s0 + {i}u) % nk;\n");
        s += &load_slice("        ", "sp", set);
        s += "    }\n";
    }
    if double_buffer {
        s += &store_slice("    ", "0u", "0u", "r");
        s += "    workgroupBarrier();\n";
        s += "    for (var it = 0u; it < nk; it += 1u) {\n";
        s += &format!(
            "        let so_a = (it % 2u) * {a_stage}u;\n        let so_b = (it % 2u) * {b_stage}u;\n"
        );
        s += "        let more = it + 1u < nk;\n        if (more) {\n            let sn = (s0 + it + 1u) % nk;\n";
        s += &load_slice("            ", "sn", "r");
        s += "        }\n";
        s += &math;
        s += &format!(
            "        if (more) {{\n            let no_a = {a_stage}u - so_a;\n            let no_b = {b_stage}u - so_b;\n"
        );
        s += &store_slice("            ", "no_a", "no_b", "r");
        s += "        }\n        workgroupBarrier();\n    }\n";
    } else {
        // Unrolled by `prefetch`: step `u` stores register set `u`, then refills it with the
        // slice `prefetch` ahead (issued before the matrix work so the loads overlap it).
        s += "    let so_a = 0u;\n    let so_b = 0u;\n";
        s += &format!("    for (var it0 = 0u; it0 < nk; it0 += {prefetch}u) {{\n");
        for (u, set) in sets.iter().enumerate() {
            s += &format!("        let at{u} = it0 + {u}u;\n        workgroupBarrier();\n");
            s += &store_slice("        ", "0u", "0u", set);
            s += "        workgroupBarrier();\n";
            s += &format!(
                "        if (at{u} + {prefetch}u < nk) {{\n            let sn = (s0 + at{u} + {prefetch}u) % nk;\n"
            );
            s += &load_slice("            ", "sn", set);
            s += "        }\n";
            s += "        {\n";
            s += &math;
            s += "        }\n";
        }
        s += "    }\n";
    }
    for i in 0..fm {
        for j in 0..fnn {
            s += &format!(
                "    let pc{i}_{j} = (r0 + sg_m * {rows}u + {ro}u) * nn + c0 + sg_n * {cols}u + {co}u;\n    coopStoreT(acc{i}_{j}, &mat_c[pc{i}_{j}], nn);\n",
                rows = fm * STAGED_FRAG,
                cols = fnn * STAGED_FRAG,
                ro = i * STAGED_FRAG,
                co = j * STAGED_FRAG
            );
        }
    }
    wgsl_template(
        include_str!("../wgsl/gemm_staged.wgsl"),
        &[
            ("G_TY", &g_ty),
            ("T", &t),
            ("BM", &bm),
            ("BN", &bn),
            ("BK", &bk),
            ("SA", &sa),
            ("SB", &sb),
            ("SH_TY", &sh_ty),
            ("ROW_PAD_HALVES", &ROW_PAD_HALVES),
            ("STAGES", &tile.stages()),
            ("A_LEN", &(a_stage * tile.stages())),
            ("B_LEN", &(b_stage * tile.stages())),
            ("THREADS", &threads),
            ("SWIZZLE", &swizzle_wgsl(group_m)),
            ("HALVES_PER_VEC4", &HALVES_PER_VEC4),
            ("FIRST_SLICE", &first_slice),
            ("WN", &wn),
            ("A_VEC_PER_ROW", &a_vec_per_row),
            ("B_VEC_PER_ROW", &b_vec_per_row),
            ("BODY", &s),
        ],
    )
}

/// The cooperative-matrix fragment sizes this adapter offers for f16 inputs with the variant's
/// accumulator (8 and 16 are the sizes WGSL names).
pub fn coop_fragments(
    props: &[wgpu::CooperativeMatrixProperties],
    variant: GemmVariant,
) -> Vec<u32> {
    let want = if variant.accumulator() == "f32" {
        wgpu::CooperativeScalarType::F32
    } else {
        wgpu::CooperativeScalarType::F16
    };
    let mut out: Vec<u32> = props
        .iter()
        .filter(|p| {
            p.m_size == p.n_size
                && p.n_size == p.k_size
                && (p.m_size == 8 || p.m_size == 16)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == want
        })
        .map(|p| p.m_size)
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out
}
