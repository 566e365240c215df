//! Reusable view components.

pub mod charts;
pub mod launch;
pub mod report_view;
