//! The ureq 3 transport: whole answers whatever the status, every header, no redirects, a hard
//! per-exchange timeout split across ureq's phases, and a body cap.

use crate::blocking::Transport;
use crate::driver::{CallDeadline, DEFAULT_TIMEOUT};
use crate::error::{TransportError, TransportErrorKind};
use crate::request::Body;
use crate::response::DEFAULT_BODY_LIMIT;
use http::{Request, Response};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Each phase's share of the timeout, in percent; they add up to 100. Waiting for the answer's
/// head gets the most, since that is where a busy server spends its time.
const RESOLVE: u32 = 5;
const CONNECT: u32 = 15;
const SEND_REQUEST: u32 = 5;
const SEND_BODY: u32 = 5;
const RECV_RESPONSE: u32 = 55;
const RECV_BODY: u32 = 15;
const _: () =
    assert!(RESOLVE + CONNECT + SEND_REQUEST + SEND_BODY + RECV_RESPONSE + RECV_BODY == 100);

fn share(timeout: Duration, percent: u32) -> Option<Duration> {
    Some(timeout * percent / 100)
}

/// Sets ureq's per-phase timeouts (on an agent's or a request's configuration builder, which
/// share the method names but no trait) so that they add up to at most `timeout`. The resolve
/// phase is bounded only for a host name: ureq bounds a lookup by running it on a new thread,
/// once per request (pooled connection or not), and an IP address needs no lookup at all.
macro_rules! phase_timeouts {
    ($config:expr, $timeout:expr, $needs_lookup:expr) => {{
        let timeout = $timeout;
        $config
            .timeout_global(None)
            .timeout_per_call(None)
            .timeout_resolve(if $needs_lookup {
                share(timeout, RESOLVE)
            } else {
                None
            })
            .timeout_connect(share(timeout, CONNECT))
            .timeout_send_request(share(timeout, SEND_REQUEST))
            .timeout_send_body(share(timeout, SEND_BODY))
            .timeout_recv_response(share(timeout, RECV_RESPONSE))
            .timeout_recv_body(share(timeout, RECV_BODY))
    }};
}

/// Sends requests with a [`ureq::Agent`]. Whatever agent it is given, each request is run with
/// `http_status_as_error(false)` (PeerTube's error bodies are answers), no redirects (a
/// redirect must never carry a token or password elsewhere), the timeout (30 s by default) and
/// the body cap (64 KiB by default). https goes through ureq's rustls.
///
/// # The timeout
/// The timeout of one exchange is split across ureq's phases, each starting when the previous
/// one ends: resolve the host name 5 %, connect (with TLS) 15 %, send the head 5 %, send the
/// body 5 %, receive the answer's head 55 %, receive its body 15 %. Their sum is the timeout, so
/// an exchange never takes longer; a phase cannot borrow what an earlier one left unused. When
/// the call's [`CallDeadline`] leaves less than the timeout, what is left is split the same way.
///
/// Why not ureq's `timeout_global`: with any bound on the lookup, ureq resolves the host on a
/// new thread for every request, even one that reuses a pooled connection, which cost about
/// 45 µs per request on loopback (BENCHMARKS.md). An instance given by IP address needs no
/// lookup, so its requests start no thread; a host name's lookup stays bounded, thread and all.
///
/// # Proxies
/// Like [`HyperTransport`](crate::asynchronous::HyperTransport), [`UreqTransport::new`] reads
/// no proxy from the environment (ureq's own default reads `HTTP(S)_PROXY` and `ALL_PROXY`):
/// where requests go, with a password or a token in them, is decided in code. For a proxy,
/// give [`UreqTransport::with_agent`] an agent configured with `ureq::Proxy`.
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
        let needs_lookup = needs_lookup(request.uri());
        let request = if self.own_agent && timeout == self.timeout && !needs_lookup {
            request
        } else {
            let config = self
                .agent
                .configure_request(request)
                .http_status_as_error(false)
                .max_redirects(0);
            phase_timeouts!(config, timeout, needs_lookup).build()
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

/// An agent that answers errors as responses, follows no redirect, and bounds each exchange
/// to an IP address (a request to a host name adds the bound of its lookup).
fn own_agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None);
    phase_timeouts!(config, timeout, false).build().into()
}

/// Whether the request's host is a name that must be looked up (not an IP address).
fn needs_lookup(uri: &http::Uri) -> bool {
    let host = uri.host().unwrap_or_default();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_err()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_own_agent_takes_no_proxy_from_the_environment() {
        for transport in [
            UreqTransport::new(),
            UreqTransport::new().timeout(Duration::from_secs(5)),
        ] {
            assert!(transport.agent.config().proxy().is_none());
        }
    }

    #[test]
    fn only_a_host_name_needs_a_lookup() {
        let needs = |uri: &str| needs_lookup(&uri.parse().unwrap());
        assert!(needs("https://video.example.org/api"));
        assert!(needs("http://localhost:9000/"));
        assert!(!needs("http://127.0.0.1:9000/"));
        assert!(!needs("http://[::1]:9000/"));
        assert!(!needs("https://[2001:db8::1]/"));
    }

    #[test]
    fn the_phases_add_up_to_the_timeout() {
        let timeout = Duration::from_millis(30_000);
        let shares = [
            RESOLVE,
            CONNECT,
            SEND_REQUEST,
            SEND_BODY,
            RECV_RESPONSE,
            RECV_BODY,
        ];
        let total: Duration = shares.iter().filter_map(|&p| share(timeout, p)).sum();
        assert_eq!(total, timeout);
        assert_eq!(
            share(timeout, RECV_RESPONSE),
            Some(Duration::from_millis(16_500))
        );
    }
}
