//! The fleet's leases: which replica leads what, logged (target
//! `monite_webhooks::fleet`) and counted.

/// This replica acquired the lease `name`; `taken_over`: from a holder whose time ran out.
pub(crate) fn acquired(name: &str, taken_over: bool) {
    #[cfg(feature = "metrics")]
    super::metrics::lease::acquired(name, taken_over);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, taken_over);
}

/// This replica no longer holds the lease `name`.
pub(crate) fn lost(name: &str) {
    #[cfg(feature = "metrics")]
    super::metrics::lease::lost(name);
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}
