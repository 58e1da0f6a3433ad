#[test]
fn placeholder_config() {}
