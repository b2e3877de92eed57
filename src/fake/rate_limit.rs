//! express-rate-limit's memory store: a fixed window per client address, every request counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<IpAddr, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: SystemTime,
    hits: u32,
}

/// What one request learnt about its window, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) reset_epoch_secs: u64,
    /// `Some(seconds to wait)` when over the limit.
    pub(crate) retry_after_secs: Option<u64>,
}

impl RateLimiter {
    pub(crate) fn hit(
        &mut self,
        address: IpAddr,
        max: u32,
        window: Duration,
        now: SystemTime,
    ) -> Verdict {
        let entry = self.windows.entry(address).or_insert(Window {
            start: now,
            hits: 0,
        });
        let reset = entry.start.checked_add(window).unwrap_or(now);
        let reset = if now >= reset {
            *entry = Window {
                start: now,
                hits: 0,
            };
            now.checked_add(window).unwrap_or(now)
        } else {
            reset
        };
        entry.hits = entry.hits.saturating_add(1);
        let wait = reset.duration_since(now).unwrap_or_default();
        Verdict {
            limit: max,
            remaining: max.saturating_sub(entry.hits),
            reset_epoch_secs: ceil_secs(reset.duration_since(UNIX_EPOCH).unwrap_or_default()),
            retry_after_secs: (entry.hits > max).then(|| ceil_secs(wait)),
        }
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}
