enable f16;
enable wgpu_cooperative_matrix;
struct Dims { m: u32, n: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> mat_a: array<{{G_TY}}>;
@group(0) @binding(1) var<storage, read> mat_b: array<{{G_TY}}>;
@group(0) @binding(2) var<storage, read_write> mat_c: array<{{T}}>;
@group(0) @binding(3) var<uniform> dims: Dims;
// A slice: {{BM}} rows of {{BK}} halves, row stride {{SA}}; B slice: {{BK}} rows of {{BN}} halves, row
// stride {{SB}} (in {{SH_TY}}; {{ROW_PAD_HALVES}} halves of padding per row); {{STAGES}} stage(s).
var<workgroup> sh_a: array<{{SH_TY}}, {{A_LEN}}>;
var<workgroup> sh_b: array<{{SH_TY}}, {{B_LEN}}>;
@compute @workgroup_size({{THREADS}}, 1, 1)
fn main(@builtin(local_invocation_index) lidx: u32, @builtin(subgroup_id) sg: u32,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
{{SWIZZLE}}    let kk = dims.k;
    let nn = dims.n;
    let kv = kk / {{HALVES_PER_VEC4}}u;
    let nv = nn / {{HALVES_PER_VEC4}}u;
    let nk = kk / {{BK}}u;
    let s0 = {{FIRST_SLICE}};
    let r0 = tile_m * {{BM}}u;
    let c0 = tile_n * {{BN}}u;
    let sg_m = sg / {{WN}}u;
    let sg_n = sg % {{WN}}u;
    // This invocation's share of each slice copy, in 16-byte vectors.
    let a_row = lidx / {{A_VEC_PER_ROW}}u;
    let a_col = lidx % {{A_VEC_PER_ROW}}u;
    let b_row = lidx / {{B_VEC_PER_ROW}}u;
    let b_col = lidx % {{B_VEC_PER_ROW}}u;
    let ga = (r0 + a_row) * kv + a_col;
    let gb = b_row * nv + c0 / {{HALVES_PER_VEC4}}u + b_col;
{{BODY}}}
