//! Every config shipped in configs/ loads.

#[test]
fn every_shipped_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            if let Err(e) = weir::config::load(&path) {
                panic!("{e}");
            }
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected at least home.ron and test-small.ron, found {n}"
    );
}
