//! The flag groups several commands share: `--json`, where secrets come from, the keyring
//! file, the entity, and the inbox's database.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use monite_webhooks::Keyring;

use crate::failure::Failure;
use crate::output::Output;
use crate::secrets;

/// The flags of every command.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print results as one JSON document, for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl GlobalArgs {
    pub(crate) const fn output(&self) -> Output {
        Output::new(self.json)
    }
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

/// The keyring file, and whether secrets may be printed; for the commands that change
/// subscriptions.
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

impl KeyringArgs {
    /// The keyring file's path.
    pub(crate) fn path(&self) -> PathBuf {
        secrets::keyring_path(self.keyring.as_deref())
    }

    /// The keyring file's path and contents; an empty keyring if there is no file yet,
    /// unless it `must_exist`.
    pub(crate) fn open(&self, must_exist: bool) -> Result<(PathBuf, Keyring), Failure> {
        let path = self.path();
        let keyring = secrets::load_keyring(&path, must_exist)?;
        Ok((path, keyring))
    }
}

/// API access shared by the commands that call Monite.
#[derive(Debug, Args)]
pub(crate) struct EntityArgs {
    /// The entity whose events and deliveries to read (or `MONITE_ENTITY_ID`).
    #[arg(long, value_name = "ID", env = "MONITE_ENTITY_ID")]
    pub(crate) entity_id: String,
}

/// The PostgreSQL database and namespace of the inbox.
#[derive(Args)]
pub(crate) struct DatabaseArgs {
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
}

// By hand: the connection string may hold a password.
impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &"[redacted]")
            .field("namespace", &self.namespace)
            .finish()
    }
}
