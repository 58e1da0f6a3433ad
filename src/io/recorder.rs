//! [`Recorder`]: a device wrapper that writes the frames crossing it to a pcap file.
//!
//! Guarantees:
//! - Every call is forwarded to the inner device unchanged, and its result returned unchanged:
//!   wrapping a device changes nothing about what the pipeline sees.
//! - What is recorded is exactly what crossed: after `recv_batch`, the frames received (their
//!   bytes as placed in the buffer; a frame the inner device reported truncated is recorded as
//!   received, its on-wire length unknown); after `send_batch`, only the frames the inner device
//!   took (the first `n`), in order. A vnet header is not part of pcap: the frame's bytes are
//!   recorded, a GSO super-frame as one record.
//! - Timestamps are wall-clock (`SystemTime`), nanoseconds since the epoch, read once per batch.
//! - Recording never disturbs forwarding: no panic, no error returned from a device call. The
//!   first write error stops recording and is kept for [`Recorder::finish`], which flushes and
//!   syncs the file and hands the inner device back. A recorder dropped without `finish` flushes
//!   what it can and loses any error.
//! - No allocation per frame: the writer buffers into one fixed buffer.

use super::{Device, RxMeta, TxFrame};
use crate::capture::{CaptureError, CaptureWriter};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which direction a [`Recorder`] writes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Frames received from the inner device.
    Received,
    /// Frames the inner device took for sending.
    Sent,
    /// Both, interleaved in the order the calls happened.
    Both,
}

impl Record {
    fn received(self) -> bool {
        matches!(self, Record::Received | Record::Both)
    }

    fn sent(self) -> bool {
        matches!(self, Record::Sent | Record::Both)
    }
}

/// Wraps a device and records its traffic to a pcap file; see the module header.
pub struct Recorder<D: Device> {
    inner: D,
    what: Record,
    /// `None` once a write failed (the error is in `error`).
    writer: Option<CaptureWriter>,
    error: Option<CaptureError>,
    recorded: u64,
}

/// Wall-clock now, ns since the epoch (0 before 1970, saturating far in the future).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl<D: Device> Recorder<D> {
    /// Creates (or truncates) the pcap file at `path` and wraps `inner`. Fails only if the file
    /// cannot be created.
    pub fn new(inner: D, path: &Path, what: Record) -> Result<Recorder<D>, CaptureError> {
        let writer = CaptureWriter::create(path)?;
        Ok(Recorder {
            inner,
            what,
            writer: Some(writer),
            error: None,
            recorded: 0,
        })
    }

    /// Frames written to the file so far.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// The first write error, if recording has stopped.
    pub fn error(&self) -> Option<&CaptureError> {
        self.error.as_ref()
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Flushes and syncs the file and returns the inner device, or the first error met while
    /// recording (or flushing).
    pub fn finish(self) -> Result<D, CaptureError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(w) = self.writer {
            w.finish()?;
        }
        Ok(self.inner)
    }

    /// Writes frames with one timestamp; on the first error, stops recording.
    fn record<'a>(&mut self, frames: impl Iterator<Item = (&'a [u8], u32)>) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let ts = now_ns();
        for (data, orig_len) in frames {
            if let Err(e) = w.write(ts, data, orig_len) {
                self.error = Some(e);
                self.writer = None;
                return;
            }
            self.recorded += 1;
        }
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<D: Device> Device for Recorder<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [Box<[u8]>],
        meta: &mut [RxMeta],
    ) -> std::io::Result<usize> {
        let n = self.inner.recv_batch(bufs, meta)?;
        if self.what.received() && n > 0 {
            let n = n.min(bufs.len()).min(meta.len());
            self.record(
                bufs[..n]
                    .iter()
                    .zip(&meta[..n])
                    .map(|(b, m)| (&b[..m.len.min(b.len())], len_u32(m.len))),
            );
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> std::io::Result<usize> {
        let n = self.inner.send_batch(frames)?;
        if self.what.sent() && n > 0 {
            let n = n.min(frames.len());
            self.record(frames[..n].iter().map(|f| (f.data, len_u32(f.data.len()))));
        }
        Ok(n)
    }

    fn wait_readable(&mut self, timeout: Duration) -> std::io::Result<bool> {
        self.inner.wait_readable(timeout)
    }

    fn offloads(&self) -> bool {
        self.inner.offloads()
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.poll_fd()
    }

    fn kernel_drops(&mut self) -> Option<u64> {
        self.inner.kernel_drops()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureReader;
    use crate::io::capture_file::{CaptureFileDevice, FilePace};
    use crate::io::memory::memory_device;
    use crate::io::{VnetHdr, BATCH, MAX_FRAME};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn capture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(name)
    }

    fn read_back(path: &Path) -> Vec<Vec<u8>> {
        let mut r = CaptureReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(f.data.to_vec());
        }
        out
    }

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("weir-recorder-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn buffers(n: usize) -> (Vec<Box<[u8]>>, Vec<RxMeta>) {
        (
            (0..n)
                .map(|_| vec![0u8; MAX_FRAME].into_boxed_slice())
                .collect(),
            vec![RxMeta::default(); n],
        )
    }

    #[test]
    fn records_exactly_the_frames_taken_for_sending() {
        let dir = TempDir::new("sent");
        let path = dir.path().join("sent.pcap");
        // Capacity 5: of 8 offered, the memory device takes 5; only those are recorded.
        let (mem, handle) = memory_device("mem", 5);
        let mut rec = Recorder::new(mem, &path, Record::Sent).unwrap();
        let frames: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 60 + usize::from(i)]).collect();
        let tx: Vec<TxFrame<'_>> = frames
            .iter()
            .map(|f| TxFrame {
                data: f,
                vnet: VnetHdr::NONE,
            })
            .collect();
        assert_eq!(rec.send_batch(&tx).unwrap(), 5);
        // Received frames are not recorded in `Sent` mode.
        assert!(handle.inject(&[9u8; 70], VnetHdr::NONE));
        let (mut bufs, mut meta) = buffers(4);
        assert_eq!(rec.recv_batch(&mut bufs, &mut meta).unwrap(), 1);
        assert_eq!(rec.recorded(), 5);
        let sent: Vec<Vec<u8>> = handle.take_sent().into_iter().map(|(f, _)| f).collect();
        assert_eq!(sent, frames[..5]);
        rec.finish().unwrap();
        assert_eq!(read_back(&path), frames[..5]);
    }

    #[test]
    fn records_exactly_the_frames_received_from_a_capture_file() {
        let dir = TempDir::new("received");
        let path = dir.path().join("received.pcap");
        let src = capture("mixed-services.pcap");
        let dev = CaptureFileDevice::open(&src, FilePace::AsFastAsRead).unwrap();
        let mut rec = Recorder::new(dev, &path, Record::Both).unwrap();
        assert_eq!(rec.name(), src.display().to_string());
        let (mut bufs, mut meta) = buffers(BATCH);
        while rec.recv_batch(&mut bufs, &mut meta).unwrap() > 0 {}
        assert_eq!(rec.recorded(), 263);
        let dev = rec.finish().unwrap();
        assert!(dev.is_exhausted());
        assert_eq!(read_back(&path), read_back(&src));
    }

    #[test]
    fn a_write_error_is_kept_for_finish_and_forwarding_goes_on() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let (mem, handle) = memory_device("mem", 100_000);
        let mut rec = Recorder::new(mem, full, Record::Sent).unwrap();
        let frame = vec![1u8; 1500];
        let tx = [TxFrame {
            data: &frame,
            vnet: VnetHdr::NONE,
        }; 64];
        for _ in 0..100 {
            assert_eq!(rec.send_batch(&tx).unwrap(), 64);
        }
        assert_eq!(handle.take_sent().len(), 6400, "forwarding unaffected");
        assert!(rec.error().is_some());
        assert!(matches!(rec.finish(), Err(CaptureError::Write { .. })));
    }

    /// The runtime end to end on a capture file: lan receives mixed-services.pcap, both tx
    /// sides are recorded memory sinks.
    #[test]
    fn runtime_forwards_a_capture_file_and_the_recorder_sees_every_frame() {
        use crate::runtime::{run, Options, PortIo, Priority};
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let plan = Arc::new(crate::config::load(&root.join("configs/test-small.ron")).unwrap());
        let dir = TempDir::new("runtime");
        let lan_pcap = dir.path().join("lan-tx.pcap");
        let wan_pcap = dir.path().join("wan-tx.pcap");
        let lan_rx =
            CaptureFileDevice::open(&capture("mixed-services.pcap"), FilePace::AsFastAsRead)
                .unwrap();
        let (wan_rx, _wan_in) = memory_device("wan-rx", 16);
        let (lan_mem, lan_out) = memory_device("lan-tx", 100_000);
        let (wan_mem, wan_out) = memory_device("wan-tx", 100_000);
        let lan_tx = Recorder::new(lan_mem, &lan_pcap, Record::Sent).unwrap();
        let wan_tx = Recorder::new(wan_mem, &wan_pcap, Record::Sent).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let opts = Options {
            priority: Priority::Inherit,
            ..Options::default()
        };
        let thread = std::thread::spawn(move || {
            run(
                plan,
                [
                    PortIo {
                        rx: Box::new(lan_rx),
                        tx: Box::new(lan_tx),
                        express: None,
                    },
                    PortIo {
                        rx: Box::new(wan_rx),
                        tx: Box::new(wan_tx),
                        express: None,
                    },
                ],
                s,
                &opts,
            )
        });
        // Wait (bounded) until the wan output has been quiet for 300 ms after the first frame;
        // the stop's grace period then drains whatever is still queued.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut sent = 0;
        let mut last_change = Instant::now();
        while Instant::now() < deadline {
            let n = wan_out.take_sent().len();
            if n > 0 {
                sent += n;
                last_change = Instant::now();
            } else if sent > 0 && last_change.elapsed() > Duration::from_millis(300) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let report = thread.join().unwrap().unwrap();
        sent += wan_out.take_sent().len();

        let t = report.totals;
        assert_eq!(t.received, 263);
        assert_eq!(report.received_per_port, [263, 0]);
        assert_eq!(t.received, t.forwarded + t.dropped, "{t:?}");
        assert_eq!(t.queued, 0);
        assert!(t.forwarded > 0, "{t:?}");
        assert_eq!(report.buffers_outstanding, 0);
        // Everything came in on lan, so everything forwarded left on wan.
        assert!(lan_out.take_sent().is_empty());
        assert_eq!(sent as u64, t.forwarded);
        // The recorders were dropped inside `run`; their files were flushed on drop.
        let recorded = read_back(&wan_pcap);
        assert_eq!(recorded.len() as u64, t.forwarded);
        assert!(read_back(&lan_pcap).is_empty());
    }
}
