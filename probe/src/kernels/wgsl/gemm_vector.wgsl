{{ENABLE}}
struct Dims { m: u32, n: u32, k: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> mat_a: array<vec4<{{TIN}}>>;
@group(0) @binding(1) var<storage, read> mat_b: array<vec4<{{TIN}}>>;
@group(0) @binding(2) var<storage, read_write> mat_c: array<vec4<{{T}}>>;
@group(0) @binding(3) var<uniform> dims: Dims;
// A slice, transposed: as_t[k * {{BM}} + m]; B slice: bs[k * {{BN}} + n], both as vec4.
var<workgroup> as_t: array<vec4<{{T}}>, {{A_LEN}}>;
var<workgroup> bs: array<vec4<{{T}}>, {{B_LEN}}>;
@compute @workgroup_size({{WGX}}, {{WGY}}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
{{SWIZZLE}}    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * {{WGX}}u + tx;
    let row0 = tile_m * {{BM}}u;
    let col0 = tile_n * {{BN}}u;
    let k4 = dims.k / 4u;
    let n4 = dims.n / 4u;
{{ACCUMULATORS}}    for (var k0 = 0u; k0 < dims.k; k0 += {{BK}}u) {
{{STAGE_A}}{{STAGE_B}}        workgroupBarrier();
{{MULTIPLY}}        workgroupBarrier();
    }
{{STORE_C}}}
