enable f16;
enable wgpu_cooperative_matrix;
struct Dims { m: u32, n: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> mat_a: array<f16>;
@group(0) @binding(1) var<storage, read> mat_b: array<f16>;
@group(0) @binding(2) var<storage, read_write> mat_c: array<{{T}}>;
@group(0) @binding(3) var<uniform> dims: Dims;
@compute @workgroup_size({{SUBGROUP}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
{{SWIZZLE}}    let kk = dims.k;
    let nn = dims.n;
    let r0 = tile_m * {{BM}}u;
    let c0 = tile_n * {{BN}}u;
{{ACCUMULATORS}}    for (var k = 0u; k < kk; k += {{FRAG}}u) {
{{LOADS}}{{MULTIPLY}}    }
{{STORE_C}}}
