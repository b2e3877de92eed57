//! A client's configuration: one value, built once, that every knob of a driver and its
//! transport lives in.

use super::{Clock, DEFAULT_CALL_TIMEOUT, DEFAULT_TIMEOUT};
use crate::response::DEFAULT_BODY_LIMIT;
use crate::session::DEFAULT_REFRESH_MARGIN;
use http::HeaderValue;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The `User-Agent` the drivers send unless configured otherwise: this crate and its version.
pub const DEFAULT_USER_AGENT: &str =
    concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// How a client behaves: timeouts, limits, the refresh margin, the `User-Agent`, the clock.
/// Build it once with [`Config::builder`] and give it to the client's `with_config`; the
/// default is what `new` uses.
///
/// The driver hands the transport what concerns one exchange (the timeout and the body cap,
/// as [`ExchangeLimits`], and the call's [`CallDeadline`](super::CallDeadline)) in each
/// request's extensions, so a transport has no settings of its own to keep in step.
///
/// ```
/// # #[cfg(feature = "blocking-client")] {
/// use peertube_session::blocking::Config;
/// use std::time::Duration;
///
/// let config = Config::builder()
///     .timeout(Duration::from_secs(10))
///     .call_timeout(Duration::from_secs(25))
///     .user_agent(http::HeaderValue::from_static("uploader/2.1 (ops@example.org)"))
///     .build();
/// assert_eq!(config.timeout(), Duration::from_secs(10));
/// assert_eq!(config.body_limit(), 64 * 1024); // unchanged: the default
/// # }
/// ```
#[derive(Clone)]
pub struct Config {
    timeout: Duration,
    call_timeout: Duration,
    body_limit: usize,
    refresh_margin: Duration,
    user_agent: HeaderValue,
    clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: DEFAULT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            user_agent: HeaderValue::from_static(DEFAULT_USER_AGENT),
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("timeout", &self.timeout)
            .field("call_timeout", &self.call_timeout)
            .field("body_limit", &self.body_limit)
            .field("refresh_margin", &self.refresh_margin)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// The timeout of one exchange: connect, send, receive the whole answer (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The deadline of one high-level call, all of its exchanges and its wait for another
    /// caller's refresh together (default [`DEFAULT_CALL_TIMEOUT`]).
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The cap on an answer's body, in bytes (default 64 KiB), for the transport and the parsers.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// How long before the access token expires a refresh becomes due (default
    /// [`DEFAULT_REFRESH_MARGIN`]); see [`Session::with_refresh_margin`](crate::Session::with_refresh_margin).
    pub fn refresh_margin(&self) -> Duration {
        self.refresh_margin
    }

    /// The `User-Agent` of every request the client sends, unless a request of yours given to
    /// `send_authorized` has its own (default [`DEFAULT_USER_AGENT`]).
    pub fn user_agent(&self) -> &HeaderValue {
        &self.user_agent
    }

    /// What the client reads the time from (the system clock by default).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// What the transport is asked to keep to in one exchange.
    pub fn exchange_limits(&self) -> ExchangeLimits {
        ExchangeLimits {
            timeout: self.timeout,
            body_limit: self.body_limit,
        }
    }
}

/// Builds a [`Config`]; every setting left alone keeps its default.
#[derive(Debug, Clone)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Sets the timeout of one exchange (see [`Config::timeout`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout = timeout;
        self
    }

    /// Sets the deadline of one high-level call (see [`Config::call_timeout`]).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.0.call_timeout = timeout;
        self
    }

    /// Sets the cap on an answer's body (see [`Config::body_limit`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.0.body_limit = bytes;
        self
    }

    /// Sets the refresh margin (see [`Config::refresh_margin`]).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.0.refresh_margin = margin;
        self
    }

    /// Sets the `User-Agent` (see [`Config::user_agent`]). Naming your program and a contact
    /// helps the instance's admins.
    pub fn user_agent(mut self, user_agent: HeaderValue) -> Self {
        self.0.user_agent = user_agent;
        self
    }

    /// Reads the time from `clock` instead of the system clock (for tests). The clock is never
    /// called while the session is locked, so it may read the client.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.0.clock = Arc::new(clock);
        self
    }

    /// The configuration.
    pub fn build(self) -> Config {
        self.0
    }
}

/// What one exchange must keep to: the drivers put it in the extensions of every request they
/// hand to a transport, next to the call's [`CallDeadline`](super::CallDeadline). This crate's
/// transports obey it (and use the defaults for a request without it); a transport of yours
/// should too, reading it with [`ExchangeLimits::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeLimits {
    timeout: Duration,
    body_limit: usize,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            timeout: DEFAULT_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

impl ExchangeLimits {
    /// Limits for an exchange: its timeout and the cap on its answer's body. The drivers make
    /// them from their [`Config`]; this is for a transport's own tests.
    pub fn new(timeout: Duration, body_limit: usize) -> Self {
        ExchangeLimits {
            timeout,
            body_limit,
        }
    }

    /// What `request` asks of its exchange: its limits (the defaults for a request without
    /// them), the timeout shortened to what its call's [`CallDeadline`](super::CallDeadline)
    /// leaves at `now`. What every transport needs, in one place:
    ///
    /// ```
    /// # #[cfg(feature = "blocking-client")] {
    /// use peertube_session::blocking::{CallDeadline, ExchangeLimits};
    /// use std::time::{Duration, Instant};
    ///
    /// let now = Instant::now();
    /// let mut request = http::Request::new(());
    /// assert_eq!(ExchangeLimits::of(&request, now), ExchangeLimits::default());
    /// request.extensions_mut().insert(ExchangeLimits::new(Duration::from_secs(30), 1024));
    /// request.extensions_mut().insert(CallDeadline::after(now, Duration::from_secs(5)));
    /// let limits = ExchangeLimits::of(&request, now);
    /// assert_eq!((limits.timeout(), limits.body_limit()), (Duration::from_secs(5), 1024));
    /// # }
    /// ```
    pub fn of<B>(request: &http::Request<B>, now: Instant) -> ExchangeLimits {
        let limits = request
            .extensions()
            .get::<ExchangeLimits>()
            .copied()
            .unwrap_or_default();
        match request.extensions().get::<super::CallDeadline>() {
            Some(deadline) => ExchangeLimits {
                timeout: limits.timeout.min(deadline.remaining(now)),
                ..limits
            },
            None => limits,
        }
    }

    /// The timeout of the whole exchange: connect, send, receive the whole answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cap on the answer's body, in bytes; a larger body is
    /// [`TransportErrorKind::BodyTooLarge`](crate::TransportErrorKind::BodyTooLarge).
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }
}
