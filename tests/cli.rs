//! The real binary on fixture files: exit codes and messages a user sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_prints_the_class_tree() {
    let o = weir(&["check", "-c", "configs/home.ron"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for needle in [
        "port wan",
        "port lan",
        "voice",
        "interactive",
        "web",
        "bulk",
        "control",
    ] {
        assert!(out.contains(needle), "missing {needle} in\n{out}");
    }
    // home.ron's `app` rules are told from payload: flows keep their protocols, and check says
    // what that costs at start; lab.ron's port rules need no such state.
    assert!(
        out.contains("flow table: 65536 flows, 8.00 MiB, and 24.7 MiB more for names"),
        "{out}"
    );
    let lab = text(&weir(&["check", "-c", "configs/lab.ron"]).stdout);
    assert!(lab.contains("flow table: 65536 flows, 8.00 MiB\n"), "{lab}");
}

#[test]
fn check_warnings_are_printed_and_the_config_still_passes() {
    // `app rtp` is told from payload: the shipped home config has no overlap left.
    let o = weir(&["check", "-c", "configs/home.ron"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    assert!(text(&o.stdout).starts_with("configs/home.ron: ok\n"));

    // With RTP written as its port range, as it used to be matched.
    let src = std::fs::read_to_string("configs/home.ron")
        .unwrap()
        .replace(
            "app sip or app rtp or",
            "app sip or udp port 10000-32767 or",
        );
    let path = std::env::temp_dir().join(format!("weir-cli-warn-{}.ron", std::process::id()));
    std::fs::write(&path, &src).unwrap();
    let o = weir(&["check", "-c", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let line = src
        .lines()
        .position(|l| l.contains("app ssh or app dns"))
        .unwrap()
        + 1;
    let col = src.lines().nth(line - 1).unwrap().find("app dns").unwrap() + 1;
    let first = format!(
        "weir: warning: {}:{line}:{col}: class `interactive`: `app dns` (tcp+udp port 53) is \
         partly taken by earlier class `voice` (`udp port 10000-32767`), e.g. udp from port 53 \
         to port 10000\n",
        path.display()
    );
    assert!(err.starts_with(&first), "{err}");
    assert!(
        err.contains("`app steam` (udp port 27000-27031) never gets a frame"),
        "{err}"
    );
    assert_eq!(err.matches("weir: warning: ").count(), 5, "{err}");
    assert!(text(&o.stdout).starts_with(&format!("{}: ok, 5 warnings\n", path.display())));

    // The test config has none, and says just ok.
    let o = weir(&["check", "-c", "configs/test-small.ron"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stderr), "");
    assert!(text(&o.stdout).starts_with("configs/test-small.ron: ok\n"));
}

#[test]
fn check_warns_of_queue_limits_that_reserve_gigabytes() {
    let dir = std::env::temp_dir().join(format!("weir-cli-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big: PathBuf = dir.join("big.ron");
    let src = std::fs::read_to_string("configs/test-small.ron")
        .unwrap()
        .replace("queue: (packets: 200)", "queue: (packets: 1000000)");
    std::fs::write(&big, src).unwrap();
    let o = weir(&["check", "-c", big.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains("big.ron:") && err.contains(": port wan reserves about 1.9"),
        "{err}"
    );
    assert!(
        err.contains("hint: lower queue.packets where it reserves most: `rest` 1.9"),
        "{err}"
    );
}

#[test]
fn a_bad_config_fails_with_its_position() {
    let dir = std::env::temp_dir().join(format!("weir-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad: PathBuf = dir.join("bad.ron");
    let src = std::fs::read_to_string("configs/test-small.ron")
        .unwrap()
        .replace("app dns", "app dnz");
    std::fs::write(&bad, src).unwrap();
    let o = weir(&["check", "-c", bad.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.ron:") && err.contains("dnz") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn replay_json_reconciles() {
    let o = weir(&[
        "replay",
        "captures/mixed-services.pcap",
        "-c",
        "configs/home.ron",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &v["totals"];
    let n = |k: &str| t[k].as_u64().unwrap();
    assert_eq!(n("received"), 263);
    assert_eq!(n("received"), n("forwarded") + n("dropped") + n("queued"));
    let classes = v["classes"].as_array().unwrap();
    let fwd: u64 = classes
        .iter()
        .map(|c| c["forwarded_frames"].as_u64().unwrap())
        .sum();
    assert_eq!(fwd, n("forwarded"));
    for c in classes {
        for k in [
            "port",
            "name",
            "forwarded_bytes",
            "dropped_frames",
            "drops_by_reason",
            "sojourn_us",
        ] {
            assert!(!c[k].is_null(), "class without {k}: {c}");
        }
    }
}

#[test]
fn a_damaged_capture_names_the_frame_and_fails() {
    let o = weir(&[
        "replay",
        "captures/truncated.pcap",
        "-c",
        "configs/home.ron",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("frame 2"), "{err}");
    // The frame read before the damage is still reported.
    assert!(
        text(&o.stdout).contains("received 1 = forwarded 1"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn a_missing_capture_or_unknown_link_type_is_a_clear_error() {
    let o = weir(&["replay", "no-such.pcap", "-c", "configs/home.ron"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no-such.pcap"),
        "{}",
        text(&o.stderr)
    );
    let o = weir(&["replay", "README.md", "-c", "configs/home.ron"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn the_receive_mode_applies_to_af_packet_only() {
    let o = weir(&[
        "run",
        "-c",
        "configs/home.ron",
        "--io",
        "pnet",
        "--rx",
        "ring",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--io pnet"), "{}", text(&o.stderr));
    let o = weir(&["run", "-c", "configs/home.ron", "--rx", "rings"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("mmsg") && err.contains("ring"), "{err}");
    let o = weir(&["run", "-c", "configs/home.ron", "--busy-poll", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("--busy-poll") && err.contains("200us"),
        "{err}"
    );
    let o = weir(&["run", "-c", "configs/home.ron", "--priority", "max"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("realtime") && err.contains("high"), "{err}");
}

#[test]
fn control_commands_without_a_weir_say_so_and_fail() {
    let sock = std::env::temp_dir().join(format!("weir-cli-{}-none.sock", std::process::id()));
    let sock = sock.to_str().unwrap();
    for cmd in ["status", "flows", "reload", "stop", "top"] {
        let o = weir(&[cmd, "--control", sock]);
        assert_eq!(o.status.code(), Some(1), "weir {cmd}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains("no weir is running") && err.contains(sock) && err.contains("weir run"),
            "weir {cmd}: {err}"
        );
    }
}

#[test]
fn the_config_comes_from_weir_config_when_not_given() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check"])
        .env("WEIR_CONFIG", "configs/home.ron")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("configs/home.ron: ok"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check"])
        .env("WEIR_CONFIG", "no/such/file.ron")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no/such/file.ron"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn the_json_of_a_damaged_capture_says_it_is_partial() {
    let o = weir(&[
        "replay",
        "captures/truncated.pcap",
        "-c",
        "configs/home.ron",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["complete"], false, "{r}");
    assert!(r["damage"].as_str().unwrap().contains("frame 2"), "{r}");
    assert_eq!(r["frames_read"], 1);
    let whole = weir(&[
        "replay",
        "captures/mixed-services.pcap",
        "-c",
        "configs/home.ron",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(r["complete"], true);
    assert!(r.get("damage").is_none());
}

#[test]
fn replaying_a_capture_onto_itself_is_refused_and_the_capture_kept() {
    let dir = std::env::temp_dir().join(format!("weir-cli-self-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("in.pcap");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/mixed-services.pcap"),
        &capture,
    )
    .unwrap();
    let before = std::fs::read(&capture).unwrap();
    // The same name, the same file by another path, and a hard link to it.
    let link = dir.join("link.pcap");
    std::fs::hard_link(&capture, &link).unwrap();
    let other_path = dir.join(".").join("in.pcap");
    for out in [&capture, &other_path, &link] {
        for flag in ["-o", "--flows"] {
            let o = weir(&[
                "replay",
                capture.to_str().unwrap(),
                "-c",
                "configs/home.ron",
                flag,
                out.to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(1), "{flag} {}", out.display());
            assert!(
                text(&o.stderr).contains("is the capture being replayed"),
                "{}",
                text(&o.stderr)
            );
            assert_eq!(
                std::fs::read(&capture).unwrap(),
                before,
                "the input is intact"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
