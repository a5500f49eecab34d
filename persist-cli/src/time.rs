//! Formatting of the envelope's timestamps (nanoseconds since the Unix epoch, UTC).

use std::time::{Duration, UNIX_EPOCH};

/// Formats nanoseconds since the Unix epoch as RFC 3339 UTC with milliseconds,
/// e.g. `2025-12-20T09:30:00.125Z`.
pub fn rfc3339(nanos: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_nanos(nanos);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

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
