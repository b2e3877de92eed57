//! What the blocking and async drivers share: the clock they read, request cloning for the one
//! retry, and poison-tolerant locking.

use crate::error::{Error, Operation};
use crate::request::Body;
use crate::session::{Event, Session, State};
use http::Request;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The default timeout of one whole exchange (connect, send, receive the whole answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times `send_authorized` sends one request at most. A 401 `invalid_token` for the
/// session's current token leads to one refresh and a retry; a 401 for a token another caller
/// has already replaced (PeerTube kills the old access token when a refresh rotates the pair,
/// so requests in flight during a refresh fail) leads to a retry with the new token, no
/// refresh.
pub(crate) const MAX_SENDS: usize = 3;

/// Where a driver reads the time. The core never reads it; drivers do, through this, so tests
/// can give them a fixed or fake clock.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub(crate) fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// A panic elsewhere while holding the lock leaves a session that is still consistent (every
/// change happens in one `handle` call), so keep using it.
pub(crate) fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A copy of a request for the one retry after a refresh; extensions are not copied (they are
/// not `Clone`), and the `Authorization` header is replaced by `authorize` anyway.
pub(crate) fn copy_request(request: &Request<Body>) -> Request<Body> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Whether the session needs a refresh before its token is used; only a logged-in session has
/// a token to use.
pub(crate) fn refresh_needed(session: &Session, now: SystemTime) -> Result<bool, Error> {
    match session.state() {
        State::LoggedIn => Ok(session.refresh_due(now)),
        state => Err(Error::InvalidState {
            operation: Operation::Authorize,
            state,
        }),
    }
}

/// The `redirectUrl` of a logout answer.
pub(crate) fn logout_redirect(event: Event) -> Option<String> {
    match event {
        Event::LoggedOut { redirect_url } => redirect_url,
        _ => None,
    }
}
