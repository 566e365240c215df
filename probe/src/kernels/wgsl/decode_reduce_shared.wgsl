    partial[lid.x] = acc{{R}}{{UNSCALE}};
    workgroupBarrier();
    for (var half_width = 16u; half_width > 0u; half_width = half_width / 2u) {
        if (lane < half_width) {
            partial[lid.x] += partial[lid.x + half_width];
        }
        workgroupBarrier();
    }
    if (lane == 0u) { y[p.row_offset + row0 + {{R}}u] = partial[lid.x]; }
    workgroupBarrier();
