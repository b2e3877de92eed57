//! The ureq 3 transport: whole answers whatever the status, every header, no redirects, a hard
//! per-exchange timeout, and a body cap.

use crate::blocking::Transport;
use crate::driver::{CallDeadline, DEFAULT_TIMEOUT};
use crate::error::{TransportError, TransportErrorKind};
use crate::request::Body;
use crate::response::DEFAULT_BODY_LIMIT;
use http::{Request, Response};
use std::io;
use std::time::{Duration, Instant};

/// Sends requests with a [`ureq::Agent`]. Whatever agent it is given, each request is run with
/// `http_status_as_error(false)` (PeerTube's error bodies are answers), no redirects (a
/// redirect must never carry a token or password elsewhere), the timeout (30 s by default) and
/// the body cap (64 KiB by default). https goes through ureq's rustls.
///
/// # The timeout
/// Each exchange is bounded by ureq's `timeout_global`: it never takes longer. When the call's
/// [`CallDeadline`] leaves less than the timeout, the exchange gets only what is left. (ureq
/// re-arms the socket timeout around every read and write for this, which costs about 45 µs per
/// request on loopback: see BENCHMARKS.md.)
///
/// # Logging
/// With a `log` logger at `Trace` for the `ureq` target, ureq prints each request's head,
/// `Authorization: Bearer …` included. This crate cannot change that: keep ureq's logging at
/// `Debug` or below (e.g. `RUST_LOG=ureq=debug`) wherever tokens are used.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    /// The agent is ours, configured once: no per-request configuration (which clones the
    /// agent's whole configuration on every request) is needed.
    own_agent: bool,
    timeout: Duration,
    body_limit: usize,
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    /// A transport with a new agent of its own.
    pub fn new() -> Self {
        UreqTransport {
            agent: own_agent(DEFAULT_TIMEOUT),
            own_agent: true,
            timeout: DEFAULT_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// A transport over your agent (proxy, TLS settings, connection pool…). Each request is
    /// still run with no redirects, errors as answers, and this transport's timeout.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        UreqTransport {
            agent,
            own_agent: false,
            timeout: DEFAULT_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Sets the timeout of one whole exchange (connect, send, receive the whole answer).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        if self.own_agent {
            self.agent = own_agent(timeout);
        }
        self
    }

    /// Sets the cap on answer bodies; a larger body is [`TransportErrorKind::BodyTooLarge`].
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

impl Transport for UreqTransport {
    fn send(&self, request: Request<Body>) -> Result<Response<Vec<u8>>, TransportError> {
        let timeout = match request.extensions().get::<CallDeadline>() {
            Some(deadline) => self.timeout.min(deadline.remaining(Instant::now())),
            None => self.timeout,
        };
        if timeout.is_zero() {
            return Err(TransportError::of_kind(TransportErrorKind::Timeout));
        }
        let request = request.map(Body::into_vec);
        let request = if self.own_agent && timeout == self.timeout {
            request
        } else {
            self.agent
                .configure_request(request)
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(timeout))
                .build()
        };
        let response = self.agent.run(request).map_err(transport_error)?;
        let (parts, mut body) = response.into_parts();
        let limit = u64::try_from(self.body_limit).unwrap_or(u64::MAX);
        let bytes = body
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(transport_error)?;
        Ok(Response::from_parts(parts, bytes))
    }
}

/// An agent that answers errors as responses, follows no redirect, and bounds each exchange.
fn own_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn transport_error(error: ureq::Error) -> TransportError {
    let kind = match &error {
        ureq::Error::Timeout(_) => TransportErrorKind::Timeout,
        ureq::Error::HostNotFound => TransportErrorKind::Dns,
        ureq::Error::ConnectionFailed => TransportErrorKind::Connect,
        ureq::Error::BodyExceedsLimit(_) => TransportErrorKind::BodyTooLarge,
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => {
            TransportErrorKind::Tls
        }
        ureq::Error::Io(io) => io_kind(io),
        ureq::Error::Protocol(_) => TransportErrorKind::Protocol,
        _ => TransportErrorKind::Other,
    };
    TransportError::new(kind, error)
}

fn io_kind(error: &io::Error) -> TransportErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable => {
            TransportErrorKind::Connect
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportErrorKind::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TransportErrorKind::ConnectionClosed,
        _ => TransportErrorKind::Other,
    }
}
