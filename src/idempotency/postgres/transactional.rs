//! Transactional handlers: the handler's writes and the event's done mark commit together,
//! in the service's own PostgreSQL.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::PgConnection;

use super::PostgresStore;
use crate::dispatch::Handler;
use crate::error::BoxError;
use crate::event::Event;
use crate::idempotency::{DEFAULT_RETENTION, KeyScope, MAX_STORE_DURATION};
use crate::inbox::attempt::InboxAttempt;
use crate::inbox::postgres::{Marked, begin_attempt, current_attempt, mark_done_in};
use crate::postgres::span_millis;

/// What a transactional handler returns: its work, boxed, borrowing the transaction (the
/// shape of sqlx's own `Connection::transaction`).
///
/// A handler is a closure `Fn(Event, &mut PgConnection) -> TxFuture<'_>`, that is
/// `|event, tx| Box::pin(async move { … })`; an `async fn handle(event: Event, tx: &mut
/// PgConnection) -> Result<(), BoxError>` of yours becomes one as
/// `|event, tx| Box::pin(handle(event, tx))`. Write through `tx` (`.execute(&mut *tx)`):
/// the writes commit with the event's done mark, or not at all. Do not commit or roll back
/// yourself; return an error (or panic) to roll back.
///
/// A statement that fails inside `tx` aborts the whole transaction, even if you ignore its
/// error: PostgreSQL then refuses every later statement and turns the `COMMIT` into a
/// `ROLLBACK`. The handler is then treated as failed (`500`, nothing marked done, Monite
/// retries), never acknowledged. To try a statement that may fail ("insert if not there
/// yet"), run it in a savepoint, `tx.begin()`, and roll that back:
///
/// ```no_run
/// use sqlx::Connection as _;
/// # async fn handle(event: monite_webhooks::Event, tx: &mut sqlx::PgConnection)
/// #     -> Result<(), monite_webhooks::BoxError> {
/// let mut attempt = tx.begin().await?; // SAVEPOINT
/// match sqlx::query("INSERT INTO ledger (payable_id) VALUES ($1)")
///     .bind(event.object_id())
///     .execute(&mut *attempt)
///     .await
/// {
///     Ok(_) => attempt.commit().await?,     // RELEASE SAVEPOINT
///     Err(_) => attempt.rollback().await?,  // ROLLBACK TO SAVEPOINT: tx goes on
/// }
/// # Ok(()) }
/// ```
///
/// (`INSERT … ON CONFLICT DO NOTHING` is the one-statement way for that case.)
pub type TxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// A handler whose database writes and the event's done mark commit in one transaction:
/// exactly-once effects, even when the process dies at any instant.
///
/// Made by [`PostgresStore::transactional`]; register it with `on`/`on_object` like any
/// handler. For each delivery it
///
/// 1. begins a transaction on the store's pool;
/// 2. inserts the event's key into the handled table. The row is uncommitted, so a
///    concurrent delivery of the same event waits on it, then finds it done (this one
///    committed) or takes it (this one rolled back). If the event is already done, it
///    rolls back and answers `Ok` without running your handler: the receiver says `200`;
/// 3. runs your handler with the transaction;
/// 4. checks, in one round trip, that the transaction is still alive and holds the handled
///    row (a swallowed error aborts it silently; see [`TxFuture`]), then commits. An error,
///    a panic, an aborted transaction or a dropped delivery rolls back (the handled row
///    with it), and the receiver answers `500` so that Monite retries.
///
/// The receiver's own idempotency store still runs in front: it answers duplicates and
/// in-flight deliveries without opening a transaction. The handled table has the last
/// word: a process that commits and dies before the front store marks the event done
/// leaves a claim that expires, and the next delivery finds the handled row and answers
/// `200` without running the handler. Keys follow the receiver's: set the same
/// [`KeyScope`] on both. Id-less 2022 envelopes name no event, so the table records none
/// of them: each delivery runs, its writes still all-or-nothing.
///
/// Run by a worker of an inbox on the same store ([`PostgresInbox`](crate::inbox::PostgresInbox)),
/// it commits the inbox event's done mark instead, fenced on the worker's attempt.
///
/// ```no_run
/// use monite_webhooks::{Dispatcher, Event, EventType, Idempotency, ObjectType, PostgresStore};
/// use monite_webhooks::{Receiver, Secret, Verifier};
///
/// # async fn build(pool: sqlx::PgPool) -> Result<Receiver, monite_webhooks::Error> {
/// let store = PostgresStore::new(pool, "billing")?;
/// store.ensure_schema().await?;
/// let dispatcher = Dispatcher::builder()
///     .on(
///         ObjectType::Payable,
///         EventType::Paid,
///         store.transactional(|event: Event, tx| {
///             Box::pin(async move {
///                 sqlx::query("INSERT INTO payments (payable_id) VALUES ($1)")
///                     .bind(event.object_id())
///                     .execute(&mut *tx)
///                     .await?;
///                 Ok(())
///             })
///         }),
///     )
///     .build();
/// let receiver = Receiver::builder(Verifier::new(Secret::new("whsec_…")?), dispatcher)
///     .idempotency(Idempotency::new(store))
///     .build();
/// # Ok(receiver) }
/// ```
pub struct Transactional<H> {
    store: PostgresStore,
    handler: H,
    // Keys are computed exactly as the receiver computes them, in this scope.
    scope: KeyScope,
    retention: Duration,
}

impl PostgresStore {
    /// Wraps `handler` so that it runs in a transaction on this store's pool, together with
    /// the event's done mark: see [`Transactional`] and [`TxFuture`].
    pub fn transactional<H>(&self, handler: H) -> Transactional<H>
    where
        H: for<'a> Fn(Event, &'a mut PgConnection) -> TxFuture<'a> + Send + Sync + 'static,
    {
        Transactional::new(self.clone(), handler)
    }
}

impl<H> Transactional<H> {
    pub(crate) fn new(store: PostgresStore, handler: H) -> Self {
        Self {
            scope: KeyScope::default(),
            store,
            handler,
            retention: DEFAULT_RETENTION,
        }
    }

    /// Which deliveries count as the same event; the same as the receiver's
    /// [`Idempotency::with_scope`](crate::Idempotency::with_scope). Defaults to [`KeyScope::PerEvent`].
    #[must_use]
    pub fn with_scope(mut self, scope: KeyScope) -> Self {
        self.scope = scope;
        self
    }

    /// How long the handled table remembers a handled event. Defaults to [`DEFAULT_RETENTION`]
    /// (8 days, Monite's week of retries plus margin); at most [`MAX_STORE_DURATION`].
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention.min(MAX_STORE_DURATION);
        self
    }
}

impl<H> Handler for Transactional<H>
where
    H: for<'a> Fn(Event, &'a mut PgConnection) -> TxFuture<'a> + Send + Sync + 'static,
{
    async fn call(&self, event: Event) -> Result<(), BoxError> {
        if let Some(attempt) = current_attempt(self.store.database().tables()) {
            return self.call_in_inbox(event, &attempt).await;
        }
        self.store.prune_if_due();
        let mut tx = self.store.pool().begin().await?;
        // An id-less 2022 envelope names no event to record: its writes still commit
        // together, but each delivery runs, as the receiver runs it.
        // Legacy envelopes are not deduplicated here, as by the receiver's default.
        let key = self
            .scope
            .key(&event, false)
            .map(|key| self.store.stored_key(&key));
        if let Some(key) = &key {
            let fresh = sqlx::query(self.store.handled_claim_sql())
                .bind(key)
                .bind(span_millis(self.retention))
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !fresh {
                // Done by an earlier delivery. Nothing was written: dropping rolls back.
                drop(tx);
                return Ok(());
            }
        }
        (self.handler)(event, &mut tx).await?;
        // PostgreSQL answers the COMMIT of an aborted transaction (a statement failed and
        // the handler swallowed the error) with ROLLBACK and no error, and sqlx reports
        // success: ask first. In an aborted transaction any statement fails (SQLSTATE
        // 25P02); the handled row is gone too if the handler ended the transaction itself.
        let alive = match &key {
            Some(key) => sqlx::query(self.store.handled_check_sql())
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map(|row| row.is_some()),
            None => sqlx::query("SELECT 1")
                .execute(&mut *tx)
                .await
                .map(|_| true),
        };
        match alive {
            Ok(true) => {}
            Ok(false) => return Err(NotCommitted::Ended.into()),
            Err(e) => return Err(Box::new(NotCommitted::Aborted(e))),
        }
        tx.commit().await?;
        Ok(())
    }
}

impl<H> Transactional<H>
where
    H: for<'a> Fn(Event, &'a mut PgConnection) -> TxFuture<'a> + Send + Sync + 'static,
{
    /// Run by an inbox worker: the fenced done mark of this attempt replaces the handled
    /// row, and commits with the handler's writes. A lapsed lease (another worker took the
    /// event over) matches no row, and everything rolls back.
    async fn call_in_inbox(&self, event: Event, attempt: &InboxAttempt) -> Result<(), BoxError> {
        let mut tx = begin_attempt(self.store.pool(), attempt).await?;
        (self.handler)(event, &mut tx).await?;
        match mark_done_in(&mut tx, self.store.database().tables(), attempt).await {
            Ok(Marked::Done) => {}
            Ok(Marked::LeaseLost) => return Err(NotCommitted::LeaseLost.into()),
            Ok(Marked::Ended) => return Err(NotCommitted::Ended.into()),
            Err(e) => return Err(Box::new(NotCommitted::Aborted(e))),
        }
        tx.commit().await?;
        attempt.mark_completed();
        Ok(())
    }
}

/// A transactional handler returned `Ok`, but its transaction could not commit.
#[derive(Debug)]
enum NotCommitted {
    /// A statement failed inside the transaction and the handler went on.
    Aborted(sqlx::Error),
    /// The handler ended the transaction itself (a raw `COMMIT` or `ROLLBACK`).
    Ended,
    /// An inbox worker's lease lapsed and another attempt holds the event now.
    LeaseLost,
}

impl fmt::Display for NotCommitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Aborted(_) => {
                "the handler returned Ok, but a statement in its transaction had failed, \
                 so nothing was committed (use a savepoint, `tx.begin()`, to try a statement)"
            }
            Self::Ended => {
                "the handler ended its transaction itself, so its writes and the done mark \
                 did not commit together"
            }
            Self::LeaseLost => {
                "the attempt's lease lapsed and another attempt holds the event, so nothing \
                 was committed"
            }
        })
    }
}

impl std::error::Error for NotCommitted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Aborted(e) => Some(e),
            Self::Ended | Self::LeaseLost => None,
        }
    }
}

impl<H> fmt::Debug for Transactional<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transactional")
            .field("store", &self.store)
            .field("scope", &self.scope)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}
