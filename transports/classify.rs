//! Which [`TransportErrorKind`] a failure of hyper (or of reqwest, over hyper) is, read off the
//! error and its causes: one reading for both transports.

use crate::error::{TransportError, TransportErrorKind};
use http_body_util::LengthLimitError;
use std::error::Error as StdError;
use std::io;

/// Reads the kind of failure off the error and its causes.
pub(crate) fn classify(error: Box<dyn StdError + Send + Sync>) -> TransportError {
    let mut kind = TransportErrorKind::Other;
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error.as_ref());
    while let Some(current) = cause {
        if current.is::<LengthLimitError>() {
            kind = TransportErrorKind::BodyTooLarge;
            break;
        }
        if current.is::<rustls::Error>() {
            kind = TransportErrorKind::Tls;
            break;
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
            if hyper.is_parse() || hyper.is_parse_status() {
                kind = TransportErrorKind::Protocol;
                break;
            }
            if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                kind = TransportErrorKind::ConnectionClosed;
                break;
            }
        }
        if let Some(legacy) = current.downcast_ref::<hyper_util::client::legacy::Error>()
            && legacy.is_connect()
        {
            kind = TransportErrorKind::Connect;
        }
        if let Some(io) = current.downcast_ref::<io::Error>() {
            // `io::Error::source` skips the error it wraps, so a TLS
            // failure inside one is only found through `get_ref`.
            if wraps_tls_error(io) {
                kind = TransportErrorKind::Tls;
                break;
            }
            match io.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe => {
                    kind = TransportErrorKind::ConnectionClosed;
                    break;
                }
                io::ErrorKind::TimedOut => {
                    kind = TransportErrorKind::Timeout;
                    break;
                }
                _ => {}
            }
        }
        cause = current.source();
    }
    TransportError::new(kind, error)
}

/// Whether a rustls error sits inside `io`, possibly under further
/// `io::Error` layers (hyper-util wraps tokio-rustls's error once more).
fn wraps_tls_error(io: &io::Error) -> bool {
    let mut inner = io.get_ref();
    // Bounded: each step unwraps one layer of a finite error value.
    while let Some(current) = inner {
        if current.is::<rustls::Error>() {
            return true;
        }
        inner = current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref);
    }
    false
}

#[cfg(all(test, feature = "hyper"))]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;

    /// hyper's error for a request whose connection ended before it went out ("closed" or
    /// "canceled", not an incomplete answer): the connection closed, as for the others.
    #[test]
    fn a_request_whose_connection_ended_before_it_went_out_is_connection_closed() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let error = runtime.block_on(async {
            let (ours, theirs) = tokio::io::duplex(1024);
            let io = hyper_util::rt::TokioIo::new(ours);
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            drop((connection, theirs));
            let request = http::Request::get("/")
                .body(Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(request).await.unwrap_err()
        });
        assert!(error.is_closed() || error.is_canceled(), "{error:?}");
        assert!(!error.is_incomplete_message(), "{error:?}");
        assert_eq!(
            classify(Box::new(error)).kind(),
            TransportErrorKind::ConnectionClosed
        );
    }
}
