//! [`CaptureReader`]: pcap / pcapng through libpcap, frames converted to Ethernet II.

use std::io::Read;
use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use super::linktype::{to_ethernet, Conversion, LinkType};
use super::CaptureError;

/// Length of a synthesized Ethernet II header.
const ETH_HEADER: u32 = 14;

/// File formats told apart by their first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Magic {
    Pcap,
    Pcapng,
    Gzip,
    Other,
}

fn classify_magic(head: &[u8]) -> Magic {
    match head {
        [0x1f, 0x8b, ..] => Magic::Gzip,
        [0x0a, 0x0d, 0x0d, 0x0a] => Magic::Pcapng,
        // Micro- and nanosecond pcap, and the "modified" (Kuznetzov) variant, in both byte orders.
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xcd, 0x34]
        | [0x34, 0xcd, 0xb2, 0xa1] => Magic::Pcap,
        _ => Magic::Other,
    }
}

/// Reads pcap and pcapng through the pcap crate (libpcap), yielding Ethernet frames.
pub struct CaptureReader {
    cap: Capture<Offline>,
    path: PathBuf,
    link: LinkType,
    conv: Conversion,
    /// Reused for converted frames; grows to the largest frame, then never reallocates.
    buf: Vec<u8>,
    frames: u64,
    file_len: u64,
    /// Estimated bytes of the file consumed so far (record headers + captured bytes).
    position: u64,
    pcapng: bool,
    /// Set at the end of the file or after an error: every later call returns `Ok(None)`.
    done: bool,
}

/// One frame, as Ethernet II.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapturedFrame<'a> {
    /// 1-based frame number in the file.
    pub number: u64,
    /// Capture timestamp, nanoseconds since the Unix epoch (0 for timestamps before 1970).
    pub ts_ns: u64,
    /// The frame as Ethernet II bytes (converted if the link type was not Ethernet).
    pub data: &'a [u8],
    /// Length on the wire as recorded in the file, adjusted by the size difference between the
    /// original link header and Ethernet when converted; never less than `data.len()`.
    pub orig_len: u32,
    /// The capture kept fewer bytes than were on the wire (snaplen).
    pub truncated_by_snaplen: bool,
}

impl CaptureReader {
    /// Opens a pcap or pcapng file. Fails if it cannot be opened, is compressed, is not a
    /// capture, or has a link type weir does not accept.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        // libpcap takes a C string: it needs UTF-8 here, and reads stdin for "-".
        let Some(path_str) = path.to_str() else {
            return Err(open_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path is not valid UTF-8, which libpcap needs; rename the file",
            )));
        };
        let path_str = if path_str == "-" { "./-" } else { path_str };

        // Opened here first for a precise OS error and to look at the magic number, which
        // libpcap would only report as "unknown file format".
        let mut file = std::fs::File::open(path).map_err(open_err)?;
        let file_len = file.metadata().map_err(open_err)?.len();
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(open_err(e)),
            }
        }
        drop(file);
        let magic = classify_magic(&head[..got]);
        if magic == Magic::Gzip {
            return Err(CaptureError::Compressed {
                path: path.to_path_buf(),
            });
        }

        let cap = Capture::from_file_with_precision(path_str, Precision::Nano).map_err(|e| {
            let detail = pcap_detail(e);
            match magic {
                Magic::Pcap | Magic::Pcapng => CaptureError::BadHeader {
                    path: path.to_path_buf(),
                    detail,
                },
                _ => CaptureError::NotACapture {
                    path: path.to_path_buf(),
                    detail,
                },
            }
        })?;
        let dl = cap.get_datalink();
        let name = dl.get_name().unwrap_or_else(|_| format!("DLT_{}", dl.0));
        let link = LinkType::new(dl.0, name);
        let Some(conv) = link.conversion else {
            return Err(CaptureError::UnsupportedLinkType {
                path: path.to_path_buf(),
                link_type: link.value,
                name: link.name,
            });
        };
        let pcapng = magic == Magic::Pcapng;
        Ok(CaptureReader {
            cap,
            path: path.to_path_buf(),
            link,
            conv,
            buf: Vec::new(),
            frames: 0,
            file_len,
            // pcap's file header; pcapng's section and interface blocks are not counted.
            position: if pcapng { 0 } else { 24 },
            pcapng,
            done: false,
        })
    }

    /// The file's link type as libpcap reports it (number and name), for messages.
    pub fn link_type(&self) -> LinkType {
        self.link.clone()
    }

    /// Next frame, converted to Ethernet. `Ok(None)` at the clean end of the file, and on every
    /// call after an error. The returned slice borrows a buffer reused across calls.
    pub fn next_frame(&mut self) -> Result<Option<CapturedFrame<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let packet = match self.cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::NoMorePackets) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                return Err(read_error(&self.path, self.frames + 1, e));
            }
        };
        self.frames += 1;
        let header = packet.header;
        let raw = packet.data;
        self.position = self
            .position
            .saturating_add(record_size(self.pcapng, raw.len()));

        // time_t and suseconds_t are i64 here, narrower on some targets.
        #[allow(clippy::useless_conversion)]
        let ts_ns = timestamp_ns(header.ts.tv_sec.into(), header.ts.tv_usec.into());
        let truncated_by_snaplen = header.caplen < header.len;
        let (data, orig_len): (&[u8], u32) = if self.conv == Conversion::Ethernet {
            (raw, header.len)
        } else {
            let removed = to_ethernet(self.conv, raw, &mut self.buf);
            let removed = u32::try_from(removed).unwrap_or(u32::MAX);
            (
                &self.buf,
                header
                    .len
                    .saturating_sub(removed)
                    .saturating_add(ETH_HEADER),
            )
        };
        let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        Ok(Some(CapturedFrame {
            number: self.frames,
            ts_ns,
            data,
            orig_len,
            truncated_by_snaplen,
        }))
    }

    /// Frames read so far (1-based number of the last frame returned).
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// Size of the file in bytes, as it was at open.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Estimated bytes consumed so far, at most [`Self::file_len`]: for a progress indicator
    /// only (pcapng block options and non-packet blocks are not counted).
    pub fn position(&self) -> u64 {
        self.position.min(self.file_len)
    }

    /// The file this reader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The error for a record libpcap could not read; `frame` is its 1-based number.
fn read_error(path: &Path, frame: u64, e: pcap::Error) -> CaptureError {
    let detail = pcap_detail(e);
    let path = path.to_path_buf();
    // libpcap's pcapng reader stops at the first interface or section that disagrees.
    let mixed = (detail.contains("different from the") && detail.contains("first interface"))
        || detail.contains("sections with different byte orders");
    if mixed {
        CaptureError::MixedInterfaces {
            path,
            frame,
            detail,
        }
    } else {
        CaptureError::Damaged {
            path,
            frame,
            detail,
        }
    }
}

/// libpcap's own message, without the pcap crate's prefix.
fn pcap_detail(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s,
        other => other.to_string(),
    }
}

/// Nanoseconds since the epoch from libpcap's timeval, which holds nanoseconds in `tv_usec`
/// because the file was opened with nanosecond precision. Saturates rather than wraps.
///
/// pcap stores seconds as an unsigned 32-bit number (good to 2106) but libpcap hands them back
/// sign-extended, so 2038 and later come out negative: those are read as the unsigned value.
/// Anything else below zero becomes 0.
pub(super) fn timestamp_ns(sec: i64, nsec: i64) -> u64 {
    let sec = match u64::try_from(sec) {
        Ok(s) => s,
        Err(_) if sec >= i64::from(i32::MIN) => u64::from(sec as u32),
        Err(_) => 0,
    };
    let nsec = u64::try_from(nsec).unwrap_or(0);
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// On-disk size of one packet record: pcap record header, or pcapng Enhanced Packet Block
/// (32 bytes of block around data padded to 4, options not counted).
fn record_size(pcapng: bool, caplen: usize) -> u64 {
    let caplen = caplen as u64;
    if pcapng {
        32 + caplen.div_ceil(4) * 4
    } else {
        16 + caplen
    }
}
