//! An in-memory device for tests: frames injected by a [`MemoryHandle`] are received, frames
//! sent are collected for the handle to inspect. Bounded both ways (`capacity` frames each);
//! beyond it, injection is refused and sends are not taken (like a full socket).

use super::{Device, RxMeta, TxFrame, VnetHdr};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Queues {
    inbound: VecDeque<(Vec<u8>, VnetHdr)>,
    outbound: VecDeque<(Vec<u8>, VnetHdr)>,
}

struct Shared {
    queues: Mutex<Queues>,
    readable: Condvar,
    capacity: usize,
}

/// The device side, given to the runtime.
pub struct MemoryDevice {
    name: String,
    shared: Arc<Shared>,
    offloads: bool,
}

/// The test side.
#[derive(Clone)]
pub struct MemoryHandle {
    shared: Arc<Shared>,
}

pub fn memory_device(name: &str, capacity: usize) -> (MemoryDevice, MemoryHandle) {
    let shared = Arc::new(Shared {
        queues: Mutex::new(Queues::default()),
        readable: Condvar::new(),
        capacity,
    });
    (
        MemoryDevice {
            name: name.to_string(),
            shared: Arc::clone(&shared),
            offloads: true,
        },
        MemoryHandle { shared },
    )
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Queues> {
    // A panicking test thread poisons the lock; the queues themselves stay consistent.
    s.queues.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryDevice {
    /// The same device, saying its frames come without offload state (as pnet's do): the
    /// vnet headers injected with them are not passed on.
    pub fn without_offloads(mut self) -> MemoryDevice {
        self.offloads = false;
        self
    }
}

impl MemoryHandle {
    /// Queue a frame for the device to receive; false when full.
    pub fn inject(&self, frame: &[u8], vnet: VnetHdr) -> bool {
        let mut q = lock(&self.shared);
        if q.inbound.len() >= self.shared.capacity {
            return false;
        }
        q.inbound.push_back((frame.to_vec(), vnet));
        self.shared.readable.notify_all();
        true
    }

    /// Take everything the device has sent so far.
    pub fn take_sent(&self) -> Vec<(Vec<u8>, VnetHdr)> {
        lock(&self.shared).outbound.drain(..).collect()
    }

    pub fn pending_inbound(&self) -> usize {
        lock(&self.shared).inbound.len()
    }
}

impl Device for MemoryDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [Box<[u8]>],
        meta: &mut [RxMeta],
    ) -> std::io::Result<usize> {
        let mut q = lock(&self.shared);
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let Some((frame, vnet)) = q.inbound.pop_front() else {
                break;
            };
            let len = frame.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&frame[..len]);
            meta[n] = RxMeta {
                len,
                truncated: len < frame.len(),
                vnet: if self.offloads { vnet } else { VnetHdr::NONE },
            };
            n += 1;
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> std::io::Result<usize> {
        let mut q = lock(&self.shared);
        let room = self.shared.capacity.saturating_sub(q.outbound.len());
        let n = frames.len().min(room);
        for f in &frames[..n] {
            q.outbound.push_back((f.data.to_vec(), f.vnet));
        }
        Ok(n)
    }

    fn wait_readable(&mut self, timeout: Duration) -> std::io::Result<bool> {
        let q = lock(&self.shared);
        let (q, _) = self
            .shared
            .readable
            .wait_timeout_while(q, timeout, |q| q.inbound.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        Ok(!q.inbound.is_empty())
    }

    fn offloads(&self) -> bool {
        self.offloads
    }
}
