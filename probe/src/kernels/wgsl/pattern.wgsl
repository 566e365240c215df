fn pattern(index: u32, seed: u32) -> u32 {
    var x = index * 0x9E3779B9u + seed;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}
// A finite f16 pair in ±[2^-3, 2^-2) from pattern bits: sign and mantissa random, exponent
// fixed, so weights and scales are never NaN or infinite.
fn half_pair(bits: u32) -> u32 {
    return (bits & 0x83FF83FFu) | 0x30003000u;
}
// The pattern of vec4 word `i` (four 32-bit words from 4i), as finite f16 pairs when `half`
// is not 0: what the fill kernel writes and the check kernel expects.
fn pattern_vec4(i: u32, seed: u32, half: u32) -> vec4<u32> {
    let w = i * 4u;
    var v = vec4<u32>(pattern(w, seed), pattern(w + 1u, seed),
                      pattern(w + 2u, seed), pattern(w + 3u, seed));
    if (half != 0u) {
        v = vec4<u32>(half_pair(v.x), half_pair(v.y), half_pair(v.z), half_pair(v.w));
    }
    return v;
}
