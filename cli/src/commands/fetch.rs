//! `fetch`: read one event envelope and print what fetching its object found.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use monite_webhooks::Event;
use monite_webhooks::client::Resolution;
use monite_webhooks::client::fetch::endpoint;

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// The event envelope (JSON), `-` or nothing for stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,
    /// The parent's id, for a nested object whose envelope does not carry it
    /// (`counterpart_id`, `payable_id`, `approval_policy_id`).
    #[arg(long, value_name = "ID")]
    parent: Option<String>,
}

pub(crate) async fn run(args: FetchArgs, output: Output) -> Result<ExitCode, Failure> {
    let body = super::read_body(&args.file)?;
    let event =
        Event::parse(body).map_err(|e| Failure::usage(format!("not an event envelope: {e}")))?;
    let client = crate::api::client()?;
    let mut fetch = client.fetch(&event);
    if let Some(parent) = args.parent {
        fetch = fetch.parent(parent);
    }
    let resolution = fetch.await?;
    let (object, updated_at, newer, parent) = match &resolution {
        Resolution::Found {
            object,
            updated_at,
            newer_than_event,
            ..
        } => (
            Some(object),
            updated_at.map(|t| t.to_string()),
            *newer_than_event,
            None,
        ),
        Resolution::NeedsParent { parent, .. } => (None, None, None, Some(*parent)),
        _ => (None, None, None, None),
    };
    let report = serde_json::json!({
        "resolution": resolution.name(),
        "object_type": event.object_type().as_str(),
        "path": resolution.path(),
        "object": object,
        "updated_at": updated_at,
        "newer_than_event": newer,
        "parent": parent,
        "deleted_status": match &resolution {
            Resolution::Gone { deleted_status, .. } => deleted_status.as_deref(),
            _ => None,
        },
    });
    output.print(&report, |_| {
        print_text(&event, &resolution, updated_at.as_deref(), newer);
    });
    Ok(ExitCode::SUCCESS)
}

fn print_text(
    event: &Event,
    resolution: &Resolution,
    updated_at: Option<&str>,
    newer: Option<bool>,
) {
    let object_type = event.object_type();
    match resolution {
        Resolution::Found { object, path, .. } => {
            let when = match (updated_at, newer) {
                (Some(at), Some(true)) => format!(", updated {at}, after the event"),
                (Some(at), _) => format!(", updated {at}"),
                (None, _) => String::new(),
            };
            println!("found: GET {path}{when}");
            println!(
                "{}",
                serde_json::to_string_pretty(object).unwrap_or_default()
            );
        }
        Resolution::Gone {
            path,
            deleted_status,
            ..
        } => match deleted_status {
            Some(status) => println!("gone: GET {path} answered status {status:?}"),
            None => println!("gone: GET {path} found nothing"),
        },
        Resolution::NeedsParent { parent, .. } => {
            let template = endpoint(object_type).map_or("", |e| e.path_template());
            println!(
                "needs parent: {template} needs {parent}, which the envelope does not carry; \
                 give it with --parent"
            );
        }
        _ => println!("no endpoint: Monite has no GET for {object_type} objects"),
    }
}
