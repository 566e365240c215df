struct Params { n: vec4<u32>, seed: vec4<u32>, stride: u32, pad0: u32, pad1: u32, pad2: u32 }
{{DECLS}}@group(0) @binding({{BINDINGS}}) var<uniform> p: Params;
{{ENTRY}}{{BODY}}}
