//! What the clients and the transports share: the default timeouts, the clock type, and the
//! call deadline every request of a high-level call carries.

pub(crate) mod client;
mod config;
pub(crate) mod flight;
mod timer;

pub use client::STORE_BUDGET;
pub use config::{Config, ConfigBuilder, DEFAULT_USER_AGENT, ExchangeLimits};

use crate::error::{Error, TransportError, TransportErrorKind};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The default timeout of one exchange (connect, send, receive the whole answer) in this
/// crate's transports.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default deadline of one high-level call (`login`, `send_authorized`, `logout`…), which
/// may run several exchanges in a row: fetching the client pair, a refresh, a retry.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a driver reads the time. The core never reads it; drivers do, through this, so tests
/// can give them a fixed or fake clock.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The moment the high-level call that sent a request must be over. The drivers put it in the
/// extensions of every request they hand to a transport; this crate's transports shorten their
/// own timeout to it, and a transport of yours should too: [`ExchangeLimits::of`] reads both
/// from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallDeadline(Instant);

impl CallDeadline {
    /// The deadline `timeout` after `now`.
    pub fn after(now: Instant, timeout: Duration) -> Self {
        // An unrepresentable instant (a timeout of centuries) means no deadline in practice.
        CallDeadline(
            now.checked_add(timeout)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
        )
    }

    /// When the call must be over.
    pub fn at(&self) -> Instant {
        self.0
    }

    /// The time left at `now`; zero once it has passed.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whether it has passed at `now`.
    pub fn has_passed(&self, now: Instant) -> bool {
        now >= self.0
    }
}

/// The cause of the [`TransportErrorKind::Timeout`] a high-level call ends with when its
/// deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineElapsed;

impl fmt::Display for DeadlineElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call's deadline passed")
    }
}

impl std::error::Error for DeadlineElapsed {}

/// The error of a call whose deadline passed.
pub(crate) fn deadline_elapsed() -> Error {
    Error::Transport(TransportError::new(
        TransportErrorKind::Timeout,
        DeadlineElapsed,
    ))
}

/// Waits `pause` without blocking the thread (the crate's timer thread wakes the task).
pub(crate) async fn sleep(pause: Duration) {
    if let Some(at) = Instant::now().checked_add(pause) {
        timer::Deadline::at(at).await;
    }
}

/// Runs the future `work()` makes for at most `timeout`; past it, drops it and answers
/// `late()`. The timer is runtime-free (the crate's own helper thread wakes it), so this works
/// on any executor, and on a tokio runtime built without `enable_time`.
///
/// `work` makes the future here rather than being one: a future passed in would be held twice
/// in this one's state (as the argument and pinned), and nested calls multiply that: a call's
/// future was once over 13 KiB, copied on every spawn.
pub(crate) async fn at_most<R, F: std::future::Future<Output = R>>(
    timeout: Duration,
    work: impl FnOnce() -> F,
    late: impl FnOnce() -> R,
) -> R {
    use std::future::Future;
    use std::task::Poll;
    // A deadline centuries away is no deadline.
    let until = Instant::now().checked_add(timeout);
    // Set on the first wait only: work done at its first poll (a call whose token is fresh)
    // costs the timer nothing.
    let mut timer: Option<timer::Deadline> = None;
    // One await point, so that the future is stored once in this one's state.
    let mut work = std::pin::pin!(work());
    let mut late = Some(late);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if timer.is_none() {
            timer = until.map(timer::Deadline::at);
        }
        let expired = timer
            .as_mut()
            .is_some_and(|timer| std::pin::Pin::new(timer).poll(cx).is_ready());
        match late.take() {
            Some(late) if expired => Poll::Ready(late()),
            late_again => {
                late = late_again;
                Poll::Pending
            }
        }
    })
    .await
}
