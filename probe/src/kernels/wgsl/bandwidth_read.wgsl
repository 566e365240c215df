struct Params { n_vec4: u32, seed: u32, stride: u32, partial_base: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> partial: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> wsum: atomic<u32>;
@compute @workgroup_size({{WORKGROUP_SIZE}})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    if (lid == 0u) { atomicStore(&wsum, 0u); }
    workgroupBarrier();
    let s = p.stride;
    var acc = vec4<u32>(0u);
    var i = gid.x;
    while (i + {{LAST}}u * s < p.n_vec4) {
{{LOADS}}{{ADDS}}        i += {{UNROLL}}u * s;
    }
    while (i < p.n_vec4) {
        acc += src[i];
        i += s;
    }
    // One word per workgroup is stored, so the reads cannot be optimized away (and the extra
    // writes stay negligible); summed on the CPU to check them.
    atomicAdd(&wsum, acc.x + acc.y + acc.z + acc.w);
    workgroupBarrier();
    if (lid == 0u) { partial[p.partial_base + wid.x] = atomicLoad(&wsum); }
}
