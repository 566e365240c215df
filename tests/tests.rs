//! headroom's cross-crate tests: one binary, modules grouped by intent.
