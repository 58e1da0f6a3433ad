//! Replaying the committed captures: a capture's frames, a replay with its flow list, the
//! frames a class received.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir::capture::CaptureReader;
use weir::replay::{replay_file, ReplayOptions, ReplayReport};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every frame of `path`, with its time.
pub fn read_all(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.push((f.ts_ns, f.data.to_vec()));
    }
    out
}

/// Replay `captures/NAME` under `plan`: the report and each flow's JSON line (`--flows`).
pub fn replay_with_flows(
    plan: &Arc<weir::config::Plan>,
    name: &str,
) -> (ReplayReport, Vec<serde_json::Value>) {
    let flows_path = std::env::temp_dir().join(format!(
        "weir-flows-{}-{}.jsonl",
        std::process::id(),
        name.replace('/', "-")
    ));
    let r = replay_file(
        plan,
        &root().join("captures").join(name),
        None,
        Some(&flows_path),
        &ReplayOptions {
            flows: true,
            ..Default::default()
        },
        &mut |_| {},
    )
    .expect("replay");
    let lines = std::fs::read_to_string(&flows_path).unwrap();
    let _ = std::fs::remove_file(&flows_path);
    let flows = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (r, flows)
}

/// Frames received by class `name`, both ports.
pub fn received(report: &ReplayReport, name: &str) -> u64 {
    report
        .classes
        .iter()
        .filter(|c| c.name == name)
        .map(|c| c.received_frames)
        .sum()
}
