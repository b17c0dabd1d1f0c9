//! Where the receiver reads the time: the system clock by default, or one you inject.

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
        crate::signature::unix_now()
    }
}

impl<F: Fn() -> u64 + Send + Sync + 'static> Clock for F {
    fn now_unix(&self) -> u64 {
        self()
    }
}
