//! The ureq 3 transport: whole answers whatever the status, every header, no redirects, a hard
//! per-exchange timeout split across ureq's phases, and a body cap.

use crate::blocking::Transport;
use crate::driver::ExchangeLimits;
use crate::error::{TransportError, TransportErrorKind};
use crate::request::Body;
use http::{Request, Response};
use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;
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

/// The stricter of two bounds (`None` is no bound).
fn stricter(ours: Option<Duration>, theirs: Option<Duration>) -> Option<Duration> {
    match (ours, theirs) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sets ureq's per-phase timeouts (on an agent's or a request's configuration builder, which
/// share the method names but no trait) so that they add up to at most `timeout`, keeping each
/// of `theirs` (the agent's own) that is stricter. The resolve phase gets a share only for a
/// host name: ureq bounds a lookup by running it on a new thread, once per request (pooled
/// connection or not), and an IP address needs no lookup at all.
macro_rules! phase_timeouts {
    ($config:expr, $timeout:expr, $needs_lookup:expr, $theirs:expr) => {{
        let timeout = $timeout;
        let theirs: ureq::config::Timeouts = $theirs;
        let resolve = if $needs_lookup {
            share(timeout, RESOLVE)
        } else {
            None
        };
        $config
            .timeout_global(theirs.global)
            .timeout_per_call(theirs.per_call)
            .timeout_resolve(stricter(resolve, theirs.resolve))
            .timeout_connect(stricter(share(timeout, CONNECT), theirs.connect))
            .timeout_send_request(stricter(share(timeout, SEND_REQUEST), theirs.send_request))
            .timeout_send_body(stricter(share(timeout, SEND_BODY), theirs.send_body))
            .timeout_recv_response(stricter(
                share(timeout, RECV_RESPONSE),
                theirs.recv_response,
            ))
            .timeout_recv_body(stricter(share(timeout, RECV_BODY), theirs.recv_body))
    }};
}

/// Sends requests with a [`ureq::Agent`]. Whatever agent it is given, each request is run with
/// `http_status_as_error(false)` (PeerTube's error bodies are answers), no redirects (a
/// redirect must never carry a token or password elsewhere), and the timeout and body cap of
/// the client's [`Config`](crate::blocking::Config), which each request carries as
/// [`ExchangeLimits`] (the defaults, 30 s and 64 KiB, for a request without them). https goes
/// through ureq's rustls.
///
/// # The timeout
/// The timeout of one exchange is split across ureq's phases, each starting when the previous
/// one ends: resolve the host name 5 %, connect (with TLS) 15 %, send the head 5 %, send the
/// body 5 %, receive the answer's head 55 %, receive its body 15 %. Their sum is the timeout, so
/// an exchange never takes longer; a phase cannot borrow what an earlier one left unused. When
/// the call's [`CallDeadline`](crate::blocking::CallDeadline) leaves less than the timeout, what is left is split the same way.
///
/// Why not ureq's `timeout_global`: with any bound on the lookup, ureq resolves the host on a
/// new thread for every request, even one that reuses a pooled connection, which cost about
/// 45 µs per request on loopback (BENCHMARKS.md). An instance given by IP address needs no
/// lookup, so its requests start no thread; a host name's lookup stays bounded, thread and all.
///
/// # Your own agent
/// [`UreqTransport::with_agent`] keeps the agent's settings. Its timeouts are not replaced:
/// each phase is bounded by the stricter of the agent's own timeout and the share of the
/// exchange's timeout, and the agent's global and per-call timeouts stay as they are.
///
/// # Proxies
/// Like `HyperTransport` (feature `hyper`), [`UreqTransport::new`] reads
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
    agent: Agent,
}

/// Whose agent it is.
#[derive(Debug, Clone)]
enum Agent {
    /// Ours, made at the first request and configured with that request's timeout, so that
    /// requests with the same timeout (every request of one client, unless the call's deadline
    /// leaves less) need no per-request configuration, which clones the agent's whole
    /// configuration on every request.
    Own(OnceLock<(Duration, ureq::Agent)>),
    /// The user's, whose settings stay.
    Theirs(ureq::Agent),
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    /// A transport with an agent of its own.
    pub fn new() -> Self {
        UreqTransport {
            agent: Agent::Own(OnceLock::new()),
        }
    }

    /// A transport over your agent (proxy, TLS settings, connection pool…), whose settings
    /// stay (see [the type's docs](UreqTransport#your-own-agent) for its timeouts). Each request
    /// is still run with no redirects and errors as answers.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        UreqTransport {
            agent: Agent::Theirs(agent),
        }
    }
}

impl Transport for UreqTransport {
    fn send(&self, request: Request<Body>) -> Result<Response<Vec<u8>>, TransportError> {
        let limits = ExchangeLimits::of(&request, Instant::now());
        let timeout = limits.timeout();
        if timeout.is_zero() {
            return Err(TransportError::of_kind(TransportErrorKind::Timeout));
        }
        let request = request.map(Body::into_vec);
        let needs_lookup = needs_lookup(request.uri());
        let (agent, preset) = match &self.agent {
            Agent::Own(cell) => {
                let (preset, agent) = cell.get_or_init(|| (timeout, own_agent(timeout)));
                (agent, *preset == timeout && !needs_lookup)
            }
            Agent::Theirs(agent) => (agent, false),
        };
        let request = if preset {
            request
        } else {
            let theirs = match &self.agent {
                Agent::Own(_) => ureq::config::Timeouts::default(),
                Agent::Theirs(agent) => agent.config().timeouts(),
            };
            let config = agent
                .configure_request(request)
                .http_status_as_error(false)
                .max_redirects(0);
            phase_timeouts!(config, timeout, needs_lookup, theirs).build()
        };
        let response = agent.run(request).map_err(transport_error)?;
        let (parts, mut body) = response.into_parts();
        let limit = u64::try_from(limits.body_limit()).unwrap_or(u64::MAX);
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
    phase_timeouts!(config, timeout, false, ureq::config::Timeouts::default())
        .build()
        .into()
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
    // rustls reports a failed handshake (a plain HTTP server answering a ClientHello, a
    // certificate it refuses) as an I/O error holding its own.
    if error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    {
        return TransportErrorKind::Tls;
    }
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
        for timeout in [Duration::from_secs(30), Duration::from_secs(5)] {
            assert!(own_agent(timeout).config().proxy().is_none());
        }
    }

    #[test]
    fn the_stricter_bound_wins() {
        let s = Duration::from_secs;
        assert_eq!(stricter(Some(s(3)), Some(s(5))), Some(s(3)));
        assert_eq!(stricter(Some(s(5)), Some(s(3))), Some(s(3)));
        assert_eq!(stricter(None, Some(s(3))), Some(s(3)));
        assert_eq!(stricter(Some(s(3)), None), Some(s(3)));
        assert_eq!(stricter(None, None), None);
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
