//! The token pair a logged-in session holds, with its deadlines in whole Unix seconds (so a saved
//! session restores to exactly the same deadlines).

use super::lineage::Lineage;
use crate::response::TokenResponse;
use crate::secret::{AccessToken, RefreshToken};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub(crate) access: AccessToken,
    pub(crate) refresh: RefreshToken,
    /// When the pair was handed out.
    pub(crate) issued_at: u64,
    pub(crate) access_expires_at: Option<u64>,
    pub(crate) refresh_expires_at: Option<u64>,
    /// The server said the access token is dead (401 `invalid_token`).
    pub(crate) access_rejected: bool,
    /// The server answered a request carrying the access token with something other than a
    /// 401: it worked, at least once (kept in memory only).
    pub(crate) access_proven: bool,
    /// Which login the pair descends from, and how many refreshes since.
    pub(crate) lineage: Lineage,
}

impl Tokens {
    /// The pair a login (`previous` is `None`) or a refresh of the pair of lineage `previous`
    /// answered with.
    pub(crate) fn issued(answer: TokenResponse, now: u64, previous: Option<Lineage>) -> Self {
        let deadline =
            |lifetime: Option<Duration>| lifetime.map(|d| now.saturating_add(d.as_secs()));
        let refresh = answer.refresh_token.expose_secret();
        let lineage = match previous {
            Some(previous) => previous.refreshed(refresh),
            None => Lineage::of_login(refresh, now),
        };
        Tokens {
            lineage,
            access_expires_at: deadline(answer.expires_in),
            refresh_expires_at: deadline(answer.refresh_token_expires_in),
            access: answer.access_token,
            refresh: answer.refresh_token,
            issued_at: now,
            access_rejected: false,
            access_proven: false,
        }
    }

    /// The margin is at most half the token's lifetime, so a short-lived token is not due the
    /// moment it arrives.
    fn refresh_due_at_secs(&self, margin: Duration) -> Option<u64> {
        let expires = self.access_expires_at?;
        let lifetime = expires.saturating_sub(self.issued_at);
        Some(expires - margin.as_secs().min(lifetime / 2))
    }

    /// When a refresh is due (Unix seconds, the server's clock); 0 once the server refused
    /// the access token.
    pub(crate) fn refresh_due_at(&self, margin: Duration) -> Option<u64> {
        if self.access_rejected {
            return Some(0);
        }
        self.refresh_due_at_secs(margin)
    }

    pub(crate) fn refresh_due(&self, now: u64, margin: Duration) -> bool {
        self.access_rejected
            || self
                .refresh_due_at_secs(margin)
                .is_some_and(|due| now >= due)
    }

    pub(crate) fn access_expired(&self, now: u64) -> bool {
        self.access_rejected || self.access_expires_at.is_some_and(|at| now >= at)
    }

    pub(crate) fn refresh_expired(&self, now: u64) -> bool {
        self.refresh_expires_at.is_some_and(|at| now >= at)
    }
}

/// Whole seconds since the Unix epoch; a clock before 1970 counts as 0.
pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
