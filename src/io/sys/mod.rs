//! Small process and thread settings from the kernel, and interfaces ([`netdev`]).

pub mod netdev;
pub mod sock_diag;

/// Ask for timer wake-ups accurate to `ns` on the calling thread (the default slack is 50 us,
/// more than a departure interval at high rates). Best effort: failure leaves the default.
pub fn set_timer_slack_ns(ns: u64) {
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long argument by value and touches no
    // memory of ours; the trailing arguments are ignored by this option.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0);
    }
}

/// The effective user id is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Put the calling thread under SCHED_FIFO at `priority` (1 to 99): it then runs as soon as it
/// wakes, ahead of every ordinary thread, as the kernel bridge forwards in softirq context
/// ahead of every process. Needs CAP_SYS_NICE and a real-time budget (root has both, unless
/// its cgroup gives it no real-time time). The kernel still leaves ordinary threads 5% of each
/// CPU (`sched_rt_runtime_us`), so a thread that never sleeps cannot lock a CPU up entirely.
pub fn set_thread_realtime(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: gettid has no preconditions; sched_setscheduler with a thread id changes only
    // that thread's policy and reads `param`, a live local, for the duration of the call.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Pin the calling thread to `cpu` (it runs there and nowhere else). Fails with EINVAL when
/// the CPU is offline or outside the cpuset the process may use.
pub fn pin_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data and all-zero is the empty set; CPU_SET writes the bit of
    // `cpu`, inside the set (checked above); sched_setaffinity with pid 0 changes only the
    // calling thread and reads `set`, a live local, for the duration of the call.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on, in order.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data and all-zero is the empty set; sched_getaffinity with
    // pid 0 writes at most its size into `set`, a live local; CPU_ISSET reads bits below
    // CPU_SETSIZE only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Leave real time for the normal policy, keeping the thread's nice value (set before it
/// took real time): allowed without privileges, since it lowers the thread's priority. Returns
/// whether it worked.
pub fn set_thread_normal() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: gettid has no preconditions; sched_setscheduler with a thread id changes only
    // that thread's policy and reads `param`, a live local, for the duration of the call.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) == 0
    }
}

/// The calling thread's scheduling policy (`libc::SCHED_FIFO`, `libc::SCHED_OTHER`...).
pub fn thread_policy() -> i32 {
    // SAFETY: gettid has no preconditions; sched_getscheduler only reads the policy.
    unsafe { libc::sched_getscheduler(libc::syscall(libc::SYS_gettid) as libc::pid_t) }
}

/// Raise the calling thread's scheduling priority to `nice` (negative is higher): a milder
/// form of [`set_thread_realtime`]. Needs CAP_SYS_NICE (root has it); returns whether it worked.
pub fn raise_thread_priority(nice: i32) -> bool {
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread id
    // changes only that thread's nice value, and touches no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0
    }
}

/// Wait until one of `fds` is readable or `timeout` passes (nanosecond resolution, unlike
/// poll's milliseconds: a shaper's next departure can be microseconds away). Returns whether
/// one is readable; an interrupted wait returns false. At most 8 descriptors are watched.
/// A socket that polls with an error pending (a packet socket whose interface went down)
/// has the error taken ([`take_socket_error`]) and returned, so the next wait does not wake
/// for it again.
pub fn wait_any_readable(
    fds: &[std::os::fd::RawFd],
    timeout: std::time::Duration,
) -> std::io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 8];
    let n = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(&fds[..n]) {
        *p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
    }
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `pfds[..n]` are valid pollfd structs and `ts` a valid timespec, both outliving
    // the call; a null signal mask means the mask is left unchanged.
    let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    if let Some(e) = pfds[..n].iter().find_map(polled_error) {
        return Err(e);
    }
    Ok(rc > 0)
}

/// The error pending on a socket that polled `POLLERR` (taken: [`take_socket_error`]), so that
/// the next poll does not wake for it again; `None` without `POLLERR` or pending error.
pub fn polled_error(p: &libc::pollfd) -> Option<std::io::Error> {
    (p.revents & libc::POLLERR != 0)
        .then(|| take_socket_error(p.fd))
        .flatten()
}

/// The error pending on socket `fd` (`SO_ERROR`), which reading clears; `None` when there is
/// none or `fd` is not a socket. A packet socket's interface going down or away leaves
/// `ENETDOWN` there and makes poll report `POLLERR` until it is read.
pub fn take_socket_error(fd: std::os::fd::RawFd) -> Option<std::io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes and outlive the call; `len` holds the size
    // of `err`, the most the kernel writes for SO_ERROR.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && err != 0).then(|| std::io::Error::from_raw_os_error(err))
}

/// Send `signal` (e.g. `libc::SIGTERM`) to process `pid`. Errors (no such process) are ignored:
/// callers use it to stop processes that may have exited already.
pub fn signal_process(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return; // 0 and negatives address process groups: never meant here.
    }
    // SAFETY: kill(2) with a positive pid only sends a signal; it touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A user's uid and primary gid, looked up by name (the passwd database, as `id NAME`).
pub fn user_ids(name: &str) -> std::io::Result<(u32, u32)> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value of this plain C struct (null pointers, zero
    // ids); getpwnam_r writes into it and into `buf`, whose length it is given, and sets
    // `result` to it or to null; every pointer passed outlives the call.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no user named {name}"),
            ));
        }
        Ok((pw.pw_uid, pw.pw_gid))
    }
}

/// A group's gid, looked up by name (the group database, as `getent group NAME`).
pub fn group_id(name: &str) -> std::io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the name"))?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: as in `user_ids`, for getgrnam_r and a zeroed group struct.
    unsafe {
        let mut gr: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            c.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no group named {name}"),
            ));
        }
        Ok(gr.gr_gid)
    }
}

/// Give up every capability of the calling thread, for good: the bounding set (when the
/// thread may still change it), then the ambient, inheritable, effective and permitted sets.
/// Capabilities are per thread in Linux: each thread that had them calls this (threads made
/// afterwards by a thread that called it start without any).
pub fn drop_capabilities() -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        caps::clear(None, CapSet::Bounding)?;
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)
}

/// Give up every capability of the calling thread but those of `keep` it holds: for a
/// thread that needs a few privileges for good (the owner resolver reads other users' /proc).
pub fn keep_only_capabilities(keep: &[caps::Capability]) -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    let only: caps::CapsHashSet = keep
        .iter()
        .copied()
        .filter(|&c| caps::has_cap(None, CapSet::Permitted, c).unwrap_or(false))
        .collect();
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        for c in caps::read(None, CapSet::Bounding)? {
            if !only.contains(&c) {
                caps::drop(None, CapSet::Bounding, c)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &only)?;
    caps::set(None, CapSet::Permitted, &only)
}

/// The calling thread may raise its scheduling priority (CAP_SYS_NICE: root has it, and a
/// service given it in its ambient set).
pub fn can_raise_priority() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_NICE,
    )
    .unwrap_or(false)
}

/// The calling thread's effective capabilities, as the kernel's bit mask (`CapEff` in
/// /proc/self/status); 0 when it has none.
pub fn effective_capabilities() -> u64 {
    caps::read(None, caps::CapSet::Effective)
        .map(|set| set.iter().fold(0u64, |m, c| m | c.bitmask()))
        .unwrap_or(0)
}

/// Become user `uid` with group `gid` and no supplementary groups, process-wide (the C
/// library applies it to every thread). Leaving root this way also empties every thread's
/// capability sets.
pub fn switch_user(uid: u32, gid: u32) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let groups = [gid as libc::gid_t];
    // SAFETY: setgroups reads `groups` (one live element, its length passed); setresgid and
    // setresuid take plain ids. Order matters: groups while still root, the user last.
    unsafe {
        check(libc::setgroups(1, groups.as_ptr()))?;
        check(libc::setresgid(gid, gid, gid))?;
        check(libc::setresuid(uid, uid, uid))?;
    }
    Ok(())
}
