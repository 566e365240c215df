{{PATTERN}}
struct Params { n_vec4: u32, seed: u32, stride: u32, half: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> mismatches: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size({{WORKGROUP_SIZE}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var bad = 0u;
    for (var i = gid.x; i < p.n_vec4; i += p.stride) {
        if (any(src[i] != pattern_vec4(i, p.seed, p.half))) { bad += 1u; }
    }
    if (bad != 0u) { atomicAdd(&mismatches[0], bad); }
}
