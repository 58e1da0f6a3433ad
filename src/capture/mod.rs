//! Capture files: pcap / pcapng in, Ethernet II frames out; Ethernet pcap written back.
//!
//! Guarantees:
//! - [`CaptureReader`] reads through libpcap (the `pcap` crate), so it reads exactly what
//!   tcpdump reads: pcap in either byte order, micro- or nanosecond precision, and pcapng.
//!   Timestamps always come out in nanoseconds since the Unix epoch.
//! - Every frame it yields is Ethernet II. Linux cooked (SLL, SLL2), raw IP (RAW, IPV4, IPV6)
//!   and BSD loopback (NULL, LOOP) get a synthesized 14-byte header (see [`linktype`]); any
//!   other link type is refused at [`CaptureReader::open`] with
//!   [`CaptureError::UnsupportedLinkType`], never frame by frame.
//! - Every record libpcap can read is yielded and counted, including frames too short for their
//!   link header: those come out as a bare Ethernet header with ethertype 0 (non-IP) and no
//!   payload. Dropping them would shift frame numbers away from what tcpdump and Wireshark show,
//!   and the wire layer already treats short and opaque frames as forwardable non-IP traffic.
//! - No input makes it panic. A file that goes bad part-way yields its good frames first, then
//!   one [`CaptureError::Damaged`] naming the frame that could not be read; after any error,
//!   or at the end, [`CaptureReader::next_frame`] keeps returning `Ok(None)`.
//! - Steady state allocates nothing per frame: Ethernet frames are borrowed straight from
//!   libpcap's buffer, converted ones from one buffer the reader reuses.
//! - [`CaptureWriter`] writes classic pcap, Ethernet, nanosecond precision, snaplen 262144, and
//!   reports every I/O error (including a full disk at [`CaptureWriter::finish`]).
//! - Errors name the file, the frame where relevant, and what to do about it.

mod linktype;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use linktype::{conversion_for, dlt, to_ethernet, Conversion, LinkType};
pub use reader::{CaptureReader, CapturedFrame};
pub use writer::{CaptureWriter, WRITER_SNAPLEN};

/// What weir accepts, for error messages.
const ACCEPTED: &str = "weir replays Ethernet captures and converts Linux cooked (SLL, SLL2), \
                        raw IPv4/IPv6 and BSD loopback/null";

/// Everything that can go wrong reading or writing a capture file.
#[derive(thiserror::Error, Debug)]
pub enum CaptureError {
    /// The file could not be opened or read at the OS level (not found, permission, ...).
    #[error("cannot open capture {p}: {source}",
        p = path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file starts with the gzip magic (1f 8b).
    #[error(
        "{p} is gzip-compressed; weir reads uncompressed pcap/pcapng: \
         decompress it first, e.g. `gunzip -k {p}`",
        p = path.display()
    )]
    Compressed { path: PathBuf },

    /// The file does not start with a pcap or pcapng magic number.
    #[error(
        "{p} is not a pcap or pcapng capture (libpcap: {detail}); \
         weir reads pcap and pcapng files, e.g. as written by tcpdump -w or Wireshark",
        p = path.display()
    )]
    NotACapture { path: PathBuf, detail: String },

    /// The magic number is right but libpcap rejects the file header.
    #[error(
        "{p} looks like a capture but libpcap cannot read its header: {detail}; \
         the file is damaged or in a variant libpcap does not support \
         (try re-saving it with `editcap -F pcap`)",
        p = path.display()
    )]
    BadHeader { path: PathBuf, detail: String },

    /// The link type is not Ethernet nor one weir converts.
    #[error(
        "{p} has link type {name} ({link_type}), which weir cannot replay: {accepted}; \
         rewrite each frame's link header to Ethernet with tcpreplay's tcprewrite \
         (`tcprewrite --dlt=enet --enet-smac=02:00:00:00:00:01 --enet-dmac=02:00:00:00:00:02 -i IN -o OUT`), \
         or capture on an Ethernet interface (`editcap -T` only relabels the file: its frames \
         would not parse)",
        p = path.display(),
        accepted = ACCEPTED
    )]
    UnsupportedLinkType {
        path: PathBuf,
        link_type: i32,
        name: String,
    },

    /// A record could not be read: the file is truncated or corrupt from frame `frame` on.
    #[error(
        "{p}: cannot read frame {frame}: {detail}; {}",
        damaged_tail(*frame),
        p = path.display()
    )]
    Damaged {
        path: PathBuf,
        /// 1-based number of the frame that could not be read.
        frame: u64,
        detail: String,
    },

    /// A pcapng whose interfaces (or sections) disagree on link type, snapshot length or byte
    /// order: libpcap stops at the first interface that differs.
    #[error(
        "{p}: stopped before frame {frame}: {detail}; libpcap reads a pcapng only if all its \
         interfaces share one link type and snapshot length. Frames before it were read; \
         extract one interface, e.g. `tshark -r {p} -Y 'frame.interface_id == 0' -w OUT.pcap`",
        p = path.display()
    )]
    MixedInterfaces {
        path: PathBuf,
        /// 1-based number of the frame that was not read.
        frame: u64,
        detail: String,
    },

    /// Writing the output capture failed.
    #[error("cannot write capture {p}: {source}",
        p = path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A frame's timestamp does not fit pcap's 32-bit seconds (after 2106-02-07).
    #[error(
        "cannot write frame to {p}: timestamp {ts_ns} ns is past what pcap can store (2106)",
        p = path.display()
    )]
    TimestampOutOfRange { path: PathBuf, ts_ns: u64 },
}

/// What a reader of a damaged file still got.
fn damaged_tail(frame: u64) -> String {
    match frame {
        0 | 1 => "the file is damaged from its first frame; no frames could be read".to_string(),
        n => format!(
            "the file is damaged after frame {}; frames before it were read",
            n - 1
        ),
    }
}
