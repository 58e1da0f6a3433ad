//! The shared vocabulary of ports and classes, below every layer that uses it.

/// One of the two ports. As an egress port it indexes per-direction state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Lan = 0,
    Wan = 1,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Lan, Side::Wan];

    pub fn other(self) -> Side {
        match self {
            Side::Lan => Side::Wan,
            Side::Wan => Side::Lan,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Lan => "lan",
            Side::Wan => "wan",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Index of a class within its egress port, in the order of the port's classes (the implicit
/// control class is 0).
pub type ClassId = u16;
