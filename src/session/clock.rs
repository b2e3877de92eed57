//! The server's clock as the session knows it: token deadlines are kept in the server's time
//! (the answers' `Date` headers), and "now" is moved onto that clock before any comparison, so
//! that a machine whose clock is hours off neither refreshes for nothing nor saves deadlines
//! that mislead the processes sharing its store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the answers said of the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ServerClock {
    /// No answer seen yet.
    #[default]
    Unknown,
    /// Answers come without a `Date` header: the local clock is all there is.
    NoDate,
    /// The server's clock runs this many whole seconds ahead of ours (behind when negative).
    Offset(i64),
}

impl ServerClock {
    /// Learns from an answer received at local time `now`, whose `Date` header (if any) said
    /// `date`. A reading differs from the true offset by up to a second either way (both
    /// clocks are read in whole seconds), and is lower still when the answer was slow on its
    /// way. So the estimate is the highest recent reading, and a reading up to two seconds
    /// below it is taken for such a low one: processes sharing a store then agree on the
    /// second a token falls due (at worst a second early), instead of some of them running on
    /// a token another has already rotated. A reading further below, or any higher one, is a
    /// clock that changed, and replaces the estimate.
    pub(crate) fn learn(&mut self, date: Option<SystemTime>, now: SystemTime) {
        match date {
            Some(date) => {
                let offset = signed_secs(date) - signed_secs(now);
                match *self {
                    ServerClock::Offset(known) if (known - 2..=known).contains(&offset) => {}
                    _ => *self = ServerClock::Offset(offset),
                }
            }
            None if *self == ServerClock::Unknown => *self = ServerClock::NoDate,
            None => {}
        }
    }

    fn offset(self) -> i64 {
        match self {
            ServerClock::Offset(offset) => offset,
            ServerClock::Unknown | ServerClock::NoDate => 0,
        }
    }

    /// Local time `now` on the server's clock, in whole Unix seconds.
    pub(crate) fn server_secs(self, now: SystemTime) -> u64 {
        u64::try_from(signed_secs(now).saturating_add(self.offset())).unwrap_or(0)
    }

    /// A moment of the server's clock (Unix seconds) on the local clock.
    pub(crate) fn local(self, server_secs: u64) -> Option<SystemTime> {
        let secs = i64::try_from(server_secs)
            .ok()?
            .saturating_sub(self.offset());
        UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(secs).ok()?))
    }
}

/// Whole seconds since the Unix epoch, negative before it.
fn signed_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A machine whose clock reads before 1970 (a battery-less board after a reset): the
    /// offset is still learned, and the server's time still told.
    #[test]
    fn a_local_clock_before_the_epoch_is_still_a_clock() {
        let mut clock = ServerClock::default();
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        clock.learn(Some(at(1_000_000)), before);
        assert_eq!(clock, ServerClock::Offset(1_086_400));
        assert_eq!(clock.server_secs(before), 1_000_000);
    }

    #[test]
    fn the_offset_follows_the_date_headers_without_flapping_on_their_precision() {
        let mut clock = ServerClock::default();
        assert_eq!(clock.server_secs(at(1000)), 1000, "unknown: our own clock");
        clock.learn(None, at(1000));
        assert_eq!(clock, ServerClock::NoDate);
        clock.learn(Some(at(87_400)), at(1000));
        assert_eq!(clock, ServerClock::Offset(86_400));
        assert_eq!(clock.server_secs(at(2000)), 88_400);
        assert_eq!(clock.local(88_400), Some(at(2000)));
        // Up to two seconds lower: a low reading, the same estimate.
        clock.learn(Some(at(87_399)), at(1000));
        clock.learn(Some(at(87_398)), at(1000));
        assert_eq!(clock, ServerClock::Offset(86_400));
        // Higher: the better reading.
        clock.learn(Some(at(87_401)), at(1000));
        assert_eq!(clock, ServerClock::Offset(86_401));
        clock.learn(Some(at(87_400)), at(1000));
        assert_eq!(clock, ServerClock::Offset(86_401));
        // Further below: a clock that changed.
        clock.learn(Some(at(87_398)), at(1000));
        assert_eq!(clock, ServerClock::Offset(86_398));
        clock.learn(Some(at(87_403)), at(1000));
        assert_eq!(clock, ServerClock::Offset(86_403));
        // An answer without a date later on forgets nothing.
        clock.learn(None, at(1000));
        assert_eq!(clock, ServerClock::Offset(86_403));
        // A server behind us.
        clock.learn(Some(at(500)), at(1000));
        assert_eq!(clock, ServerClock::Offset(-500));
        assert_eq!(clock.server_secs(at(100)), 0, "before the epoch: 0");
        assert_eq!(clock.local(100), Some(at(600)));
        assert_eq!(ServerClock::Offset(1000).local(10), None);
    }
}
