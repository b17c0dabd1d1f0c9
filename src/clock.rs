//! Where the receiver reads the time: the system clock by default, or one you inject.

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::time::{SystemTime, UNIX_EPOCH};

/// Tells the receiver what time it is, in Unix seconds, for the signature timestamp check.
///
/// The default, [`SystemClock`], reads the operating system's clock. Inject another with
/// [`ReceiverBuilder::clock`](crate::ReceiverBuilder::clock) where that clock is missing
/// or not to be trusted: on `wasm32-unknown-unknown` (Cloudflare Workers, for instance)
/// `std::time::SystemTime::now` panics, and the host has its own (`Date.now()`). Tests
/// inject a fixed or counting clock. Implemented for every `Fn() -> u64`.
///
/// ```
/// use monite_webhooks::{Dispatcher, Receiver, Secret, Verifier};
///
/// # fn build() -> Result<(), monite_webhooks::Error> {
/// // On Workers: `|| (worker::Date::now().as_millis() / 1000)`.
/// let receiver = Receiver::builder(
///     Verifier::new(Secret::new("whsec_from_your_environment")?),
///     Dispatcher::builder().build(),
/// )
/// .clock(|| 1_713_773_729)
/// .build();
/// # let _ = receiver; Ok(()) }
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, in whole seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

/// The operating system's real-time clock (on Linux its coarse form: the kernel's last
/// tick, read without a system call). The receiver's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        unix_now()
    }
}

impl<F: Fn() -> u64 + Send + Sync + 'static> Clock for F {
    fn now_unix(&self) -> u64 {
        self()
    }
}

/// Now, in Unix seconds (0 if the system clock is before 1970).
///
/// On Linux, from the coarse real-time clock: the kernel's last tick, a few milliseconds
/// behind at most, read five times faster than the precise clock. The tolerance is in
/// whole seconds, so nothing finer is needed.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn unix_now() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(now.tv_sec).unwrap_or(0)
}

/// Now, in Unix seconds (0 if the system clock is before 1970).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_agrees_with_the_system_clock() {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // The coarse clock lags by a tick at most; a second boundary may fall between.
        assert!(unix_now().abs_diff(system) <= 1);
    }
}
