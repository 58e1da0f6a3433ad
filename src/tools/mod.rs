//! Tools around the bridge: `weir send` (a paced capture sender), `weir bypass` (a kernel
//! bridge while weir is not running) and `weir lab` (the three-namespace topology for demos
//! and tests).

pub mod bypass;
pub mod lab;
pub mod send;
