//! Tests: params.
