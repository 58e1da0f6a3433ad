//! Replaying the committed captures: a capture's frames, a replay with its flow list, the
//! frames a class received.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir::capture::{CaptureReader, CaptureWriter};
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

/// A capture this project writes (`captures/NAME`) holds exactly the frames of its generator;
/// with `WEIR_REGENERATE_CAPTURES` set, it is written from them first.
pub fn pin_to_generator(name: &str, frames: &[(u64, Vec<u8>)]) {
    let path = root().join("captures").join(name);
    if std::env::var_os("WEIR_REGENERATE_CAPTURES").is_some() {
        let mut w = CaptureWriter::create(&path).unwrap();
        for (t, f) in frames {
            w.write(*t, f, f.len() as u32).unwrap();
        }
        w.finish().unwrap();
    }
    assert!(
        read_all(&path) == frames,
        "captures/{name} differs from its generator"
    );
}

/// A config file written in a fresh directory of the system's temp dir (`weir-NAME-<pid>`);
/// remove the directory when done.
pub fn temp_config(name: &str, src: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("weir-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.ron");
    std::fs::write(&config, src).unwrap();
    (dir, config)
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
