//! AF_PACKET device: one raw packet socket bound to one interface, batched with recvmmsg and
//! sendmmsg, or receiving from a memory-mapped ring ([`RxMode::Ring`], [`RxMode::RingV2`],
//! `af_packet_ring.rs`). A ring the kernel will not set up ([`OpenError::Ring`]) can give way to
//! recvmmsg ([`AfPacket::open_or_fall_back`]).
//!
//! Guarantees (every receive mode):
//! - **Only this interface.** The socket is created with protocol 0, which hooks it to no
//!   traffic at all; `bind` then sets the interface and `ETH_P_ALL` together. No frame of another
//!   interface is ever queued, so there is nothing to drain.
//! - **No loops.** `PACKET_IGNORE_OUTGOING` (Linux 4.20+) is required: the socket never sees
//!   frames sent on the interface, by itself, by another socket or by the host. Opening fails if
//!   the kernel refuses it.
//! - **Offloads intact** with [`AfPacketOptions::vnet_hdr`]: every frame travels with its
//!   `virtio_net_hdr` (GSO super-frames up to [`MAX_FRAME`], partial checksums). The header is
//!   scattered into / gathered from a separate 10-byte array, so frame bytes are never copied
//!   by us.
//! - **VLAN tags kept.** The kernel's receive path takes the 802.1Q tag out of every frame
//!   before packet sockets see it (on veth too) and reports it beside the frame
//!   (`PACKET_AUXDATA`, or the ring's frame header); it is put back in front of the EtherType,
//!   so frames leave as they came.
//!   Only tagged frames pay for it (a 4-byte shift of the frame in the buffer).
//! - **No silent truncation.** Frames longer than the caller's buffer are reported with
//!   [`RxMeta::truncated`] (the kernel gives the real length when asked with `MSG_TRUNC`; a ring
//!   frame header holds both the real and the captured length).
//! - **Promiscuous mode is undone by the kernel.** It is a `PACKET_MR_PROMISC` membership of
//!   this socket, a reference count that the kernel drops when the socket closes, whether weir
//!   exits cleanly, panics or is killed.
//! - **No allocation per call**: the mmsghdr, iovec and header arrays are allocated at open
//!   ([`BATCH`] entries); their pointers are rewritten at each call from the current buffers.
//!   The receive ring is mapped at open and unmapped on drop.
//! - **Kernel drops are counted, off the hot path.** A frame that finds the receive ring (or, with
//!   recvmmsg, the socket buffer) full is dropped by the kernel before weir can take it; the
//!   kernel counts it per socket (`PACKET_STATISTICS`), and [`AfPacket::kernel_rx_stats`] reads
//!   that counter, one `getsockopt` per call, never from `recv_batch`. The kernel resets its
//!   counters on every read, so the socket adds each read to totals of its own.
//!
//! Transmit: a frame the kernel refuses on its own (too long for the MTU, shorter than an
//! Ethernet header, an invalid vnet header: `EMSGSIZE` or `EINVAL`) is counted as taken, so one
//! bad frame cannot stall the queue behind it, and is counted in [`AfPacket::tx_refused`].
//! A full device (`EAGAIN`, `ENOBUFS`) ends the batch early; other errors are returned.
//!
//! Thread contract: one thread uses an `AfPacket` at a time (`&mut self`); it may move between
//! threads (`Send`).

use super::sys::netdev::{self, NetdevError};
use super::{Device, RxMeta, TxFrame, VnetHdr, BATCH, MAX_FRAME};
use crate::wire::vnet::VNET_HDR_LEN;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

// From <linux/if_packet.h>; spelled out so the build does not depend on which libc version
// exports them.
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_FANOUT_HASH: libc::c_int = 0;
const PACKET_FANOUT_FLAG_DEFRAG: libc::c_int = 0x8000;
/// A fanout group has one hook for all its sockets: PACKET_IGNORE_OUTGOING on each socket does
/// not reach it, the group needs this flag (Linux 5.4+) or it hands frames the bridge sends
/// back to the bridge.
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: libc::c_int = 0x4000;
/// With id 0: the kernel picks an id no group of this network namespace has (Linux 4.3+).
const PACKET_FANOUT_FLAG_UNIQUEID: libc::c_int = 0x2000;

const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const ETH_P_8021Q: u16 = 0x8100;
/// Bytes of an 802.1Q tag.
const VLAN_TAG_LEN: usize = 4;
/// Offset of the tag in an Ethernet frame (after both MAC addresses).
const VLAN_TAG_AT: usize = 12;

/// `struct tpacket_auxdata` from <linux/if_packet.h>.
#[repr(C)]
#[derive(Clone, Copy)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// Room for one control message holding a `tpacket_auxdata` (CMSG_SPACE(20) = 40 on 64-bit),
/// aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct AuxBuf([u8; 64]);

/// `struct tpacket_stats` from <linux/if_packet.h>: what `PACKET_STATISTICS` returns for a
/// socket without a ring or with a TPACKET_V1/V2 ring.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

/// `struct tpacket_stats_v3` from <linux/if_packet.h>: what `PACKET_STATISTICS` returns for a
/// socket with a TPACKET_V3 ring.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStatsV3 {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}

/// What the kernel counted on a socket's receive path since the socket was opened, from
/// `PACKET_STATISTICS` (`net/packet/af_packet.c`, 6.x): every frame the socket's hook accepts
/// is either put in the ring or queue (`tp_packets`) or dropped there (`tp_drops`), and a read
/// returns both and resets both. Frames the kernel drops earlier (a veth backlog over
/// `netdev_max_backlog`, a NIC's own ring) are not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelRxStats {
    /// Frames that reached the socket: taken into its ring or receive queue, or dropped there
    /// (the kernel's `tp_packets` already includes `tp_drops`).
    pub arrived: u64,
    /// Frames dropped because the ring or the socket's receive buffer was full (`tp_drops`;
    /// also the rare frame the kernel could not copy: out of memory, a vnet header it could
    /// not write). weir never saw them.
    pub dropped: u64,
    /// TPACKET_V3 only: how often the ring froze (every block waiting for weir;
    /// `tp_freeze_q_cnt`). 0 in the other modes.
    pub ring_freezes: u64,
}

/// `struct packet_mreq` from <linux/if_packet.h>.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [libc::c_uchar; 8],
}

/// How a receiving socket gets its frames from the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxMode {
    /// `recvmmsg`: one system call per batch of up to [`BATCH`] frames; the kernel queues each
    /// frame as a socket buffer and copies it out in that call.
    #[default]
    Mmsg,
    /// `PACKET_RX_RING` with TPACKET_V3: the kernel copies each frame into a memory-mapped ring
    /// of blocks as it arrives; a batch is read from retired blocks with no system call, and
    /// `poll` is needed only when the ring is empty. A block retires when full or
    /// [`RX_RING_RETIRE_MS`] after it was opened, which bounds the added delay. The ring takes
    /// [`RX_RING_BYTES`] of kernel memory per socket.
    Ring,
    /// `PACKET_RX_RING` with TPACKET_V2: a ring of [`RX_SLOTS`] fixed slots of [`RX_SLOT`]
    /// bytes (each holds the largest frame), each with its own status word, so a frame is
    /// readable as soon as the kernel has written it: no retire timer, no added delay. No system
    /// call per batch either. The ring takes [`RX_SLOT_RING_BYTES`] (16 MiB) of kernel memory
    /// per socket.
    RingV2,
}

pub use ring::{
    RX_RING_BLOCK, RX_RING_BLOCKS, RX_RING_BYTES, RX_RING_RETIRE_MS, RX_SLOT, RX_SLOTS,
    RX_SLOT_RING_BYTES,
};

/// The shapes of both rings (tests use small ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingShapes {
    pub v3: ring::RingGeometry,
    pub v2: ring::SlotGeometry,
}

impl RingShapes {
    pub const DEFAULT: RingShapes = RingShapes {
        v3: ring::RingGeometry::DEFAULT,
        v2: ring::SlotGeometry::DEFAULT,
    };
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Receive frames addressed to other hosts too (needed on a bridge port). Undone by the
    /// kernel when the socket closes.
    pub promiscuous: bool,
    /// Frames carry a `virtio_net_hdr` (`PACKET_VNET_HDR`): GSO super-frames and partial
    /// checksums pass through intact. Use it on both ports or on neither.
    pub vnet_hdr: bool,
    /// Only send: bind with protocol 0 so the kernel delivers no frame to this socket (a
    /// transmit socket would otherwise get a copy of all the interface's traffic, then drop it).
    pub send_only: bool,
    /// How frames are received (ignored with `send_only`).
    pub rx: RxMode,
    /// Join `PACKET_FANOUT` group `id` (one id space per network namespace) by flow hash: the
    /// kernel gives each frame to one socket of the group, every frame of a flow (both
    /// directions of it hash alike) to the same one, and reassembles IP fragments first so they
    /// follow their flow; frames sent on the interface are not received (as with
    /// `PACKET_IGNORE_OUTGOING`). For several workers on one port (`--workers N`). `None`:
    /// this socket gets every frame of the interface.
    pub fanout: Option<Fanout>,
    /// A classic BPF program the kernel runs on each frame before this socket gets it
    /// (attached before bind, so no frame arrives unfiltered): the express lane's and the
    /// bulk lane's filters (crate::classify::rule::bpf). `None`: every frame.
    pub filter: Option<std::sync::Arc<[crate::classify::rule::bpf::BpfInsn]>>,
}

/// The `PACKET_FANOUT` group a receiving socket joins ([`AfPacketOptions::fanout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// A new group, with an id the kernel picks among those unused in the network namespace
    /// (so two weirs never join each other's group); [`AfPacket::fanout_group`] tells it to
    /// the sockets that join next.
    New,
    /// The group with this id.
    Join(u16),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Netdev(#[from] NetdevError),
    #[error("interface {name} is down: ip link set {name} up")]
    Down { name: String },
    #[error(
        "{op} on {name}: permission denied: weir needs CAP_NET_RAW (and CAP_NET_ADMIN for \
         promiscuous mode); run as root or grant: setcap cap_net_raw,cap_net_admin+ep $(which weir)"
    )]
    Permission { name: String, op: &'static str },
    #[error("{op} on {name} failed: {source}")]
    Kernel {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The receive ring could not be set up (`op` names the step: the ring version, the
    /// ring request, its mapping); the socket was fine up to there. Typically the kernel could
    /// not find the ring's memory (`ENOMEM`), or refused its geometry (`EINVAL`).
    /// [`AfPacket::open_or_fall_back`] can receive with recvmmsg instead.
    #[error("{op} on {name} failed: {source}")]
    Ring {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What [`AfPacket::open_or_fall_back`] does when the receive ring asked for cannot be set up
/// ([`OpenError::Ring`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfRingFails {
    /// Return the error (the ring was asked for explicitly).
    Error,
    /// Open the socket again with [`RxMode::Mmsg`] and say why ([`RingFallback`]).
    UseMmsg,
}

/// A receive ring that could not be set up, replaced by recvmmsg. Its `Display` is the warning
/// to give: the interface, the step that failed and the kernel's error.
#[derive(Debug)]
pub struct RingFallback {
    /// The mode asked for ([`RxMode::Ring`] or [`RxMode::RingV2`]).
    pub asked: RxMode,
    /// The interface.
    pub name: String,
    /// The step of the ring's set-up that failed, as in [`OpenError::Ring`].
    pub op: &'static str,
    pub source: io::Error,
}

impl std::fmt::Display for RingFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} failed ({}); receiving with recvmmsg instead",
            self.name, self.op, self.source
        )
    }
}

/// A socket opened by [`AfPacket::open_or_fall_back`]. It receives as asked, or with
/// [`RxMode::Mmsg`] when `fallback` says why not ([`AfPacket::rx_mode`] tells either way).
pub struct Opened {
    pub device: AfPacket,
    /// Set when the ring asked for could not be set up and `device` receives with recvmmsg
    /// instead; `None` when it receives as asked.
    pub fallback: Option<RingFallback>,
}

/// The per-direction system-call arrays, allocated once at open.
struct MsgArrays {
    msgs: Box<[libc::mmsghdr]>,
    /// Two per message: the vnet header, then the frame.
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[[u8; VNET_HDR_LEN]]>,
    /// Control buffers for PACKET_AUXDATA (receive only; empty for transmit).
    aux: Box<[AuxBuf]>,
}

// SAFETY: the raw pointers inside `msgs` and `iovs` are scratch values: they are rewritten from
// the buffers of the current call (and from `iovs` / `hdrs`, which this struct owns) before
// every system call and never dereferenced by Rust code. Between calls they may dangle, but
// nothing reads them, so moving the arrays to another thread shares nothing.
unsafe impl Send for MsgArrays {}

impl MsgArrays {
    fn new(with_aux: bool) -> MsgArrays {
        // SAFETY: mmsghdr and iovec are plain C structs (integers and pointers); all-zero
        // (null pointers, zero lengths) is a valid value of each.
        let msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let iov: libc::iovec = unsafe { std::mem::zeroed() };
        MsgArrays {
            msgs: vec![msg; BATCH].into_boxed_slice(),
            iovs: vec![iov; 2 * BATCH].into_boxed_slice(),
            hdrs: vec![[0u8; VNET_HDR_LEN]; BATCH].into_boxed_slice(),
            aux: vec![AuxBuf([0; 64]); if with_aux { BATCH } else { 0 }].into_boxed_slice(),
        }
    }

    /// Point message `i` at `data` (and at header `i` first when `vnet`).
    fn set(&mut self, i: usize, vnet: bool, data: *mut u8, len: usize) {
        let iov = &mut self.iovs[2 * i..2 * i + 2];
        let count = if vnet {
            iov[0] = libc::iovec {
                iov_base: self.hdrs[i].as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            iov[1] = libc::iovec {
                iov_base: data.cast(),
                iov_len: len,
            };
            2
        } else {
            iov[0] = libc::iovec {
                iov_base: data.cast(),
                iov_len: len,
            };
            1
        };
        let m = &mut self.msgs[i];
        m.msg_hdr.msg_name = std::ptr::null_mut();
        m.msg_hdr.msg_namelen = 0;
        m.msg_hdr.msg_iov = iov.as_mut_ptr();
        m.msg_hdr.msg_iovlen = count as _;
        match self.aux.get_mut(i) {
            Some(aux) => {
                m.msg_hdr.msg_control = aux.0.as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = aux.0.len() as _;
            }
            None => {
                m.msg_hdr.msg_control = std::ptr::null_mut();
                m.msg_hdr.msg_controllen = 0;
            }
        }
        m.msg_hdr.msg_flags = 0;
        m.msg_len = 0;
    }
}

/// Where received frames come from.
enum RxPath {
    Mmsg(MsgArrays),
    Ring(ring::RxRing),
    RingV2(ring::SlotRing),
}

/// A packet socket bound to one interface. Dropping it unmaps its receive ring (if any), then
/// closes the socket (`OwnedFd`), which also ends its promiscuous membership.
pub struct AfPacket {
    // Declared before `fd`: fields drop in order, so the ring is unmapped before the close.
    rx: RxPath,
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    vnet_hdr: bool,
    tx: MsgArrays,
    tx_refused: u64,
    /// The kernel's receive counters, summed over every read (it resets them on each).
    rx_stats: KernelRxStats,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl AfPacket {
    /// Open a packet socket on `ifname` (which must exist and be up).
    pub fn open(ifname: &str, opts: &AfPacketOptions) -> Result<AfPacket, OpenError> {
        AfPacket::open_with(ifname, opts, RingShapes::DEFAULT)
    }

    /// [`AfPacket::open`], and when the receive ring asked for cannot be set up
    /// ([`OpenError::Ring`]: kernel memory, a refused geometry) and `if_ring_fails` allows it,
    /// a socket that receives with recvmmsg instead, with the reason beside it. The failed
    /// socket is closed first (a ring requested but not mapped would still take every frame).
    /// Every other error (no such interface, interface down, permission) is returned as it is,
    /// with or without falling back.
    pub fn open_or_fall_back(
        ifname: &str,
        opts: &AfPacketOptions,
        if_ring_fails: IfRingFails,
    ) -> Result<Opened, OpenError> {
        AfPacket::open_or_fall_back_with(ifname, opts, RingShapes::DEFAULT, if_ring_fails)
    }

    /// [`AfPacket::open_or_fall_back`] with chosen ring shapes (tests use impossible ones).
    pub(crate) fn open_or_fall_back_with(
        ifname: &str,
        opts: &AfPacketOptions,
        shapes: RingShapes,
        if_ring_fails: IfRingFails,
    ) -> Result<Opened, OpenError> {
        match (AfPacket::open_with(ifname, opts, shapes), if_ring_fails) {
            (Err(OpenError::Ring { name, op, source }), IfRingFails::UseMmsg) => {
                let mmsg = AfPacketOptions {
                    rx: RxMode::Mmsg,
                    ..opts.clone()
                };
                Ok(Opened {
                    device: AfPacket::open_with(ifname, &mmsg, shapes)?,
                    fallback: Some(RingFallback {
                        asked: opts.rx,
                        name,
                        op,
                        source,
                    }),
                })
            }
            (opened, _) => opened.map(|device| Opened {
                device,
                fallback: None,
            }),
        }
    }

    /// [`AfPacket::open`] with chosen ring shapes (tests use small blocks and slots).
    pub(crate) fn open_with(
        ifname: &str,
        opts: &AfPacketOptions,
        shapes: RingShapes,
    ) -> Result<AfPacket, OpenError> {
        let info = netdev::interface_info(ifname)?;
        if !info.up {
            return Err(OpenError::Down {
                name: info.name.clone(),
            });
        }
        let name = info.name.clone();
        let kernel = |op: &'static str, source: io::Error| match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => OpenError::Permission {
                name: name.clone(),
                op,
            },
            _ => OpenError::Kernel {
                name: name.clone(),
                op,
                source,
            },
        };
        // A failed step of the ring's set-up: its own variant, so that a caller can tell it
        // from a socket that cannot be opened at all (permission errors stay those).
        let ring_setup = |(op, source): (&'static str, io::Error)| match kernel(op, source) {
            OpenError::Kernel { name, op, source } => OpenError::Ring { name, op, source },
            other => other,
        };

        // Protocol 0: the socket receives nothing until bind names the interface.
        // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(kernel("socket(AF_PACKET)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor (checked non-negative) owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if let (Some(prog), false) = (&opts.filter, opts.send_only) {
            attach_filter(&fd, prog).map_err(|e| kernel("setsockopt SO_ATTACH_FILTER", e))?;
        }

        set_int_opt(&fd, PACKET_IGNORE_OUTGOING, 1).map_err(|e| {
            kernel(
                "setsockopt PACKET_IGNORE_OUTGOING (needs Linux 4.20 or later)",
                e,
            )
        })?;
        let rx_mode = if opts.send_only {
            RxMode::Mmsg
        } else {
            opts.rx
        };
        if rx_mode == RxMode::Mmsg {
            set_int_opt(&fd, PACKET_AUXDATA, 1)
                .map_err(|e| kernel("setsockopt PACKET_AUXDATA", e))?;
        }
        // Before the ring: the kernel refuses PACKET_VNET_HDR on a socket that has one.
        if opts.vnet_hdr {
            set_int_opt(&fd, PACKET_VNET_HDR, 1)
                .map_err(|e| kernel("setsockopt PACKET_VNET_HDR", e))?;
        }
        // Before bind: from the moment the socket is hooked to the interface, frames go to
        // the ring, none to the ordinary receive queue.
        let rx = match rx_mode {
            RxMode::Mmsg => RxPath::Mmsg(MsgArrays::new(true)),
            RxMode::Ring => RxPath::Ring(ring::RxRing::new(&fd, shapes.v3).map_err(ring_setup)?),
            RxMode::RingV2 => {
                RxPath::RingV2(ring::SlotRing::new(&fd, shapes.v2).map_err(ring_setup)?)
            }
        };

        // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = if opts.send_only {
            0
        } else {
            (libc::ETH_P_ALL as u16).to_be()
        };
        sll.sll_ifindex = info.index as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll that outlives the call and the length passed is
        // its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENETDOWN) => OpenError::Down { name: name.clone() },
                Some(libc::ENODEV) => OpenError::Netdev(NetdevError::NoSuchInterface {
                    name: name.clone(),
                    known: netdev::list_interfaces(),
                }),
                _ => kernel("bind", e),
            });
        }
        // After bind: a fanout group takes sockets that are bound and running.
        if let (Some(group), false) = (opts.fanout, opts.send_only) {
            let (id, unique) = match group {
                Fanout::New => (0, PACKET_FANOUT_FLAG_UNIQUEID),
                Fanout::Join(id) => (id, 0),
            };
            let flags = PACKET_FANOUT_HASH
                | PACKET_FANOUT_FLAG_DEFRAG
                | PACKET_FANOUT_FLAG_IGNORE_OUTGOING
                | unique;
            set_int_opt(&fd, PACKET_FANOUT, libc::c_int::from(id) | flags << 16).map_err(|e| {
                kernel(
                    "setsockopt PACKET_FANOUT (hash, ignoring outgoing frames: Linux 5.4+)",
                    e,
                )
            })?;
        }

        if opts.promiscuous {
            let mreq = PacketMreq {
                mr_ifindex: info.index as libc::c_int,
                mr_type: PACKET_MR_PROMISC,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            // SAFETY: `mreq` is a repr(C) packet_mreq that outlives the call; the length is
            // its size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_PACKET,
                    PACKET_ADD_MEMBERSHIP,
                    (&mreq as *const PacketMreq).cast(),
                    std::mem::size_of::<PacketMreq>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(kernel(
                    "setsockopt PACKET_ADD_MEMBERSHIP (promiscuous)",
                    io::Error::last_os_error(),
                ));
            }
        }

        Ok(AfPacket {
            rx,
            fd,
            name: info.name,
            ifindex: info.index,
            vnet_hdr: opts.vnet_hdr,
            tx: MsgArrays::new(false),
            tx_refused: 0,
            rx_stats: KernelRxStats::default(),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// How this socket receives.
    pub fn rx_mode(&self) -> RxMode {
        match self.rx {
            RxPath::Mmsg(_) => RxMode::Mmsg,
            RxPath::Ring(_) => RxMode::Ring,
            RxPath::RingV2(_) => RxMode::RingV2,
        }
    }

    /// Frames the kernel refused outright (too long for the MTU, too short, bad vnet header).
    /// [`Device::send_batch`] counts them as taken.
    pub fn tx_refused(&self) -> u64 {
        self.tx_refused
    }

    /// The kernel's receive counters of this socket since it was opened: reads them now (one
    /// `getsockopt(PACKET_STATISTICS)`, which also resets them in the kernel) and adds them to
    /// what earlier reads returned. A system call: call it every so often (weir's runtime: at
    /// most once a second while frames arrive, and when it stops receiving), not per batch.
    ///
    /// The kernel's counters are 32 bits wide, so reads must come before 2^32 drops pile up
    /// (more than an hour at a million drops a second). A send-only socket counts nothing.
    pub fn kernel_rx_stats(&mut self) -> io::Result<KernelRxStats> {
        let (arrived, dropped, freezes) = match self.rx {
            RxPath::Ring(_) => {
                let st: TpacketStatsV3 = self.packet_statistics()?;
                (st.tp_packets, st.tp_drops, st.tp_freeze_q_cnt)
            }
            RxPath::Mmsg(_) | RxPath::RingV2(_) => {
                let st: TpacketStats = self.packet_statistics()?;
                (st.tp_packets, st.tp_drops, 0)
            }
        };
        let t = &mut self.rx_stats;
        t.arrived += u64::from(arrived);
        t.dropped += u64::from(dropped);
        t.ring_freezes += u64::from(freezes);
        Ok(*t)
    }

    /// Shrink the socket's receive buffer (`SO_RCVBUF`; the kernel doubles the value and keeps
    /// a minimum of a few KiB), so that tests can fill it with a few frames.
    #[cfg(test)]
    pub(crate) fn set_receive_buffer(&self, bytes: libc::c_int) -> io::Result<()> {
        // SAFETY: `bytes` is a c_int that outlives the call; the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// One `getsockopt(SOL_PACKET, PACKET_STATISTICS)` into `S`, the struct the kernel writes
    /// for this socket's ring version ([`TpacketStats`] or [`TpacketStatsV3`]). The kernel
    /// writes at most the length given and says how much it wrote; less than a whole `S` (a
    /// version mismatch) is an error rather than a half-read struct.
    fn packet_statistics<S: Copy + Default>(&self) -> io::Result<S> {
        self.packet_opt(PACKET_STATISTICS, "PACKET_STATISTICS")
    }

    /// The id of the fanout group this socket is in (the one the kernel picked for
    /// [`Fanout::New`]), or `None` when it is in none.
    pub fn fanout_group(&self) -> io::Result<Option<u16>> {
        // id | type << 16 | flags << 24: never 0 for a member, as weir's groups have flags.
        let v: u32 = self.packet_opt(PACKET_FANOUT, "PACKET_FANOUT")?;
        Ok((v != 0).then_some((v & 0xffff) as u16))
    }

    /// One `getsockopt(SOL_PACKET, opt)` into `S`. The kernel writes at most the length given
    /// and says how much it wrote; less than a whole `S` (a version mismatch) is an error
    /// rather than a half-read value.
    fn packet_opt<S: Copy + Default>(&self, opt: libc::c_int, what: &str) -> io::Result<S> {
        let mut st = S::default();
        let mut len = std::mem::size_of::<S>() as libc::socklen_t;
        // SAFETY: `st` is a live, writable plain-data value (u32 fields or an integer), `len`
        // its size: the kernel writes at most `len` bytes into it and the length into `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                opt,
                (&mut st as *mut S).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != std::mem::size_of::<S>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{what} on {}: {len} bytes, expected {}",
                    self.name,
                    std::mem::size_of::<S>()
                ),
            ));
        }
        Ok(st)
    }
}

/// The 802.1Q tag the kernel took out of a received frame, from its PACKET_AUXDATA control
/// message, as the 4 bytes to put back (TPID, TCI; network order).
// msg_controllen is usize with glibc, socklen_t with musl.
#[allow(clippy::unnecessary_cast)]
fn vlan_tag(hdr: &libc::msghdr) -> Option<[u8; VLAN_TAG_LEN]> {
    if hdr.msg_control.is_null()
        || (hdr.msg_controllen as usize) < std::mem::size_of::<libc::cmsghdr>()
    {
        return None;
    }
    // SAFETY: msg_control points at our AuxBuf (set before recvmmsg) and the kernel set
    // msg_controllen to the bytes it wrote there (checked above to hold a header); the CMSG
    // macros stay within msg_controllen.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !c.is_null() {
        // SAFETY: CMSG_FIRSTHDR / CMSG_NXTHDR return null or a header inside the buffer.
        let cm = unsafe { &*c };
        let want = std::mem::size_of::<TpacketAuxdata>();
        // SAFETY: CMSG_LEN is arithmetic only.
        let need = unsafe { libc::CMSG_LEN(want as u32) } as usize;
        if cm.cmsg_level == SOL_PACKET
            && cm.cmsg_type == PACKET_AUXDATA
            && cm.cmsg_len as usize >= need
        {
            // SAFETY: the length check above says the data holds a whole tpacket_auxdata;
            // read_unaligned because the data is only 4-aligned by contract.
            let aux: TpacketAuxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<TpacketAuxdata>()) };
            return tag_bytes(aux.tp_status, aux.tp_vlan_tci, aux.tp_vlan_tpid);
        }
        // SAFETY: `c` is a valid header inside the buffer described by `hdr`.
        c = unsafe { libc::CMSG_NXTHDR(hdr, c) };
    }
    None
}

/// Complete the meta of a received frame whose first `copied` bytes are in `buf`: `real` is
/// its length as the kernel saw it (without the VLAN tag it took out), `cut` says the kernel
/// itself delivered less than `real`. A VLAN `tag` is put back after the MACs: what follows
/// moves 4 bytes on (the last 4 bytes fall off a full buffer) and the tag goes in, as much of it
/// as fits; the offsets of the vnet header, which count from the start of the frame, move too.
fn finish_frame(
    buf: &mut [u8],
    copied: usize,
    real: usize,
    cut: bool,
    tag: Option<[u8; VLAN_TAG_LEN]>,
    mut vnet: VnetHdr,
) -> RxMeta {
    let cap = buf.len();
    let mut len = copied.min(cap);
    let mut full = real;
    if let Some(tag) = tag {
        let kept = len.min(cap.saturating_sub(VLAN_TAG_LEN));
        if kept > VLAN_TAG_AT {
            buf.copy_within(VLAN_TAG_AT..kept, VLAN_TAG_AT + VLAN_TAG_LEN);
        }
        if cap > VLAN_TAG_AT {
            let end = cap.min(VLAN_TAG_AT + VLAN_TAG_LEN);
            buf[VLAN_TAG_AT..end].copy_from_slice(&tag[..end - VLAN_TAG_AT]);
        }
        full = real + VLAN_TAG_LEN;
        len = (copied + VLAN_TAG_LEN).min(cap);
        if vnet.flags & crate::wire::vnet::F_NEEDS_CSUM != 0 {
            vnet.csum_start = vnet.csum_start.saturating_add(VLAN_TAG_LEN as u16);
        }
        if vnet.hdr_len > 0 {
            vnet.hdr_len = vnet.hdr_len.saturating_add(VLAN_TAG_LEN as u16);
        }
    }
    RxMeta {
        len,
        truncated: full > cap || cut,
        vnet,
    }
}

/// The 4 bytes of an 802.1Q tag (TPID, TCI; network order) from what the kernel reports.
fn tag_bytes(status: u32, tci: u16, tpid: u16) -> Option<[u8; VLAN_TAG_LEN]> {
    if status & TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
        tpid
    } else {
        ETH_P_8021Q
    };
    let t = tpid.to_be_bytes();
    let v = tci.to_be_bytes();
    Some([t[0], t[1], v[0], v[1]])
}

/// Attach a classic BPF program: the kernel checks it (a program it refuses is an error here)
/// and runs it on every frame before this socket gets it.
fn attach_filter(fd: &OwnedFd, prog: &[crate::classify::rule::bpf::BpfInsn]) -> io::Result<()> {
    let len = u16::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter too long"))?;
    let fprog = libc::sock_fprog {
        len,
        // BpfInsn is repr(C) with sock_filter's fields in its order (u16, u8, u8, u32); the
        // kernel copies the program and never writes to it.
        filter: prog.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` instructions of `prog`, both alive for the call; the
    // length passed is the size of the sock_fprog.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_int_opt(fd: &OwnedFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a c_int that outlives the call; the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Device for AfPacket {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta]) -> io::Result<usize> {
        let n = bufs.len().min(meta.len()).min(BATCH);
        if n == 0 {
            return Ok(0);
        }
        let rx = match &mut self.rx {
            RxPath::Ring(ring) => return Ok(ring.recv(self.vnet_hdr, &mut bufs[..n], meta)),
            RxPath::RingV2(ring) => return Ok(ring.recv(self.vnet_hdr, &mut bufs[..n], meta)),
            RxPath::Mmsg(rx) => rx,
        };
        for (i, buf) in bufs[..n].iter_mut().enumerate() {
            rx.set(i, self.vnet_hdr, buf.as_mut_ptr(), buf.len());
        }
        let got = loop {
            // SAFETY: messages 0..n were just pointed at live memory: each iovec at a caller
            // buffer (borrowed mutably for this whole call, with its real length) or at our
            // 10-byte header array, the control buffer at our AuxBuf with its real length; no
            // name buffer. `n` <= BATCH = msgs.len().
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    rx.msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return Ok(0),
                e => return Err(io::Error::from_raw_os_error(e)),
            }
        };
        let hdr = if self.vnet_hdr { VNET_HDR_LEN } else { 0 };
        for i in 0..got {
            let m = &rx.msgs[i];
            // With MSG_TRUNC a packet socket returns the frame's full length (plus the vnet
            // header), not the bytes copied.
            let real = (m.msg_len as usize).saturating_sub(hdr);
            let truncated_flag = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            // What the tests confirm on this kernel: the length is the real one, so the flag
            // and the comparison agree.
            debug_assert_eq!(truncated_flag, real > bufs[i].len());
            let vnet = if self.vnet_hdr {
                VnetHdr::from_bytes(&rx.hdrs[i])
            } else {
                VnetHdr::NONE
            };
            let copied = real.min(bufs[i].len());
            meta[i] = finish_frame(
                &mut bufs[i],
                copied,
                real,
                truncated_flag,
                vlan_tag(&m.msg_hdr),
                vnet,
            );
        }
        Ok(got)
    }

    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> io::Result<usize> {
        let n = frames.len().min(BATCH);
        for (i, f) in frames[..n].iter().enumerate() {
            if self.vnet_hdr {
                self.tx.hdrs[i] = f.vnet.to_bytes();
            }
            // The kernel only reads through these pointers on send; the cast to *mut is what
            // iovec's type asks for.
            self.tx
                .set(i, self.vnet_hdr, f.data.as_ptr().cast_mut(), f.data.len());
        }
        let mut done = 0;
        while done < n {
            // SAFETY: messages done..n point at the frames borrowed for this call (read only
            // by sendmmsg) and at our header arrays; `done` < n <= BATCH keeps the pointer and
            // count inside `msgs`.
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.tx.msgs.as_mut_ptr().add(done),
                    (n - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc > 0 {
                // Fewer than asked: the next call reports the error of the first one not sent.
                done += rc as usize;
                continue;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN | libc::ENOBUFS => break,
                // The frame at `done` is refused on its own merits: take it and go on.
                libc::EMSGSIZE | libc::EINVAL => {
                    self.tx_refused += 1;
                    done += 1;
                }
                // Report what was taken; the error comes back on the next call.
                _ if done > 0 => break,
                e => return Err(io::Error::from_raw_os_error(e)),
            }
        }
        Ok(done)
    }

    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        // Round up to whole milliseconds so a short wait is not a busy poll.
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that outlives the call; count 1 matches.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            return match errno() {
                libc::EINTR => Ok(false),
                e => Err(io::Error::from_raw_os_error(e)),
            };
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // A pending error (the interface went down or away) is taken and returned, else poll
        // would keep waking for it (a receive ring never reads it).
        if let Some(e) = super::sys::polled_error(&pfd) {
            return Err(e);
        }
        Ok(pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
    }

    fn offloads(&self) -> bool {
        self.vnet_hdr
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.fd.as_raw_fd())
    }

    /// Gone when no interface has this name any more or another one took it (the socket is
    /// bound to the old index for good); down when it is set down or has no carrier.
    /// Two ioctls on the socket itself.
    fn link(&mut self) -> super::Link {
        match netdev::link_state(&self.fd, &self.name) {
            Ok(None) => super::Link::Gone,
            Ok(Some(s)) if s.index != self.ifindex => super::Link::Gone,
            Ok(Some(s)) if !s.up => super::Link::Down,
            Ok(Some(s)) if !s.running => super::Link::NoCarrier,
            Ok(Some(_)) => super::Link::Up,
            // Unknown (the kernel refused the question): no reason to stop the bridge.
            Err(_) => super::Link::Up,
        }
    }

    /// [`KernelRxStats::dropped`], read now ([`AfPacket::kernel_rx_stats`]: one system call).
    /// If the read fails (the kernel has no reason to: the socket and the buffer are ours),
    /// the total of the reads before it.
    fn kernel_drops(&mut self) -> Option<u64> {
        let total = self.kernel_rx_stats().unwrap_or(self.rx_stats);
        Some(total.dropped)
    }
}

// Buffers handed to recv_batch are expected to hold MAX_FRAME bytes; smaller ones work and
// report truncation.
const _: () = assert!(MAX_FRAME >= 1514);

mod ring;

#[cfg(test)]
mod tests;
