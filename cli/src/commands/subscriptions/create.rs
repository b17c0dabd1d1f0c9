//! `subscriptions create`: a new subscription, its secret (returned only now) saved to the
//! keyring file.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::client::{Client, NewSubscription};
use monite_webhooks::{EventType, ObjectType};

use crate::failure::Failure;
use crate::options::KeyringArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The object type (`payable`, `counterpart`, ...).
    #[arg(long, value_name = "O")]
    object_type: String,
    /// Where Monite sends the events (public HTTPS).
    #[arg(long, value_name = "URL")]
    url: String,
    /// Only these events (repeat it); every event of the object type by default.
    #[arg(long = "event", value_name = "EVENT")]
    events: Vec<String>,
    #[command(flatten)]
    keyring: KeyringArgs,
}

pub(crate) async fn run(
    client: &Client,
    args: &CreateArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let (path, mut keyring) = args.keyring.open(false)?;
    let created = client
        .webhook_subscriptions()
        .create(&new_subscription(args))
        .await?;
    keyring.insert(created.subscription.id.clone(), created.secret.clone());
    super::save_and_report(&keyring, &path, &created, "created", &args.keyring, output)
}

fn new_subscription(args: &CreateArgs) -> NewSubscription {
    let new = NewSubscription::new(
        ObjectType::from(args.object_type.as_str()),
        args.url.clone(),
    );
    if args.events.is_empty() {
        return new;
    }
    new.event_types(args.events.iter().map(|e| EventType::from(e.as_str())))
}
