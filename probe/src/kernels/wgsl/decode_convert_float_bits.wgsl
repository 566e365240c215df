fn i8x4(w: u32) -> vec4<f32> {
    let v = w ^ 0x80808080u;
    return bitcast<vec4<f32>>((vec4<u32>(v, v >> 8u, v >> 16u, v >> 24u) & vec4<u32>(255u)) | vec4<u32>(0x4B000000u)) - vec4<f32>(8388736.0);
}
fn lo4(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>((vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - vec4<f32>(8388616.0);
}
fn hi4(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>((vec4<u32>(w >> 4u, w >> 12u, w >> 20u, w >> 28u) & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - vec4<f32>(8388616.0);
}
