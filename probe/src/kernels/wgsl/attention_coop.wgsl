enable f16;
{{ENABLE_COOP}}// {{LABEL}}: head_dim {{D}}, causal {{CAUSAL}}, {{NS}} subgroups of {{SG}}, key block {{BC}}.
struct Params { seq: u32, scale_log2: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> q_in: array<f16>;
@group(0) @binding(1) var<storage, read> k_in: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> v_in: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> o_out: array<vec4<f16>>;
@group(0) @binding(4) var<uniform> p: Params;
var<workgroup> sh_k: array<{{TILE_TY}}, {{TILE_LEN}}>;
var<workgroup> sh_v: array<{{TILE_TY}}, {{TILE_LEN}}>;
{{SCRATCH_DECL}}// 128 bytes (element 0 used): NVIDIA's driver lays workgroup variables out itself, and a
// variable whose size is not a multiple of 16-32 bytes shifts the tiles after it off the
// alignment coopLoad/coopStore assume (H100: fragments shifted by a few elements).
var<workgroup> rescale_flag: array<u32, 32>;
fn add2(a: f32, b: f32) -> f32 { return a + b; }
{{EMU_LIB}}@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32{{BUILTINS}}) {
{{PRELUDE}}    let seq = p.seq;
    let scale_log2 = p.scale_log2;
    // Heavy (late) causal query blocks first: they start while the light ones fill the tail.
    let qblock = nwg.x - 1u - wid.x;
    let hb = wid.y * seq * {{D}}u;
    let hb4 = wid.y * seq * {{D4}}u;
    let q0 = qblock * {{BR}}u + sgid * 16u;
    let so = {{S_INDEX}} * {{S_SUB}}u;
    let po = {{P_INDEX}} * {{P_SUB}}u;
    let row = lane % 16u;
    let part = lane / 16u;
    let qrow = q0 + row;
