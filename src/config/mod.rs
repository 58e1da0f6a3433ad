//! config
pub struct Plan;
