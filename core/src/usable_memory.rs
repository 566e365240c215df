//! Usable memory: Metal's working-set share of unified memory (and the `iogpu.wired_limit_mb`
//! override), VRAM less the runtime's overhead on discrete GPUs, N identical devices.
