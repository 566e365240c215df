{{PATTERN}}
struct Params { n_vec4: u32, seed: u32, stride: u32, half: u32 }
@group(0) @binding(0) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size({{WORKGROUP_SIZE}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < p.n_vec4; i += p.stride) {
        dst[i] = pattern_vec4(i, p.seed, p.half);
    }
}
