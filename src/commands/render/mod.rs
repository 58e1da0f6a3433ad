//! How results look: the per-class table (`weir run`, `weir replay`), the status and flow
//! tables (`weir status`, `weir flows`), and the terminal view (`weir top`).

pub mod budget;
pub mod status;
pub mod table;
pub mod top;
