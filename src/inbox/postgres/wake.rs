//! Wake-ups for idle workers, so that an accepted event need not wait for the next poll:
//! workers of this process hear each acceptance directly, and workers of other processes
//! hear a `NOTIFY`, sent after the accepting commit in a statement of its own and at most
//! once per [`PING_COOLDOWN`]. Both only shortcut the poll: a wake-up lost to a dropped
//! connection costs at most one poll interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::observe;

/// The channel every inbox notifies on; the payload names the table and namespace.
const CHANNEL: &str = "monite_webhooks_inbox";
/// The least time between two notifications from one process. A `NOTIFY` takes a lock
/// every notifying commit in the cluster waits for, so a burst of acceptances sends one.
pub(super) const PING_COOLDOWN: Duration = Duration::from_millis(50);
/// How long a listener that lost its connection waits before it connects again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

type WakeFn = Arc<dyn Fn() + Send + Sync>;

pub(super) struct Wake {
    /// Where the `NOTIFY` goes: the accepting side's pool.
    ping_pool: PgPool,
    /// Where the listener holds its connection: the workers' pool.
    pool: PgPool,
    payload: Arc<str>,
    local: Mutex<Vec<WakeFn>>,
    ping: Arc<Notify>,
    pinger: OnceLock<()>,
    closed: Arc<AtomicBool>,
}

impl Wake {
    pub(super) fn new(ping_pool: PgPool, pool: PgPool, events: &str, namespace: &str) -> Self {
        Self {
            ping_pool,
            pool,
            payload: format!("{events} {namespace}").into(),
            local: Mutex::default(),
            ping: Arc::new(Notify::new()),
            pinger: OnceLock::new(),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// An event was written: wakes this process's workers now, and other processes'
    /// within the cooldown.
    pub(super) fn accepted(&self) {
        for wake in self
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            wake();
        }
        self.pinger.get_or_init(|| self.start_pinger());
        // A stored permit: acceptances during a notification coalesce into one more.
        self.ping.notify_one();
    }

    fn start_pinger(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, payload) = (self.ping_pool.clone(), Arc::clone(&self.payload));
        let (ping, closed) = (Arc::clone(&self.ping), Arc::clone(&self.closed));
        runtime.spawn(async move {
            loop {
                ping.notified().await;
                if closed.load(Ordering::Acquire) {
                    return;
                }
                let sent = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(&*payload)
                    .execute(&pool)
                    .await;
                if let Err(e) = sent {
                    observe::inbox::trouble("wake-up", &format!("NOTIFY failed: {e}"));
                }
                tokio::time::sleep(PING_COOLDOWN).await;
            }
        });
    }

    /// Calls `wake` on every acceptance through this inbox and, with `remote`, on every
    /// notification for its table and namespace, until dropped. Listening holds one
    /// connection of the pool.
    pub(super) async fn watch(&self, wake: WakeFn, remote: bool) {
        let _registered = Registered::new(&self.local, Arc::clone(&wake));
        if !remote {
            return std::future::pending().await;
        }
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            match listening.await {
                Ok(mut listener) => {
                    // Events accepted while nobody listened are found by this look.
                    wake();
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(note)) if note.payload() == &*self.payload => wake(),
                            Ok(Some(_)) => {}
                            // Reconnected: notifications sent meanwhile were lost.
                            Ok(None) => wake(),
                            Err(e) => {
                                observe::inbox::trouble(
                                    "wake-up",
                                    &format!("LISTEN failed, polling only until it is back: {e}"),
                                );
                                break;
                            }
                        }
                    }
                }
                Err(e) => observe::inbox::trouble(
                    "wake-up",
                    &format!("cannot LISTEN, polling only until it can: {e}"),
                ),
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.ping.notify_one();
    }
}

/// A local wake-up, removed when the watch that added it ends.
struct Registered<'a> {
    local: &'a Mutex<Vec<WakeFn>>,
    wake: WakeFn,
}

impl<'a> Registered<'a> {
    fn new(local: &'a Mutex<Vec<WakeFn>>, wake: WakeFn) -> Self {
        local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&wake));
        Self { local, wake }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|wake| !Arc::ptr_eq(wake, &self.wake));
    }
}
