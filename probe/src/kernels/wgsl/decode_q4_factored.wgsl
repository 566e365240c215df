fn lo4m(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>((vec4<u32>(w << 19u, w << 11u, w << 3u, w >> 5u) & vec4<u32>(0x00780000u)) | vec4<u32>(0x3F800000u));
}
fn hi4m(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>((vec4<u32>(w << 15u, w << 7u, w >> 1u, w >> 9u) & vec4<u32>(0x00780000u)) | vec4<u32>(0x3F800000u));
}
