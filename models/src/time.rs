//! Times of PROTOCOL.md section 1: timestamp strings (decimal seconds, six
//! decimals when the node writes them) and dates (RFC 3339 UTC, exactly six
//! fractional digits, `Z`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use time::{Date, OffsetDateTime, UtcOffset};

/// An instant with microsecond precision, counted from the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Micros(pub i64);

impl Micros {
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
        Self(d.as_micros() as i64)
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Self((secs * 1_000_000.0).round() as i64)
    }

    pub fn whole_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// The timestamp string the node writes: exactly six decimals.
    pub fn to_timestamp_string(self) -> String {
        format!("{}.{:06}", self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000))
    }

    /// RFC 3339 UTC with exactly six fractional digits and `Z`.
    pub fn to_rfc3339(self) -> String {
        let dt = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )
    }

    /// Parses a date in the one form this project writes (see [`Self::to_rfc3339`]).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 27 || bytes[26] != b'Z' || bytes[19] != b'.' {
            return None;
        }
        let dt = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        let micros = dt.unix_timestamp_nanos() / 1000;
        let parsed = Self(i64::try_from(micros).ok()?);
        (parsed.to_rfc3339() == text).then_some(parsed)
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1000)
            .expect("micros since the epoch fit a date")
            .to_offset(UtcOffset::UTC)
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A timestamp string as a client or the node wrote it, with its exact value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TimestampString {
    text: String,
    nanos: i128,
}

impl TimestampString {
    /// Accepts `^[0-9]{1,12}(\.[0-9]{1,9})?$` and nothing else.
    pub fn parse(text: &str) -> Option<Self> {
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole, 12) || frac.is_some_and(|f| !digits(f, 9)) {
            return None;
        }
        let secs: i128 = whole.parse().ok()?;
        let frac_nanos: i128 = match frac {
            Some(f) => format!("{f:0<9}").parse().ok()?,
            None => 0,
        };
        Some(Self { text: text.to_owned(), nanos: secs * 1_000_000_000 + frac_nanos })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn nanos(&self) -> i128 {
        self.nanos
    }
}

/// A UTC day, as `messageByDate` takes it (`YYYY-MM-DD`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Day(Date);

impl Day {
    pub fn parse(text: &str) -> Option<Self> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        if text.len() != 10 {
            return None;
        }
        Date::parse(text, &fmt).ok().map(Self)
    }

    /// The half-open range `[start, end)` of the day.
    pub fn range(self) -> (Micros, Micros) {
        let start = self.0.midnight().assume_utc().unix_timestamp() * 1_000_000;
        (Micros(start), Micros(start + 86_400 * 1_000_000))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), u8::from(self.0.month()), self.0.day())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_timestamps_have_exactly_six_decimals() {
        assert_eq!(Micros(1_700_000_000_123_456).to_timestamp_string(), "1700000000.123456");
        assert_eq!(Micros(1_700_000_000_000_001).to_timestamp_string(), "1700000000.000001");
    }

    #[test]
    fn dates_are_rfc3339_with_microseconds_and_round_trip() {
        let m = Micros(1_700_000_000_123_456);
        assert_eq!(m.to_rfc3339(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Micros::parse_rfc3339(&m.to_rfc3339()), Some(m));
        assert_eq!(Micros::parse_rfc3339("2023-11-14T22:13:20Z"), None);
        assert_eq!(Micros::parse_rfc3339("2023-11-14T22:13:20.123456+00:00"), None);
    }

    #[test]
    fn timestamp_strings_follow_the_contract_pattern() {
        assert_eq!(TimestampString::parse("1700000000.5").unwrap().nanos(), 1_700_000_000_500_000_000);
        assert!(TimestampString::parse("1700000000").is_some());
        for bad in ["", ".5", "1.", "1.1234567890", "1234567890123", "-1", "1e9", " 1", "1,5"] {
            assert!(TimestampString::parse(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_day_covers_its_utc_24_hours() {
        let (start, end) = Day::parse("2023-11-14").unwrap().range();
        assert_eq!(start.to_rfc3339(), "2023-11-14T00:00:00.000000Z");
        assert_eq!(end.to_rfc3339(), "2023-11-15T00:00:00.000000Z");
        assert!(Day::parse("2023-11-4").is_none());
        assert!(Day::parse("2023-02-30").is_none());
    }
}
