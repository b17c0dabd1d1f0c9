//! `simulate-retries`: one event delivered on Monite's retry schedule, compressed, to
//! watch how a receiver behaves through an outage.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::catalog::{self, EnvelopeIds};
use crate::deliver::{self, Answer};
use crate::failure::{self, Failure};
use crate::options::SecretArgs;
use crate::output::Output;
use crate::secrets;
use crate::time::short_duration;

/// The waits between attempts Monite documents; after the last, every 8 hours.
const INTERVALS_MINUTES: [u64; 9] = [2, 5, 10, 15, 30, 60, 120, 240, 480];
/// Monite retries for a week, then disables the subscription.
const RETRY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// When each attempt is due, from the first: 0, 2 min, 7 min, ... every 8 h to a week.
pub(crate) fn schedule() -> Vec<Duration> {
    let mut offsets = vec![Duration::ZERO];
    let mut at = Duration::ZERO;
    let later = std::iter::repeat(480);
    for minutes in INTERVALS_MINUTES.into_iter().chain(later) {
        at += Duration::from_secs(minutes * 60);
        if at > RETRY_WINDOW {
            break;
        }
        offsets.push(at);
    }
    offsets
}

#[derive(Debug, Serialize)]
struct Attempt {
    attempt: usize,
    /// Offset on Monite's schedule, in seconds.
    scheduled_seconds: u64,
    /// Offset on the compressed clock, in milliseconds.
    real_millis: u64,
    ok: bool,
    #[serde(flatten)]
    answer: Answer,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateRetriesArgs {
    /// Where to deliver.
    #[arg(long, value_name = "URL")]
    to: String,
    /// How many times faster than Monite's schedule (60: a minute takes a second).
    #[arg(long, value_name = "N", default_value_t = 60.0)]
    speedup: f64,
    /// The event to deliver.
    #[arg(
        long,
        value_name = "OBJECT_TYPE.EVENT",
        default_value = "payable.created"
    )]
    event: String,
    #[command(flatten)]
    secrets: SecretArgs,
}

pub(crate) async fn run(args: SimulateRetriesArgs, output: Output) -> Result<ExitCode, Failure> {
    if !(args.speedup.is_finite() && args.speedup >= 1.0) {
        return Err(Failure::usage("--speedup must be a number, 1 or more"));
    }
    deliver::check_url(&args.to, "--to")?;
    let pair = catalog::find(&args.event, false)?;
    let (secret, subscription_id) = secrets::signing(&args.secrets)?;
    let body = catalog::envelope(
        &pair,
        &EnvelopeIds {
            entity_id: None,
            webhook_subscription_id: subscription_id,
        },
    );
    let http = deliver::http_client(Duration::from_secs(30))?;
    let schedule = schedule();
    output.text_line(format_args!(
        "delivering {} to {} on Monite's schedule ({} attempts over a week), {}x faster",
        pair.action(),
        args.to,
        schedule.len(),
        args.speedup
    ));
    let started = Instant::now();
    let mut attempts = Vec::new();
    for (i, offset) in schedule.iter().enumerate() {
        let due = offset.div_f64(args.speedup);
        tokio::time::sleep_until(tokio::time::Instant::from_std(started + due)).await;
        // Each attempt is signed afresh, so the receiver's timestamp check passes.
        let answer = deliver::post_signed(&http, &args.to, body.as_bytes(), &secret).await;
        let attempt = Attempt {
            attempt: i + 1,
            scheduled_seconds: offset.as_secs(),
            real_millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ok: answer.ok(),
            answer,
        };
        output.text_line(format_args!(
            "attempt {:>2} at +{:<9} (real +{:.2}s): {}",
            attempt.attempt,
            short_duration(*offset),
            attempt.real_millis as f64 / 1000.0,
            attempt.answer.describe()
        ));
        let ok = attempt.ok;
        attempts.push(attempt);
        if ok {
            break;
        }
    }
    let delivered = attempts.last().is_some_and(|a| a.ok);
    let summary = if delivered {
        format!(
            "delivered on attempt {}, {} after the event",
            attempts.len(),
            short_duration(schedule[attempts.len() - 1])
        )
    } else {
        format!(
            "not delivered after {} attempts over a week: Monite would now disable the \
             subscription (re-enable it, then replay the missed events)",
            attempts.len()
        )
    };
    let report = serde_json::json!({
        "action": pair.action(),
        "to": args.to,
        "speedup": args.speedup,
        "delivered": delivered,
        "attempts": attempts,
        "summary": summary,
    });
    output.print(&report, |_| println!("{summary}"));
    Ok(failure::outcome(delivered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_follows_the_documented_intervals_for_a_week() {
        let schedule = schedule();
        let minutes: Vec<u64> = schedule.iter().take(11).map(|d| d.as_secs() / 60).collect();
        assert_eq!(minutes, [0, 2, 7, 17, 32, 62, 122, 242, 482, 962, 1442]);
        assert!(schedule.last().is_some_and(|d| *d <= RETRY_WINDOW));
        assert!(*schedule.last().unwrap() + Duration::from_secs(8 * 3600) > RETRY_WINDOW);
        assert_eq!(schedule.len(), 28);
    }
}
