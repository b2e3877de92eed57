//! The reqwest 0.13 transport: whole answers whatever the status, no redirects, no proxy from
//! the environment, a timeout and a body cap.

use crate::asynchronous::AsyncTransport;
use crate::classify::classify;
use crate::driver::{ExchangeLimits, at_most};
use crate::error::{TransportError, TransportErrorKind};
use crate::request::Body;
use crate::resend::{answer_once_more, resendable};
use http::{Request, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Sends requests with a [`reqwest::Client`]. Bring your own client (another TLS setup, a
/// proxy, HTTP/2) with [`ReqwestTransport::with_client`].
///
/// [`ReqwestTransport::new`] builds a client that reads no proxy from the environment (where
/// requests go, with a password or a token in them, is decided in code), follows no redirect
/// and speaks rustls with the ring provider and the webpki roots, like the other transports.
/// A client of your own is used as it is: build it with
/// `redirect(reqwest::redirect::Policy::none())`, since the session must see its answers'
/// redirects (a redirect followed would send a password or a token to wherever it points),
/// and with `no_proxy()` unless a proxy is what you want.
///
/// reqwest needs a tokio runtime. Each exchange keeps to the timeout and the body cap the
/// client's [`Config`](crate::asynchronous::Config) gives it ([`ExchangeLimits`]), the timeout
/// shortened to the call's [`CallDeadline`](crate::asynchronous::CallDeadline) when that
/// leaves less. A `GET` (any idempotent request) whose connection closed before any answer came
/// is sent once more within the timeout; a `POST` (a login, a refresh, a logout) never is.
///
/// One difference from `HyperTransport` (feature `hyper`): reqwest gives
/// no hook into hyper's informational (1xx) answers, so a server sending them without end is a
/// [`TransportErrorKind::Timeout`] here, where hyper's transport stops it sooner as
/// [`TransportErrorKind::Protocol`].
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    /// Or why the client could not be built, which every request then reports: construction
    /// cannot fail, as for the other transports.
    client: Result<reqwest::Client, TransportError>,
}

impl Default for ReqwestTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqwestTransport {
    /// A client with rustls (ring provider, webpki roots; never the process-wide default
    /// provider), HTTP/1.1, https or http, no proxy, no redirects. Should rustls or reqwest
    /// refuse that setup, every request fails with [`TransportErrorKind::Tls`] (never a
    /// panic).
    pub fn new() -> Self {
        let client = tls_config()
            .map_err(|error| TransportError::new(TransportErrorKind::Tls, error))
            .and_then(|tls| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .tls_backend_preconfigured(tls)
                    .build()
                    .map_err(|error| TransportError::new(TransportErrorKind::Tls, error))
            });
        ReqwestTransport { client }
    }

    /// A transport over your client (see above for the settings it should have).
    pub fn with_client(client: reqwest::Client) -> Self {
        ReqwestTransport { client: Ok(client) }
    }

    /// The client it sends with (`None` when its TLS setup failed): to send your own API
    /// calls over the same connections, through `SessionMiddleware` (feature
    /// `reqwest-middleware`). It follows no redirect and reads no proxy.
    pub fn client(&self) -> Option<&reqwest::Client> {
        self.client.as_ref().ok()
    }
}

/// rustls with the ring provider and the webpki roots.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

impl AsyncTransport for ReqwestTransport {
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, TransportError>> + Send {
        let limits = ExchangeLimits::of(&request, Instant::now());
        let timeout = limits.timeout();
        let again = resendable(&request);
        // The exchange is made inside `at_most` (see there why).
        let exchange = move || async move {
            let client = self.client.as_ref().map_err(Clone::clone)?;
            let response = answer_once_more(request, again, |r| answer(client, r)).await?;
            whole(response, limits.body_limit()).await
        };
        at_most(timeout, exchange, || {
            Err(TransportError::of_kind(TransportErrorKind::Timeout))
        })
    }
}

/// The head of the answer to `request`.
async fn answer(
    client: &reqwest::Client,
    request: Request<Body>,
) -> Result<reqwest::Response, TransportError> {
    let request = reqwest::Request::try_from(request.map(Body::into_vec))
        .map_err(|error| TransportError::new(TransportErrorKind::Other, error))?;
    client
        .execute(request)
        .await
        .map_err(|error| classify(Box::new(error)))
}

/// The answer with its whole body, at most `limit` bytes of it, read as it arrives.
pub(crate) async fn whole(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Response<Vec<u8>>, TransportError> {
    let mut head = Response::new(Vec::new());
    *head.status_mut() = response.status();
    *head.version_mut() = response.version();
    *head.headers_mut() = std::mem::take(response.headers_mut());
    let body = head.body_mut();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| classify(Box::new(error)))?
    {
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Err(TransportError::new(
                TransportErrorKind::BodyTooLarge,
                std::io::Error::other(format!("the answer is over the cap of {limit} bytes")),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(head)
}
