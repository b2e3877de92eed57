//! Single-flight refresh without any runtime: one caller (the leader) sends the refresh, every
//! caller that needs it meanwhile waits for that one flight and gets its outcome, success or
//! failure. A caller that arrives after a flight ended starts the next one.

use crate::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// What a flight ended with, shared by all who waited on it.
pub(crate) type Outcome = Result<(), Error>;

/// The refresh in the air, if any.
#[derive(Default)]
pub(crate) struct Flights {
    current: Mutex<Option<Arc<Flight>>>,
}

/// One refresh, from its start to its outcome.
#[derive(Default)]
pub(crate) struct Flight {
    state: Mutex<FlightState>,
}

#[derive(Default)]
struct FlightState {
    /// `None` while in the air; `Some(None)` when its leader gave up without an outcome (its
    /// future was dropped); `Some(Some(outcome))` when it ended.
    ended: Option<Option<Outcome>>,
    wakers: Vec<Waker>,
}

/// What a caller that may need a refresh does next.
pub(crate) enum Role<'a> {
    /// No refresh is needed.
    Done,
    /// Send the refresh, then [`Leader::finish`].
    Lead(Leader<'a>),
    /// Wait for the flight in the air.
    Wait(Arc<Flight>),
}

impl Flights {
    /// Whether a flight is in the air.
    pub(crate) fn in_air(&self) -> bool {
        lock(&self.current).is_some()
    }

    /// Joins the flight in the air, or, if there is none and `needed()` says a refresh is due,
    /// starts one. `needed` runs under the flight lock, after any earlier flight has published
    /// its result to the session, so a caller never starts a refresh another one just made.
    pub(crate) fn join_or_lead(
        &self,
        needed: impl FnOnce() -> Result<bool, Error>,
    ) -> Result<Role<'_>, Error> {
        let mut current = lock(&self.current);
        if let Some(flight) = current.as_ref() {
            return Ok(Role::Wait(flight.clone()));
        }
        if !needed()? {
            return Ok(Role::Done);
        }
        let flight = Arc::new(Flight::default());
        *current = Some(flight.clone());
        Ok(Role::Lead(Leader {
            flights: self,
            flight,
            finished: false,
        }))
    }
}

/// The caller sending a flight's refresh. Dropping it without [`Leader::finish`] (its future
/// was cancelled) ends the flight with no outcome, so its waiters try again instead of hanging.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    flight: Arc<Flight>,
    finished: bool,
}

impl Leader<'_> {
    /// Ends the flight with `outcome` (`None`: no outcome, waiters try again) and wakes every
    /// waiter. Call it after the session holds the refresh's result.
    pub(crate) fn finish(mut self, outcome: Option<Outcome>) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Option<Outcome>) {
        self.finished = true;
        {
            let mut current = lock(&self.flights.current);
            if current
                .as_ref()
                .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight))
            {
                *current = None;
            }
        }
        let wakers = {
            let mut state = lock(&self.flight.state);
            state.ended = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(None);
        }
    }
}

impl Flight {
    /// Waits for the flight to end: `Some(outcome)`, or `None` if its leader gave up.
    pub(crate) fn wait(self: Arc<Self>) -> Wait {
        Wait { flight: self }
    }
}

/// The future of [`Flight::wait`].
pub(crate) struct Wait {
    flight: Arc<Flight>,
}

impl Future for Wait {
    type Output = Option<Outcome>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.flight.state);
        if let Some(ended) = &state.ended {
            return Poll::Ready(ended.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Nothing here is left half-changed by a panic, so a poisoned lock is still good to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{TransportError, TransportErrorKind};

    struct Nothing;

    impl std::task::Wake for Nothing {
        fn wake(self: Arc<Self>) {}
    }

    fn poll_with(wait: &mut Wait, waker: &Waker) -> Poll<Option<Outcome>> {
        Pin::new(wait).poll(&mut Context::from_waker(waker))
    }

    fn poll_once(wait: &mut Wait) -> Poll<Option<Outcome>> {
        poll_with(wait, &Waker::from(Arc::new(Nothing)))
    }

    #[test]
    fn waiters_get_the_leaders_outcome_and_the_next_caller_leads_anew() {
        let flights = Flights::default();
        let Ok(Role::Lead(leader)) = flights.join_or_lead(|| Ok(true)) else {
            panic!("the first caller leads");
        };
        let Ok(Role::Wait(flight)) = flights.join_or_lead(|| panic!("not asked while in the air"))
        else {
            panic!("the second caller waits");
        };
        let mut wait = flight.wait();
        assert!(poll_once(&mut wait).is_pending());
        let failure = Error::Transport(TransportError::of_kind(TransportErrorKind::Timeout));
        leader.finish(Some(Err(failure.clone())));
        assert_eq!(poll_once(&mut wait), Poll::Ready(Some(Err(failure))));
        assert!(matches!(
            flights.join_or_lead(|| Ok(true)),
            Ok(Role::Lead(_))
        ));
    }

    #[test]
    fn a_dropped_leader_ends_its_flight_without_an_outcome() {
        let flights = Flights::default();
        let Ok(Role::Lead(leader)) = flights.join_or_lead(|| Ok(true)) else {
            panic!("the first caller leads");
        };
        let Ok(Role::Wait(flight)) = flights.join_or_lead(|| Ok(true)) else {
            panic!("the second caller waits");
        };
        drop(leader);
        assert_eq!(poll_once(&mut flight.wait()), Poll::Ready(None));
        assert!(matches!(flights.join_or_lead(|| Ok(false)), Ok(Role::Done)));
    }

    #[test]
    fn a_waker_is_kept_once_however_often_it_polls() {
        let flights = Flights::default();
        let Ok(Role::Lead(_leader)) = flights.join_or_lead(|| Ok(true)) else {
            panic!("the first caller leads");
        };
        let Ok(Role::Wait(flight)) = flights.join_or_lead(|| Ok(true)) else {
            panic!("the second caller waits");
        };
        let mut wait = flight.clone().wait();
        let waker = Waker::from(Arc::new(Nothing));
        for _ in 0..5 {
            assert!(poll_with(&mut wait, &waker).is_pending());
        }
        assert_eq!(lock(&flight.state).wakers.len(), 1);
    }
}
