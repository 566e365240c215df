//! Reusable view components.

pub mod charts;
pub mod launch;
pub mod needs;
pub mod report_view;
pub mod serving;
