//! Serving the fake PeerTube on a loopback port: real sockets, HTTP/1.1 with keep-alive, on a
//! thread of its own, stopped when the handle is dropped.

use crate::fake::{ClientAddr, FakePeerTube};
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// Requests larger than this are answered 413 without being read further.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A misbehaviour of the network or the server, for testing clients. Injected with
/// [`LoopbackServer::inject`]; each one is used by one request.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then answer as usual (a stalled server, for timeout tests).
    Delay(Duration),
    /// Close the connection without answering.
    Close,
    /// Send the status line and headers (with the full `Content-Length`) and the first half of
    /// the body, then close the connection.
    TruncateBody,
    /// Handle the request (a refresh rotates the pair) and close the connection without the
    /// answer: a refresh whose answer was lost on the way back.
    LoseAnswer,
}

type Faults = Arc<Mutex<VecDeque<(Option<String>, Fault)>>>;

/// The fake served on `127.0.0.1` at a free port. Dropping it stops the server and closes its
/// connections.
#[derive(Debug)]
pub struct LoopbackServer {
    address: SocketAddr,
    faults: Faults,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// `http://127.0.0.1:PORT`, to give to [`Instance::new`](crate::Instance::new).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The socket address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Makes the next request (to `path` only, if given) meet `fault`.
    pub fn inject(&self, path: Option<&str>, fault: Fault) {
        lock(&self.faults).push_back((path.map(str::to_owned), fault));
    }

    /// How many injected faults no request has met yet: when it drops, a request has just
    /// met one (a [`Fault::Delay`] is then under way).
    pub fn faults_waiting(&self) -> usize {
        lock(&self.faults).len()
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(faults: &Faults) -> std::sync::MutexGuard<'_, VecDeque<(Option<String>, Fault)>> {
    faults
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakePeerTube {
    /// Serves this fake on `127.0.0.1` at a free port, on a thread of its own with its own
    /// single-threaded tokio runtime (so it works under blocking and async tests alike).
    ///
    /// ```
    /// use peertube_session::fake::FakePeerTube;
    ///
    /// let fake = FakePeerTube::default();
    /// let server = fake.serve()?;
    /// assert!(server.base_url().starts_with("http://127.0.0.1:"));
    /// drop(server); // stops it
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn serve(&self) -> io::Result<LoopbackServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shutdown, stopped) = oneshot::channel();
        let faults = Faults::default();
        let fake = self.clone();
        let thread_faults = faults.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-peertube-{}", address.port()))
            .spawn(move || runtime.block_on(accept_loop(listener, fake, thread_faults, stopped)))?;
        Ok(LoopbackServer {
            address,
            faults,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    fake: FakePeerTube,
    faults: Faults,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let fake = fake.clone();
                let faults = faults.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(fake.clone(), faults.clone(), peer, request));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    // Returning drops the runtime's remaining tasks: open connections close with it.
}

type ReplyBody = Either<Full<Bytes>, Truncated>;

async fn answer(
    fake: FakePeerTube,
    faults: Faults,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ReplyBody>, io::Error> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(response);
        }
    };
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(ClientAddr(peer.ip()));
    let fault = {
        let mut queue = lock(&faults);
        let path = request.uri().path();
        queue
            .iter()
            .position(|(only, _)| only.as_deref().is_none_or(|p| p == path))
            .and_then(|index| queue.remove(index))
            .map(|(_, fault)| fault)
    };
    match fault {
        Some(Fault::Close) => return Err(io::Error::other("fault injected: connection closed")),
        Some(Fault::LoseAnswer) => {
            drop(fake.handle(&request));
            return Err(io::Error::other("fault injected: answer lost"));
        }
        Some(Fault::Delay(wait)) => tokio::time::sleep(wait).await,
        _ => {}
    }
    let response = fake.handle(&request);
    let (mut parts, body) = response.into_parts();
    let body = if fault == Some(Fault::TruncateBody) {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        Either::Right(Truncated::new(body))
    } else {
        Either::Left(Full::new(Bytes::from(body)))
    };
    Ok(Response::from_parts(parts, body))
}

/// A body that announces its full length, sends the first half and then fails, which makes
/// hyper close the connection mid-body. The failure waits a moment so the first half is
/// flushed to the socket rather than dropped with the buffer.
struct Truncated {
    full_length: u64,
    first_half: Option<Bytes>,
    before_failing: Pin<Box<tokio::time::Sleep>>,
}

impl Truncated {
    fn new(body: Vec<u8>) -> Self {
        let full_length = body.len() as u64;
        let half = body.len() / 2;
        Truncated {
            full_length,
            first_half: Some(Bytes::from(body).slice(..half)),
            before_failing: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
        }
    }
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.first_half.take() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        this.before_failing
            .as_mut()
            .poll(context)
            .map(|()| Some(Err(io::Error::other("fault injected: body truncated"))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.full_length)
    }
}
