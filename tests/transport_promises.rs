//! What every transport promises, checked the same way for each: an answer (head and whole
//! body) that arrives within the exchange's timeout succeeds, however late in it; one that does
//! not is `TransportErrorKind::Timeout` by the timeout plus a small slack; a host name whose
//! lookup hangs is bounded the same way; and each hostile answer of one shared table is the
//! same kind of error for every transport.
#![cfg(all(feature = "ureq", feature = "hyper"))]

#[cfg(feature = "reqwest")]
use peertube_session::asynchronous::ReqwestTransport;
use peertube_session::asynchronous::{AsyncTransport, HyperTransport};
use peertube_session::blocking::{ExchangeLimits, Transport, UreqTransport};
use peertube_session::{Body, TransportError, TransportErrorKind};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The exchange's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// How far past the timeout a late answer may still be running (scheduling on a loaded 2-core
/// machine; the transports themselves stop at the timeout).
const SLACK: Duration = Duration::from_millis(400);
const CAP: usize = 64 * 1024;

type Answer = Result<http::Response<Vec<u8>>, TransportError>;

/// A way to send one request, seen as blocking.
type Send = Box<dyn Fn(http::Request<Body>) -> Answer>;

/// Every transport, each once (so its connections are pooled across requests), with a name.
fn transports() -> Vec<(&'static str, Send)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let hyper = runtime.block_on(async { HyperTransport::new() });
    let ureq = UreqTransport::new();
    let mut all: Vec<(&'static str, Send)> = vec![
        ("ureq", Box::new(move |request| ureq.send(request))),
        (
            "hyper",
            Box::new(move |request| runtime.block_on(hyper.send(request))),
        ),
    ];
    #[cfg(feature = "reqwest")]
    {
        // reqwest's connection pool keeps its time on tokio's timer.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reqwest = runtime.block_on(async { ReqwestTransport::new() });
        all.push((
            "reqwest",
            Box::new(move |request| runtime.block_on(reqwest.send(request))),
        ));
    }
    all
}

/// A request whose exchange must end within `timeout`, as a driver asks a transport.
fn request(url: &str, timeout: Duration) -> http::Request<Body> {
    let mut request = http::Request::get(url).body(Body::default()).unwrap();
    request
        .extensions_mut()
        .insert(ExchangeLimits::new(timeout, CAP));
    request
}

/// A server on 127.0.0.1 that runs `script` on each connection (on a thread of its own), for
/// at most 12 connections.
fn server(script: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(12) {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || script(stream));
        }
    });
    format!("http://{address}/api/v1/oauth-clients/local")
}

/// Reads the request's head (what a server does before it answers).
fn read_request(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") && seen.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => return,
        }
    }
}

const BODY: &[u8] = br#"{"client_id":"abc","client_secret":"def"}"#;

fn head(length: usize) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
}

/// Sleeps for a fraction of the timeout.
fn nap(fraction: f64) {
    std::thread::sleep(TIMEOUT.mul_f64(fraction));
}

/// The server's answer is sent `before` the given moments (fractions of the timeout); what
/// each transport made of it, and how long it took.
fn outcome(script: fn(TcpStream)) -> Vec<(&'static str, Answer, Duration)> {
    let url = server(script);
    transports()
        .into_iter()
        .map(|(name, send)| {
            let started = Instant::now();
            let answer = send(request(&url, TIMEOUT));
            (name, answer, started.elapsed())
        })
        .collect()
}

fn assert_succeeds(script: fn(TcpStream), what: &str) {
    for (name, answer, took) in outcome(script) {
        let answer = answer.unwrap_or_else(|e| panic!("{name}, {what}: {e:?} after {took:?}"));
        assert_eq!(answer.status(), 200, "{name}, {what}");
        assert_eq!(answer.body(), BODY, "{name}, {what}");
    }
}

fn assert_times_out(script: fn(TcpStream), what: &str) {
    for (name, answer, took) in outcome(script) {
        let error = answer.expect_err(what);
        assert_eq!(error.kind(), TransportErrorKind::Timeout, "{name}, {what}");
        assert!(took < TIMEOUT + SLACK, "{name}, {what}: {took:?}");
        assert!(
            took >= TIMEOUT.mul_f64(0.95),
            "{name}, {what}: {took:?} is early"
        );
    }
}

#[test]
fn a_connection_accepted_late_but_answered_in_time_succeeds() {
    assert_succeeds(
        |mut stream| {
            nap(0.85);
            read_request(&mut stream);
            let _ = stream.write_all(head(BODY.len()).as_bytes());
            let _ = stream.write_all(BODY);
        },
        "accepted at 0.85 of the timeout",
    );
}

#[test]
fn a_head_sent_at_nine_tenths_of_the_timeout_succeeds() {
    assert_succeeds(
        |mut stream| {
            read_request(&mut stream);
            nap(0.9);
            let _ = stream.write_all(head(BODY.len()).as_bytes());
            let _ = stream.write_all(BODY);
        },
        "head at 0.9",
    );
}

#[test]
fn a_body_dripping_to_finish_at_nine_tenths_of_the_timeout_succeeds() {
    assert_succeeds(
        |mut stream| {
            read_request(&mut stream);
            let _ = stream.write_all(head(BODY.len()).as_bytes());
            for byte in BODY {
                nap(0.9 / BODY.len() as f64);
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
            }
        },
        "body finished at 0.9",
    );
}

#[test]
fn a_head_sent_after_the_timeout_is_a_timeout_at_the_timeout() {
    assert_times_out(
        |mut stream| {
            read_request(&mut stream);
            nap(3.0);
            let _ = stream.write_all(head(BODY.len()).as_bytes());
            let _ = stream.write_all(BODY);
        },
        "head at 3.0",
    );
}

#[test]
fn a_body_that_drips_past_the_timeout_is_a_timeout_at_the_timeout() {
    assert_times_out(
        |mut stream| {
            read_request(&mut stream);
            let _ = stream.write_all(head(BODY.len()).as_bytes());
            for byte in BODY {
                nap(3.0 / BODY.len() as f64);
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
            }
        },
        "body finished at 3.0",
    );
}

#[test]
fn a_connection_accepted_after_the_timeout_is_a_timeout_at_the_timeout() {
    assert_times_out(
        |mut stream| {
            nap(3.0);
            read_request(&mut stream);
            let _ = stream.write_all(head(BODY.len()).as_bytes());
        },
        "accepted at 3.0",
    );
}

#[test]
fn a_host_name_whose_lookup_hangs_is_bounded_by_the_timeout() {
    let url = server(|mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(head(BODY.len()).as_bytes());
        let _ = stream.write_all(BODY);
    });
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let hanging = UreqTransport::with_lookup(|_, _| {
        std::thread::sleep(Duration::from_secs(30));
        Ok(Vec::new())
    });
    let by_name = format!("http://stuck.test:{port}/api/v1/oauth-clients/local");
    let started = Instant::now();
    let error = hanging.send(request(&by_name, TIMEOUT)).unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), TransportErrorKind::Timeout, "{error:?}");
    assert!(took < TIMEOUT + SLACK, "{took:?}");
    // A lookup that answers is used, and kept.
    let resolved = UreqTransport::with_lookup(move |host, port| {
        assert_eq!(host, "instance.test");
        Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
    });
    let by_name = format!("http://instance.test:{port}/api/v1/oauth-clients/local");
    for _ in 0..3 {
        let answer = resolved.send(request(&by_name, TIMEOUT)).unwrap();
        assert_eq!(answer.body(), BODY);
    }
}

/// One hostile answer, and the kind every transport must give it.
struct Hostile {
    what: &'static str,
    script: fn(TcpStream),
    kind: TransportErrorKind,
}

fn hostile_answers() -> Vec<Hostile> {
    vec![
        Hostile {
            what: "the connection closed before any answer",
            script: |mut stream| read_request(&mut stream),
            kind: TransportErrorKind::ConnectionClosed,
        },
        Hostile {
            what: "an answer that is not HTTP",
            script: |mut stream| {
                read_request(&mut stream);
                let _ = stream.write_all(NOT_HTTP);
            },
            kind: TransportErrorKind::Protocol,
        },
        Hostile {
            what: "conflicting Content-Length headers",
            script: |mut stream| {
                read_request(&mut stream);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
                );
            },
            kind: TransportErrorKind::Protocol,
        },
        Hostile {
            what: "a header line that never ends",
            script: |mut stream| {
                read_request(&mut stream);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Endless: ");
                let chunk = [b'a'; 4096];
                for _ in 0..512 {
                    if stream.write_all(&chunk).is_err() {
                        return;
                    }
                }
            },
            kind: TransportErrorKind::Protocol,
        },
        Hostile {
            what: "a head of too many headers",
            script: |mut stream| {
                read_request(&mut stream);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
                for i in 0..20_000 {
                    if stream
                        .write_all(format!("X-Header-{i}: {i}\r\n").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                }
            },
            kind: TransportErrorKind::Protocol,
        },
        Hostile {
            what: ENDLESS_CONTINUE,
            script: |mut stream| {
                read_request(&mut stream);
                for _ in 0..100_000 {
                    if stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                        return;
                    }
                }
                // Held open past the timeout: no close to end it early.
                nap(3.0);
            },
            kind: TransportErrorKind::Protocol,
        },
        Hostile {
            what: TRICKLING_INFORMATIONAL,
            script: |mut stream| {
                read_request(&mut stream);
                // More than any server sends (16), each a moment after the last: the bound
                // must act on the seventeenth itself, not on a read that happens to follow.
                for _ in 0..24 {
                    if stream
                        .write_all(b"HTTP/1.1 103 Early Hints\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                    nap(0.03);
                }
                nap(3.0);
            },
            kind: TransportErrorKind::Protocol,
        },
        Hostile {
            what: "a body cut short",
            script: |mut stream| {
                read_request(&mut stream);
                let _ = stream.write_all(head(1000).as_bytes());
                let _ = stream.write_all(b"{\"client_id\":");
            },
            kind: TransportErrorKind::ConnectionClosed,
        },
        Hostile {
            what: "a body over the cap",
            script: |mut stream| {
                read_request(&mut stream);
                let _ = stream.write_all(head(CAP + 1).as_bytes());
                let _ = stream.write_all(&vec![b' '; CAP + 1]);
            },
            kind: TransportErrorKind::BodyTooLarge,
        },
        Hostile {
            what: "a head that never comes",
            script: |mut stream| {
                read_request(&mut stream);
                nap(3.0);
            },
            kind: TransportErrorKind::Timeout,
        },
    ]
}

/// What an SSH server says first: an answer, but not HTTP.
const NOT_HTTP: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n";
const ENDLESS_CONTINUE: &str = "an endless stream of 100 Continue";
const TRICKLING_INFORMATIONAL: &str = "informational answers without end, one at a time";

/// The kind transport `name` gives `hostile`: the table's, but for the informational answers
/// the others cannot count: reqwest gives no hook into hyper's 1xx answers, and ureq keeps no
/// count (a burst ends at its buffer's bound, one at a time never): only the timeout ends them.
fn expected(hostile: &Hostile, name: &str) -> TransportErrorKind {
    match (name, hostile.what) {
        ("reqwest", ENDLESS_CONTINUE) | ("reqwest" | "ureq", TRICKLING_INFORMATIONAL) => {
            TransportErrorKind::Timeout
        }
        _ => hostile.kind,
    }
}

#[test]
fn every_transport_gives_each_hostile_answer_the_same_kind() {
    let mut wrong = Vec::new();
    for hostile in hostile_answers() {
        for (name, answer, took) in outcome(hostile.script) {
            let kind = expected(&hostile, name);
            match answer {
                Err(error) if error.kind() == kind => {
                    assert!(took < TIMEOUT + SLACK, "{name}, {}: {took:?}", hostile.what);
                    // A transport that counts them stops at the seventeenth, not at the
                    // timeout (where a last look would find the count past the bound too).
                    if hostile.what == TRICKLING_INFORMATIONAL
                        && kind != TransportErrorKind::Timeout
                    {
                        assert!(took < TIMEOUT.mul_f64(0.9), "{name}: {took:?}");
                    }
                }
                other => wrong.push(format!(
                    "{name}, {}: expected {:?}, got {:?}",
                    hostile.what,
                    kind,
                    other
                        .map(|a| a.status())
                        .map_err(|e| (e.kind(), e.to_string()))
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn refused_and_tls_to_a_plain_port_are_the_same_kind_everywhere() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = format!("http://127.0.0.1:{port}/api/v1/oauth-clients/local");
    // A plain HTTP server answers whatever arrives, a TLS ClientHello too.
    let plain = server(|mut stream| {
        let mut hello = [0u8; 4096];
        let _ = stream.read(&mut hello);
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let tls_to_plain = plain.replace("http://", "https://");
    for (name, send) in transports() {
        let error = send(request(&refused, TIMEOUT)).unwrap_err();
        assert_eq!(
            error.kind(),
            TransportErrorKind::Connect,
            "{name}: {error:?}"
        );
        let error = send(request(&tls_to_plain, TIMEOUT)).unwrap_err();
        assert_eq!(error.kind(), TransportErrorKind::Tls, "{name}: {error:?}");
    }
}

/// Answers the request, then spoils the connection in the way `spoil` says and holds it open
/// (or closed) for a while: a pooled connection a client must not use again.
fn answer_then(mut stream: TcpStream, spoil: fn(&mut TcpStream)) {
    read_request(&mut stream);
    let _ = stream.write_all(head(BODY.len()).as_bytes());
    let _ = stream.write_all(BODY);
    spoil(&mut stream);
    std::thread::sleep(Duration::from_secs(2));
}

#[test]
fn a_pooled_connection_the_server_closed_or_spoiled_is_not_used_again() {
    let closed =
        server(|stream| answer_then(stream, |s| drop(s.shutdown(std::net::Shutdown::Both))));
    // Bytes nobody asked for: were the connection used again, they would be read as the next
    // request's answer.
    let stray = server(|stream| {
        answer_then(stream, |s| {
            let stale = br#"{"stale":true}"#;
            let _ = s.write_all(head(stale.len()).as_bytes());
            let _ = s.write_all(stale);
        })
    });
    for (spoiled, url) in [("closed", closed), ("stray bytes", stray)] {
        for (name, send) in transports() {
            for turn in 0..3 {
                let answer = send(request(&url, TIMEOUT))
                    .unwrap_or_else(|e| panic!("{name}, {spoiled}, turn {turn}: {e:?}"));
                assert_eq!(answer.body(), BODY, "{name}, {spoiled}, turn {turn}");
                // Time for the server's close or stray bytes to arrive.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Answers the first request, then closes the connection as the next one arrives: a server
/// ending a kept-alive connection while the client was already taking it from its pool.
fn answer_then_close_at_the_next(mut stream: TcpStream) {
    read_request(&mut stream);
    let _ = stream.write_all(head(BODY.len()).as_bytes());
    let _ = stream.write_all(BODY);
    read_request(&mut stream);
}

#[test]
fn a_pooled_connection_closed_as_a_request_arrives_is_retried_only_when_idempotent() {
    for (name, send) in transports() {
        let url = server(answer_then_close_at_the_next);
        for turn in 0..3 {
            let answer = send(request(&url, TIMEOUT))
                .unwrap_or_else(|e| panic!("{name}, GET {turn}: {e:?}"));
            assert_eq!(answer.body(), BODY, "{name}, GET {turn}");
        }
        // A POST may have been taken in before the close: it is not sent twice.
        let mut post = request(&url, TIMEOUT);
        *post.method_mut() = http::Method::POST;
        let error = send(post).unwrap_err();
        assert_eq!(
            error.kind(),
            TransportErrorKind::ConnectionClosed,
            "{name}: {error:?}"
        );
    }
}

/// Connections counted by [`a_get_is_sent_again_only_when_its_connection_closed_before_any_answer`]'s
/// server (a server script is a plain function).
static GARBLED_CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn a_get_is_sent_again_only_when_its_connection_closed_before_any_answer() {
    use std::sync::atomic::Ordering;
    let url = server(|mut stream| {
        GARBLED_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
        read_request(&mut stream);
        let _ = stream.write_all(NOT_HTTP);
    });
    for (name, send) in transports() {
        let before = GARBLED_CONNECTIONS.load(Ordering::SeqCst);
        let error = send(request(&url, TIMEOUT)).unwrap_err();
        assert_eq!(error.kind(), TransportErrorKind::Protocol, "{name}");
        let sent = GARBLED_CONNECTIONS.load(Ordering::SeqCst) - before;
        assert_eq!(sent, 1, "{name}: an answer that is not HTTP is an answer");
    }
}

/// A listener that accepts nothing, its queue full (a backlog of 0, filled): a connect to it
/// hangs, the kernel dropping its SYN, as one to a host that does not answer. Keep the
/// returned values alive for as long as connects must hang.
fn unanswering_listener() -> (socket2::Socket, Vec<TcpStream>, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&any_port.into()).unwrap();
    socket.listen(0).unwrap();
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(100)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return (socket, queued, address),
        }
    }
    panic!("the listener's queue never filled");
}

/// A connector's own connect timeout (hyper-util's, on a client brought with
/// `HyperTransport::with_client`) is a timeout too, not a failure to connect.
#[test]
fn a_connect_timeout_of_one_s_own_connector_is_a_timeout() {
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    let (_listener, _queued, address) = unanswering_listener();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let transport = runtime.block_on(async {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT / 4));
        HyperTransport::with_client(Client::builder(TokioExecutor::new()).build(connector))
    });
    let url = format!("http://{address}/api/v1/oauth-clients/local");
    let started = Instant::now();
    let error = runtime
        .block_on(transport.send(request(&url, TIMEOUT)))
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Timeout, "{error:?}");
    // Ended by the connector's timeout, not by the exchange's.
    assert!(
        started.elapsed() < TIMEOUT.mul_f64(0.8),
        "{:?}",
        started.elapsed()
    );
}
