//! Connections that keep ureq's promises with fewer system calls per request.
//!
//! Two habits of ureq 3.5 cost system calls on every request over a pooled connection, and
//! on loopback or a busy machine they cost more than everything else the client does:
//! - **A probe too many.** ureq probes a pooled connection (a non-blocking read: three
//!   system calls) when its answer has been read and it goes back to the pool, and again
//!   when a request takes it out. The second probe sees everything the first would (the
//!   server closed the connection, or sent bytes nobody asked for), and later, so closer to
//!   the moment that matters; the first one is skipped here.
//! - **A socket timeout set twice per request.** With a timeout for the whole exchange, ureq
//!   arms the socket's read and write timeouts with exactly what is left before each read
//!   and write, which differs every time. Here what is left is rounded down to
//!   [`STEP`] (exact below it), so that requests over one connection hand the socket the
//!   same value and ureq sets it once. Rounding down never waits past the deadline: a read
//!   that stops early is started again with what is left, until the deadline. A write that
//!   stops early (a server that has taken in nothing of a small request for nearly the
//!   whole timeout) ends the exchange at most [`STEP`] before its timeout.
//!
//! It plugs into ureq through `ureq::unversioned::transport`, which ureq does not promise to
//! keep stable: the `ureq` dependency is held to 3.5.x for it (see Cargo.toml).

use std::fmt;
use std::time::{Duration, Instant};
use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// What the time left before a read or write is rounded down to.
pub(crate) const STEP: Duration = Duration::from_millis(100);

/// Chained after ureq's own connectors: wraps each connection they open.
#[derive(Debug, Default)]
pub(crate) struct LeanConnector;

impl Connector<Box<dyn Transport>> for LeanConnector {
    type Out = LeanConnection;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| LeanConnection { inner, used: false }))
    }
}

/// A connection of ureq's, with the two habits above changed.
pub(crate) struct LeanConnection {
    inner: Box<dyn Transport>,
    /// Whether it has sent or read since it was last probed: then ureq is putting it back in
    /// the pool, not taking it out.
    used: bool,
}

impl fmt::Debug for LeanConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeanConnection")
            .field("inner", &self.inner)
            .finish()
    }
}

/// `timeout` with what is left rounded down to a whole number of [`STEP`]s, when at least
/// one is left.
fn steady(mut timeout: NextTimeout) -> NextTimeout {
    if let UreqDuration::Exact(left) = timeout.after
        && left >= STEP
    {
        let steps = left.as_nanos() / STEP.as_nanos();
        let whole = u32::try_from(steps).map_or(left, |steps| STEP * steps);
        timeout.after = UreqDuration::Exact(whole);
    }
    timeout
}

impl Transport for LeanConnection {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.used = true;
        // Not started again when it stops early: part of the output may have gone out.
        self.inner.transmit_output(amount, steady(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.used = true;
        let UreqDuration::Exact(left) = timeout.after else {
            return self.inner.await_input(timeout);
        };
        let deadline = Instant::now() + left;
        // Bounded: each turn waits at least one STEP, or what is left when less, and the
        // turns stop at the deadline.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let turn = NextTimeout {
                after: UreqDuration::Exact(left),
                ..timeout
            };
            match self.inner.await_input(steady(turn)) {
                Err(ureq::Error::Timeout(_)) if Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        if std::mem::take(&mut self.used) {
            // Going back to the pool: the probe before its next use will tell.
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(left: Duration) -> NextTimeout {
        NextTimeout {
            after: UreqDuration::Exact(left),
            ..NextTimeout::default()
        }
    }

    #[test]
    fn what_is_left_is_rounded_down_to_whole_steps_and_kept_exact_below_one() {
        let ms = Duration::from_millis;
        let cases = [
            (ms(29_999), ms(29_900)),
            (ms(30_000), ms(30_000)),
            (ms(150), ms(100)),
            (ms(100), ms(100)),
            (ms(99), ms(99)),
            (Duration::ZERO, Duration::ZERO),
        ];
        for (left, handed) in cases {
            assert_eq!(
                steady(after(left)).after,
                UreqDuration::Exact(handed),
                "{left:?}"
            );
        }
        let never = NextTimeout::default();
        assert_eq!(steady(never), never);
    }

    #[test]
    fn requests_moments_apart_hand_the_socket_the_same_timeout() {
        let start = Duration::from_secs(30);
        let later = start - Duration::from_micros(350);
        assert_eq!(
            steady(after(start - Duration::from_nanos(1))).after,
            steady(after(later)).after
        );
    }
}
