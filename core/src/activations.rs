//! Activation memory: the prefill peak for batch × context with the runtime's chunk size, with
//! and without fused attention, plus logits.
