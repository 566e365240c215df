//! Reusable view components.

pub mod charts;
pub mod report_view;
