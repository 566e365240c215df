//! Tests: memory.
