//! The owner of a local TCP or UDP socket, from the kernel's socket diagnostics
//! (NETLINK_SOCK_DIAG, `inet_diag` exact lookup by addresses and ports), in a chosen network
//! namespace; messages built and read with the rust-netlink crates. And the few libc calls
//! around it: entering a namespace, a uid's name.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
use std::io;
use std::net::SocketAddr as IpSocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A sock_diag socket of one network namespace.
pub struct SockDiag {
    socket: Socket,
    buf: Vec<u8>,
}

impl SockDiag {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<SockDiag> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(SockDiag {
            socket,
            buf: vec![0; 8192],
        })
    }

    /// A socket in the network namespace at `netns` (`/run/netns/NAME`, `/proc/PID/ns/net`):
    /// the calling thread enters it, opens the socket (which stays bound to it) and comes
    /// back. Needs CAP_SYS_ADMIN.
    pub fn open_in(netns: &Path) -> io::Result<SockDiag> {
        let home = std::fs::File::open("/proc/thread-self/ns/net")?;
        let there = std::fs::File::open(netns)?;
        enter(&there)?;
        let opened = SockDiag::open();
        enter(&home)?;
        opened
    }

    /// The uid and inode of the socket whose local end is `local` and remote end `remote`
    /// (protocol 6 or 17); `None` when there is none.
    pub fn find(
        &mut self,
        proto: u8,
        local: IpSocketAddr,
        remote: IpSocketAddr,
    ) -> io::Result<Option<(u32, u32)>> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: if local.is_ipv4() { AF_INET } else { AF_INET6 },
                protocol: proto,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::all(),
                socket_id: SocketId {
                    source_port: local.port(),
                    destination_port: remote.port(),
                    source_address: local.ip(),
                    destination_address: remote.ip(),
                    interface_id: 0,
                    // INET_DIAG_NOCOOKIE: any socket of these addresses and ports.
                    cookie: [0xff; 8],
                },
            })
            .into(),
        );
        packet.finalize();
        let len = packet.buffer_len();
        if len > self.buf.len() {
            return Err(io::Error::other("sock_diag request too long"));
        }
        packet.serialize(&mut self.buf[..len]);
        self.socket.send(&self.buf[..len], 0)?;
        let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
        let answer = <NetlinkMessage<SockDiagMessage>>::deserialize(&self.buf[..n])
            .map_err(|e| io::Error::other(format!("sock_diag answer: {e}")))?;
        match answer.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                Ok(Some((r.header.uid, r.header.inode)))
            }
            // ENOENT: no such socket.
            NetlinkPayload::Error(e) if e.code.map(|c| -c.get()) == Some(libc::ENOENT) => Ok(None),
            NetlinkPayload::Error(e) => Err(io::Error::from_raw_os_error(
                e.code.map_or(libc::EIO, |c| -c.get()),
            )),
            _ => Ok(None),
        }
    }
}

/// Enter the network namespace of `ns` (an open namespace file), for the calling thread.
fn enter(ns: &std::fs::File) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which `ns` keeps open for the call; it changes
    // this thread's namespace, which the callers restore.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The name of user `uid` in the passwd database (NSS included), when it has one.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: passwd is plain data (integers and pointers), valid when zeroed.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `pwd`, `buf` and `result` outlive the call; `buf.len()` is its real length;
    // getpwuid_r writes only into them and sets `result` to `&pwd` or null.
    let r = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if r != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
