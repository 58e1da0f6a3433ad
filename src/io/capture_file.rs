//! A capture file as a [`Device`]: the frames of a pcap / pcapng file are received, in order.
//!
//! Guarantees:
//! - Every frame [`CaptureReader`] yields is received exactly once, in file order, as the
//!   reader converts it (Ethernet II); nothing is skipped, reordered or cut silently: a frame
//!   longer than the caller's buffer fills the buffer and is reported truncated
//!   ([`RxMeta::truncated`]), like every other backend. Frames the capture itself cut
//!   (snaplen) are handed over as stored, not marked truncated: the bytes are all there is.
//! - Pacing is chosen at [`CaptureFileDevice::open`]: [`FilePace::AsFastAsRead`] hands out up
//!   to a full batch per call; [`FilePace::RealTime`] releases each frame at its capture time
//!   relative to the first frame, measured on the monotonic clock from the first
//!   [`Device::recv_batch`] call. Timestamps going backwards release the frame at once.
//! - The end is explicit: after the last frame `recv_batch` returns 0 forever and
//!   [`CaptureFileDevice::is_exhausted`] is true. A damaged file yields its good frames, then one
//!   `io::Error` of kind `InvalidData` carrying the [`CaptureError`]'s message (which names the
//!   frame), then 0 forever.
//! - The send side is a counting sink: every frame offered is taken and discarded
//!   ([`CaptureFileDevice::sent`]), so the device can also close a pipeline.
//! - Steady state allocates nothing per frame: frames are copied from the reader's buffer
//!   straight into the caller's; a frame held back until its time (real-time pace) is kept in
//!   one buffer this device reuses.
//! - [`Device::wait_readable`] never blocks longer than its timeout; with nothing left to
//!   receive it sleeps the timeout (like an idle interface) rather than returning at once, so
//!   a polling caller does not spin.

use super::{Device, RxMeta, TxFrame, VnetHdr};
use crate::capture::{CaptureError, CaptureReader};
use std::path::Path;
use std::time::{Duration, Instant};

/// When the frames of a capture file become readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePace {
    /// Every `recv_batch` returns as many frames as fit, at once.
    AsFastAsRead,
    /// Frames become readable at their capture timestamps, relative to the first frame, counted
    /// from the first `recv_batch` call.
    RealTime,
}

/// A frame read from the file but not yet handed out (real-time pace: not due yet).
struct Held {
    /// Capture timestamp, ns since the epoch.
    ts_ns: u64,
    /// Whether `hold_buf` holds the frame.
    present: bool,
}

/// A [`Device`] that receives the frames of a capture file; see the module header.
pub struct CaptureFileDevice {
    name: String,
    reader: CaptureReader,
    pace: FilePace,
    /// Frame read ahead (real-time pace), bytes in `hold_buf`, reused across frames.
    held: Held,
    hold_buf: Vec<u8>,
    /// An error met after frames already placed in a batch: reported by the next call.
    pending_error: Option<CaptureError>,
    /// The reader has nothing more (end of file, or its error was taken from it).
    reader_done: bool,
    /// Real-time pace: monotonic start (first `recv_batch`) and the first frame's timestamp.
    start: Option<Instant>,
    first_ts: Option<u64>,
    received: u64,
    sent: u64,
}

impl CaptureFileDevice {
    /// Opens `path` (pcap or pcapng, any link type [`CaptureReader`] accepts).
    pub fn open(path: &Path, pace: FilePace) -> Result<CaptureFileDevice, CaptureError> {
        let reader = CaptureReader::open(path)?;
        Ok(CaptureFileDevice {
            name: path.display().to_string(),
            reader,
            pace,
            held: Held {
                ts_ns: 0,
                present: false,
            },
            hold_buf: Vec::new(),
            pending_error: None,
            reader_done: false,
            start: None,
            first_ts: None,
            received: 0,
            sent: 0,
        })
    }

    /// Whether every frame has been received (and an error, if the file was damaged, reported):
    /// `recv_batch` will only return 0 from now on.
    pub fn is_exhausted(&self) -> bool {
        self.reader_done && !self.held.present && self.pending_error.is_none()
    }

    /// Frames received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Frames taken (and discarded) by `send_batch` so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The pace chosen at open.
    pub fn pace(&self) -> FilePace {
        self.pace
    }

    /// Makes sure the next frame, if any, is in `hold_buf` (reads ahead one frame).
    fn fill_held(&mut self) {
        if self.held.present || self.reader_done {
            return;
        }
        match self.reader.next_frame() {
            Ok(Some(f)) => {
                self.hold_buf.clear();
                self.hold_buf.extend_from_slice(f.data);
                self.held = Held {
                    ts_ns: f.ts_ns,
                    present: true,
                };
            }
            Ok(None) => self.reader_done = true,
            Err(e) => {
                self.reader_done = true;
                self.pending_error = Some(e);
            }
        }
    }

    /// Real-time pace: when the held frame is due (`None` before the first `recv_batch`, when
    /// the clock has not started: the first frame is due at once).
    fn held_due(&mut self) -> Option<Instant> {
        let start = self.start?;
        let first = *self.first_ts.get_or_insert(self.held.ts_ns);
        let offset = self.held.ts_ns.saturating_sub(first);
        Some(
            start
                .checked_add(Duration::from_nanos(offset))
                .unwrap_or(start + Duration::from_secs(86_400 * 365)),
        )
    }

    fn recv_real_time(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta]) -> usize {
        let now = Instant::now();
        self.start.get_or_insert(now);
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            self.fill_held();
            if !self.held.present {
                break;
            }
            if self.held_due().is_some_and(|due| due > now) {
                break;
            }
            meta[n] = copy_frame(&self.hold_buf, &mut bufs[n]);
            self.held.present = false;
            n += 1;
        }
        n
    }

    fn recv_fast(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta]) -> usize {
        let mut n = 0;
        while n < bufs.len().min(meta.len()) && !self.reader_done {
            match self.reader.next_frame() {
                Ok(Some(f)) => {
                    meta[n] = copy_frame(f.data, &mut bufs[n]);
                    n += 1;
                }
                Ok(None) => self.reader_done = true,
                Err(e) => {
                    self.reader_done = true;
                    self.pending_error = Some(e);
                }
            }
        }
        n
    }
}

/// Copies `frame` into `buf`, as much as fits, and describes what was copied.
fn copy_frame(frame: &[u8], buf: &mut [u8]) -> RxMeta {
    let len = frame.len().min(buf.len());
    buf[..len].copy_from_slice(&frame[..len]);
    RxMeta {
        len,
        truncated: len < frame.len(),
        vnet: VnetHdr::NONE,
    }
}

impl Device for CaptureFileDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [Box<[u8]>],
        meta: &mut [RxMeta],
    ) -> std::io::Result<usize> {
        // An error met while filling an earlier batch is reported before anything else; it
        // comes after every good frame, since the reader stops at it.
        if !self.held.present {
            if let Some(e) = self.pending_error.take() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ));
            }
        }
        let n = match self.pace {
            FilePace::AsFastAsRead => self.recv_fast(bufs, meta),
            FilePace::RealTime => self.recv_real_time(bufs, meta),
        };
        if n == 0 && !self.held.present {
            if let Some(e) = self.pending_error.take() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ));
            }
        }
        self.received += n as u64;
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> std::io::Result<usize> {
        self.sent += frames.len() as u64;
        Ok(frames.len())
    }

    fn wait_readable(&mut self, timeout: Duration) -> std::io::Result<bool> {
        if self.pace == FilePace::RealTime {
            self.fill_held();
        }
        if self.pending_error.is_some() && !self.held.present {
            return Ok(true);
        }
        if self.pace == FilePace::AsFastAsRead && !self.reader_done {
            return Ok(true);
        }
        if !self.held.present {
            // Exhausted: idle like an interface with no traffic.
            std::thread::sleep(timeout);
            return Ok(false);
        }
        let Some(due) = self.held_due() else {
            return Ok(true);
        };
        let now = Instant::now();
        if due <= now {
            return Ok(true);
        }
        std::thread::sleep((due - now).min(timeout));
        Ok(Instant::now() >= due)
    }

    fn offloads(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{BATCH, MAX_FRAME};
    use std::path::PathBuf;

    fn capture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(name)
    }

    fn buffers(n: usize, size: usize) -> (Vec<Box<[u8]>>, Vec<RxMeta>) {
        (
            (0..n).map(|_| vec![0u8; size].into_boxed_slice()).collect(),
            vec![RxMeta::default(); n],
        )
    }

    fn reader_frames(name: &str) -> Vec<Vec<u8>> {
        let mut r = CaptureReader::open(&capture(name)).unwrap();
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(f.data.to_vec());
        }
        out
    }

    #[test]
    fn yields_what_the_reader_yields_in_batches_then_zero() {
        let expected = reader_frames("mixed-services.pcap");
        assert_eq!(expected.len(), 263);
        let mut dev =
            CaptureFileDevice::open(&capture("mixed-services.pcap"), FilePace::AsFastAsRead)
                .unwrap();
        assert!(!dev.offloads());
        assert!(dev.poll_fd().is_none());
        let (mut bufs, mut meta) = buffers(BATCH, MAX_FRAME);
        let mut got = Vec::new();
        let mut batches = Vec::new();
        loop {
            assert!(dev.wait_readable(Duration::ZERO).unwrap() || dev.is_exhausted());
            let n = dev.recv_batch(&mut bufs, &mut meta).unwrap();
            if n == 0 {
                break;
            }
            batches.push(n);
            for i in 0..n {
                assert!(!meta[i].truncated);
                assert_eq!(meta[i].vnet, VnetHdr::NONE);
                got.push(bufs[i][..meta[i].len].to_vec());
            }
        }
        assert_eq!(batches, [64, 64, 64, 64, 7]);
        assert_eq!(got, expected);
        assert!(dev.is_exhausted());
        assert_eq!(dev.received(), 263);
        for _ in 0..3 {
            assert_eq!(dev.recv_batch(&mut bufs, &mut meta).unwrap(), 0);
        }
        assert!(!dev.wait_readable(Duration::from_millis(1)).unwrap());
    }

    #[test]
    fn frames_longer_than_the_buffer_are_reported_truncated() {
        let expected = reader_frames("mixed-services.pcap");
        let mut dev =
            CaptureFileDevice::open(&capture("mixed-services.pcap"), FilePace::AsFastAsRead)
                .unwrap();
        let (mut bufs, mut meta) = buffers(10, 100);
        let mut i = 0;
        loop {
            let n = dev.recv_batch(&mut bufs, &mut meta).unwrap();
            if n == 0 {
                break;
            }
            for k in 0..n {
                let want = &expected[i];
                let len = want.len().min(100);
                assert_eq!(meta[k].len, len, "frame {}", i + 1);
                assert_eq!(meta[k].truncated, want.len() > 100, "frame {}", i + 1);
                assert_eq!(&bufs[k][..len], &want[..len]);
                i += 1;
            }
        }
        assert_eq!(i, expected.len());
        assert!(expected.iter().any(|f| f.len() > 100), "some are cut");
    }

    #[test]
    fn a_damaged_file_gives_its_frames_then_one_error_then_nothing() {
        let mut dev =
            CaptureFileDevice::open(&capture("truncated.pcap"), FilePace::AsFastAsRead).unwrap();
        let (mut bufs, mut meta) = buffers(BATCH, MAX_FRAME);
        assert_eq!(dev.recv_batch(&mut bufs, &mut meta).unwrap(), 1);
        assert!(!dev.is_exhausted());
        assert!(
            dev.wait_readable(Duration::ZERO).unwrap(),
            "the error is news"
        );
        let err = dev.recv_batch(&mut bufs, &mut meta).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("frame 2"),
            "names the frame: {err}"
        );
        assert!(dev.is_exhausted());
        for _ in 0..3 {
            assert_eq!(dev.recv_batch(&mut bufs, &mut meta).unwrap(), 0);
        }
    }

    #[test]
    fn the_damaged_file_error_comes_the_same_way_in_real_time() {
        let mut dev =
            CaptureFileDevice::open(&capture("truncated.pcap"), FilePace::RealTime).unwrap();
        let (mut bufs, mut meta) = buffers(BATCH, MAX_FRAME);
        assert_eq!(dev.recv_batch(&mut bufs, &mut meta).unwrap(), 1);
        let err = dev.recv_batch(&mut bufs, &mut meta).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("frame 2"), "{err}");
        assert_eq!(dev.recv_batch(&mut bufs, &mut meta).unwrap(), 0);
        assert!(dev.is_exhausted());
    }

    #[test]
    fn send_side_is_a_counting_sink() {
        let mut dev =
            CaptureFileDevice::open(&capture("truncated.pcap"), FilePace::AsFastAsRead).unwrap();
        let data = [0u8; 60];
        let frames = [TxFrame {
            data: &data,
            vnet: VnetHdr::NONE,
        }; 5];
        assert_eq!(dev.send_batch(&frames).unwrap(), 5);
        assert_eq!(dev.send_batch(&frames[..2]).unwrap(), 2);
        assert_eq!(dev.sent(), 7);
    }

    #[test]
    fn real_time_pace_holds_frames_until_their_time() {
        // shaping-check.pcap: 300 frames at t = 0, then one at 50 ms, 100 ms, ...
        let mut dev =
            CaptureFileDevice::open(&capture("shaping-check.pcap"), FilePace::RealTime).unwrap();
        let (mut bufs, mut meta) = buffers(BATCH, MAX_FRAME);
        let t0 = Instant::now();
        let mut burst = 0;
        loop {
            let n = dev.recv_batch(&mut bufs, &mut meta).unwrap();
            burst += n;
            if n < BATCH {
                break;
            }
        }
        let burst_took = t0.elapsed();
        assert_eq!(burst, 300, "the t = 0 burst is readable at once");
        assert!(burst_took < Duration::from_millis(40), "{burst_took:?}");

        std::thread::sleep(Duration::from_millis(10).saturating_sub(t0.elapsed()));
        assert_eq!(
            dev.recv_batch(&mut bufs, &mut meta).unwrap(),
            0,
            "50 ms frame early"
        );
        assert!(!dev.is_exhausted());

        assert!(dev.wait_readable(Duration::from_millis(200)).unwrap());
        let woke = t0.elapsed();
        assert!(
            woke >= Duration::from_millis(50) && woke < Duration::from_millis(150),
            "woke at {woke:?}"
        );
        assert_eq!(dev.recv_batch(&mut bufs, &mut meta).unwrap(), 1);

        // A short timeout is honoured: the 100 ms frame is not due yet.
        let before = Instant::now();
        if t0.elapsed() < Duration::from_millis(90) {
            assert!(!dev.wait_readable(Duration::from_millis(5)).unwrap());
            assert!(before.elapsed() < Duration::from_millis(50));
        }
    }
}
