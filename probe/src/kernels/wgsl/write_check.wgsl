struct Params { n_vec4: u32, seed: u32, stride: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> dst: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> mismatches: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size({{WORKGROUP_SIZE}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var bad = 0u;
    for (var k = gid.x; k < p.n_vec4; k += p.stride) {
        if (any(dst[k] != ((vec4<u32>(k * 4u) + vec4<u32>(0u, 1u, 2u, 3u)) ^ vec4<u32>(p.seed)))) { bad += 1u; }
    }
    if (bad != 0u) { atomicAdd(&mismatches[0], bad); }
}
