struct Params { row_offset: u32, rows: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> quants: array<vec4<u32>>;
{{X_BINDING}}
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
{{SCALES_BINDING}}
var<workgroup> partial: array<f32, {{WORKGROUP_SIZE}}>;
{{X_SHARED_DECL}}{{CONVERT}}{{FACTORED_FNS}}@compute @workgroup_size({{WORKGROUP_SIZE}})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lane = lid.x % {{LANES_PER_ROW}}u;
    let slot = lid.x / {{LANES_PER_ROW}}u;
    let row0 = (wid.x * {{SLOTS_PER_WORKGROUP}}u + slot) * {{ROWS_PER_SLOT}}u;
{{BODY}}{{REDUCE}}}
