//! [`CaptureWriter`]: Ethernet frames to a classic pcap file.
//!
//! Written directly rather than through libpcap's dumper: `pcap_dump` returns nothing, so a
//! failed write (a full disk) would go unnoticed until, at best, the final flush; the pcap
//! crate's dead handle also fixes the header's snaplen at 65535, below a jumbo frame. The format
//! is 24 + 16 bytes of fixed header; the round-trip test reads the output back through libpcap.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::CaptureError;

/// Snapshot length written in the file header; longer frames are cut to it (`orig_len` kept).
pub const WRITER_SNAPLEN: u32 = 262_144;

/// Nanosecond-precision pcap magic, written little-endian (readers detect the byte order).
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;

/// Writes Ethernet frames to a pcap file (the shaped output of replay).
///
/// Format: pcap 2.4, little-endian, nanosecond timestamps, link type Ethernet, snaplen 262144.
pub struct CaptureWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl CaptureWriter {
    /// Creates (or truncates) `path` and writes the pcap file header.
    pub fn create(path: &Path) -> Result<CaptureWriter, CaptureError> {
        let file = File::create(path).map_err(|source| CaptureError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = CaptureWriter {
            out: BufWriter::with_capacity(1 << 16, file),
            path: path.to_path_buf(),
        };
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_NANO.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&WRITER_SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.put(&header)?;
        Ok(w)
    }

    /// Appends one frame. `data` longer than [`WRITER_SNAPLEN`] is cut to it; `orig_len` is
    /// raised to `data.len()` if smaller, so the record is always consistent.
    pub fn write(&mut self, ts_ns: u64, data: &[u8], orig_len: u32) -> Result<(), CaptureError> {
        let sec = u32::try_from(ts_ns / 1_000_000_000).map_err(|_| {
            CaptureError::TimestampOutOfRange {
                path: self.path.clone(),
                ts_ns,
            }
        })?;
        let nsec = (ts_ns % 1_000_000_000) as u32;
        let data = data.get(..WRITER_SNAPLEN as usize).unwrap_or(data);
        // Fits: at most WRITER_SNAPLEN.
        let caplen = data.len() as u32;
        let orig_len = orig_len.max(caplen);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&sec.to_le_bytes());
        record[4..8].copy_from_slice(&nsec.to_le_bytes());
        record[8..12].copy_from_slice(&caplen.to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.put(&record)?;
        self.put(data)
    }

    /// Flushes and syncs the file; any write error not yet reported (disk full) surfaces here.
    pub fn finish(self) -> Result<(), CaptureError> {
        let path = self.path;
        let err = |source| CaptureError::Write {
            path: path.clone(),
            source,
        };
        let file = self.out.into_inner().map_err(|e| err(e.into_error()))?;
        // Some filesystems (NFS, quota) only report a full disk when the data is synced.
        file.sync_all().map_err(err)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CaptureError> {
        self.out
            .write_all(bytes)
            .map_err(|source| CaptureError::Write {
                path: self.path.clone(),
                source,
            })
    }
}
