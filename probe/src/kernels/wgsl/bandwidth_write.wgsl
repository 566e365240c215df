struct Params { n_vec4: u32, seed: u32, stride: u32, partial_base: u32 }
@group(0) @binding(0) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(1) var<uniform> p: Params;
{{ENTRY}}{{BODY}}}
