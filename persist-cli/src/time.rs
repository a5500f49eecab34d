//! Formatting of the envelope's timestamps (nanoseconds since the Unix epoch, UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats nanoseconds since the Unix epoch as RFC 3339 UTC with milliseconds,
/// e.g. `2025-12-20T09:30:00.125Z`.
pub fn rfc3339(nanos: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_nanos(nanos);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Nanoseconds since the Unix epoch of `at` (0 before the epoch).
pub fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// How long ago `at` was, at whole-second precision (zero if it is in the future).
pub fn age(at: SystemTime) -> Duration {
    let elapsed = SystemTime::now().duration_since(at).unwrap_or_default();
    Duration::from_secs(elapsed.as_secs())
}

/// An age for people: `0s`, `42s`, `5m 3s`, `2h 10m`, `3days 4h` (humantime's units, the
/// two largest only).
pub fn human_age(age: Duration) -> String {
    let text = humantime::format_duration(Duration::from_secs(age.as_secs())).to_string();
    text.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{human_age, rfc3339};

    #[test]
    fn ages() {
        assert_eq!(human_age(Duration::from_millis(300)), "0s");
        assert_eq!(human_age(Duration::from_secs(42)), "42s");
        assert_eq!(human_age(Duration::from_secs(5 * 60 + 3)), "5m 3s");
        assert_eq!(
            human_age(Duration::from_secs(2 * 3600 + 10 * 60 + 7)),
            "2h 10m"
        );
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29T12:34:56.789Z (a leap day in a century leap year).
        assert_eq!(rfc3339(951_827_696_789_000_000), "2000-02-29T12:34:56.789Z");
        // 2025-12-20T00:00:00Z.
        assert_eq!(
            rfc3339(1_766_188_800_000_000_000),
            "2025-12-20T00:00:00.000Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709Z");
    }
}
