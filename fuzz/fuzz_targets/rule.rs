//! Rule text through the rule parser, compiler and static analysis (`weir::fuzzing::rule`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::rule(data));
