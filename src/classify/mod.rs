//! Classification.
pub mod rule;
