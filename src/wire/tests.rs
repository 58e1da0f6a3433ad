use super::*;

#[test]
fn empty_frame_is_truncated_not_a_panic() {
    let v = parse(&[]);
    assert!(v.truncated);
    assert_eq!(v.l3, L3::Other);
}
