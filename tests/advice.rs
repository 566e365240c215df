//! Tests: advice.
