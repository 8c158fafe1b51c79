//! The process settings of the `rampart` binary, for the benchmark and
//! profiling drivers, so that their figures describe the engine as the
//! gateway runs it.

/// Turns transparent huge pages off for this process, as `rampart` does at
/// start (see `without_transparent_huge_pages` in `crates/rampart/src/main.rs`).
pub fn as_the_gateway_runs() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only how
    // the kernel backs this process's future page faults.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
