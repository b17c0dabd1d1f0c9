//! Running a delivery's handlers in a task of their own, so they outlive the request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A delivery's claim, handlers and done mark, as one task to run to completion.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts a [`Task`] on your executor, detached from the request that made it.
///
/// The core needs no runtime, so it cannot spawn by itself; any closure
/// `Fn(Task) + Send + Sync` is a `Spawn`, such as `|task| { tokio::spawn(task); }`.
/// See [`ReceiverBuilder::spawn_handlers`](crate::ReceiverBuilder::spawn_handlers).
pub trait Spawn: Send + Sync + 'static {
    /// Starts `task`; it must run to completion even if nobody waits for it.
    fn spawn(&self, task: Task);
}

impl<F: Fn(Task) + Send + Sync + 'static> Spawn for F {
    fn spawn(&self, task: Task) {
        self(task);
    }
}

pub(crate) struct Spawner(pub(crate) Box<dyn Spawn>);

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner")
    }
}

/// A single-value channel from the task to the request waiting for its answer: the std
/// pieces suffice, and the core keeps no dependency for it.
pub(crate) mod oneshot {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::task::{Context, Poll, Waker};

    struct Slot<T> {
        value: Option<T>,
        waker: Option<Waker>,
        sender_gone: bool,
    }

    pub(crate) struct Sender<T>(Arc<Mutex<Slot<T>>>);

    /// Resolves to the value, or `None` if the sender was dropped without sending.
    pub(crate) struct Receiver<T>(Arc<Mutex<Slot<T>>>);

    pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let slot = Arc::new(Mutex::new(Slot {
            value: None,
            waker: None,
            sender_gone: false,
        }));
        (Sender(slot.clone()), Receiver(slot))
    }

    impl<T> Sender<T> {
        pub(crate) fn send(self, value: T) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).value = Some(value);
            // Drop wakes the receiver.
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            let waker = {
                let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                slot.sender_gone = true;
                slot.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    impl<T> Future for Receiver<T> {
        type Output = Option<T>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(value) = slot.value.take() {
                return Poll::Ready(Some(value));
            }
            if slot.sender_gone {
                return Poll::Ready(None);
            }
            slot.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::task::Waker;

        fn poll<T>(receiver: &mut Receiver<T>) -> Poll<Option<T>> {
            Pin::new(receiver).poll(&mut Context::from_waker(Waker::noop()))
        }

        #[test]
        fn delivers_a_value_or_tells_the_sender_is_gone() {
            let (sender, mut receiver) = channel();
            assert!(poll(&mut receiver).is_pending());
            sender.send(7);
            assert_eq!(poll(&mut receiver), Poll::Ready(Some(7)));

            let (sender, mut receiver) = channel::<u8>();
            drop(sender);
            assert_eq!(poll(&mut receiver), Poll::Ready(None));
        }
    }
}
