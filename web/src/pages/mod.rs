//! The site's pages.

pub mod benchmark;
pub mod calculator;
pub mod can_run;
pub mod reports;
