//! Every capture of an external corpus replays without a panic: it completes with the
//! conservation law holding, or fails with a capture error. The corpus is WEIR_CAPTURE_CORPUS,
//! else ../shared/captures beside the repository; without it the test says so loudly and
//! checks only the captures committed in captures/, and under `CI=true` it fails.

mod common;

use std::path::{Path, PathBuf};
use weir::replay::{replay_file, ReplayError, ReplayReport};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// What is wrong with a finished replay's accounting, if anything.
fn conservation_problems(r: &ReplayReport) -> Vec<String> {
    let t = r.totals;
    let mut problems = Vec::new();
    // A TCP frame longer than the MTU is the super-frame of a host's TSO or GRO: cut into its
    // segments for slow classes, each received as a frame.
    let frames = r.frames_read - r.gso_split.super_frames + r.gso_split.segments;
    if t.received != frames || t.received != t.forwarded + t.dropped || t.queued != 0 {
        problems.push(format!(
            "conservation broken: {t:?}, {} frames read",
            r.frames_read
        ));
    }
    for c in &r.classes {
        if c.received_frames != c.forwarded_frames + c.dropped_frames + c.queued_frames {
            problems.push(format!("class {}/{} does not add up", c.port, c.name));
        }
    }
    problems
}

fn replay_all(dir: &Path) -> (usize, usize, u64, Vec<String>) {
    let plan = std::sync::Arc::new(
        weir::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/home.ron"))
            .unwrap(),
    );
    let mut paths = Vec::new();
    files(dir, &mut paths);
    paths.sort();
    let (mut ok, mut refused, mut frames) = (0, 0, 0u64);
    let mut failures = Vec::new();
    for p in &paths {
        let result = std::panic::catch_unwind(|| {
            // Names kept: every payload parser reads every flow's first payloads.
            let opts = weir::replay::ReplayOptions {
                flows: true,
                ..Default::default()
            };
            replay_file(&plan, p, None, None, &opts, &mut |_| {})
        });
        let report = match &result {
            Err(_) => {
                failures.push(format!("{}: PANIC", p.display()));
                continue;
            }
            Ok(Err(e)) => {
                if e.to_string().trim().is_empty() {
                    failures.push(format!("{}: empty error message", p.display()));
                }
                refused += 1;
                // A damaged file still reports the frames before the damage.
                match e {
                    ReplayError::Damaged { report, .. } => report.as_ref(),
                    _ => continue,
                }
            }
            Ok(Ok(r)) => {
                frames += r.frames_read;
                ok += 1;
                r
            }
        };
        failures.extend(
            conservation_problems(report)
                .into_iter()
                .map(|m| format!("{}: {m}", p.display())),
        );
    }
    (ok, refused, frames, failures)
}

#[test]
fn committed_captures_replay_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let (ok, refused, frames, failures) = replay_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
    // truncated.pcap is damaged on purpose; README.md is not a capture.
    assert_eq!(refused, 2, "{ok} ok, {refused} refused");
    assert!(ok >= 8 && frames > 400, "{ok} files, {frames} frames");
}

#[test]
fn external_corpus_replays_without_panic() {
    let Some(dir) = common::corpus_dir("external_corpus_replays_without_panic") else {
        return;
    };
    let (ok, refused, frames, failures) = replay_all(&dir);
    eprintln!("corpus replay: {ok} files replayed ({frames} frames), {refused} refused with an error, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(ok > 0, "no capture replayed from {}", dir.display());
}
