//! When a transport sends a request a second time: the connection closed before any answer
//! came (a server ending a kept-alive connection just as the client took it from its pool, or
//! a server restarting), and the request is idempotent, so that sending it twice has the
//! effect of sending it once. Once, on a new connection, within the exchange's timeout. A
//! `POST` (a login, a refresh, a logout) is never sent twice: the server may have taken it in.

use crate::error::{TransportError, TransportErrorKind};
use http::{Method, Request};

/// Whether a request whose head got no answer, failing with `error`, may go again: its
/// connection closed (reset, aborted, ended) before any answer came.
pub(crate) fn closed_before_any_answer(error: &TransportError) -> bool {
    error.kind() == TransportErrorKind::ConnectionClosed
}

/// The answer `answer` gets for `request`, asked once more with `again` (a copy, when the
/// request may go twice) when the connection closed before any answer came.
pub(crate) async fn answer_once_more<R, A, F, Fut>(
    request: R,
    again: Option<R>,
    answer: F,
) -> Result<A, TransportError>
where
    F: Fn(R) -> Fut,
    Fut: std::future::Future<Output = Result<A, TransportError>>,
{
    match answer(request).await {
        Err(error) if closed_before_any_answer(&error) => match again {
            Some(request) => answer(request).await,
            None => Err(error),
        },
        other => other,
    }
}

/// Methods whose request may be sent twice with the effect of once (RFC 9110, 9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// A copy of `request` to send again, if it may be: its method, target, version, headers and
/// body (not its extensions: each transport sets its own again).
pub(crate) fn resendable<B: Clone>(request: &Request<B>) -> Option<Request<B>> {
    if !is_idempotent(request.method()) {
        return None;
    }
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_requests_are_copied_and_the_copy_is_whole() {
        let request = Request::builder()
            .method(Method::PUT)
            .uri("https://video.example.org/api/v1/videos/1")
            .header("authorization", "Bearer x")
            .body(b"{}".to_vec())
            .unwrap();
        let copy = resendable(&request).unwrap();
        assert_eq!(copy.method(), request.method());
        assert_eq!(copy.uri(), request.uri());
        assert_eq!(copy.version(), request.version());
        assert_eq!(copy.headers(), request.headers());
        assert_eq!(copy.body(), request.body());
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::DELETE,
        ] {
            assert!(is_idempotent(&method), "{method}");
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            let mut request = Request::new(());
            *request.method_mut() = method.clone();
            assert!(resendable(&request).is_none(), "{method}");
        }
    }
}
