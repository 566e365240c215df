//! FlashAttention-2-style forward kernel on cooperative matrices (WGSL `wgpu_cooperative_matrix`,
//! native only): `Q·Kᵀ` and `P·V` run on the matrix units in 16×16×16 f16 fragments with f32
//! accumulate; the online softmax runs on the subgroup's lanes through a shared-memory scratch.
//!
//! # Work split
//! A workgroup owns `16·NS` consecutive query rows of one (batch, head); each of its `NS`
//! subgroups (`@builtin(subgroup_id)`) owns 16 of them. The subgroup keeps its Q rows as `D/16`
//! A fragments and its output `O` (16 × D, f32) as `D/16` C fragments for the whole key loop.
//! Keys stream in blocks of `BC`: the workgroup stages the K and V block in shared memory, then
//! each subgroup computes `S = Q·Kᵀ` (16 × BC, `BC/16` C fragments), stores S to its scratch,
//! its lanes do the softmax and write `P` (f16) to a second scratch, and `O += P·V`.
//!
//! # Index algebra (all row-major unless said otherwise)
//! Fragment semantics, as used by the verified GEMM (`gemm::coop_wgsl`): `coopLoadT(&x[i], s)`
//! reads element (row r, col c) at `x[i + r·s + c]`; `coopLoad(&x[i], s)` (column-major) reads
//! it at `x[i + c·s + r]`; `coopMultiplyAdd(a, b, c) = a·b + c` (a: 16×16 A, b: 16×16 B).
//! Indices and strides count elements of the array the pointer points into: halves for an
//! `array<f16>`, 4 halves for an `array<vec4<f16>>` (verified on an H100 by the GEMM).
//! The pointer's component type must be the fragment's: NVIDIA's driver fails to compile a
//! coopLoad of f16 fragments from a `vec4<u32>` array ("NVVM compilation failed"), and such a
//! failure loses the whole device, so no variant uses one.
//!
//! * Global tensors are `[b·h][S][D]` f16; `hb = (wid.y)·S·D` halves is the head's base.
//! * Q fragment `kd` (A, rows q0..q0+15, dims 16kd..16kd+15): `coopLoadT(&q_in[hb + q0·D + 16kd], D)`
//!   → element (r, c) = `Q[q0 + r][16kd + c]`.
//! * K tile in shared: key `j` of the block, dim `x` at half `j·KS + x` (`KS = D + 8`, the pad of 8
//!   halves staggers rows over banks). `vec4` flavour: vector `j·(KS/4) + x/4`.
//! * Kᵀ fragment (B, 16 dims × 16 keys) for dims 16kd.., keys 16jb..: element (r = dim, c = key)
//!   must be `K[16jb + c][16kd + r]` = half `(16jb + c)·KS + 16kd + r`, i.e. column-major with
//!   base `16jb·KS + 16kd` and stride `KS` halves: `coopLoad(&sh_k[base], KS)` (vec4 flavour:
//!   base `16jb·KS/4 + 4kd`, stride `KS/4`).
//! * `S_jb = Σ_kd Q_kd · Kᵀ_(kd,jb)`: element (r, c) = q(q0+r) · k(16jb + c) ✓.
//! * S scratch (per subgroup, f32): row r, key c at `so + r·SP + c`, `SP = BC + 4`;
//!   `coopStoreT(S_jb, &sh_s[so + 16jb], SP)`.
//! * Lane mapping for the softmax: `LPR = SG/16` lanes per row; lane `l` takes row `l % 16` and
//!   keys `(l / 16)·CPL .. +CPL`, `CPL = BC/LPR`. Row reductions combine the `LPR` lanes of a
//!   row with `subgroupShuffleXor` over masks 16 (and 32).
//! * P scratch (per subgroup, f16): row r, key c at `po + r·PP + c`, `PP = BC + 8`;
//!   P fragment jb (A, 16 rows × 16 keys) = `coopLoadT(&sh_p[po + 16jb], PP)`.
//! * V tile in shared like K; V fragment (B, 16 keys × 16 dims) for keys 16jb.., dims 16n..:
//!   element (r = key, c = dim) = `V[16jb + r][16n + c]` = half `(16jb + r)·KS + 16n + c`:
//!   row-major, base `16jb·KS + 16n`, stride `KS` (vec4: base `16jb·KS/4 + 4n`, stride `KS/4`).
//! * `O_n += Σ_jb P_jb · V_(jb,n)`: element (r, c) += Σ_key p(r, key)·v(key, 16n + c) ✓.
//! * Output: O fragments go through the S scratch (`coopStoreT`, stride SP), lanes divide their
//!   row by ℓ and write f16 at `hb + (q0 + r)·D + col`.
//!
//! # Verification
//! Every variant passes naga (WGSL → validation → SPIR-V) in the unit tests, and the emulated
//! form (same index algebra, fragments as plain arrays) matches the f64 reference on lavapipe;
//! on the device, `attention::run` checks each candidate against the CPU before its speed counts.
//! Every workgroup variable is a multiple of 128 bytes: NVIDIA's driver lays workgroup variables
//! out itself, and one whose size broke 16-byte alignment shifted the fragment loads and stores
//! after it by a few elements (probe/BENCHMARKS.md).
//!
//! # Softmax with a lazy reference (exact)
//! Scores are in log2 units (`s·log2(e)/√D`). Each row keeps a reference `m` (not necessarily
//! the running max) and `ℓ = Σ 2^(s−m)`, `O = Σ 2^(s−m)·v` relative to it. The first key block
//! sets `m` to its row max (O and ℓ are still zero). A later block whose row max exceeds `m` by
//! more than [`RESCALE_THRESHOLD_LOG2`] moves `m` to that max and rescales ℓ and O by
//! `2^(m_old − m_new)`; otherwise `m` stays, so `p = 2^(s−m) ≤ 2^threshold` — safe in f16 and
//! f32. Matrix fragments have no per-row scaling, so a rescale stores O to the scratch, scales
//! rows on the lanes and reloads it; the decision is made for the whole workgroup (a flag in
//! shared memory read with `workgroupUniformLoad`) so that every barrier stays in uniform control
//! flow. The result `O/ℓ` is the same for any reference. [`simulate_row`] is a CPU model of
//! this scheme, which the tests hold to the f64 reference.

mod cpu_model;
mod emulation;

pub use cpu_model::simulate_row;
use emulation::emulation_library;

use crate::kernels::wgsl_template;

/// Largest lead (log2 units) of a block's row max over the row's reference before O is rescaled:
/// `p ≤ 2^8 = 256` stays far inside f16's range (65504), and the f32 sums gain at most 8 bits.
pub const RESCALE_THRESHOLD_LOG2: f32 = 8.0;

/// Fragment edge: the kernel is written for 16×16×16 f16 fragments with f32 accumulate.
pub const FRAG: u32 = 16;

/// How K and V tiles are held in shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileStore {
    /// `array<vec4<f16>>`: 8-byte copies; fragment indices and strides in 4-half units.
    Vec4,
    /// `array<f16>`: copies unpacked to halves; fragment indices and strides in halves (the
    /// unambiguous form, kept as a fallback should a driver read vector-typed tiles otherwise).
    Half,
}

/// One kernel configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoopAttention {
    /// Head size (64 or 128).
    pub head_dim: u32,
    /// Causal mask.
    pub causal: bool,
    /// Keys per block (32 or 64).
    pub key_block: u32,
    /// Subgroups per workgroup (each owns 16 query rows).
    pub subgroups: u32,
    /// Subgroup size (16, 32 or 64; 16 query rows share it).
    pub subgroup_size: u32,
    /// Shared-memory layout of the K and V tiles.
    pub store: TileStore,
    /// Load the next key block into registers while this one is computed.
    pub prefetch: bool,
    /// Publish the S scratch to the subgroup's lanes with a subgroup barrier instead of a
    /// workgroup one.
    pub subgroup_sync: bool,
    /// Keep the S scratch in a storage buffer (binding 5, [`CoopAttention::storage_scratch_bytes`])
    /// instead of shared memory: f32 fragments are then stored only to storage, the form the
    /// verified GEMM uses, should a driver reject stores of f32 fragments to shared memory.
    pub s_in_storage: bool,
}

impl CoopAttention {
    /// The plainest configuration: key blocks of 32, 4 subgroups, K/V tiles as halves, every
    /// option off. The candidates below are this with some fields changed.
    pub fn plain(head_dim: u32, causal: bool, subgroup_size: u32) -> CoopAttention {
        CoopAttention {
            head_dim,
            causal,
            key_block: 32,
            subgroups: 4,
            subgroup_size,
            store: TileStore::Half,
            prefetch: false,
            subgroup_sync: false,
            s_in_storage: false,
        }
    }

    /// Configurations tried at run time (those that fit the adapter are kept).
    pub fn candidates(head_dim: u32, causal: bool, subgroup_size: u32) -> Vec<CoopAttention> {
        let plain = CoopAttention::plain(head_dim, causal, subgroup_size);
        let vec4 = CoopAttention {
            store: TileStore::Vec4,
            ..plain
        };
        // First the form with the fewest unverified operations (see `s_in_storage`): should a
        // later one fail to compile and take the device with it, one result exists.
        let mut out = vec![CoopAttention {
            prefetch: true,
            s_in_storage: true,
            ..vec4
        }];
        for prefetch in [false, true] {
            for subgroup_sync in [false, true] {
                for (subgroups, key_block) in [(4, 32), (8, 32), (4, 64), (8, 64)] {
                    out.push(CoopAttention {
                        key_block,
                        subgroups,
                        prefetch,
                        subgroup_sync,
                        ..vec4
                    });
                }
            }
        }
        // S in storage frees shared memory: key blocks of 64 fit at head_dim 128.
        for (subgroups, key_block, prefetch) in [(4, 64, false), (8, 32, true)] {
            out.push(CoopAttention {
                key_block,
                subgroups,
                prefetch,
                s_in_storage: true,
                ..vec4
            });
        }
        // Halves in shared memory: the plainest form, one shape.
        out.push(plain);
        out
    }

    /// Report label, e.g. `coop.sg4.kb32.vec4` (`.pf`: prefetching, `.sb`: subgroup barrier,
    /// `.gs`: S scratch in a storage buffer).
    pub fn label(&self) -> String {
        format!(
            "coop.sg{}.kb{}.{}{}{}{}",
            self.subgroups,
            self.key_block,
            match self.store {
                TileStore::Vec4 => "vec4",
                TileStore::Half => "f16",
            },
            if self.prefetch { ".pf" } else { "" },
            if self.subgroup_sync { ".sb" } else { "" },
            if self.s_in_storage { ".gs" } else { "" }
        )
    }

    /// Query rows per workgroup.
    pub fn query_block(&self) -> u32 {
        FRAG * self.subgroups
    }

    /// Invocations per workgroup.
    pub fn workgroup_size(&self) -> u32 {
        self.subgroups * self.subgroup_size
    }

    /// Whether the shape is one this generator handles (`None`) or why not.
    pub fn unsupported(&self, seq: u32) -> Option<String> {
        if !matches!(self.head_dim, 64 | 128) {
            return Some("head_dim must be 64 or 128".into());
        }
        if !matches!(self.subgroup_size, 16 | 32 | 64) {
            return Some(format!(
                "subgroup size {} (needs a fixed 16, 32 or 64)",
                self.subgroup_size
            ));
        }
        if !matches!(self.key_block, 32 | 64) || !self.head_dim.is_multiple_of(self.key_block) {
            return Some("key block must be 32 or 64 and divide head_dim".into());
        }
        // The causal loop ends at the end of the workgroup's query block.
        if !self.query_block().is_multiple_of(self.key_block) {
            return Some("key block must divide the query block".into());
        }
        if seq == 0 || !seq.is_multiple_of(self.query_block()) {
            return Some(format!(
                "seq must be a multiple of {} (query rows per workgroup)",
                self.query_block()
            ));
        }
        None
    }

    fn ks(&self) -> u32 {
        self.head_dim + 8
    }
    fn sp(&self) -> u32 {
        self.key_block + 4
    }
    /// Bytes of one K or V tile in shared memory.
    fn tile_bytes(&self) -> u32 {
        self.key_block * self.ks() * 2
    }
    fn pp(&self) -> u32 {
        self.key_block + 8
    }
    fn lanes_per_row(&self) -> u32 {
        self.subgroup_size / FRAG
    }
    fn cols_per_lane(&self) -> u32 {
        self.key_block / self.lanes_per_row()
    }

    /// Bytes of the storage buffers (bindings 5, 6, 7: fragment slots, S scratch, P scratch)
    /// the emulated kernel needs for `heads` heads of `seq` rows.
    pub fn emulation_scratch_bytes(&self, seq: u32, heads: u32) -> [u64; 3] {
        let nd = self.head_dim / FRAG;
        let nk = self.key_block / FRAG;
        let slots = u64::from(2 * nd + nk + 3);
        let subgroups = u64::from(seq / self.query_block() * heads * self.subgroups);
        [
            subgroups * slots * 256 * 4,
            subgroups * u64::from(FRAG * self.sp()) * 4,
            subgroups * u64::from(FRAG * self.pp()) * 2,
        ]
    }

    /// Workgroup storage of the emulated kernel: the K and V tiles and the shuffle slots.
    pub fn emulation_shared_bytes(&self) -> u32 {
        2 * self.tile_bytes() + 4 * self.workgroup_size() + 4
    }

    /// Bytes of the S scratch buffer (binding 5) of an `s_in_storage` kernel for `batch·heads`
    /// heads of `seq` rows (0 otherwise).
    pub fn storage_scratch_bytes(&self, seq: u32, batch_heads: u32) -> u64 {
        if !self.s_in_storage {
            return 0;
        }
        u64::from(seq / self.query_block())
            * u64::from(batch_heads)
            * u64::from(self.subgroups * FRAG * self.sp())
            * 4
    }

    /// Workgroup storage the kernel declares, in bytes.
    pub fn shared_bytes(&self) -> u32 {
        let tiles = 2 * self.tile_bytes();
        let s = if self.s_in_storage {
            0
        } else {
            self.subgroups * FRAG * self.sp() * 4
        };
        let p = self.subgroups * FRAG * self.pp() * 2;
        tiles + s + p + 128
    }

    /// The WGSL source. Bindings: 0 `q_in` (f16), 1 `k_in`, 2 `v_in` (`vec4<f16>`), 3 `o_out` (`vec4<f16>`), 4 `p` (`seq`, `scale_log2` bits, 2 pads) — the same
    /// buffers as the scalar kernel.
    pub fn wgsl(&self) -> String {
        self.source(false)
    }

    /// The same kernel with every cooperative-matrix operation and subgroup shuffle replaced by
    /// plain WGSL with the same semantics (see the module docs): each lane holds whole 16×16
    /// fragments in private arrays, shuffles go through shared memory, `subgroup_id` and the lane
    /// come from the invocation index. It runs on any adapter with `SHADER_F16` (lavapipe in CI),
    /// so the tests check the kernel's index algebra, blocking, masking and softmax end to end;
    /// only the drivers' reading of the fragment layouts themselves is left to the real run.
    pub fn emulated_wgsl(&self) -> String {
        self.source(true)
    }

    fn source(&self, em: bool) -> String {
        let d = self.head_dim;
        let bc = self.key_block;
        let ns = self.subgroups;
        let sg = self.subgroup_size;
        let wg = self.workgroup_size();
        let br = self.query_block();
        let ks = self.ks();
        let ks4 = ks / 4;
        let sp = self.sp();
        let pp = self.pp();
        let cpl = self.cols_per_lane();
        let nd = d / FRAG; // d fragments
        let nk = bc / FRAG; // key fragments per block
        let d4 = d / 4; // vec4<f16> per row of K/V
        let tile_vec4 = bc * d4;
        let thr = RESCALE_THRESHOLD_LOG2;
        let (tile_ty, tile_len, unit_ks) = match self.store {
            TileStore::Vec4 => ("vec4<f16>", bc * ks4, ks4),
            TileStore::Half => ("f16", bc * ks, ks),
        };
        let f = "coop_mat16x16";
        let tile_unit = match self.store {
            TileStore::Vec4 => 4,
            TileStore::Half => 1,
        };
        // Fragment slots of the emulation (per subgroup, 256 f32 each, in a storage scratch):
        // Q fragments, O fragments, S fragments, then one slot each for the K, P, V operand.
        let slot_q = |kd: u32| kd;
        let slot_o = |n: u32| nd + n;
        let slot_s = |jb: u32| 2 * nd + jb;
        let (slot_k, slot_p, slot_v) = (2 * nd + nk, 2 * nd + nk + 1, 2 * nd + nk + 2);
        let slot = |i: u32| format!("fb + {}u", i * 256);
        // `decl dst = load(src[idx], stride);` — src is q, k (column-major), v, p (f16 A/B) or
        // s (f32 C); `decl` is "let " or "" (assignment).
        let load = |decl: &str, dst: &str, dst_slot: u32, src: &str, idx: &str, stride: &str| {
            if em {
                return format!("ld_{src}({}, {idx}, {stride});", slot(dst_slot));
            }
            let (arr, t, role) = match src {
                "q" => ("q_in", "T", "f16, A"),
                "k" => ("sh_k", "", "f16, B"),
                "v" => ("sh_v", "T", "f16, B"),
                "p" => ("sh_p", "T", "f16, A"),
                _ => ("sh_s", "T", "f32, C"),
            };
            format!("{decl}{dst} = coopLoad{t}<{f}<{role}>>(&{arr}[{idx}], {stride});")
        };
        let store = |frag: &str, frag_slot: u32, idx: &str, stride: u32| -> String {
            if em {
                format!("st_s({}, {idx}, {stride}u);", slot(frag_slot))
            } else {
                format!("coopStoreT({frag}, &sh_s[{idx}], {stride}u);")
            }
        };
        // `c = a·b + c`.
        let mma = |a: &str, sa: u32, b: &str, sb: u32, c: &str, sc: u32| -> String {
            if em {
                format!("mma({}, {}, {});", slot(sa), slot(sb), slot(sc))
            } else {
                format!("{c} = coopMultiplyAdd({a}, {b}, {c});")
            }
        };
        let zero = |dst: &str, dst_slot: u32| -> String {
            if em {
                format!("zero({});", slot(dst_slot))
            } else {
                format!("var {dst} = {f}<f32, C>();")
            }
        };
        // `var = op(var, var of lane ^ mask)` for every mask 16, 32 below the subgroup size.
        let reduce = |var: &str, op: &str, indent: &str| -> String {
            let mut out = String::new();
            let mut mask = FRAG;
            while mask < sg {
                if em {
                    out += &format!(
                        "{indent}xch[tid] = {var};\n{indent}workgroupBarrier();\n{indent}{var} = {op}({var}, xch[tid ^ {mask}u]);\n{indent}workgroupBarrier();\n"
                    );
                } else {
                    out += &format!(
                        "{indent}{var} = {op}({var}, subgroupShuffleXor({var}, {mask}u));\n"
                    );
                }
                mask *= 2;
            }
            out
        };
        let (enable_coop, builtins, prelude) = if em {
            (
                String::new(),
                "",
                format!(
                    "    tid_g = tid;\n    let sgid = tid / {sg}u;\n    let lane = tid % {sg}u;\n    let fb = ((wid.y * nwg.x + wid.x) * {ns}u + sgid) * {slots}u;\n",
                    slots = (2 * nd + nk + 3) * 256
                ),
            )
        } else {
            (
                "enable wgpu_cooperative_matrix;\n".to_owned(),
                ", @builtin(subgroup_id) sgid: u32,\n        @builtin(subgroup_invocation_id) lane: u32",
                String::new(),
            )
        };
        // The emulation keeps the S and P scratch in storage buffers (bindings 6, 7; one slice
        // per subgroup of the grid) so that every variant fits lavapipe's 32 KiB of workgroup
        // storage; its fragment steps end in storage barriers, which publish them.
        let grid_sub = format!("((wid.y * nwg.x + wid.x) * {ns}u + sgid)");
        let (scratch_decl, s_index, p_index) = if em {
            (
                "@group(0) @binding(6) var<storage, read_write> sh_s: array<f32>;\n@group(0) @binding(7) var<storage, read_write> sh_p: array<f16>;\n".to_owned(),
                grid_sub.clone(),
                grid_sub,
            )
        } else if self.s_in_storage {
            (
                format!(
                    "@group(0) @binding(5) var<storage, read_write> sh_s: array<f32>;\nvar<workgroup> sh_p: array<f16, {}>;\n",
                    ns * FRAG * pp
                ),
                grid_sub,
                "sgid".to_owned(),
            )
        } else {
            (
                format!(
                    "var<workgroup> sh_s: array<f32, {}>;\nvar<workgroup> sh_p: array<f16, {}>;\n",
                    ns * FRAG * sp,
                    ns * FRAG * pp
                ),
                "sgid".to_owned(),
                "sgid".to_owned(),
            )
        };
        // The barrier that publishes the S scratch (and O passing through it).
        let s_barrier = if self.s_in_storage || em {
            "storageBarrier();"
        } else {
            "workgroupBarrier();"
        };
        let emu_lib = if em {
            emulation_library(self.store, tile_unit, wg, sg)
        } else {
            String::new()
        };
        let mut s = wgsl_template(
            include_str!("../wgsl/attention_coop.wgsl"),
            &[
                ("ENABLE_COOP", &enable_coop),
                ("LABEL", &self.label()),
                ("D", &d),
                ("CAUSAL", &self.causal),
                ("NS", &ns),
                ("SG", &sg),
                ("BC", &bc),
                ("TILE_TY", &tile_ty),
                ("TILE_LEN", &tile_len),
                ("SCRATCH_DECL", &scratch_decl),
                ("EMU_LIB", &emu_lib),
                ("WG", &wg),
                ("BUILTINS", &builtins),
                ("PRELUDE", &prelude),
                ("D4", &d4),
                ("BR", &br),
                ("S_INDEX", &s_index),
                ("S_SUB", &(FRAG * sp)),
                ("P_INDEX", &p_index),
                ("P_SUB", &(FRAG * pp)),
            ],
        );
        let mut q_loads = String::new();
        for kd in 0..nd {
            q_loads += &format!(
                "    let qi{kd} = hb + q0 * {d}u + {o}u;\n    {ld}\n",
                o = kd * FRAG,
                ld = load(
                    "let ",
                    &format!("qf{kd}"),
                    slot_q(kd),
                    "q",
                    &format!("qi{kd}"),
                    &format!("{d}u")
                )
            );
        }
        s += &q_loads;
        for n in 0..nd {
            s += &format!("    {}\n", zero(&format!("o{n}"), slot_o(n)));
        }
        s += "    var m_ref = -1e30;\n    var l_sum = 0.0;\n    var alpha = 1.0;\n";
        if self.causal {
            s += &format!("    let key_end = (qblock + 1u) * {br}u;\n");
        } else {
            s += "    let key_end = seq;\n";
        }
        // Stage K and V: vector t of the block is row t / d8, vector t % d8 of that row. Chunk
        // i of an invocation is vector t = tid + i·WG (guarded where WG does not divide the
        // tile). Loads go to registers kp_i / vp_i, stores take them to the padded tiles.
        let chunks: Vec<(u32, bool)> = (0..tile_vec4.div_ceil(wg))
            .map(|i| (i, (i + 1) * wg > tile_vec4))
            .collect();
        let gen_load = |block: &str, indent: &str| -> String {
            let mut out = String::new();
            for &(i, guard) in &chunks {
                let t = format!("(tid + {}u)", i * wg);
                let body = format!(
                    "let g{i} = hb4 + ({block} + {t} / {d4}u) * {d4}u + {t} % {d4}u;\n{indent}    kp{i} = k_in[g{i}];\n{indent}    vp{i} = v_in[g{i}];"
                );
                if guard {
                    out += &format!(
                        "{indent}if ({t} < {tile_vec4}u) {{\n{indent}    {body}\n{indent}}}\n"
                    );
                } else {
                    out += &format!("{indent}{{\n{indent}    {body}\n{indent}}}\n");
                }
            }
            out
        };
        let mut gen_store = String::new();
        for &(i, guard) in &chunks {
            let mut body = format!(
                "            let t = tid + {o}u;\n            let kr = t / {d4}u;\n            let kc = t % {d4}u;\n",
                o = i * wg
            );
            match self.store {
                TileStore::Vec4 => {
                    body += &format!("            sh_k[kr * {ks4}u + kc] = kp{i};\n");
                    body += &format!("            sh_v[kr * {ks4}u + kc] = vp{i};\n");
                }
                TileStore::Half => {
                    body += &format!("            let hbase = kr * {ks}u + kc * 4u;\n");
                    for (w, comp) in ["x", "y", "z", "w"].iter().enumerate() {
                        body += &format!("            sh_k[hbase + {w}u] = kp{i}.{comp};\n");
                        body += &format!("            sh_v[hbase + {w}u] = vp{i}.{comp};\n");
                    }
                }
            }
            if guard {
                gen_store += &format!(
                    "        if (tid + {o}u < {tile_vec4}u) {{\n{body}        }}\n",
                    o = i * wg
                );
            } else {
                gen_store += &format!("        {{\n{body}        }}\n");
            }
        }
        for &(i, _) in &chunks {
            s += &format!("    var kp{i} = vec4<f16>();\n    var vp{i} = vec4<f16>();\n");
        }
        if self.prefetch {
            // Block 0 now; inside the loop the next block's loads are issued right after this
            // block's tile is stored, so their latency hides behind this block's math. The last
            // iteration reloads its own block (clamped), which nobody reads.
            s += &gen_load("0u", "    ");
        }
        s += &format!(
            "    for (var k0 = 0u; k0 < key_end; k0 += {bc}u) {{\n        workgroupBarrier();\n        if (tid == 0u) {{ rescale_flag[0] = 0u; }}\n"
        );
        if self.prefetch {
            s += &gen_store;
            s += &format!("        let k_next = min(k0 + {bc}u, key_end - {bc}u);\n");
            s += &gen_load("k_next", "        ");
        } else {
            s += &gen_load("k0", "        ");
            s += &gen_store;
        }
        s += "        workgroupBarrier();\n";
        // S = Q·Kᵀ, one C fragment per 16 keys.
        for jb in 0..nk {
            s += &format!("        {}\n", zero(&format!("sf{jb}"), slot_s(jb)));
            for kd in 0..nd {
                let base = match self.store {
                    TileStore::Vec4 => jb * FRAG * ks4 + 4 * kd,
                    TileStore::Half => jb * FRAG * ks + FRAG * kd,
                };
                s += &format!(
                    "        {ld}\n        {mm}\n",
                    ld = load(
                        "let ",
                        &format!("kt{jb}_{kd}"),
                        slot_k,
                        "k",
                        &format!("{base}u"),
                        &format!("{unit_ks}u")
                    ),
                    mm = mma(
                        &format!("qf{kd}"),
                        slot_q(kd),
                        &format!("kt{jb}_{kd}"),
                        slot_k,
                        &format!("sf{jb}"),
                        slot_s(jb)
                    )
                );
            }
            s += &format!(
                "        let si{jb} = so + {o}u;\n        {st}\n",
                o = jb * FRAG,
                st = store(&format!("sf{jb}"), slot_s(jb), &format!("si{jb}"), sp)
            );
        }
        // S is the subgroup's own scratch: a subgroup barrier publishes it where asked (on
        // NVIDIA a warp sync, which orders shared memory among the warp's lanes).
        s += &if self.subgroup_sync {
            "        subgroupBarrier();\n".to_owned()
        } else {
            format!("        {s_barrier}\n")
        };
        // Softmax on the lanes: row `row`, keys part*cpl .. +cpl.
        s += &format!(
            "        let sbase = so + row * {sp}u + part * {cpl}u;\n        let kbase = k0 + part * {cpl}u;\n        var bmax = -1e30;\n"
        );
        for c in 0..cpl {
            s += &format!("        var x{c} = sh_s[sbase + {c}u] * scale_log2;\n");
            if self.causal {
                s += &format!("        if (kbase + {c}u > qrow) {{ x{c} = -1e30; }}\n");
            }
            s += &format!("        bmax = max(bmax, x{c});\n");
        }
        s += &reduce("bmax", "max", "        ");
        s += &format!(
            r#"        alpha = 1.0;
        if (k0 == 0u) {{
            m_ref = bmax;
        }} else if (bmax > m_ref + {thr:.1}) {{
            alpha = exp2(m_ref - bmax);
            m_ref = bmax;
            rescale_flag[0] = 1u;
        }}
        l_sum = l_sum * alpha;
        let pbase = po + row * {pp}u + part * {cpl}u;
"#
        );
        for c in 0..cpl {
            s += &format!(
                "        let e{c} = exp2(x{c} - m_ref);\n        l_sum += e{c};\n        sh_p[pbase + {c}u] = f16(e{c});\n"
            );
        }
        // The flag load is also the barrier that publishes P (and the flag) to the workgroup.
        s += "        let need_rescale = workgroupUniformLoad(&rescale_flag[0]);\n";
        s += "        if (need_rescale != 0u) {\n";
        // Rescale O: nk fragments at a time through the S scratch (16 × BC f32).
        for g in 0..(nd / nk) {
            for j in 0..nk {
                let n = g * nk + j;
                s += &format!(
                    "            let ri{n} = so + {o}u;\n            {st}\n",
                    o = j * FRAG,
                    st = store(&format!("o{n}"), slot_o(n), &format!("ri{n}"), sp)
                );
            }
            s += &format!("            {s_barrier}\n");
            for c in 0..cpl {
                s += &format!("            sh_s[sbase + {c}u] = sh_s[sbase + {c}u] * alpha;\n");
            }
            s += &format!("            {s_barrier}\n");
            for j in 0..nk {
                let n = g * nk + j;
                s += &format!(
                    "            {ld}\n",
                    ld = load(
                        "",
                        &format!("o{n}"),
                        slot_o(n),
                        "s",
                        &format!("ri{n}"),
                        &format!("{sp}u")
                    )
                );
            }
            s += &format!("            {s_barrier}\n");
        }
        s += "        }\n";
        // O += P·V.
        for jb in 0..nk {
            s += &format!(
                "        let pi{jb} = po + {o}u;\n        {ld}\n",
                o = jb * FRAG,
                ld = load(
                    "let ",
                    &format!("pf{jb}"),
                    slot_p,
                    "p",
                    &format!("pi{jb}"),
                    &format!("{pp}u")
                )
            );
            for n in 0..nd {
                let base = match self.store {
                    TileStore::Vec4 => jb * FRAG * ks4 + 4 * n,
                    TileStore::Half => jb * FRAG * ks + FRAG * n,
                };
                s += &format!(
                    "        {ld}\n        {mm}\n",
                    ld = load(
                        "let ",
                        &format!("vf{jb}_{n}"),
                        slot_v,
                        "v",
                        &format!("{base}u"),
                        &format!("{unit_ks}u")
                    ),
                    mm = mma(
                        &format!("pf{jb}"),
                        slot_p,
                        &format!("vf{jb}_{n}"),
                        slot_v,
                        &format!("o{n}"),
                        slot_o(n)
                    )
                );
            }
        }
        s += "    }\n";
        // ℓ of the row: the sum of its lanes' partial sums.
        s += &reduce("l_sum", "add2", "    ");
        s += &format!(
            "    let inv_l = 1.0 / l_sum;\n    let sbase = so + row * {sp}u + part * {cpl}u;\n    let obase4 = (hb + qrow * {d}u + part * {cpl}u) / 4u;\n"
        );
        for g in 0..(nd / nk) {
            s += &format!("    {s_barrier}\n");
            for j in 0..nk {
                let n = g * nk + j;
                s += &format!(
                    "    let fi{n} = so + {o}u;\n    {st}\n",
                    o = j * FRAG,
                    st = store(&format!("o{n}"), slot_o(n), &format!("fi{n}"), sp)
                );
            }
            s += &format!("    {s_barrier}\n");
            for c4 in 0..(cpl / 4) {
                let c = c4 * 4;
                s += &format!(
                    "    o_out[obase4 + {off}u] = vec4<f16>(vec4<f32>(sh_s[sbase + {c}u], sh_s[sbase + {c1}u], sh_s[sbase + {c2}u], sh_s[sbase + {c3}u]) * inv_l);\n",
                    off = (g * bc) / 4 + c4,
                    c1 = c + 1,
                    c2 = c + 2,
                    c3 = c + 3
                );
            }
        }
        s += "}\n";
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<(), String> {
        let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .map_err(|e| e.emit_to_string(src))?;
        let options = naga::back::spv::Options {
            lang_version: (1, 6),
            ..Default::default()
        };
        let pipeline = naga::back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".to_owned(),
        };
        naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
            .map_err(|e| format!("SPIR-V: {e}"))?;
        Ok(())
    }

    /// The lazy-reference softmax (with f16 P) against the f64 reference, on random scores
    /// and on growing ones that force rescales.
    #[test]
    fn the_lazy_rescale_softmax_matches_the_reference() {
        let (d, s) = (64usize, 256usize);
        let mut rng = crate::Rng::new(3);
        let r16 = |x: Vec<f32>| -> Vec<f32> {
            x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
        };
        let q = r16(rng.vec_f32(s * d));
        let k = r16(rng.vec_f32(s * d));
        let v = r16(rng.vec_f32(s * d));
        let qg = r16(q.iter().map(|x| x.abs()).collect());
        let kg = r16(k
            .iter()
            .enumerate()
            .map(|(i, x)| x.abs() * (1.0 + (i / d) as f32 / 8.0))
            .collect());
        let mut total_rescales = 0;
        for causal in [false, true] {
            for bc in [32, 64] {
                for (qq, kk) in [(&q, &k), (&qg, &kg)] {
                    let (mut got, mut want) = (Vec::new(), Vec::new());
                    for row in (0..s).step_by(17) {
                        let (o, n) = simulate_row(qq, kk, &v, d, row, s, causal, bc);
                        total_rescales += n;
                        got.extend(o.iter().map(|&x| f64::from(x)));
                        want.extend(crate::kernels::attention::reference_row(
                            qq, kk, &v, s, d, row, causal,
                        ));
                    }
                    let err = crate::kernels::rel_frobenius(&got, &want);
                    assert!(err < 2e-3, "bc {bc} causal {causal}: {err:e}");
                }
            }
        }
        // The growing input exercises the rescale path.
        assert!(total_rescales > 10, "{total_rescales}");
    }

    #[test]
    fn every_coop_variant_compiles_to_spirv() {
        let mut compiled = 0;
        for head_dim in [64, 128] {
            for causal in [false, true] {
                for sg in [32, 64, 16] {
                    for c in CoopAttention::candidates(head_dim, causal, sg) {
                        if c.unsupported(2048).is_some() {
                            continue;
                        }
                        let src = c.wgsl();
                        if let Err(e) = compile(&src) {
                            panic!("{} d{head_dim} causal {causal} sg{sg}: {e}", c.label());
                        }
                        compiled += 1;
                    }
                }
            }
        }
        assert!(compiled >= 32, "only {compiled} variants compiled");
    }
}
