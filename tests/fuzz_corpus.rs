//! The committed fuzz corpora (`fuzz/corpus/`, minimized by `cargo fuzz cmin`) replayed
//! through the fuzz targets' bodies on the stable toolchain: every input a fuzzer kept, and
//! every crash it found (kept in the corpus once fixed), stays fixed.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "{}: {} inputs", dir.display(), out.len());
    out
}

/// Every input of `target`'s corpus through `body`, none panicking.
fn stays_clean(target: &str, body: impl Fn(&[u8])) {
    for (path, data) in corpus(target) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&data)));
        assert!(r.is_ok(), "{}", path.display());
    }
}

#[test]
fn payload_corpus_stays_clean() {
    stays_clean("payload", weir::fuzzing::payload);
}

#[test]
fn classify_corpus_stays_clean() {
    let plan = weir::config::parse(weir::fuzzing::CLASSIFY_CONFIG, Path::new("fuzz.ron"))
        .expect("the fuzz config");
    stays_clean("classify", |d| weir::fuzzing::classify(&plan, d));
}

#[test]
fn pipeline_corpus_stays_clean() {
    let plan = weir::config::parse(weir::fuzzing::PIPELINE_CONFIG, Path::new("fuzz.ron"))
        .expect("the fuzz config");
    let plan = std::sync::Arc::new(plan);
    stays_clean("pipeline", |d| weir::fuzzing::pipeline(&plan, d));
}

#[test]
fn rule_corpus_stays_clean() {
    stays_clean("rule", weir::fuzzing::rule);
}

#[test]
fn config_corpus_stays_clean() {
    stays_clean("config", weir::fuzzing::config);
}

#[test]
fn capture_corpus_stays_clean() {
    let scratch =
        std::env::temp_dir().join(format!("weir-fuzz-corpus-{}.pcap", std::process::id()));
    stays_clean("capture", |d| weir::fuzzing::capture(&scratch, d));
    let _ = std::fs::remove_file(&scratch);
}
