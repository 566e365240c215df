//! Shared helpers for headroom's cross-crate tests.
