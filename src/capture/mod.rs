//! Capture files (helper fills this in).
