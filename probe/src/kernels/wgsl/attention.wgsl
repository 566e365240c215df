{{ENABLE}}
struct Params { seq: u32, scale_log2: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> q_in: array<vec4<{{ST}}>>;
@group(0) @binding(1) var<storage, read> k_in: array<vec4<{{ST}}>>;
@group(0) @binding(2) var<storage, read> v_in: array<vec4<{{ST}}>>;
@group(0) @binding(3) var<storage, read_write> o_out: array<vec4<{{ST}}>>;
@group(0) @binding(4) var<uniform> p: Params;
var<workgroup> ks: array<vec4<f32>, {{KV_LEN}}>;
var<workgroup> vs: array<vec4<f32>, {{KV_LEN}}>;
@compute @workgroup_size({{QUERY_BLOCK}})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let seq = p.seq;
    let head_base = wid.y * seq * {{D4}}u;
    let row = wid.x * {{QUERY_BLOCK}}u + lid.x;
    let q_base = head_base + row * {{D4}}u;
{{Q_LOADS}}    var m = -1e30;
    var l = 0.0;
{{KEY_END}}    for (var k0 = 0u; k0 < key_end; k0 += {{BC}}u) {
        workgroupBarrier();
        for (var t = lid.x; t < {{KV_LEN}}u; t += {{QUERY_BLOCK}}u) {
            ks[t] = vec4<f32>(k_in[head_base + k0 * {{D4}}u + t]);
            vs[t] = vec4<f32>(v_in[head_base + k0 * {{D4}}u + t]);
        }
        workgroupBarrier();
        var sc: array<f32, {{BC}}>;
        var tile_max = -1e30;
        for (var j = 0u; j < {{BC}}u; j++) {
            let kb = j * {{D4}}u;
            var dot_sum = 0.0;
{{DOTS}}{{MASK}}            sc[j] = dot_sum;
            tile_max = max(tile_max, dot_sum);
        }
        let m_new = max(m, tile_max);
        let correction = exp2(m - m_new);
        l = l * correction;
{{RESCALE_O}}        for (var j = 0u; j < {{BC}}u; j++) {
            let pj = exp2(sc[j] - m_new);
            l += pj;
            let vb = j * {{D4}}u;
{{ACCUMULATE_O}}        }
        m = m_new;
    }
    let inv_l = 1.0 / l;
{{STORE_O}}}
