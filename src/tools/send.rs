//! Sending a capture onto a wire at a chosen rate: the traffic generator (`weir send`).
//!
//! Guarantees:
//! - **Exact pacing, no drift.** [`Pacer`] is pure (time is an output, never read): the
//!   departure of frame `k` (0-based, counted over all loops) is computed from `k` and from the
//!   bytes of the frames before it, in integer nanoseconds, never by adding rounded intervals:
//!   - `--pps P`: `floor(k * 1e9 / P)`;
//!   - `--mbps R` (stored exactly as bits per second `B`): `floor(8 * bytes_before_k * 1e9 / B)`,
//!     counting **frame bytes only** (what is handed to the kernel, Ethernet header included,
//!     no preamble, FCS or inter-frame gap), as tcpreplay `--mbps` does. On a real link the
//!     wire carries 24 more bytes per frame; on a veth there is no such thing;
//!   - capture timing (the default) and `--multiplier X`: the capture's own gaps divided by
//!     `X`, measured from the first frame of each loop (timestamps that go back are treated as
//!     equal to the latest one, so departures never go back); loop `n + 1` starts right after
//!     the last frame of loop `n`;
//!   - `--topspeed`: every frame is due at once; batches go back to back.
//! - **Late frames catch up, early ones wait.** The sender sends every frame that is due in
//!   batches of up to [`BATCH`] (one `sendmmsg`), sleeps until the next departure when it is
//!   more than [`SPIN_BELOW_NS`] away (waking that much early) and spins the rest.
//! - **No allocation per frame.** Frames are copied into [`BATCH`] + 1 buffers allocated at
//!   start (each as long as the longest frame the interface takes); a capture up to
//!   [`IN_MEMORY_MAX`] bytes is read into memory once (cheap loops), a larger one is streamed
//!   and re-opened for each loop.
//! - **Every frame is accounted for.** Frames shorter than an Ethernet header are skipped and
//!   counted; frames longer than the interface takes (MTU + 14, + 4 for one VLAN tag) are
//!   counted as refused without being offered; frames the kernel refuses on its own are
//!   counted as refused too ([`TxRefusals`]).
//! - **Bounded.** It stops at the end of the last loop, when the stop flag is set (Ctrl-C),
//!   at the first unreadable frame (after sending what came before), or when the interface
//!   takes nothing for [`STALL_LIMIT`]; every outcome carries the [`SendReport`] so far.
//!
//! Thread contract: [`send`] runs on the calling thread and blocks until done; the stop flag
//! may be set from any thread.

use crate::capture::{CaptureError, CaptureReader};
use crate::io::af_packet::{AfPacket, AfPacketOptions, OpenError};
use crate::io::memory::MemoryDevice;
use crate::io::sys::netdev;
use crate::io::{Device, TxFrame, VnetHdr, BATCH};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes of an Ethernet II header; shorter frames are skipped.
pub const ETH_HEADER: usize = 14;
/// Bytes of one 802.1Q tag, allowed on top of MTU + header.
pub const VLAN_TAG: usize = 4;
/// Captures up to this size are held in memory; larger ones are streamed.
pub const IN_MEMORY_MAX: u64 = 64 << 20;
/// Waits shorter than this are spun; longer ones sleep until this much before the departure
/// (a sleep here overshoots by ~30 µs typically, ~80 µs at p99).
pub const SPIN_BELOW_NS: u64 = 50_000;
/// Longest single sleep, so the stop flag is seen promptly during long capture gaps.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// The interface took nothing for this long: give up.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);

const NS_PER_SEC: u128 = 1_000_000_000;

/// How fast to send: one choice, validated at the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Frames per second (> 0).
    Pps(u64),
    /// Bits per second (> 0), of frame bytes only (see the module header). The CLI takes
    /// megabits with up to 6 decimals, so the rate is exact.
    Mbps(u64),
    /// The capture's inter-frame gaps divided by this factor (finite, > 0).
    Multiplier(f64),
    /// The capture's own timing (multiplier 1, exact integers): the default.
    Capture,
    /// As fast as the kernel takes frames.
    TopSpeed,
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Pace::Pps(p) => write!(f, "{p} pps"),
            Pace::Mbps(bps) => write!(f, "{} Mbit/s", bps as f64 / 1e6),
            Pace::Multiplier(x) => write!(f, "capture timing x{x}"),
            Pace::Capture => write!(f, "capture timing"),
            Pace::TopSpeed => write!(f, "top speed"),
        }
    }
}

/// Parses `--pps`: a whole number of frames per second, at least 1.
pub fn parse_pps(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("the packet rate must be at least 1 frame per second".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("`{s}` is not a whole number of frames per second")),
    }
}

/// Parses `--mbps` exactly into bits per second: `10`, `2.5`, `0.064` (up to 6 decimals, so
/// down to 1 bit/s); at least 1 bit/s.
pub fn parse_mbps(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a rate in Mbit/s (e.g. 10 or 2.5)");
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 6 {
        return Err(format!(
            "`{s}`: at most 6 decimals (1 bit/s) are meaningful in Mbit/s"
        ));
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut frac_bps = 0u64;
    for (i, d) in frac.bytes().enumerate() {
        frac_bps += u64::from(d - b'0') * 10u64.pow(5 - i as u32);
    }
    let bps = int
        .checked_mul(1_000_000)
        .and_then(|b| b.checked_add(frac_bps))
        .ok_or_else(|| format!("`{s}` Mbit/s is too large"))?;
    if bps == 0 {
        return Err("the bit rate must be above 0".into());
    }
    Ok(bps)
}

/// Parses `--multiplier`: a finite factor above 0 (2 = twice as fast as captured).
pub fn parse_multiplier(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "`{s}` is not a speed-up factor above 0 (e.g. 2 or 0.5)"
        )),
    }
}

/// Says when each frame may leave, in nanoseconds since the start of the send. Pure: call
/// [`Pacer::departure`] once per frame, in order, and [`Pacer::restart_capture`] at the start
/// of every loop after the first.
#[derive(Clone, Debug)]
pub struct Pacer {
    pace: Pace,
    /// Frames scheduled so far.
    frames: u64,
    /// Bytes of the frames scheduled so far.
    bytes: u64,
    /// Capture timing: departure of the current loop's first frame.
    loop_base: u64,
    /// Capture timing: timestamp of the current loop's first frame.
    first_ts: Option<u64>,
    /// Capture timing: latest offset from `first_ts` seen in this loop.
    last_offset: u64,
    /// Latest departure given out.
    last_due: u64,
}

impl Pacer {
    pub fn new(pace: Pace) -> Pacer {
        Pacer {
            pace,
            frames: 0,
            bytes: 0,
            loop_base: 0,
            first_ts: None,
            last_offset: 0,
            last_due: 0,
        }
    }

    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// Frames scheduled so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// When the next frame (`len` bytes, captured at `ts_ns`) may leave, in ns since start.
    /// Never less than the previous answer.
    pub fn departure(&mut self, len: usize, ts_ns: u64) -> u64 {
        let due = match self.pace {
            // k < 2^64 and 1e9 < 2^30: the product fits u128; the quotient is at most
            // k * 1e9, clamped to u64 (584 years).
            Pace::Pps(pps) => clamp(u128::from(self.frames) * NS_PER_SEC / u128::from(pps.max(1))),
            // bytes < 2^64, * 8e9 < 2^33: fits u128.
            Pace::Mbps(bps) => {
                clamp(u128::from(self.bytes) * 8 * NS_PER_SEC / u128::from(bps.max(1)))
            }
            Pace::Capture => self.loop_base.saturating_add(self.capture_offset(ts_ns)),
            Pace::Multiplier(x) => {
                let off = self.capture_offset(ts_ns) as f64 / x;
                // `as` saturates: a huge quotient becomes u64::MAX, NaN cannot happen (x > 0).
                self.loop_base.saturating_add(off as u64)
            }
            Pace::TopSpeed => 0,
        };
        let due = due.max(self.last_due);
        self.frames += 1;
        self.bytes = self.bytes.saturating_add(len as u64);
        self.last_due = due;
        due
    }

    /// A new loop over the capture starts: its first frame leaves right after the last one.
    pub fn restart_capture(&mut self) {
        self.loop_base = self.last_due;
        self.first_ts = None;
        self.last_offset = 0;
    }

    fn capture_offset(&mut self, ts_ns: u64) -> u64 {
        let first = *self.first_ts.get_or_insert(ts_ns);
        self.last_offset = self.last_offset.max(ts_ns.saturating_sub(first));
        self.last_offset
    }
}

fn clamp(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// What one send did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SendReport {
    /// Frames the kernel took and did not refuse.
    pub frames_sent: u64,
    /// Bytes of the frames taken (frame bytes only).
    pub bytes_sent: u64,
    /// Frames too long for the interface, or refused by the kernel.
    pub frames_refused: u64,
    /// Frames shorter than an Ethernet header, not offered.
    pub frames_skipped: u64,
    /// From the start to the last frame taken.
    pub seconds: f64,
    pub achieved_pps: f64,
    /// Megabits (10^6) per second of frame bytes.
    pub achieved_mbps: f64,
    /// Loops over the capture that were completed.
    pub loops_done: u64,
    /// The send was cut short by the stop flag.
    pub stopped: bool,
}

impl fmt::Display for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} {} ({}) in {:.3} s: {:.0} pps, {:.1} Mbit/s; {} refused",
            self.frames_sent,
            plural(self.frames_sent, "frame", "frames"),
            human_bytes(self.bytes_sent),
            self.seconds,
            self.achieved_pps,
            self.achieved_mbps,
            self.frames_refused
        )?;
        if self.frames_skipped > 0 {
            write!(
                f,
                "; {} skipped (shorter than an Ethernet header)",
                self.frames_skipped
            )?;
        }
        if self.stopped {
            write!(f, "; stopped early")?;
        }
        Ok(())
    }
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// Why a send stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("sending on {iface} failed: {source}")]
    Send {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{iface} took no frame for {after:?}: is the link up and the peer receiving?")]
    Stalled { iface: String, after: Duration },
}

/// A send that failed, with what it did before.
#[derive(Debug)]
pub struct SendFailure {
    pub error: SendError,
    /// What was sent before the error (all zero when `started` is false).
    pub report: SendReport,
    /// Sending had begun (the interface and the capture were open).
    pub started: bool,
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if self.started {
            let n = self.report.frames_sent;
            write!(
                f,
                " ({n} {} sent before it)",
                plural(n, "frame was", "frames were")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SendFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<SendError> for Box<SendFailure> {
    fn from(error: SendError) -> Box<SendFailure> {
        Box::new(SendFailure {
            error,
            report: SendReport::default(),
            started: false,
        })
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Devices that count frames the kernel refused on its own (and reported as taken).
pub trait TxRefusals {
    fn tx_refused(&self) -> u64;
}

impl TxRefusals for AfPacket {
    fn tx_refused(&self) -> u64 {
        AfPacket::tx_refused(self)
    }
}

impl TxRefusals for MemoryDevice {
    fn tx_refused(&self) -> u64 {
        0
    }
}

/// What [`CaptureSource::next_into`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A frame of `len` bytes is in the buffer.
    Frame { len: usize, ts_ns: u64 },
    /// A frame longer than the buffer; not copied.
    TooLong { len: usize, ts_ns: u64 },
    /// The end of the capture.
    End,
}

struct MemFrame {
    start: usize,
    len: usize,
    ts_ns: u64,
}

enum Source {
    Memory {
        data: Vec<u8>,
        frames: Vec<MemFrame>,
        pos: usize,
        /// The error that ended the load, given out after the frames before it.
        damage: Option<CaptureError>,
    },
    Stream(Box<CaptureReader>),
}

/// The frames of a capture, in memory when small, streamed when large, and rewindable.
pub struct CaptureSource {
    path: PathBuf,
    src: Source,
}

impl CaptureSource {
    /// Opens `path`; reads it all into memory if it is at most `in_memory_max` bytes.
    pub fn open(path: &Path, in_memory_max: u64) -> Result<CaptureSource, CaptureError> {
        let mut reader = CaptureReader::open(path)?;
        if reader.file_len() > in_memory_max {
            return Ok(CaptureSource {
                path: path.to_path_buf(),
                src: Source::Stream(Box::new(reader)),
            });
        }
        let mut data = Vec::with_capacity(reader.file_len() as usize);
        let mut frames = Vec::new();
        let damage = loop {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    frames.push(MemFrame {
                        start: data.len(),
                        len: f.data.len(),
                        ts_ns: f.ts_ns,
                    });
                    data.extend_from_slice(f.data);
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        Ok(CaptureSource {
            path: path.to_path_buf(),
            src: Source::Memory {
                data,
                frames,
                pos: 0,
                damage,
            },
        })
    }

    /// Whether the capture is held in memory.
    pub fn in_memory(&self) -> bool {
        matches!(self.src, Source::Memory { .. })
    }

    /// Copies the next frame into `buf` (if it fits).
    pub fn next_into(&mut self, buf: &mut [u8]) -> Result<Fetched, CaptureError> {
        let (bytes, ts_ns) = match &mut self.src {
            Source::Memory {
                data,
                frames,
                pos,
                damage,
            } => match frames.get(*pos) {
                Some(f) => {
                    *pos += 1;
                    (&data[f.start..f.start + f.len], f.ts_ns)
                }
                None => {
                    return match damage.take() {
                        Some(e) => Err(e),
                        None => Ok(Fetched::End),
                    }
                }
            },
            Source::Stream(r) => match r.next_frame()? {
                Some(f) => (f.data, f.ts_ns),
                None => return Ok(Fetched::End),
            },
        };
        let len = bytes.len();
        if len > buf.len() {
            return Ok(Fetched::TooLong { len, ts_ns });
        }
        buf[..len].copy_from_slice(bytes);
        Ok(Fetched::Frame { len, ts_ns })
    }

    /// Back to the first frame.
    pub fn rewind(&mut self) -> Result<(), CaptureError> {
        match &mut self.src {
            Source::Memory { pos, .. } => *pos = 0,
            Source::Stream(r) => **r = CaptureReader::open(&self.path)?,
        }
        Ok(())
    }
}

/// What to send and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SendOptions {
    pub pace: Pace,
    /// Times through the capture; 0 = until the stop flag is set.
    pub loops: u64,
    /// Longest frame to offer (see [`max_frame_len`]); longer ones are counted as refused.
    pub max_frame_len: usize,
}

/// The longest frame an interface of this MTU takes: MTU + Ethernet header + one VLAN tag.
pub fn max_frame_len(mtu: u32) -> usize {
    (mtu as usize).saturating_add(ETH_HEADER + VLAN_TAG)
}

/// Opens `iface` (send-only AF_PACKET, no vnet header) and `capture`, and sends.
pub fn send_on_interface(
    capture: &Path,
    iface: &str,
    pace: Pace,
    loops: u64,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> Result<SendReport, Box<SendFailure>> {
    let info = netdev::interface_info(iface).map_err(|e| SendError::Open(e.into()))?;
    let mut dev = AfPacket::open(
        iface,
        &AfPacketOptions {
            promiscuous: false,
            vnet_hdr: false,
            send_only: true,
            ..AfPacketOptions::default()
        },
    )
    .map_err(SendError::Open)?;
    let mut source = CaptureSource::open(capture, IN_MEMORY_MAX).map_err(SendError::Capture)?;
    let opts = SendOptions {
        pace,
        loops,
        max_frame_len: max_frame_len(info.mtu),
    };
    send(&mut dev, &mut source, &opts, stop, progress)
}

/// Counters kept while sending.
#[derive(Default)]
struct Tally {
    taken: u64,
    bytes: u64,
    too_long: u64,
    skipped: u64,
    loops_done: u64,
}

/// Sends the frames of `source` on `dev` at `opts.pace`, `opts.loops` times, until done or
/// `stop` is set; `progress` holds the frames handed to the device so far (stored once per
/// batch, for a progress bar). See the module header for what is guaranteed.
pub fn send<D: Device + TxRefusals>(
    dev: &mut D,
    source: &mut CaptureSource,
    opts: &SendOptions,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> Result<SendReport, Box<SendFailure>> {
    // Sleeps wake within a few microseconds of their deadline instead of the default 50 us.
    crate::io::sys::set_timer_slack_ns(1);
    let buf_len = opts.max_frame_len.max(ETH_HEADER);
    let mut slots: Vec<Box<[u8]>> = (0..BATCH)
        .map(|_| vec![0u8; buf_len].into_boxed_slice())
        .collect();
    let mut lens = [0usize; BATCH];
    let mut next_buf = vec![0u8; buf_len].into_boxed_slice();
    let mut pacer = Pacer::new(opts.pace);
    let mut tally = Tally::default();
    let refused_before = dev.tx_refused();

    // The frame in `next_buf`: its length and departure.
    let mut next: Option<(usize, u64)> = None;
    // Frames sent (offered) in the current loop, to end `--loop 0` on a capture with none.
    let mut offered_this_loop = 0u64;
    let mut ended = false;
    let mut failure: Option<SendError> = None;
    let mut n = 0usize;
    let start = Instant::now();
    let mut last_taken_at = start;
    let now_ns = |start: Instant| clamp(start.elapsed().as_nanos());

    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if next.is_none() && !ended {
            // Fetch the next frame to offer, crossing loop boundaries.
            loop {
                match source.next_into(&mut next_buf) {
                    Ok(Fetched::Frame { len, .. }) if len < ETH_HEADER => tally.skipped += 1,
                    Ok(Fetched::Frame { len, ts_ns }) => {
                        next = Some((len, pacer.departure(len, ts_ns)));
                        offered_this_loop += 1;
                        break;
                    }
                    Ok(Fetched::TooLong { .. }) => tally.too_long += 1,
                    Ok(Fetched::End) => {
                        tally.loops_done += 1;
                        let last = opts.loops != 0 && tally.loops_done >= opts.loops;
                        if last || offered_this_loop == 0 {
                            ended = true;
                            break;
                        }
                        offered_this_loop = 0;
                        if let Err(e) = source.rewind() {
                            failure = Some(e.into());
                            ended = true;
                            break;
                        }
                        pacer.restart_capture();
                    }
                    Err(e) => {
                        failure = Some(e.into());
                        ended = true;
                        break;
                    }
                }
            }
        }
        if let Some((len, due)) = next {
            if n < BATCH && due <= now_ns(start) {
                std::mem::swap(&mut slots[n], &mut next_buf);
                lens[n] = len;
                n += 1;
                next = None;
                continue;
            }
        }
        if n > 0 {
            let flushed = flush(dev, &slots, &lens[..n], stop, &mut tally);
            progress.store(tally.taken, Ordering::Relaxed);
            if let Err(e) = flushed {
                failure = Some(e);
                break;
            }
            last_taken_at = Instant::now();
            n = 0;
            continue;
        }
        match next {
            None => break,
            Some((_, due)) => wait_until(start, due, stop),
        }
    }

    let refused_by_kernel = dev.tx_refused().saturating_sub(refused_before);
    let seconds = last_taken_at.duration_since(start).as_secs_f64();
    let frames_sent = tally.taken.saturating_sub(refused_by_kernel);
    let rate = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
    let report = SendReport {
        frames_sent,
        bytes_sent: tally.bytes,
        frames_refused: tally.too_long + refused_by_kernel,
        frames_skipped: tally.skipped,
        seconds,
        achieved_pps: rate(frames_sent as f64),
        achieved_mbps: rate(tally.bytes as f64 * 8.0) / 1e6,
        loops_done: tally.loops_done,
        stopped: stop.load(Ordering::Relaxed),
    };
    match failure {
        None => Ok(report),
        Some(error) => Err(Box::new(SendFailure {
            error,
            report,
            started: true,
        })),
    }
}

/// Offers the frames in `slots[..lens.len()]` until all are taken, the stop flag is set, or
/// the device takes nothing for [`STALL_LIMIT`].
fn flush<D: Device>(
    dev: &mut D,
    slots: &[Box<[u8]>],
    lens: &[usize],
    stop: &AtomicBool,
    tally: &mut Tally,
) -> Result<(), SendError> {
    let n = lens.len();
    let frames: [TxFrame<'_>; BATCH] = std::array::from_fn(|i| TxFrame {
        data: &slots[i][..lens.get(i).copied().unwrap_or(0)],
        vnet: VnetHdr::NONE,
    });
    let mut done = 0;
    let mut full_since: Option<Instant> = None;
    while done < n {
        let took = dev
            .send_batch(&frames[done..n])
            .map_err(|source| SendError::Send {
                iface: dev.name().to_string(),
                source,
            })?;
        let took = took.min(n - done);
        tally.taken += took as u64;
        tally.bytes += lens[done..done + took]
            .iter()
            .map(|&l| l as u64)
            .sum::<u64>();
        done += took;
        if took > 0 {
            full_since = None;
            continue;
        }
        // The device is full: give it a moment.
        let since = *full_since.get_or_insert_with(Instant::now);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if since.elapsed() >= STALL_LIMIT {
            return Err(SendError::Stalled {
                iface: dev.name().to_string(),
                after: STALL_LIMIT,
            });
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(())
}

/// Waits until `due` ns after `start`: sleeps while more than [`SPIN_BELOW_NS`] away, spins
/// the rest; returns early when `stop` is set.
fn wait_until(start: Instant, due: u64, stop: &AtomicBool) {
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let now = clamp(start.elapsed().as_nanos());
        if now >= due {
            return;
        }
        let left = due - now;
        if left > SPIN_BELOW_NS {
            std::thread::sleep(Duration::from_nanos(left - SPIN_BELOW_NS).min(MAX_SLEEP));
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::memory::memory_device;

    #[test]
    fn pps_schedule_is_exact_after_a_million_frames() {
        let pps = 1_234_567u64;
        let mut p = Pacer::new(Pace::Pps(pps));
        let mut last = 0;
        for k in 0..1_000_000u64 {
            let due = p.departure(100, 0);
            assert_eq!(
                u128::from(due),
                u128::from(k) * 1_000_000_000 / u128::from(pps)
            );
            assert!(due >= last);
            last = due;
        }
        // The 1e6-th frame (k = 999_999) leaves at floor(999_999e9 / 1_234_567).
        assert_eq!(last, 809_999_781);
        // The next one, k = 1e6: no drift from rounded intervals.
        assert_eq!(p.departure(100, 0), 810_000_591);
    }

    #[test]
    fn mbps_schedule_uses_cumulative_bytes() {
        // 2.5 Mbit/s; frames of varying length.
        let bps = parse_mbps("2.5").unwrap();
        assert_eq!(bps, 2_500_000);
        let mut p = Pacer::new(Pace::Mbps(bps));
        let mut bytes = 0u128;
        for k in 0..100_000u64 {
            let len = 60 + (k * 37 % 1455) as usize;
            let due = p.departure(len, 0);
            assert_eq!(u128::from(due), bytes * 8 * 1_000_000_000 / u128::from(bps));
            bytes += len as u128;
        }
        // 1000-byte frames at 8 Mbit/s: one per ms exactly.
        let mut p = Pacer::new(Pace::Mbps(8_000_000));
        let dues: Vec<u64> = (0..4).map(|_| p.departure(1000, 0)).collect();
        assert_eq!(dues, [0, 1_000_000, 2_000_000, 3_000_000]);
    }

    #[test]
    fn capture_timing_and_multiplier() {
        let t0 = 1_700_000_000_000_000_000u64;
        let ts = [t0, t0 + 1_000, t0 + 500, t0 + 3_000];
        let mut p = Pacer::new(Pace::Capture);
        let d: Vec<u64> = ts.iter().map(|&t| p.departure(64, t)).collect();
        // A timestamp going back leaves with the latest.
        assert_eq!(d, [0, 1_000, 1_000, 3_000]);
        p.restart_capture();
        let d: Vec<u64> = ts.iter().map(|&t| p.departure(64, t)).collect();
        assert_eq!(d, [3_000, 4_000, 4_000, 6_000]);

        let mut p = Pacer::new(Pace::Multiplier(2.0));
        let d: Vec<u64> = ts.iter().map(|&t| p.departure(64, t)).collect();
        assert_eq!(d, [0, 500, 500, 1_500]);

        let mut p = Pacer::new(Pace::TopSpeed);
        assert!(ts.iter().all(|&t| p.departure(1500, t) == 0));
    }

    #[test]
    fn rate_parsers() {
        assert_eq!(parse_mbps("10"), Ok(10_000_000));
        assert_eq!(parse_mbps("0.000001"), Ok(1));
        assert_eq!(parse_mbps(".5"), Ok(500_000));
        assert_eq!(parse_mbps("100000"), Ok(100_000_000_000));
        for bad in [
            "",
            ".",
            "0",
            "0.0",
            "-1",
            "1e3",
            "2.5.1",
            "0.0000001",
            "abc",
        ] {
            assert!(parse_mbps(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_pps("1000"), Ok(1000));
        assert!(parse_pps("0").is_err());
        assert!(parse_pps("1.5").is_err());
        assert_eq!(parse_multiplier("0.5"), Ok(0.5));
        for bad in ["0", "-2", "inf", "NaN", "x"] {
            assert!(parse_multiplier(bad).is_err(), "{bad:?}");
        }
    }

    fn capture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(name)
    }

    fn expected_frames(name: &str) -> Vec<Vec<u8>> {
        let mut r = CaptureReader::open(&capture(name)).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            v.push(f.data.to_vec());
        }
        v
    }

    #[test]
    fn memory_device_gets_every_frame_in_order_for_each_loop() {
        let want = expected_frames("mixed-services.pcap");
        for in_memory_max in [IN_MEMORY_MAX, 0] {
            let (mut dev, handle) = memory_device("mem0", 10_000);
            let mut src =
                CaptureSource::open(&capture("mixed-services.pcap"), in_memory_max).unwrap();
            assert_eq!(src.in_memory(), in_memory_max > 0);
            let opts = SendOptions {
                pace: Pace::TopSpeed,
                loops: 2,
                max_frame_len: 65_536,
            };
            let stop = AtomicBool::new(false);
            let report = send(&mut dev, &mut src, &opts, &stop, &AtomicU64::new(0)).unwrap();
            let got: Vec<Vec<u8>> = handle.take_sent().into_iter().map(|(f, _)| f).collect();
            assert_eq!(got.len(), 2 * want.len());
            assert_eq!(&got[..want.len()], &want[..]);
            assert_eq!(&got[want.len()..], &want[..]);
            assert_eq!(report.frames_sent, 2 * want.len() as u64);
            assert_eq!(report.loops_done, 2);
            let bytes: u64 = want.iter().map(|f| f.len() as u64).sum();
            assert_eq!(report.bytes_sent, 2 * bytes);
        }
    }

    #[test]
    fn too_long_frames_are_refused_and_counted() {
        let want = expected_frames("mixed-services.pcap");
        let limit = 200;
        let long = want.iter().filter(|f| f.len() > limit).count() as u64;
        assert!(long > 0);
        let (mut dev, handle) = memory_device("mem0", 10_000);
        let mut src = CaptureSource::open(&capture("mixed-services.pcap"), IN_MEMORY_MAX).unwrap();
        let opts = SendOptions {
            pace: Pace::TopSpeed,
            loops: 1,
            max_frame_len: limit,
        };
        let report = send(
            &mut dev,
            &mut src,
            &opts,
            &AtomicBool::new(false),
            &AtomicU64::new(0),
        )
        .unwrap();
        assert_eq!(report.frames_refused, long);
        assert_eq!(report.frames_sent, want.len() as u64 - long);
        assert_eq!(handle.take_sent().len() as u64, report.frames_sent);
    }

    #[test]
    fn damaged_capture_reports_frames_sent_before() {
        for in_memory_max in [IN_MEMORY_MAX, 0] {
            let (mut dev, handle) = memory_device("mem0", 10_000);
            let mut src = CaptureSource::open(&capture("truncated.pcap"), in_memory_max).unwrap();
            let opts = SendOptions {
                pace: Pace::TopSpeed,
                loops: 3,
                max_frame_len: 65_536,
            };
            let err = send(
                &mut dev,
                &mut src,
                &opts,
                &AtomicBool::new(false),
                &AtomicU64::new(0),
            )
            .unwrap_err();
            assert!(matches!(
                err.error,
                SendError::Capture(CaptureError::Damaged { .. })
            ));
            assert_eq!(err.report.frames_sent, handle.take_sent().len() as u64);
            assert!(
                err.to_string().contains("1 frame was sent before it"),
                "{err}"
            );
        }
    }

    #[test]
    fn stop_flag_ends_an_endless_loop() {
        let (mut dev, _handle) = memory_device("mem0", usize::MAX);
        let mut src = CaptureSource::open(&capture("sll2-ping.pcap"), IN_MEMORY_MAX).unwrap();
        let opts = SendOptions {
            pace: Pace::Pps(100_000),
            loops: 0,
            max_frame_len: 1518,
        };
        let stop = AtomicBool::new(false);
        let report = std::thread::scope(|s| {
            let h = s.spawn(|| send(&mut dev, &mut src, &opts, &stop, &AtomicU64::new(0)));
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap()
        })
        .unwrap();
        assert!(report.stopped);
        assert!(report.frames_sent > 100, "{report}");
        assert!(report.seconds < 1.0, "{report}");
    }
}
