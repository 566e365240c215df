struct Params { n_vec4: u32, seed: u32, stride: u32, partial_base: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size({{WORKGROUP_SIZE}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = p.stride;
    var i = gid.x;
    while (i + {{LAST}}u * s < p.n_vec4) {
{{LOADS}}{{STORES}}        i += {{UNROLL}}u * s;
    }
    while (i < p.n_vec4) {
        dst[i] = src[i];
        i += s;
    }
}
