//! The hyper 1 transport: hyper-util's client over any connector, whole answers whatever the
//! status, no redirects (hyper follows none), a timeout and a body cap.

use crate::asynchronous::AsyncTransport;
use crate::classify::classify;
use crate::driver::{ExchangeLimits, at_most};
use crate::error::{TransportError, TransportErrorKind};
use crate::request::Body;
use crate::resend::{answer_once_more, resendable};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Instant;

/// The connector of [`HyperTransport::new`]: https (rustls with the ring provider and the
/// webpki roots) or plain http.
pub type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Sends requests with hyper-util's client. Bring your own client (any connector: a proxy,
/// another TLS stack, a Unix socket) with [`HyperTransport::with_client`].
///
/// It reads no proxy from the environment, like `UreqTransport` (feature `ureq`)
/// (where requests go, with a password or a token in them, is decided in code); for a proxy,
/// bring a client whose connector goes through it.
///
/// It needs a tokio runtime to spawn its connections on (the `rt` part: a runtime built
/// without `enable_time` is fine). Each exchange keeps to the timeout and the body cap the
/// client's [`Config`](crate::asynchronous::Config) gives it ([`ExchangeLimits`]), the timeout
/// shortened to the call's [`CallDeadline`](crate::asynchronous::CallDeadline) when that leaves less; its timer is
/// runtime-agnostic.
///
/// A `GET` (any idempotent request) whose connection closed before any answer came (a server
/// ending a kept-alive connection as the request went out on it) is sent once more within the
/// timeout; a `POST` (a login, a refresh, a logout) never is.
#[derive(Debug, Clone)]
pub struct HyperTransport<C> {
    /// Or why the TLS setup failed, which every request then reports: construction cannot
    /// fail, like ureq's agent.
    client: Result<Client<C, Full<Bytes>>, rustls::Error>,
}

impl Default for HyperTransport<HttpsConnector> {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperTransport<HttpsConnector> {
    /// A client with rustls (ring provider, webpki roots; never the process-wide default
    /// provider, so it does not matter which other TLS users share the process), HTTP/1.1,
    /// https or http. Should rustls ever refuse its own default protocol versions, every
    /// request fails with [`TransportErrorKind::Tls`] (never a panic).
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map(|builder| {
                let connector = builder.https_or_http().enable_http1().build();
                Client::builder(TokioExecutor::new()).build(connector)
            });
        HyperTransport { client }
    }
}

impl<C> HyperTransport<C> {
    /// A transport over your client.
    pub fn with_client(client: Client<C, Full<Bytes>>) -> Self {
        HyperTransport { client: Ok(client) }
    }
}

impl<C> AsyncTransport for HyperTransport<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send {
        let limits = ExchangeLimits::of(&request, Instant::now());
        let timeout = limits.timeout();
        let request = request.map(|body| Full::new(Bytes::from(body.into_vec())));
        let again = resendable(&request);
        // The exchange is made inside `at_most` (see there why).
        let exchange = move || async move {
            let client = self
                .client
                .as_ref()
                .map_err(|e| TransportError::new(TransportErrorKind::Tls, e.clone()))?;
            let response = answer_once_more(request, again, |r| answer(client, r)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, limits.body_limit())
                .collect()
                .await
                .map_err(classify)?
                .to_bytes();
            Ok(Response::from_parts(parts, body.to_vec()))
        };
        at_most(timeout, exchange, || {
            Err(TransportError::of_kind(TransportErrorKind::Timeout))
        })
    }
}

/// The head of the answer to `request`.
async fn answer<C: Connect + Clone + Send + Sync + 'static>(
    client: &Client<C, Full<Bytes>>,
    mut request: Request<Full<Bytes>>,
) -> Result<Response<hyper::body::Incoming>, TransportError> {
    let informational = Informational::watch(&mut request);
    informational
        .bound(client.request(request))
        .await?
        .map_err(|e| classify(Box::new(e)))
}

/// The most informational (1xx) answers one request may get before its final one: a server
/// that sends them without end is broken, not slow.
const MAX_INFORMATIONAL: usize = 16;

/// The 1xx answers a request got (hyper skips them, and would read them forever).
#[derive(Default)]
struct Informational {
    seen: AtomicUsize,
    waiting: Mutex<Option<Waker>>,
}

impl Informational {
    /// Counts `request`'s informational answers.
    fn watch<B>(request: &mut Request<B>) -> Arc<Informational> {
        let informational = Arc::new(Informational::default());
        let counted = informational.clone();
        hyper::ext::on_informational(request, move |_| {
            let seen = counted.seen.fetch_add(1, Ordering::AcqRel) + 1;
            if seen > MAX_INFORMATIONAL
                && let Some(waker) = counted
                    .waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
            {
                waker.wake();
            }
        });
        informational
    }

    /// `answer`, or a protocol error once the server sent more 1xx answers than any server
    /// sends.
    async fn bound<F: Future>(&self, answer: F) -> Result<F::Output, TransportError> {
        let mut answer = std::pin::pin!(answer);
        std::future::poll_fn(|cx| {
            *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            if self.seen.load(Ordering::Acquire) > MAX_INFORMATIONAL {
                return Poll::Ready(Err(TransportError::new(
                    TransportErrorKind::Protocol,
                    io::Error::other("the server sent informational (1xx) answers without end"),
                )));
            }
            answer.as_mut().poll(cx).map(Ok)
        })
        .await
    }
}
