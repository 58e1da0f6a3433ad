//! Raw frames across a lab: sent by a packet socket in the src namespace, received by one in
//! the dst namespace, each on a thread of its own (a thread enters a namespace for good).

use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir::io::af_packet::{AfPacket, AfPacketOptions};
use weir::io::{Device, RxMeta, TxFrame, VnetHdr, MAX_FRAME};
use weir::tools::lab::Lab;

/// A frame dst received, and when.
pub struct Arrived {
    pub at: Instant,
    pub data: Vec<u8>,
}

/// Run `send` with a send-only socket on src's interface while dst's interface is read
/// (promiscuous, from before the first frame is sent); keep the frames `keep` takes, until
/// `drain` after `send` returns (so late frames, or duplicates from a loop, are seen too;
/// never past 60 s). Returns what `send` returned and the frames kept, in arrival order.
pub fn cross<R: Send + 'static>(
    lab: &Lab,
    drain: Duration,
    keep: impl Fn(&[u8]) -> bool + Send + 'static,
    send: impl FnOnce(&mut AfPacket) -> R + Send + 'static,
) -> (R, Vec<Arrived>) {
    let in_ns = |ns: &str| PathBuf::from("/var/run/netns").join(ns);
    let (dst_path, src_path) = (in_ns(&lab.dst_ns), in_ns(&lab.src_ns));
    let (dst_if, src_if) = (lab.dst_if.clone(), lab.src_if.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || {
        weir::io::sys::netdev::enter_network_namespace(&dst_path).unwrap();
        let opts = AfPacketOptions {
            promiscuous: true,
            ..Default::default()
        };
        let mut rx = AfPacket::open(&dst_if, &opts).unwrap();
        ready_tx.send(()).unwrap();
        let mut bufs: Vec<Box<[u8]>> = (0..64)
            .map(|_| vec![0u8; MAX_FRAME].into_boxed_slice())
            .collect();
        let mut meta = vec![RxMeta::default(); 64];
        let mut got = Vec::new();
        // Bounded even if the sender never says it is done.
        let mut stop_at = Instant::now() + Duration::from_secs(60);
        while Instant::now() < stop_at {
            if done_rx.try_recv().is_ok() {
                stop_at = Instant::now() + drain;
            }
            let k = rx.recv_batch(&mut bufs, &mut meta).unwrap();
            let at = Instant::now();
            for (b, m) in bufs.iter().zip(&meta).take(k) {
                let f = &b[..m.len];
                if keep(f) {
                    got.push(Arrived {
                        at,
                        data: f.to_vec(),
                    });
                }
            }
            if k == 0 {
                rx.wait_readable(Duration::from_millis(5)).unwrap();
            }
        }
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let sender = std::thread::spawn(move || {
        weir::io::sys::netdev::enter_network_namespace(&src_path).unwrap();
        let opts = AfPacketOptions {
            send_only: true,
            ..Default::default()
        };
        let mut tx = AfPacket::open(&src_if, &opts).unwrap();
        send(&mut tx)
    });
    let sent = sender.join().unwrap();
    done_tx.send(()).unwrap();
    (sent, receiver.join().unwrap())
}

/// Send one frame, retrying for up to a second while the socket is full.
pub fn send_one(tx: &mut AfPacket, f: &[u8]) {
    let batch = [TxFrame {
        data: f,
        vnet: VnetHdr::NONE,
    }];
    let deadline = Instant::now() + Duration::from_secs(1);
    while tx.send_batch(&batch).unwrap() == 0 {
        assert!(Instant::now() < deadline, "could not send");
        std::thread::sleep(Duration::from_millis(1));
    }
}
