//! The ureq 3 transport: whole answers whatever the status, every header, no redirects, one
//! timeout for the whole exchange, a body cap, and host names looked up once for many requests.

use crate::blocking::Transport;
use crate::driver::ExchangeLimits;
use crate::error::{TransportError, TransportErrorKind};
use crate::request::Body;
use crate::resend::{closed_before_any_answer, resendable};
use crate::ureq_connection::LeanConnector;
use crate::ureq_lookup::{CachingResolver, Lookup, system_lookup};
use http::{Request, Response};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use ureq::unversioned::transport::Connector;

/// Sends requests with a [`ureq::Agent`]. Whatever agent it is given, each request is run with
/// `http_status_as_error(false)` (PeerTube's error bodies are answers), no redirects (a
/// redirect must never carry a token or password elsewhere), and the timeout and body cap of
/// the client's [`Config`](crate::blocking::Config), which each request carries as
/// [`ExchangeLimits`] (the defaults, 30 s and 64 KiB, for a request without them). https goes
/// through ureq's rustls.
///
/// # The timeout
/// An exchange whose answer (its head and its whole body) arrives within the timeout succeeds,
/// however the time is spent between looking up the host, connecting, sending and receiving;
/// one that does not ends with [`TransportErrorKind::Timeout`] at the timeout (ureq's global
/// timeout: each socket read waits for what is left of it; tested on a loaded machine with
/// 400 ms of slack). A write the server stalls may end up to 100 ms before the timeout (socket
/// timeouts are set in 100 ms steps, see BENCHMARKS.md). When the call's [`CallDeadline`](crate::blocking::CallDeadline)
/// leaves less than the timeout, what is left is the timeout.
///
/// # Host names
/// An instance's host name is looked up once and the addresses kept for 30 s, shared by every
/// request of the transport (and its clones); ureq's own resolver would run each request's
/// lookup on a new thread, pooled connection or not. A lookup runs on a thread of its own, one
/// at a time per name, and a request waits for it no longer than its timeout: a resolver that
/// hangs does not hang the call. [`UreqTransport::with_lookup`] replaces the system's lookup.
///
/// # Sent again
/// A `GET` (any idempotent request) whose connection closed before any answer came, as a
/// server's does when it ends a kept-alive connection just as the request goes out on it, is
/// sent once more on a new connection within the timeout. A `POST` (a login, a refresh, a
/// logout) never is: the server may have taken it in, and a refresh sent twice is refused.
///
/// # Your own agent
/// [`UreqTransport::with_agent`] keeps the agent's settings, its resolver included. Its
/// timeouts are not replaced: the exchange's timeout applies as ureq's global timeout when the
/// agent's own is longer or unset, and the agent's per-phase timeouts stay as they are.
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
    Own {
        resolver: CachingResolver,
        tls: ureq::tls::TlsConfig,
        agent: Arc<OnceLock<(Duration, ureq::Agent)>>,
    },
    /// The user's, whose settings stay.
    Theirs(ureq::Agent),
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    /// A transport with an agent of its own, looking host names up with the system's resolver.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A transport with an agent of its own that looks host names up with `lookup`: `(host,
    /// port)` to addresses, blocking (a service registry, a fixed table, a resolver of your
    /// choice). It runs on a thread of its own, once per name every 30 s at most; a request
    /// waits for it no longer than its timeout. IP addresses are never looked up.
    ///
    /// ```
    /// use peertube_session::blocking::UreqTransport;
    /// use std::net::SocketAddr;
    ///
    /// // `video.example.org` is served from a known address.
    /// let transport = UreqTransport::with_lookup(|host, port| match host {
    ///     "video.example.org" => Ok(vec![SocketAddr::from(([192, 0, 2, 7], port))]),
    ///     _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
    /// });
    /// # let _ = transport;
    /// ```
    pub fn with_lookup(
        lookup: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Self {
        Self::builder().lookup(lookup).build()
    }

    /// A transport with an agent of its own, set up step by step: its TLS settings (an
    /// instance behind a private certificate authority), its host-name lookup.
    ///
    /// ```
    /// use peertube_session::blocking::UreqTransport;
    /// use ureq::tls::{RootCerts, TlsConfig};
    ///
    /// # let certificates = Vec::new();
    /// // `certificates`: the DER certificates of your own certificate authority.
    /// let tls = TlsConfig::builder()
    ///     .root_certs(RootCerts::new_with_certs(&certificates))
    ///     .build();
    /// let transport = UreqTransport::builder().tls_config(tls).build();
    /// # let _ = transport;
    /// ```
    pub fn builder() -> UreqTransportBuilder {
        UreqTransportBuilder {
            lookup: system_lookup(),
            tls: ureq::tls::TlsConfig::default(),
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

/// Sets up a [`UreqTransport`] with an agent of its own: [`UreqTransport::builder`].
#[derive(Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct UreqTransportBuilder {
    lookup: Lookup,
    tls: ureq::tls::TlsConfig,
}

impl fmt::Debug for UreqTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UreqTransportBuilder")
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl UreqTransportBuilder {
    /// The TLS settings for https: the roots to trust, a client certificate… (ureq's
    /// defaults: rustls with the webpki roots).
    pub fn tls_config(mut self, tls: ureq::tls::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Looks host names up with `lookup`, as [`UreqTransport::with_lookup`] does.
    pub fn lookup(
        mut self,
        lookup: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Self {
        self.lookup = Arc::new(lookup);
        self
    }

    /// The transport.
    pub fn build(self) -> UreqTransport {
        UreqTransport {
            agent: Agent::Own {
                resolver: CachingResolver::new(self.lookup),
                tls: self.tls,
                agent: Arc::default(),
            },
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
        let started = Instant::now();
        let request = request.map(Body::into_vec);
        let (agent, preset) = match &self.agent {
            Agent::Own {
                resolver,
                tls,
                agent,
            } => {
                let (preset, agent) = agent
                    .get_or_init(|| (timeout, own_agent(timeout, tls.clone(), resolver.clone())));
                (agent, *preset == timeout)
            }
            Agent::Theirs(agent) => (agent, false),
        };
        let configured = |request: Request<Vec<u8>>, timeout: Duration| {
            let global = match &self.agent {
                Agent::Own { .. } => Some(timeout),
                Agent::Theirs(agent) => stricter(Some(timeout), agent.config().timeouts().global),
            };
            agent
                .configure_request(request)
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(global)
                .build()
        };
        let again = resendable(&request);
        let request = if preset {
            request
        } else {
            configured(request, timeout)
        };
        let response = match agent.run(request) {
            Ok(response) => response,
            Err(error) => {
                let error = transport_error(error);
                let left = timeout.saturating_sub(started.elapsed());
                match again {
                    Some(request) if closed_before_any_answer(&error) && !left.is_zero() => agent
                        .run(configured(request, left))
                        .map_err(transport_error)?,
                    _ => return Err(error),
                }
            }
        };
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

/// The stricter of two bounds (`None` is no bound).
fn stricter(ours: Option<Duration>, theirs: Option<Duration>) -> Option<Duration> {
    match (ours, theirs) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An agent that answers errors as responses, follows no redirect, reads no proxy from the
/// environment, bounds each exchange to `timeout` as a whole, and looks host names up with
/// `resolver`.
fn own_agent(
    timeout: Duration,
    tls: ureq::tls::TlsConfig,
    resolver: CachingResolver,
) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build();
    let connector = ureq::unversioned::transport::DefaultConnector::default().chain(LeanConnector);
    ureq::Agent::with_parts(config, connector, resolver)
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
        // A head that is not HTTP, too large, or never-ending informational answers.
        ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
            TransportErrorKind::Protocol
        }
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
        io::ErrorKind::NotFound => TransportErrorKind::Dns,
        _ => TransportErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_own_agent_takes_no_proxy_from_the_environment_and_one_timeout_for_all() {
        for timeout in [Duration::from_secs(30), Duration::from_secs(5)] {
            let agent = own_agent(
                timeout,
                ureq::tls::TlsConfig::default(),
                CachingResolver::new(system_lookup()),
            );
            assert!(agent.config().proxy().is_none());
            let timeouts = agent.config().timeouts();
            assert_eq!(timeouts.global, Some(timeout));
            assert_eq!(
                timeouts.recv_response, None,
                "no phase has a share of its own"
            );
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
    fn each_io_failure_has_its_kind() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                TransportErrorKind::Connect,
            ),
            (io::ErrorKind::AddrNotAvailable, TransportErrorKind::Connect),
            (io::ErrorKind::TimedOut, TransportErrorKind::Timeout),
            (io::ErrorKind::WouldBlock, TransportErrorKind::Timeout),
            (
                io::ErrorKind::UnexpectedEof,
                TransportErrorKind::ConnectionClosed,
            ),
            (
                io::ErrorKind::ConnectionReset,
                TransportErrorKind::ConnectionClosed,
            ),
            (
                io::ErrorKind::ConnectionAborted,
                TransportErrorKind::ConnectionClosed,
            ),
            (
                io::ErrorKind::BrokenPipe,
                TransportErrorKind::ConnectionClosed,
            ),
            (io::ErrorKind::NotFound, TransportErrorKind::Dns),
            (io::ErrorKind::Other, TransportErrorKind::Other),
        ];
        for (io, kind) in cases {
            assert_eq!(io_kind(&io::Error::from(io)), kind, "{io:?}");
        }
        let tls = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(io_kind(&tls), TransportErrorKind::Tls);
    }
}
