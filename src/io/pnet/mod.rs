//! The portable fallback backend (`weir run --io pnet`): AF_PACKET through `pnet_datalink`.
//!
//! What it is, and what it is not (see `docs/io-backends.md` for the measurements):
//! - **One socket per port, both directions.** [`PnetDevice::open`] makes one pnet channel; its
//!   receiver and sender share one packet socket. The kernel never hands a packet socket its own
//!   transmissions, so frames this device sends are never received by it. On top of that, the
//!   socket is created here with `PACKET_IGNORE_OUTGOING` (Linux 4.20+) and handed to pnet with
//!   `Config::socket_fd` (pnet itself has no such option): the device never sees *any* frame
//!   leaving the interface — not those of a second weir socket on the same port, not those of
//!   the host's own stack. Without it, a second plain pnet channel on the interface receives
//!   every frame the first one sends (measured: see the tests), and a bridge would loop.
//! - **Two system calls per received frame** (pnet polls, then `recvfrom`s), two per sent frame
//!   (poll, `sendto`), no batching in the kernel: [`Device::recv_batch`] just loops.
//! - **No vnet header**: [`Device::offloads`] is false. GSO super-frames read from a port with
//!   offloads on cannot be sent on the other (`EMSGSIZE`, counted in [`PnetTx::tx_refused`]) and
//!   partial checksums arrive broken, so endpoints must have offloads off
//!   (`ethtool -K IF tx off tso off gso off`).
//! - **Truncation is detected by size**: pnet reads with `recvfrom` without `MSG_TRUNC`, which
//!   returns at most the buffer's length and cuts the rest silently. pnet's buffer here is
//!   [`MAX_FRAME`] + 1 bytes (pnet's default is 4096), so a frame of up to `MAX_FRAME` bytes is
//!   read whole and one that filled the buffer is reported truncated; so is a frame longer than
//!   the caller's buffer.
//! - **VLAN tags that the kernel took out of the frame are lost** (pnet reads no auxiliary
//!   data); the af_packet backend puts them back.
//! - **Linux only** as written (the socket is made here so that `PACKET_IGNORE_OUTGOING` can be
//!   set on it), like the rest of weir's live I/O.

use super::{Device, RxMeta, TxFrame, MAX_FRAME};
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// `SOL_PACKET` option number (linux/if_packet.h), not in every libc release.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// pnet's own read buffer: one more byte than the largest frame weir accepts, so that a frame
/// that fills it is known to be cut.
const READ_BUFFER: usize = MAX_FRAME + 1;

#[derive(Debug, thiserror::Error)]
pub enum PnetError {
    #[error("no interface named {name:?} (interfaces: {})", if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    NoSuchInterface {
        name: String,
        available: Vec<String>,
    },
    #[error("{ifname}: {what}: {source}{hint}", hint = permission_hint(.source))]
    Io {
        ifname: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("{ifname}: pnet returned a channel that is not Ethernet")]
    NotEthernet { ifname: String },
}

fn permission_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (packet sockets need CAP_NET_RAW: run as root or `setcap cap_net_raw,cap_net_admin+ep` the binary)"
        }
        _ => "",
    }
}

/// Options beyond the public ones, for tests that show what happens without them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw {
    pub promiscuous: bool,
    /// Create the socket here with `PACKET_IGNORE_OUTGOING` (false: let pnet create a plain one).
    pub ignore_outgoing: bool,
}

/// Receiving half of a port: the pnet receiver of the port's one channel.
pub struct PnetRx {
    name: String,
    /// The channel's socket, owned by pnet (its receiver and sender each hold it); valid as long
    /// as `rx` lives. Used only to poll.
    fd: RawFd,
    rx: Box<dyn DataLinkReceiver>,
}

/// Sending half of a port: the pnet sender of the same channel as its [`PnetRx`].
pub struct PnetTx {
    name: String,
    tx: Box<dyn DataLinkSender>,
    refused: u64,
}

/// Both halves of one port's channel, as one device.
pub struct PnetDevice {
    rx: PnetRx,
    tx: PnetTx,
}

impl PnetDevice {
    /// Open `ifname`: one packet socket with `PACKET_IGNORE_OUTGOING`, bound to the interface,
    /// promiscuous if asked (the membership ends when the socket closes), non-blocking, with a
    /// read buffer of `MAX_FRAME` + 1 bytes.
    pub fn open(ifname: &str, promiscuous: bool) -> Result<PnetDevice, PnetError> {
        open_raw(
            ifname,
            Raw {
                promiscuous,
                ignore_outgoing: true,
            },
        )
    }

    /// The two halves, for the runtime's separate receive and transmit devices of a port. They
    /// share the socket, which closes when both are dropped.
    pub fn split(self) -> (PnetRx, PnetTx) {
        (self.rx, self.tx)
    }

    /// Frames the kernel refused on their own merits (too long for the MTU, too short), dropped.
    pub fn tx_refused(&self) -> u64 {
        self.tx.refused
    }
}

/// [`PnetDevice::open`] then [`PnetDevice::split`]: what `weir run --io pnet` gives a port.
pub fn open_pair(ifname: &str, promiscuous: bool) -> Result<(PnetRx, PnetTx), PnetError> {
    Ok(PnetDevice::open(ifname, promiscuous)?.split())
}

pub(crate) fn open_raw(ifname: &str, raw: Raw) -> Result<PnetDevice, PnetError> {
    let interfaces = pnet_datalink::interfaces();
    let Some(iface) = interfaces.iter().find(|i| i.name == ifname) else {
        let mut available: Vec<String> = interfaces.into_iter().map(|i| i.name).collect();
        available.sort();
        available.dedup();
        return Err(PnetError::NoSuchInterface {
            name: ifname.to_string(),
            available,
        });
    };
    let io_err = |what: &'static str, source: io::Error| PnetError::Io {
        ifname: ifname.to_string(),
        what,
        source,
    };
    let socket_fd = if raw.ignore_outgoing {
        Some(ignore_outgoing_socket().map_err(|(what, e)| io_err(what, e))?)
    } else {
        None
    };
    let config = Config {
        read_buffer_size: READ_BUFFER,
        // pnet's sender only uses its buffer for build_and_send; send_to sends the caller's slice.
        write_buffer_size: MAX_FRAME,
        // Zero: pnet's poll before each recvfrom / sendto returns at once, so neither blocks
        // (pnet's default, None, would wait forever).
        read_timeout: Some(Duration::ZERO),
        write_timeout: Some(Duration::ZERO),
        promiscuous: raw.promiscuous,
        socket_fd,
        ..Default::default()
    };
    // On error pnet has closed `socket_fd` itself (every failure path after socket creation).
    let channel =
        pnet_datalink::channel(iface, config).map_err(|e| io_err("open pnet channel", e))?;
    let Channel::Ethernet(tx, rx) = channel else {
        return Err(PnetError::NotEthernet {
            ifname: ifname.to_string(),
        });
    };
    // Without our socket (tests only, to show the loop it lets happen) pnet does not say which
    // descriptor it made, and wait_readable cannot poll.
    let fd = socket_fd.unwrap_or(-1);
    Ok(PnetDevice {
        rx: PnetRx {
            name: ifname.to_string(),
            fd,
            rx,
        },
        tx: PnetTx {
            name: ifname.to_string(),
            tx,
            refused: 0,
        },
    })
}

/// An AF_PACKET raw socket for all protocols, with `PACKET_IGNORE_OUTGOING`; pnet binds it.
fn ignore_outgoing_socket() -> Result<RawFd, (&'static str, io::Error)> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as libc::c_int,
        )
    };
    if fd < 0 {
        return Err(("socket(AF_PACKET)", io::Error::last_os_error()));
    }
    let one: libc::c_int = 1;
    // SAFETY: `fd` is our open socket; the option value is a c_int that outlives the call, and
    // the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: `fd` is ours and not yet given to anyone.
        unsafe { libc::close(fd) };
        return Err((
            "setsockopt PACKET_IGNORE_OUTGOING (needs Linux 4.20 or later)",
            e,
        ));
    }
    Ok(fd)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) || matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

impl PnetRx {
    fn recv(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta]) -> io::Result<usize> {
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let frame = match self.rx.next() {
                Ok(f) => f,
                Err(e) if timed_out(&e) => break,
                // Report what was received; the error comes back on the next call.
                Err(_) if n > 0 => break,
                // pnet says "Unexpected poll event" for a socket error (the interface went down
                // or away): take the error itself, which also stops poll waking for it.
                Err(e) => {
                    let pending = (self.fd >= 0)
                        .then(|| crate::io::sys::take_socket_error(self.fd))
                        .flatten();
                    return Err(pending.unwrap_or(e));
                }
            };
            let cap = bufs[n].len();
            let len = frame.len().min(cap);
            bufs[n][..len].copy_from_slice(&frame[..len]);
            meta[n] = RxMeta {
                len,
                // A frame that filled pnet's buffer may have been cut by the kernel.
                truncated: frame.len() > cap || frame.len() >= READ_BUFFER,
                vnet: super::VnetHdr::NONE,
            };
            n += 1;
        }
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.fd < 0 {
            // No descriptor to poll (tests only): let recv_batch find out.
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            return Ok(true);
        }
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that outlives the call; count 1 matches. The
        // descriptor is open: pnet's receiver, which we hold, keeps it.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if let Some(e) = crate::io::sys::polled_error(&pfd) {
            return Err(e);
        }
        Ok(pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
    }
}

impl PnetTx {
    /// Frames the kernel refused on their own merits (too long for the MTU, too short), dropped.
    pub fn tx_refused(&self) -> u64 {
        self.refused
    }

    fn send(&mut self, frames: &[TxFrame<'_>]) -> io::Result<usize> {
        let mut done = 0;
        for f in frames {
            match self.tx.send_to(f.data, None) {
                Some(Ok(())) => done += 1,
                Some(Err(e)) => match e.raw_os_error() {
                    // Refused on its own merits: take it (dropped) and go on.
                    Some(libc::EMSGSIZE) | Some(libc::EINVAL) => {
                        self.refused += 1;
                        done += 1;
                    }
                    Some(libc::ENOBUFS) => break,
                    _ if timed_out(&e) => break,
                    // Report what was taken; the error comes back on the next call.
                    _ if done > 0 => break,
                    _ => return Err(e),
                },
                // Only build_and_send returns None (buffer too small); send_to never does.
                None => {
                    self.refused += 1;
                    done += 1;
                }
            }
        }
        Ok(done)
    }
}

impl Device for PnetDevice {
    fn link(&mut self) -> crate::io::Link {
        crate::io::link_by_name(self.name())
    }

    fn name(&self) -> &str {
        &self.rx.name
    }
    fn recv_batch(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta]) -> io::Result<usize> {
        self.rx.recv(bufs, meta)
    }
    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> io::Result<usize> {
        self.tx.send(frames)
    }
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        self.rx.wait(timeout)
    }
    fn offloads(&self) -> bool {
        false
    }
}

impl Device for PnetRx {
    fn link(&mut self) -> crate::io::Link {
        crate::io::link_by_name(self.name())
    }

    fn name(&self) -> &str {
        &self.name
    }
    fn recv_batch(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta]) -> io::Result<usize> {
        self.recv(bufs, meta)
    }
    /// The receiving half does not send: nothing is taken.
    fn send_batch(&mut self, _frames: &[TxFrame<'_>]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pnet receive half cannot send (use its PnetTx)",
        ))
    }
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        self.wait(timeout)
    }
    fn offloads(&self) -> bool {
        false
    }
}

impl Device for PnetTx {
    fn link(&mut self) -> crate::io::Link {
        crate::io::link_by_name(self.name())
    }

    fn name(&self) -> &str {
        &self.name
    }
    /// The sending half receives nothing (its frames go to the [`PnetRx`] of the channel).
    fn recv_batch(&mut self, _bufs: &mut [Box<[u8]>], _meta: &mut [RxMeta]) -> io::Result<usize> {
        Ok(0)
    }
    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> io::Result<usize> {
        self.send(frames)
    }
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        std::thread::sleep(timeout);
        Ok(false)
    }
    fn offloads(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
