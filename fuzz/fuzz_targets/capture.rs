//! Bytes as a pcap or pcapng file through the capture reader (`weir::fuzzing::capture`).
#![no_main]

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch file per fuzzing process, in memory-backed storage when there is some, unlinked
/// at once (nothing is left behind when libFuzzer exits) and reached through /proc/self/fd.
fn scratch() -> &'static PathBuf {
    static FILE: OnceLock<(std::fs::File, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let named = dir.join(format!("weir-fuzz-capture-{}.pcap", std::process::id()));
        let file = std::fs::File::create(&named).expect("a scratch file");
        std::fs::remove_file(&named).expect("unlink the scratch file");
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        (file, path)
    });
    path
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzzing::capture(scratch(), data));
