//! The emulation library: plain WGSL with the semantics of the cooperative-matrix operations
//! and subgroup shuffles the kernel uses, so that [`super::CoopAttention::emulated_wgsl`] runs on
//! any adapter with `SHADER_F16` (lavapipe in CI).

use super::TileStore;

/// WGSL replacing the cooperative-matrix operations of one kernel (see
/// [`CoopAttention::emulated_wgsl`]). A fragment is `array<f32, 256>`, element (r, c) at
/// `16r + c`; loads and stores follow the semantics in the module docs, with the K/V tile's
/// index and stride in `unit` halves (4 for `vec4<f16>` tiles).
pub(super) fn emulation_library(store: TileStore, unit: u32, wg: u32, sg: u32) -> String {
    let half = match store {
        TileStore::Vec4 => "return f32(arr[h / 4u][h % 4u]);",
        TileStore::Half => "return f32(arr[h]);",
    };
    // Every emulated operation is a subgroup-wide step between barriers (all of them sit in
    // uniform control flow, as the real ones must); lane `lane` handles elements lane + k·SG.
    let mut s = format!(
        r#"@group(0) @binding(5) var<storage, read_write> frs: array<f32>;
var<workgroup> xch: array<f32, {wg}>;
var<private> tid_g: u32;
fn sync() {{
    storageBarrier();
    workgroupBarrier();
}}
fn zero(f: u32) {{
    sync();
    let lane = tid_g % {sg}u;
    for (var e = lane; e < 256u; e += {sg}u) {{
        frs[f + e] = 0.0;
    }}
    sync();
}}
fn mma(a: u32, b: u32, c: u32) {{
    sync();
    let lane = tid_g % {sg}u;
    for (var e = lane; e < 256u; e += {sg}u) {{
        let r = e / 16u;
        let col = e % 16u;
        var acc = frs[c + e];
        for (var k = 0u; k < 16u; k++) {{
            acc += frs[a + r * 16u + k] * frs[b + k * 16u + col];
        }}
        frs[c + e] = acc;
    }}
    sync();
}}
"#
    );
    // Row-major copies between a fragment and a tile (index i, row stride `stride`); `{x}` is
    // the tile element i + (e / 16)·stride + e % 16 for fragment element e.
    let copies = [
        ("ld_q", "frs[f + e] = f32(q_in[{x}]);"),
        ("ld_p", "frs[f + e] = f32(sh_p[{x}]);"),
        ("ld_s", "frs[f + e] = sh_s[{x}];"),
        ("st_s", "sh_s[{x}] = frs[f + e];"),
    ];
    for (name, copy) in copies {
        let copy = copy.replace("{x}", "i + (e / 16u) * stride + e % 16u");
        s += &format!(
            r#"fn {name}(f: u32, i: u32, stride: u32) {{
    sync();
    let lane = tid_g % {sg}u;
    for (var e = lane; e < 256u; e += {sg}u) {{
        {copy}
    }}
    sync();
}}
"#
        );
    }
    for (name, arr, row_major) in [("k", "sh_k", false), ("v", "sh_v", true)] {
        let (outer, inner) = if row_major { ("r", "c") } else { ("c", "r") };
        s += &format!(
            r#"fn half_{name}(h: u32) -> f32 {{
    {body}
}}
// {layout}: element (r, c) at unit i + {outer}·stride, then half {inner} of that run.
fn ld_{name}(f: u32, i: u32, stride: u32) {{
    sync();
    let lane = tid_g % {sg}u;
    for (var e = lane; e < 256u; e += {sg}u) {{
        let r = e / 16u;
        let c = e % 16u;
        frs[f + e] = half_{name}((i + {outer} * stride) * {unit}u + {inner});
    }}
    sync();
}}
"#,
            body = half.replace("arr", arr),
            layout = if row_major {
                "row-major"
            } else {
                "column-major"
            },
        );
    }
    s
}
