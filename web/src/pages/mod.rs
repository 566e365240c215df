//! The site's pages.

pub mod benchmark;
pub mod calculator;
pub mod reports;
