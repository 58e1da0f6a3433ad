//! Tools around the bridge: `weir send` (a paced capture sender) and `weir lab` (the
//! three-namespace topology for demos and tests).

pub mod lab;
pub mod send;
