//! The one operating-system call the harness makes: lowering the issuing threads' timer slack
//! on Linux, so a sleep ends when asked rather than up to 50 µs later.

/// Sets the calling thread's timer slack to `ns` (Linux `prctl(PR_SET_TIMERSLACK)`); a no-op
/// elsewhere. Failure only means sleeps stay as precise as before, so it is ignored.
#[cfg(target_os = "linux")]
pub fn set_timer_slack(ns: u64) {
    const PR_SET_TIMERSLACK: i32 = 29;
    unsafe extern "C" {
        fn prctl(option: i32, ...) -> i32;
    }
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and touches only the calling
    // thread's scheduling attributes.
    unsafe {
        prctl(PR_SET_TIMERSLACK, ns as std::ffi::c_ulong);
    }
}

/// Sets the calling thread's timer slack (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn set_timer_slack(_ns: u64) {}
