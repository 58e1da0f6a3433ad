//! Small process and thread settings from the kernel.

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

/// Raise the calling thread's scheduling priority to `nice` (negative is higher), as a
/// forwarding thread should: the kernel bridge forwards in softirq context, ahead of every
/// process. Needs CAP_SYS_NICE (root has it); returns whether it worked.
pub fn raise_thread_priority(nice: i32) -> bool {
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS and a thread id
    // changes only that thread's nice value, and touches no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0
    }
}
