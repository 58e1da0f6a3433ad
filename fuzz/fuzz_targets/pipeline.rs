//! Frames through parse, classify, enqueue, police, shape and dequeue, every frame accounted
//! for (`weir::fuzzing::pipeline`).
#![no_main]

use std::sync::{Arc, OnceLock};

fn plan() -> &'static Arc<weir::config::Plan> {
    static PLAN: OnceLock<Arc<weir::config::Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let plan = weir::config::parse(
            weir::fuzzing::PIPELINE_CONFIG,
            std::path::Path::new("fuzz.ron"),
        )
        .expect("fuzz config");
        Arc::new(plan)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::pipeline(plan(), data));
