//! Clock and RFC 3339, without a date crate: the tool needs UTC formatting and ages only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, as a duration since the Unix epoch.
pub(crate) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, in whole Unix seconds.
pub(crate) fn unix_now() -> u64 {
    now().as_secs()
}

/// `2024-05-01T10:00:00.123456+00:00`, the form Monite's `created_at` takes.
pub(crate) fn rfc3339_micros(since_epoch: Duration) -> String {
    let (date, clock) = civil(since_epoch.as_secs());
    format!("{date}T{clock}.{:06}+00:00", since_epoch.subsec_micros())
}

/// `2024-05-01T10:00:00Z`.
pub(crate) fn rfc3339(unix: u64) -> String {
    let (date, clock) = civil(unix);
    format!("{date}T{clock}Z")
}

fn civil(unix: u64) -> (String, String) {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let seconds = unix % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds % 3600 / 60,
            seconds % 60
        ),
    )
}

/// A time given on the command line, as the RFC 3339 text Monite's filters take: RFC 3339
/// (passed through), a date (`2024-05-01`, midnight UTC), Unix seconds, or an age before now
/// (`90s`, `30m`, `2h`, `7d`, `2w`). clap's `value_parser` of `--since` and `--until`; the
/// error is what clap prints after the flag and value.
pub(crate) fn parse_time(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = || {
        "not a time: give RFC 3339 (2024-05-01T00:00:00Z), a date, Unix seconds, or an age \
         such as 30m, 2h or 7d"
            .to_owned()
    };
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(rfc3339).map_err(|_| bad());
    }
    if let Some(age) = parse_age(text) {
        return Ok(rfc3339(unix_now().saturating_sub(age.as_secs())));
    }
    let date_shaped = text.len() >= 10
        && text.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    match text.len() {
        10 if date_shaped => Ok(format!("{text}T00:00:00Z")),
        n if n > 10 && date_shaped && text.as_bytes()[10].eq_ignore_ascii_case(&b't') => {
            Ok(text.to_owned())
        }
        _ => Err(bad()),
    }
}

/// As [`parse_time`], as a timestamp: what the inbox's filters take. clap's `value_parser`.
pub(crate) fn parse_timestamp(text: &str) -> Result<monite_webhooks::jiff::Timestamp, String> {
    let time = parse_time(text)?;
    time.parse()
        .map_err(|_| format!("not a time: {time} has no UTC offset (add Z or +00:00)"))
}

/// An interval such as `--every`'s: `90s`, `5m`, `1h`, `7d`. clap's `value_parser`.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    parse_age(text.trim()).ok_or_else(|| "not a duration such as 90s, 5m or 1h".to_owned())
}

/// An age such as `--older-than`'s: `30m`, `2h`, `7d`. clap's `value_parser`.
pub(crate) fn parse_age_arg(text: &str) -> Result<Duration, String> {
    parse_age(text.trim()).ok_or_else(|| "not an age such as 30m, 2h or 7d".to_owned())
}

/// `90s`, `30m`, `2h`, `7d`, `2w`.
pub(crate) fn parse_age(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

/// `1h02m`, `7m30s`, `12s`: a schedule offset, short.
pub(crate) fn short_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    match (days, hours, minutes, seconds) {
        (0, 0, 0, s) => format!("{s}s"),
        (0, 0, m, 0) => format!("{m}m"),
        (0, 0, m, s) => format!("{m}m{s:02}s"),
        (0, h, m, _) => format!("{h}h{m:02}m"),
        (d, h, m, _) => format!("{d}d{h:02}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_557_600), "2024-05-01T10:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339_micros(Duration::new(1_714_557_600, 123_456_000)),
            "2024-05-01T10:00:00.123456+00:00"
        );
    }

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(
            parse_time("2024-05-01").ok().as_deref(),
            Some("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            parse_time("2024-05-01T10:00:00+02:00").ok().as_deref(),
            Some("2024-05-01T10:00:00+02:00")
        );
        assert_eq!(
            parse_time("1714557600").ok().as_deref(),
            Some("2024-05-01T10:00:00Z")
        );
        assert!(parse_time("2h").is_ok());
        for bad in ["", "yesterday", "2024-5-1", "12x"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_age("2h"), Some(Duration::from_secs(7200)));
    }

    #[test]
    fn short_durations_read_naturally() {
        assert_eq!(short_duration(Duration::from_secs(0)), "0s");
        assert_eq!(short_duration(Duration::from_secs(120)), "2m");
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(short_duration(Duration::from_secs(7 * 86_400)), "7d00h00m");
    }
}
