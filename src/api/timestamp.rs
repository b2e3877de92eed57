//! Dates as PeerTube writes them: RFC 3339, which JavaScript's `Date.prototype.toISOString`
//! produces (`2026-11-28T20:55:25.743Z`).
//!
//! A moment, not a string: callers compare dates with their clock and sort by them. No date
//! crate is pulled into the core for it (the core depends on nothing beyond `http`, `serde` and
//! their kin); RFC 3339 is small enough to read here, and the conversion is the proleptic
//! Gregorian calendar's, checked against known days in the tests.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment the server reported, to the millisecond it writes.
///
/// Reads any RFC 3339 date-time (`Z` or a `±hh:mm` offset, any number of fraction digits, of
/// which nanoseconds are kept); prints the UTC form with milliseconds, as PeerTube does.
///
/// ```
/// use peertube_session::api::Timestamp;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let at = Timestamp::parse("2026-11-28T20:55:25.743Z").unwrap();
/// assert_eq!(at.system_time(), UNIX_EPOCH + Duration::from_millis(1_795_899_325_743));
/// assert_eq!(at.to_string(), "2026-11-28T20:55:25.743Z");
/// assert_eq!(Timestamp::parse("2026-11-28T21:55:25.743+01:00"), Some(at));
/// assert_eq!(Timestamp::parse("yesterday"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// Reads an RFC 3339 date-time, or `None` when `text` is not one.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let bytes = text.as_bytes();
        if bytes.len() < 20 || bytes.len() > 64 {
            return None;
        }
        let year = digits(bytes, 0, 4)?;
        let month = digits(bytes, 5, 2)?;
        let day = digits(bytes, 8, 2)?;
        let hour = digits(bytes, 11, 2)?;
        let minute = digits(bytes, 14, 2)?;
        // A leap second (60) is read as the last second of its minute, as most clocks do.
        let second = digits(bytes, 17, 2)?.min(59);
        let separators_ok = bytes[4] == b'-'
            && bytes[7] == b'-'
            && matches!(bytes[10], b'T' | b't' | b' ')
            && bytes[13] == b':'
            && bytes[16] == b':';
        let in_range = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && digits(bytes, 17, 2)? <= 60;
        if !separators_ok || !in_range {
            return None;
        }
        let (nanos, rest) = fraction(&bytes[19..])?;
        let offset = offset_seconds(rest)?;
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset;
        let whole = Duration::from_secs(seconds.unsigned_abs());
        let at = if seconds >= 0 {
            UNIX_EPOCH.checked_add(whole)?
        } else {
            UNIX_EPOCH.checked_sub(whole)?
        };
        at.checked_add(Duration::from_nanos(nanos)).map(Timestamp)
    }

    /// The moment, to compare with a clock.
    pub fn system_time(&self) -> SystemTime {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    fn from(at: SystemTime) -> Self {
        Timestamp(at)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seconds, millis) = match self.0.duration_since(UNIX_EPOCH) {
            Ok(after) => (
                i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                after.subsec_millis(),
            ),
            Err(before) => {
                let before = before.duration();
                let mut seconds = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                let mut millis = 0;
                if before.subsec_nanos() > 0 {
                    // Round towards the past, then count the milliseconds forward from there.
                    seconds -= 1;
                    millis = 1_000 - before.subsec_nanos().div_ceil(1_000_000);
                }
                (seconds, millis)
            }
        };
        let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            second_of_day / 3_600,
            second_of_day % 3_600 / 60,
            second_of_day % 60
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 date-time"))
    }
}

/// `count` ASCII digits at `at`, as a number.
fn digits(bytes: &[u8], at: usize, count: usize) -> Option<i64> {
    bytes.get(at..at + count)?.iter().try_fold(0, |value, b| {
        b.is_ascii_digit().then(|| value * 10 + i64::from(b - b'0'))
    })
}

/// An optional `.digits` fraction, as nanoseconds, and what follows it.
fn fraction(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let Some(after_dot) = bytes.strip_prefix(b".") else {
        return Some((0, bytes));
    };
    let count = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
    if count == 0 {
        return None;
    }
    let nanos = after_dot[..count]
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(9)
        .fold(0, |value, b| value * 10 + u64::from(b - b'0'));
    Some((nanos, &after_dot[count..]))
}

/// `Z`, or `±hh:mm`, as seconds east of UTC.
fn offset_seconds(bytes: &[u8]) -> Option<i64> {
    match bytes {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), ..] if bytes.len() == 6 && bytes[3] == b':' => {
            let hours = digits(bytes, 1, 2)?;
            let minutes = digits(bytes, 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3_600 + minutes * 60;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm: eras of
/// 400 years, years starting in March so that the leap day comes last).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, millis: u64) -> Timestamp {
        let base = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        Timestamp(base + Duration::from_millis(millis))
    }

    #[test]
    fn known_days_read_and_print() {
        // Each pair checked with `date -u -d @SECONDS`.
        let cases = [
            ("1970-01-01T00:00:00.000Z", 0),
            ("2000-02-29T12:00:00.000Z", 951_825_600),
            ("2026-11-28T20:55:25.000Z", 1_795_899_325),
            ("1969-12-31T23:59:59.000Z", -1),
            ("1900-03-01T00:00:00.000Z", -2_203_891_200),
            ("2100-12-31T23:59:59.000Z", 4_133_980_799),
            ("9999-12-31T23:59:59.000Z", 253_402_300_799),
            ("0001-01-01T00:00:00.000Z", -62_135_596_800),
        ];
        for (text, secs) in cases {
            assert_eq!(Timestamp::parse(text), Some(at(secs, 0)), "{text}");
            assert_eq!(at(secs, 0).to_string(), text, "{secs}");
        }
    }

    #[test]
    fn fractions_offsets_and_separators() {
        let base = at(1_795_899_325, 743);
        assert_eq!(Timestamp::parse("2026-11-28T20:55:25.743Z"), Some(base));
        assert_eq!(Timestamp::parse("2026-11-28t20:55:25.743z"), Some(base));
        assert_eq!(Timestamp::parse("2026-11-28 20:55:25.743Z"), Some(base));
        assert_eq!(
            Timestamp::parse("2026-11-28T22:55:25.743+02:00"),
            Some(base)
        );
        assert_eq!(
            Timestamp::parse("2026-11-28T18:25:25.743-02:30"),
            Some(base)
        );
        assert_eq!(Timestamp::parse("2026-11-28T20:55:25.7430001Z"), {
            Some(Timestamp(base.0 + Duration::from_nanos(100)))
        });
        assert_eq!(
            Timestamp::parse("2026-11-28T20:55:25Z"),
            Some(at(1_795_899_325, 0))
        );
        assert_eq!(
            Timestamp::parse("2026-11-28T20:55:25.5Z"),
            Some(at(1_795_899_325, 500))
        );
        // The widest offsets there are, east and west.
        assert_eq!(
            Timestamp::parse("2026-11-29T20:54:25.743+23:59"),
            Some(base)
        );
        assert_eq!(
            Timestamp::parse("2026-11-27T20:56:25.743-23:59"),
            Some(base)
        );
        // A leap second reads as the last second of its minute.
        assert_eq!(
            Timestamp::parse("2016-12-31T23:59:60Z"),
            Timestamp::parse("2016-12-31T23:59:59Z")
        );
    }

    #[test]
    fn what_is_not_a_date_time_is_refused() {
        for text in [
            "",
            "2026-11-28",
            "2026-11-28T20:55:25",
            "2026-11-28T20:55:25.Z",
            "2026-11-28T20:55:25.743",
            "2026-11-28T20:55:25.743+0200",
            "2026-11-28T20:55:25.743+24:00",
            "2026-11-28T20:55:25.743+02:60",
            "2026-11-28T20:55:25.743+02-00",
            "2026-11-28T20:55:25.743+02:001",
            "2026-13-28T20:55:25.743Z",
            "2026-00-28T20:55:25.743Z",
            "2026-02-29T20:55:25.743Z",
            "2026-11-31T20:55:25.743Z",
            "2026-11-00T20:55:25.743Z",
            "2026-11-28T24:00:00.000Z",
            "2026-11-28T20:60:00.000Z",
            "2026-11-28T20:55:61.000Z",
            "2026/11/28T20:55:25.743Z",
            "2026-11-28X20:55:25.743Z",
            "2026-11-28T20-55:25.743Z",
            "2026-11-28T20:55-25.743Z",
            "+2026-11-28T20:55:25.743Z",
            "2026-11-28T20:55:25.743Z ",
            "２０26-11-28T20:55:25.743Z",
        ] {
            assert_eq!(Timestamp::parse(text), None, "{text:?}");
        }
        // At most 64 bytes are read: the longest fraction that fits is taken, one more is not.
        let longest = format!("2026-11-28T20:55:25.{}Z", "1".repeat(43));
        assert_eq!(longest.len(), 64);
        assert!(Timestamp::parse(&longest).is_some());
        let too_long = format!("2026-11-28T20:55:25.{}Z", "1".repeat(44));
        assert_eq!(Timestamp::parse(&too_long), None);
    }

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_some());
        assert!(Timestamp::parse("2000-02-29T00:00:00Z").is_some());
        assert!(Timestamp::parse("1900-02-29T00:00:00Z").is_none());
        assert!(Timestamp::parse("2100-02-29T00:00:00Z").is_none());
    }

    #[test]
    fn moments_before_1970_print_their_milliseconds() {
        let before = Timestamp(UNIX_EPOCH - Duration::from_millis(1));
        assert_eq!(before.to_string(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::parse("1969-12-31T23:59:59.999Z"), Some(before));
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in -146_097..146_097 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            assert!((1..=days_in_month(year, month)).contains(&day));
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let at = at(1_795_899_325, 743);
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(json, "\"2026-11-28T20:55:25.743Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), at);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }
}
