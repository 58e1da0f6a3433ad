//! Frames through the wire parser and a classifier that reads names and protocols
//! (`weir::fuzzing::classify`).
#![no_main]

use std::sync::OnceLock;

fn plan() -> &'static weir::config::Plan {
    static PLAN: OnceLock<weir::config::Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        weir::config::parse(
            weir::fuzzing::CLASSIFY_CONFIG,
            std::path::Path::new("fuzz.ron"),
        )
        .expect("fuzz config")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::classify(plan(), data));
