//! The command line, as clap derives it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sign, verify, send, receive and replay Monite webhooks.
///
/// Secrets come from `--secret-file` (or `--secret`), else `MONITE_WEBHOOK_SECRETS`
/// (`<subscription_id>=<whsec_...>,...`), `MONITE_WEBHOOK_SECRET` (comma-separated, current
/// first) and the keyring file (`--keyring`, `MONITE_WEBHOOK_KEYRING`, or
/// `monite-webhooks-keyring.json` here), which `subscriptions` writes. They are never
/// printed. API credentials come from `MONITE_CLIENT_ID`, `MONITE_CLIENT_SECRET` and
/// `MONITE_ENVIRONMENT` (`sandbox` by default, `eu`, `na`, or a base URL).
#[derive(Debug, Parser)]
#[command(name = "monite-webhooks", version, about, long_about)]
pub(crate) struct Cli {
    /// Print results as one JSON document, for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the `Monite-Signature` value for a body.
    Sign(SignArgs),
    /// Check a `Monite-Signature` value against a body, and explain a mismatch.
    Verify(VerifyArgs),
    /// POST a realistic signed event of any documented type to a URL.
    Send(SendArgs),
    /// Receive deliveries locally: print each verified event, explain each rejection.
    Listen(ListenArgs),
    /// Deliver one event on Monite's retry schedule, compressed, until it is acknowledged.
    SimulateRetries(SimulateRetriesArgs),
    /// The delivery log (`GET /webhook_deliveries`) as a table.
    Deliveries(DeliveriesArgs),
    /// Re-send events from `GET /events` to a URL, signed with the local secret, in order.
    Replay(ReplayArgs),
    /// Webhook subscriptions: list, create, ensure, enable, disable, regenerate, delete.
    Subscriptions(SubscriptionsArgs),
    /// Sweep every entity's events and POST those in each window, signed, in order;
    /// `reconcile status` prints the checkpoints.
    Reconcile(ReconcileArgs),
    /// Print each disabled subscription, and re-enable it with `--reenable`.
    Watch(WatchArgs),
    /// The durable inbox in PostgreSQL: status, list, show, retry, replay, purge.
    Inbox(InboxArgs),
}

/// Where secrets come from; shared by every command that signs or verifies.
#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// A signing secret (`whsec_...`); repeat it to accept several. Overrides the
    /// environment. Prefer `--secret-file` or the environment: command lines are visible to
    /// other users (`ps`) and kept in shell history.
    #[arg(long = "secret", value_name = "SECRET", hide_default_value = true)]
    pub(crate) secrets: Vec<String>,

    /// A file of signing secrets, one per line (blank lines skipped), `-` for stdin; repeat
    /// it for several files. Taken with any `--secret`, after them, and likewise overrides
    /// the environment.
    #[arg(long = "secret-file", value_name = "PATH")]
    pub(crate) secret_files: Vec<PathBuf>,

    /// Use the secret of this subscription, from `MONITE_WEBHOOK_SECRETS`; when sending,
    /// also the envelope's `webhook_subscription_id`.
    #[arg(long, value_name = "ID")]
    pub(crate) subscription_id: Option<String>,

    /// How a `whsec_...` string becomes the HMAC key (the keyring file says its own).
    #[arg(long, value_enum, default_value_t = Convention::Raw)]
    pub(crate) convention: Convention,

    /// The keyring file (or `MONITE_WEBHOOK_KEYRING`; by default
    /// `monite-webhooks-keyring.json` here, if it exists).
    #[arg(long, value_name = "PATH")]
    pub(crate) keyring: Option<PathBuf>,
}

/// The library's two key conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Convention {
    /// The secret's bytes as given, `whsec_` included (the default).
    Raw,
    /// Base64 of what follows `whsec_` (Standard Webhooks / Svix).
    WhsecBase64,
}

impl From<Convention> for monite_webhooks::signature::KeyConvention {
    fn from(convention: Convention) -> Self {
        match convention {
            Convention::Raw => Self::Raw,
            Convention::WhsecBase64 => Self::WhsecBase64,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// Unix seconds to sign at; now by default.
    #[arg(long, value_name = "T")]
    pub(crate) timestamp: Option<u64>,
    /// The body, signed byte for byte (`-` for stdin).
    #[arg(value_name = "BODY_FILE")]
    pub(crate) body_file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// The `Monite-Signature` value (a whole `Monite-Signature: ...` line is accepted).
    #[arg(long, value_name = "VALUE")]
    pub(crate) signature: String,
    /// Unix seconds to check the timestamp against; now by default.
    #[arg(long, value_name = "T")]
    pub(crate) at: Option<u64>,
    /// Timestamp tolerance in seconds, either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub(crate) tolerance: u64,
    /// The body exactly as received (`-` for stdin).
    #[arg(value_name = "BODY_FILE")]
    pub(crate) body_file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The event, as `OBJECT_TYPE.EVENT` (`counterpart.created`,
    /// `entity.onboarding_requirements.updated`); see `--list`.
    #[arg(value_name = "OBJECT_TYPE.EVENT", required_unless_present_any = ["all", "list", "body_file"])]
    pub(crate) event: Option<String>,
    /// Send every documented event, one after the other.
    #[arg(long, conflicts_with_all = ["event", "body_file"])]
    pub(crate) all: bool,
    /// Print the documented events and exit.
    #[arg(long, conflicts_with_all = ["event", "all", "body_file"])]
    pub(crate) list: bool,
    /// Send this body instead of a generated envelope.
    #[arg(long, value_name = "FILE")]
    pub(crate) body_file: Option<PathBuf>,
    /// Where to POST.
    #[arg(long, value_name = "URL", required_unless_present = "list")]
    pub(crate) to: Option<String>,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// Deliver the same event this many times in all (same id, freshly signed each time).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) repeat: u32,
    /// How many deliveries are in flight at once.
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,
    /// The envelope's `entity_id`; random by default.
    #[arg(long, value_name = "ID")]
    pub(crate) entity_id: Option<String>,
    /// Also send events the catalog does not document.
    #[arg(long)]
    pub(crate) allow_undocumented: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Address to listen on; every path takes deliveries.
    #[arg(long, value_name = "A", default_value = "127.0.0.1:3000")]
    pub(crate) addr: SocketAddr,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// Forward each verified delivery, raw body re-signed, to this URL, and answer with its
    /// status.
    #[arg(long, value_name = "URL")]
    pub(crate) forward_to: Option<String>,
    /// The secret `--forward-to` verifies with; the first listening secret by default.
    /// Prefer `--forward-secret-file`: command lines are visible to other users.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "forward_to",
        conflicts_with = "forward_secret_file"
    )]
    pub(crate) forward_secret: Option<String>,
    /// A file whose first non-blank line is the `--forward-to` secret, `-` for stdin.
    #[arg(long, value_name = "PATH", requires = "forward_to")]
    pub(crate) forward_secret_file: Option<PathBuf>,
    /// Print each event's body, indented, under its line.
    #[arg(long)]
    pub(crate) pretty: bool,
    /// Timestamp tolerance in seconds, either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub(crate) tolerance: u64,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateRetriesArgs {
    /// Where to deliver.
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,
    /// How many times faster than Monite's schedule (60: a minute takes a second).
    #[arg(long, value_name = "N", default_value_t = 60.0)]
    pub(crate) speedup: f64,
    /// The event to deliver.
    #[arg(
        long,
        value_name = "OBJECT_TYPE.EVENT",
        default_value = "payable.created"
    )]
    pub(crate) event: String,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
}

/// API access shared by the commands that call Monite.
#[derive(Debug, Args)]
pub(crate) struct EntityArgs {
    /// The entity whose events and deliveries to read (or `MONITE_ENTITY_ID`).
    #[arg(long, value_name = "ID", env = "MONITE_ENTITY_ID")]
    pub(crate) entity_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct DeliveriesArgs {
    #[command(flatten)]
    pub(crate) entity: EntityArgs,
    /// Only deliveries that failed.
    #[arg(long)]
    pub(crate) failed: bool,
    /// Only deliveries since this time: RFC 3339, Unix seconds, or an age (`30m`, `2h`, `7d`).
    #[arg(long, value_name = "T")]
    pub(crate) since: Option<String>,
    /// Only deliveries of this event.
    #[arg(long, value_name = "ID")]
    pub(crate) event_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    pub(crate) entity: EntityArgs,
    /// Events created since this time: RFC 3339, Unix seconds, or an age (`30m`, `2h`, `7d`).
    #[arg(long, value_name = "T", required_unless_present = "resume_from")]
    pub(crate) since: Option<String>,
    /// Events created until this time (same forms).
    #[arg(long, value_name = "T")]
    pub(crate) until: Option<String>,
    /// Only this object type.
    #[arg(long, value_name = "O")]
    pub(crate) object_type: Option<String>,
    /// Where to POST them.
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
    /// Continue a stopped replay from the page it printed.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) resume_from: Option<String>,
    /// Only events whose delivery the delivery log shows as failed.
    #[arg(long)]
    pub(crate) failed_only: bool,
    /// Events per page; a replay resumes at page boundaries.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub(crate) page_size: u8,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ReconcileArgs {
    #[command(subcommand)]
    pub(crate) status: Option<ReconcileStatus>,
    /// Where to POST the events (required to sweep).
    #[arg(long, value_name = "URL")]
    pub(crate) to: Option<String>,
    /// The checkpoint file, one line per entity.
    #[arg(long, value_name = "FILE", default_value = "monite-reconcile.state")]
    pub(crate) state: std::path::PathBuf,
    /// One cycle, then exit (the default).
    #[arg(long, conflicts_with = "every")]
    pub(crate) once: bool,
    /// A cycle every DURATION (`90s`, `5m`, `1h`), until interrupted.
    #[arg(long, value_name = "DURATION")]
    pub(crate) every: Option<String>,
    /// Where an entity without a checkpoint starts: an age or a time within the last 8 days
    /// (what the receiver remembers); 24 h ago by default.
    #[arg(long, value_name = "T")]
    pub(crate) since: Option<String>,
    /// The least lookback before each checkpoint; 15 minutes by default.
    #[arg(long, value_name = "DURATION")]
    pub(crate) lookback: Option<String>,
    /// Requests per second to Monite, at most.
    #[arg(long, value_name = "N", default_value_t = 6.0)]
    pub(crate) max_rate: f64,
    /// Only this entity (repeatable); every entity of `GET /entities` otherwise.
    #[arg(long = "entity", value_name = "ID")]
    pub(crate) entities: Vec<String>,
    /// List what would be sent; send nothing, save no checkpoint.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) secrets: SecretArgs,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// One check, then exit: 1 while a subscription stays disabled (the default).
    #[arg(long, conflicts_with = "every")]
    pub(crate) once: bool,
    /// A check every DURATION (`60s`, `5m`), until interrupted.
    #[arg(long, value_name = "DURATION")]
    pub(crate) every: Option<String>,
    /// Re-enable each disabled subscription at once.
    #[arg(long)]
    pub(crate) reenable: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReconcileStatus {
    /// The checkpoints, their lag, and the last error per entity.
    Status {
        /// The checkpoint file.
        #[arg(long, value_name = "FILE", default_value = "monite-reconcile.state")]
        state: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SubscriptionsArgs {
    #[command(subcommand)]
    pub(crate) command: SubscriptionsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubscriptionsCommand {
    /// Every subscription, enabled or not, and whether the keyring file holds its secret.
    List(KeyringArgs),
    /// Create a subscription; its secret (returned only now) goes to the keyring file.
    Create(CreateArgs),
    /// One enabled subscription per object type for a URL, every secret in the keyring
    /// file: creates what is missing, enables what is disabled, and, with
    /// `--regenerate-missing`, regenerates the secret of any the keyring file does not hold.
    /// Reports duplicates, subscriptions for the URL of other object types, and object types
    /// Monite refuses (all left alone); exits 1 unless every one is ready.
    Ensure(EnsureArgs),
    /// Enable a subscription (Monite disables one after a week of failures).
    Enable(SubscriptionId),
    /// Disable a subscription: Monite stops sending its events.
    Disable(SubscriptionId),
    /// Replace a subscription's secret; the keyring file keeps the old one as previous.
    Regenerate(SubscriptionIdWithKeyring),
    /// Delete a subscription, and its secrets from the keyring file.
    Delete(SubscriptionIdWithKeyring),
}

#[derive(Debug, Args)]
pub(crate) struct SubscriptionId {
    /// The subscription's id.
    pub(crate) id: String,
}

#[derive(Debug, Args)]
pub(crate) struct SubscriptionIdWithKeyring {
    /// The subscription's id.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) keyring: KeyringArgs,
}

/// The keyring file, and whether secrets may be printed.
#[derive(Debug, Args)]
pub(crate) struct KeyringArgs {
    /// The keyring file (or `MONITE_WEBHOOK_KEYRING`; by default
    /// `monite-webhooks-keyring.json` here).
    #[arg(long, value_name = "PATH")]
    pub(crate) keyring: Option<PathBuf>,
    /// Also print new secrets (they are always written to the keyring file).
    #[arg(long)]
    pub(crate) show_secret: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The object type (`payable`, `counterpart`, ...).
    #[arg(long, value_name = "O")]
    pub(crate) object_type: String,
    /// Where Monite sends the events (public HTTPS).
    #[arg(long, value_name = "URL")]
    pub(crate) url: String,
    /// Only these events (repeat it); every event of the object type by default.
    #[arg(long = "event", value_name = "EVENT")]
    pub(crate) events: Vec<String>,
    #[command(flatten)]
    pub(crate) keyring: KeyringArgs,
}

#[derive(Debug, Args)]
pub(crate) struct EnsureArgs {
    /// Where Monite sends the events (public HTTPS).
    #[arg(long, value_name = "URL")]
    pub(crate) url: String,
    /// These object types (repeat it); by default every one Monite's API accepts.
    #[arg(long = "object-type", value_name = "O")]
    pub(crate) object_types: Vec<String>,
    /// Regenerate the secret of a subscription the keyring file does not hold. Monite
    /// invalidates the old secret at once, so every receiver still holding it refuses
    /// deliveries: the count is printed first, and it is refused when the keyring file does
    /// not exist or holds no secret of the URL's subscriptions (the wrong file, most likely).
    #[arg(long, conflicts_with = "no_regenerate")]
    pub(crate) regenerate_missing: bool,
    /// Leave a subscription whose secret the keyring file does not hold as it is (reported
    /// as not ready). The default now; accepted for scripts that pass it.
    #[arg(long)]
    pub(crate) no_regenerate: bool,
    #[command(flatten)]
    pub(crate) keyring: KeyringArgs,
}

#[derive(Args)]
pub(crate) struct InboxArgs {
    /// The PostgreSQL holding the inbox (`postgres://user:password@host/database`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,

    /// The service's namespace, as its `PostgresStore` names it.
    #[arg(
        long,
        env = "MONITE_WEBHOOK_NAMESPACE",
        default_value = "monite-webhooks-example"
    )]
    pub(crate) namespace: String,

    #[command(subcommand)]
    pub(crate) command: InboxCommand,
}

// By hand: the connection string may hold a password.
impl std::fmt::Debug for InboxArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxArgs")
            .field("database_url", &"[redacted]")
            .field("namespace", &self.namespace)
            .field("command", &self.command)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// Events by state, and the age of the oldest pending one.
    Status,
    /// The newest events, in one state if given.
    List {
        /// `pending`, `running`, `done` or `dead`.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One event, with its body.
    Show {
        /// The event's row id (from `list`).
        id: i64,
    },
    /// Make one done or dead event pending again, with a fresh set of attempts.
    Retry {
        /// The event's row id (from `list`).
        id: i64,
    },
    /// Make every matching event pending again, below live events: dead ones unless
    /// `--state` says otherwise. Prints the matching events by state first; only counts
    /// with `--dry-run`.
    Replay {
        /// Received at or after (RFC 3339, a date, Unix seconds, or an age such as 2h).
        #[arg(long)]
        since: Option<String>,
        /// Received before.
        #[arg(long)]
        until: Option<String>,
        /// Of this object type (`payable`).
        #[arg(long)]
        object_type: Option<String>,
        /// Of this event (`payable.created`).
        #[arg(long)]
        event: Option<String>,
        /// In this state: `dead` (the default), `done` (their handlers run again),
        /// `pending`, or `all` (every state but running).
        #[arg(long, default_value = "dead", value_parser = ["dead", "done", "pending", "all"])]
        state: String,
        /// Only count what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead events received before an age.
    Purge {
        /// Dead events (the only ones purged by hand; done rows keep the dedup keys).
        #[arg(long, required = true)]
        dead: bool,
        /// Received more than this long ago (`90s`, `30m`, `2h`, `7d`, `2w`).
        #[arg(long)]
        older_than: String,
    },
    /// Stop every worker of the namespace, in every process, from claiming; accepting
    /// goes on.
    Pause,
    /// Let the workers claim again after `pause`.
    Resume,
}
