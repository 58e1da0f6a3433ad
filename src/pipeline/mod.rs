//! The policy path from a received frame to its departure, shared by `weir run` and `weir replay`.

pub mod report;
