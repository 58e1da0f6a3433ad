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

#[test]
fn payload_corpus_stays_clean() {
    for (path, data) in corpus("payload") {
        let r = std::panic::catch_unwind(|| weir::fuzzing::payload(&data));
        assert!(r.is_ok(), "{}", path.display());
    }
}

#[test]
fn classify_corpus_stays_clean() {
    let plan = weir::config::parse(weir::fuzzing::CLASSIFY_CONFIG, Path::new("fuzz.ron"))
        .expect("the fuzz config");
    for (path, data) in corpus("classify") {
        let r = std::panic::catch_unwind(|| weir::fuzzing::classify(&plan, &data));
        assert!(r.is_ok(), "{}", path.display());
    }
}

#[test]
fn pipeline_corpus_stays_clean() {
    let plan = weir::config::parse(weir::fuzzing::PIPELINE_CONFIG, Path::new("fuzz.ron"))
        .expect("the fuzz config");
    let plan = std::sync::Arc::new(plan);
    for (path, data) in corpus("pipeline") {
        let r = std::panic::catch_unwind(|| weir::fuzzing::pipeline(&plan, &data));
        assert!(r.is_ok(), "{}", path.display());
    }
}

#[test]
fn rule_corpus_stays_clean() {
    for (path, data) in corpus("rule") {
        let r = std::panic::catch_unwind(|| weir::fuzzing::rule(&data));
        assert!(r.is_ok(), "{}", path.display());
    }
}

#[test]
fn config_corpus_stays_clean() {
    for (path, data) in corpus("config") {
        let r = std::panic::catch_unwind(|| weir::fuzzing::config(&data));
        assert!(r.is_ok(), "{}", path.display());
    }
}

#[test]
fn capture_corpus_stays_clean() {
    let scratch =
        std::env::temp_dir().join(format!("weir-fuzz-corpus-{}.pcap", std::process::id()));
    for (path, data) in corpus("capture") {
        let r = std::panic::catch_unwind(|| weir::fuzzing::capture(&scratch, &data));
        assert!(r.is_ok(), "{}", path.display());
    }
    let _ = std::fs::remove_file(&scratch);
}
