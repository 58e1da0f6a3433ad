//! The rule language: parsed once into a compiled matcher (helper fills this in).
