//! Network interfaces: names, indexes, MTU and link state, as the kernel sees them from the
//! calling thread.
//!
//! Everything here asks the kernel through sockets and ioctls rather than `/sys/class/net`:
//! sysfs shows the network namespace of whoever mounted it, while a socket belongs to the
//! namespace of the thread that opened it. So the answers are right even in a thread that
//! entered another namespace with [`enter_network_namespace`] (as the tests do).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1 bytes).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// What the kernel reports about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfInfo {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`: `ip link set NAME up`).
    pub up: bool,
    /// Operationally up (`IFF_RUNNING`: carrier present; for a veth, its peer is up).
    pub running: bool,
    /// The device it is enslaved to (a bridge, a bond), if any: `/sys/class/net/NAME/master`.
    pub master: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    #[error("no interface `{name}`; interfaces here: {}", .known.join(", "))]
    NoSuchInterface { name: String, known: Vec<String> },
    #[error("invalid interface name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("interface `{name}`: {op}: {source}")]
    Io {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Check a name the way the kernel will, with a reason a person can act on.
pub fn validate_name(name: &str) -> Result<(), NetdevError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 15 bytes")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.chars().any(|c| c.is_whitespace()) {
        Some("contains whitespace")
    } else if name.contains('\0') || name.contains(':') {
        Some("contains a NUL byte or ':'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetdevError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Names of the interfaces in the calling thread's network namespace, in index order.
pub fn list_interfaces() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex takes no arguments; it returns either null (checked below) or an
    // array terminated by an entry with index 0 and a null name, owned by us until
    // if_freenameindex.
    let head = unsafe { libc::if_nameindex() };
    if head.is_null() {
        return names;
    }
    let mut p = head;
    loop {
        // SAFETY: `p` starts at `head` (non-null) and only advances while the current entry
        // is not the terminator, so it stays inside the array.
        let entry = unsafe { &*p };
        if entry.if_index == 0 || entry.if_name.is_null() {
            break;
        }
        // SAFETY: a non-terminator entry's name is a NUL-terminated string owned by the array.
        let name = unsafe { CStr::from_ptr(entry.if_name) };
        names.push(name.to_string_lossy().into_owned());
        // SAFETY: the current entry is not the terminator, so the next one exists.
        p = unsafe { p.add(1) };
    }
    // SAFETY: `head` came from if_nameindex and is freed once; nothing borrows from it now.
    unsafe { libc::if_freenameindex(head) };
    names
}

/// Index, MTU and state of `name`.
pub fn interface_info(name: &str) -> Result<IfInfo, NetdevError> {
    validate_name(name)?;
    let io_err = |op: &'static str, source: io::Error| NetdevError::Io {
        name: name.to_string(),
        op,
        source,
    };
    let cname = CString::new(name).expect("validate_name rejects NUL bytes");
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => Err(NetdevError::NoSuchInterface {
                name: name.to_string(),
                known: list_interfaces(),
            }),
            _ => Err(io_err("if_nametoindex", err)),
        };
    }

    // Any socket answers interface ioctls for its own namespace; a UDP one needs no privilege.
    // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io_err(
            "socket for interface ioctls",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor (checked non-negative) that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };

    let flags = ifreq_ioctl(&sock, name, libc::SIOCGIFFLAGS)
        // SAFETY: SIOCGIFFLAGS fills the `ifru_flags` member of the union.
        .map(|r| unsafe { r.ifr_ifru.ifru_flags })
        .map_err(|e| map_gone(name, "SIOCGIFFLAGS", e))?;
    let mtu = ifreq_ioctl(&sock, name, libc::SIOCGIFMTU)
        // SAFETY: SIOCGIFMTU fills the `ifru_mtu` member of the union.
        .map(|r| unsafe { r.ifr_ifru.ifru_mtu })
        .map_err(|e| map_gone(name, "SIOCGIFMTU", e))?;
    let flags = flags as u16 as i32;
    Ok(IfInfo {
        name: name.to_string(),
        index,
        mtu: u32::try_from(mtu).unwrap_or(0),
        up: flags & libc::IFF_UP != 0,
        running: flags & libc::IFF_RUNNING != 0,
        master: std::fs::read_link(format!("/sys/class/net/{name}/master"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned())),
    })
}

/// The interface vanished between two questions: report it as missing.
fn map_gone(name: &str, op: &'static str, e: io::Error) -> NetdevError {
    if e.raw_os_error() == Some(libc::ENODEV) {
        NetdevError::NoSuchInterface {
            name: name.to_string(),
            known: list_interfaces(),
        }
    } else {
        NetdevError::Io {
            name: name.to_string(),
            op,
            source: e,
        }
    }
}

/// What [`link_state`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub up: bool,
    pub running: bool,
}

/// Index and flags of `name`, asked on `sock` (any socket of this namespace answers interface
/// ioctls; a packet socket passes them on): two ioctls, no allocation. `Ok(None)` when there is
/// no interface of that name here.
pub fn link_state(sock: &OwnedFd, name: &str) -> io::Result<Option<LinkState>> {
    let gone = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(None),
        _ => Err(e),
    };
    let flags = match ifreq_ioctl(sock, name, libc::SIOCGIFFLAGS) {
        // SAFETY: SIOCGIFFLAGS fills the `ifru_flags` member of the union.
        Ok(r) => i32::from(unsafe { r.ifr_ifru.ifru_flags } as u16),
        Err(e) => return gone(e),
    };
    let index = match ifreq_ioctl(sock, name, libc::SIOCGIFINDEX) {
        // SAFETY: SIOCGIFINDEX fills the `ifru_ifindex` member of the union.
        Ok(r) => unsafe { r.ifr_ifru.ifru_ifindex },
        Err(e) => return gone(e),
    };
    Ok(Some(LinkState {
        index: u32::try_from(index).unwrap_or(0),
        up: flags & libc::IFF_UP != 0,
        running: flags & libc::IFF_RUNNING != 0,
    }))
}

fn ifreq_ioctl(sock: &OwnedFd, name: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data (arrays, integers, a union of those); all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // validate_name keeps the name at most IFNAMSIZ - 1 bytes, so the zeroed array keeps its
    // terminating NUL.
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `sock` is an open descriptor, `ifr` a properly sized ifreq that outlives the
    // call, and both requests only read the name and write inside the struct.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, &mut ifr) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ifr)
    }
}

/// Move the calling thread (only it) into the network namespace at `path` (for example
/// `/var/run/netns/NAME`). Sockets opened afterwards by this thread live in that namespace.
/// Needs CAP_SYS_ADMIN.
pub fn enter_network_namespace(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    // SAFETY: `ns` is an open descriptor for the duration of the call; setns only reads it and
    // changes the calling thread's namespace (no memory is touched).
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_the_kernel_sees_them() {
        for bad in ["", "a-name-that-is-16", "a/b", "a b", "tab\t", "x\0y"] {
            assert!(
                matches!(validate_name(bad), Err(NetdevError::InvalidName { .. })),
                "{bad:?}"
            );
            assert!(matches!(
                interface_info(bad),
                Err(NetdevError::InvalidName { .. })
            ));
        }
        validate_name("fifteen-bytes-x").unwrap();
    }

    #[test]
    fn loopback_is_listed_and_described() {
        assert!(list_interfaces().iter().any(|n| n == "lo"));
        let lo = interface_info("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert!(lo.up);
        assert!(lo.mtu > 0);
    }

    #[test]
    fn a_missing_interface_lists_the_ones_that_exist() {
        let err = interface_info("weir-nosuch0").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, NetdevError::NoSuchInterface { known, .. } if known.iter().any(|k| k == "lo")),
            "{err:?}"
        );
        assert!(
            msg.starts_with("no interface `weir-nosuch0`; interfaces here: "),
            "{msg}"
        );
        assert!(msg.contains("lo"), "{msg}");
    }
}
