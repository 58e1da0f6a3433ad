//! Every payload parser of issue 11 on arbitrary bytes (`weir::fuzzing::payload`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::payload(data));
