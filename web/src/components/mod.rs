//! Reusable view components.

pub mod charts;
