//! Counters: every frame accounted for exactly once.
//!
//! Per class, `received = forwarded + dropped + queued`, in frames and in bytes, at every instant
//! (between calls into the scheduler). Bytes are frame bytes as received; the wire bytes that
//! shaping charges (frame + per-frame overhead, all segments of a GSO frame) are kept apart.
//! Recording never allocates: the sojourn histogram is sized at construction and saturates.

use super::class_queue::QueueCounters;
use hdrhistogram::Histogram;

/// Why a frame was dropped. Every drop has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Larger than the class's byte limit: it could not fit even in the empty class (or, which
    /// the port's sizing rules out, no descriptor was left).
    QueueFull,
    /// Taken from the head of the class's fattest flow queue to make room for an arrival,
    /// when the class was at its packet or byte limit.
    Overflow,
    /// The AQM dropped it at the head of its flow queue: CoDel (the queue stood above target
    /// and the frame could not be marked instead) or BLUE (the flow kept overflowing).
    Aqm,
    /// Above the class's police rate.
    Policed,
    /// Unusable as a frame: shorter than an Ethernet header, or cut short by the receiving
    /// device because it was longer than its buffers.
    Malformed,
    /// Still queued when weir stopped and could not be sent in time.
    Shutdown,
    /// No free frame buffer of the needed size (the start-up pool was exhausted).
    NoBuffer,
    /// Released by the scheduler, but the transmitting device refused it (e.g. too large for
    /// the interface's MTU, or its queue stayed full past the retry budget).
    TxError,
    /// Queued in a class a reload removed, and its flow's class in the new policy had no room
    /// for it (docs/operations.md, Reload).
    Reload,
    /// Its budget was used up (`then: drop`), or it was beyond the ceil a used-up rule
    /// budget polices (crate::budget).
    Budget,
    /// Released by the scheduler while its port's link was down (set down, no carrier, or
    /// the interface gone): the live bridge could not send it.
    LinkDown,
}

impl DropReason {
    pub const COUNT: usize = 11;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::QueueFull,
        DropReason::Overflow,
        DropReason::Aqm,
        DropReason::Policed,
        DropReason::Malformed,
        DropReason::Shutdown,
        DropReason::NoBuffer,
        DropReason::TxError,
        DropReason::Reload,
        DropReason::Budget,
        DropReason::LinkDown,
    ];

    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Overflow => "overflow",
            DropReason::Aqm => "aqm",
            DropReason::Policed => "policed",
            DropReason::Malformed => "malformed",
            DropReason::Shutdown => "shutdown",
            DropReason::NoBuffer => "no_buffer",
            DropReason::TxError => "tx_error",
            DropReason::Reload => "reload",
            DropReason::Budget => "budget",
            DropReason::LinkDown => "link_down",
        }
    }
}

/// Highest sojourn time the histogram resolves (100 s); longer ones are recorded as this.
pub const SOJOURN_MAX_NS: u64 = 100_000_000_000;

/// Counters of one class on one egress port.
#[derive(Clone, Debug)]
pub struct ClassStats {
    pub received_frames: u64,
    pub received_bytes: u64,
    pub forwarded_frames: u64,
    pub forwarded_bytes: u64,
    /// Wire bytes of forwarded frames (what the token buckets were charged).
    pub forwarded_wire_bytes: u64,
    pub dropped_frames: [u64; DropReason::COUNT],
    pub dropped_bytes: [u64; DropReason::COUNT],
    pub queued_frames: u64,
    pub queued_bytes: u64,
    pub high_water_frames: u64,
    pub high_water_bytes: u64,
    /// Frames sent while borrowing above `rate` (HTB's "borrows"), and their frame bytes.
    pub borrowed_frames: u64,
    pub borrowed_bytes: u64,
    /// Enqueue-to-departure time of forwarded frames, in nanoseconds, 2 significant digits,
    /// and its exact sum (for the metrics' histogram).
    pub sojourn_ns: Histogram<u64>,
    pub sojourn_sum_ns: u64,
    /// ECN marks and hash collisions, as the class queue counts them.
    pub queue: QueueCounters,
}

impl Default for ClassStats {
    fn default() -> Self {
        ClassStats {
            received_frames: 0,
            received_bytes: 0,
            forwarded_frames: 0,
            forwarded_bytes: 0,
            forwarded_wire_bytes: 0,
            dropped_frames: [0; DropReason::COUNT],
            dropped_bytes: [0; DropReason::COUNT],
            queued_frames: 0,
            queued_bytes: 0,
            high_water_frames: 0,
            high_water_bytes: 0,
            borrowed_frames: 0,
            borrowed_bytes: 0,
            // Bounds are constants that hdrhistogram accepts: this cannot fail.
            sojourn_ns: Histogram::new_with_bounds(1, SOJOURN_MAX_NS, 2)
                .expect("constant histogram bounds are valid"),
            sojourn_sum_ns: 0,
            queue: QueueCounters::default(),
        }
    }
}

impl ClassStats {
    pub fn record_received(&mut self, bytes: u32) {
        self.received_frames += 1;
        self.received_bytes += u64::from(bytes);
    }

    pub fn record_queued(&mut self, bytes: u32) {
        self.queued_frames += 1;
        self.queued_bytes += u64::from(bytes);
        self.high_water_frames = self.high_water_frames.max(self.queued_frames);
        self.high_water_bytes = self.high_water_bytes.max(self.queued_bytes);
    }

    pub fn record_unqueued(&mut self, bytes: u32) {
        self.queued_frames -= 1;
        self.queued_bytes -= u64::from(bytes);
    }

    pub fn record_dropped(&mut self, reason: DropReason, bytes: u32) {
        self.dropped_frames[reason as usize] += 1;
        self.dropped_bytes[reason as usize] += u64::from(bytes);
    }

    pub fn record_forwarded(&mut self, bytes: u32, wire_bytes: u32, sojourn_ns: u64) {
        self.forwarded_frames += 1;
        self.forwarded_bytes += u64::from(bytes);
        self.forwarded_wire_bytes += u64::from(wire_bytes);
        self.sojourn_ns
            .saturating_record(sojourn_ns.clamp(1, SOJOURN_MAX_NS));
        self.sojourn_sum_ns = self.sojourn_sum_ns.saturating_add(sojourn_ns);
    }

    /// A frame counted as forwarded never made it out: move it to dropped (`TxError` or
    /// `LinkDown`). Its sojourn stays recorded (it did leave the queue).
    pub fn record_tx_failure(&mut self, reason: DropReason, bytes: u32, wire_bytes: u32) {
        self.forwarded_frames -= 1;
        self.forwarded_bytes -= u64::from(bytes);
        self.forwarded_wire_bytes -= u64::from(wire_bytes);
        self.record_dropped(reason, bytes);
    }

    /// A frame counted as received here was moved to another class (a reload): it is counted
    /// there instead, as received, so that each class's balance holds.
    pub fn record_moved_out(&mut self, bytes: u32) {
        self.record_unqueued(bytes);
        self.received_frames -= 1;
        self.received_bytes -= u64::from(bytes);
    }

    /// Add `other`'s counts to these (classes removed by reloads, summed into one row).
    pub fn absorb(&mut self, other: &ClassStats) {
        self.received_frames += other.received_frames;
        self.received_bytes += other.received_bytes;
        self.forwarded_frames += other.forwarded_frames;
        self.forwarded_bytes += other.forwarded_bytes;
        self.forwarded_wire_bytes += other.forwarded_wire_bytes;
        for r in 0..DropReason::COUNT {
            self.dropped_frames[r] += other.dropped_frames[r];
            self.dropped_bytes[r] += other.dropped_bytes[r];
        }
        self.queued_frames += other.queued_frames;
        self.queued_bytes += other.queued_bytes;
        self.high_water_frames = self.high_water_frames.max(other.high_water_frames);
        self.high_water_bytes = self.high_water_bytes.max(other.high_water_bytes);
        self.borrowed_frames += other.borrowed_frames;
        self.borrowed_bytes += other.borrowed_bytes;
        let _ = self.sojourn_ns.add(&other.sojourn_ns);
        self.sojourn_sum_ns = self.sojourn_sum_ns.saturating_add(other.sojourn_sum_ns);
        self.queue.flow_collisions += other.queue.flow_collisions;
        self.queue.host_collisions += other.queue.host_collisions;
        self.queue.ecn_marked += other.queue.ecn_marked;
    }

    /// Become a copy of `other` without allocating (the histograms have the same shape: both
    /// are made by `default`), for publishing counters while forwarding.
    pub fn copy_from(&mut self, other: &ClassStats) {
        self.received_frames = other.received_frames;
        self.received_bytes = other.received_bytes;
        self.forwarded_frames = other.forwarded_frames;
        self.forwarded_bytes = other.forwarded_bytes;
        self.forwarded_wire_bytes = other.forwarded_wire_bytes;
        self.dropped_frames = other.dropped_frames;
        self.dropped_bytes = other.dropped_bytes;
        self.queued_frames = other.queued_frames;
        self.queued_bytes = other.queued_bytes;
        self.high_water_frames = other.high_water_frames;
        self.high_water_bytes = other.high_water_bytes;
        self.borrowed_frames = other.borrowed_frames;
        self.borrowed_bytes = other.borrowed_bytes;
        self.sojourn_ns.reset();
        // Same bounds and precision, and an empty target: a plain copy of the counts.
        let _ = self.sojourn_ns.add(&other.sojourn_ns);
        self.sojourn_sum_ns = other.sojourn_sum_ns;
        self.queue = other.queue;
    }

    pub fn dropped_total_frames(&self) -> u64 {
        self.dropped_frames.iter().sum()
    }

    pub fn dropped_total_bytes(&self) -> u64 {
        self.dropped_bytes.iter().sum()
    }

    /// `received = forwarded + dropped + queued`, in frames and bytes.
    pub fn is_conserved(&self) -> bool {
        self.received_frames
            == self.forwarded_frames + self.dropped_total_frames() + self.queued_frames
            && self.received_bytes
                == self.forwarded_bytes + self.dropped_total_bytes() + self.queued_bytes
    }

    /// Sojourn quantile in nanoseconds (0 when nothing was forwarded).
    pub fn sojourn_quantile_ns(&self, q: f64) -> u64 {
        if self.sojourn_ns.is_empty() {
            0
        } else {
            self.sojourn_ns.value_at_quantile(q)
        }
    }

    pub fn sojourn_max_ns(&self) -> u64 {
        if self.sojourn_ns.is_empty() {
            0
        } else {
            self.sojourn_ns.max()
        }
    }
}
