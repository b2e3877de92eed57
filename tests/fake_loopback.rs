//! The fake served on loopback, talked to with a plain HTTP/1.1 client over `TcpStream`.
#![cfg(feature = "fake")]

use peertube_session::fake::{FakePeerTube, FakeUser, Fault};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(address: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect_timeout(&address, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    BufReader::new(stream)
}

fn send(connection: &mut BufReader<TcpStream>, request: &str) {
    connection.get_mut().write_all(request.as_bytes()).unwrap();
}

/// Reads one answer; `None` when the server closed the connection before a full answer.
fn read_answer(connection: &mut BufReader<TcpStream>) -> Option<Answer> {
    let mut line = String::new();
    if connection.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        connection.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    connection.read_exact(&mut body).ok()?;
    Some(Answer {
        status,
        headers,
        body,
    })
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n")
}

fn post_form(path: &str, host: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn fake() -> FakePeerTube {
    FakePeerTube::builder()
        .client("cid", "csecret")
        .user(FakeUser::new("alice", "alice@example.org", "pw"))
        .build()
}

#[test]
fn a_whole_session_over_one_keep_alive_connection() {
    let fake = fake();
    let server = fake.serve().unwrap();
    let host = server.address().to_string();
    assert_eq!(server.base_url(), format!("http://{host}"));
    let mut connection = connect(server.address());

    send(&mut connection, &get("/api/v1/oauth-clients/local", &host));
    let answer = read_answer(&mut connection).unwrap();
    assert_eq!(answer.status, 200);
    assert!(String::from_utf8_lossy(&answer.body).contains("\"client_id\":\"cid\""));

    let form = "client_id=cid&client_secret=csecret&grant_type=password&response_type=code&scope=upload&username=alice&password=pw";
    send(
        &mut connection,
        &post_form("/api/v1/users/token", &host, form),
    );
    let answer = read_answer(&mut connection).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let access = json["access_token"].as_str().unwrap();

    send(
        &mut connection,
        &format!(
            "POST /api/v1/users/revoke-token HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {access}\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    let answer = read_answer(&mut connection).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"success":true}"#);

    let counters = fake.counters();
    assert_eq!(
        (
            counters.client_requests,
            counters.logins,
            counters.revocations
        ),
        (1, 1, 1)
    );
}

#[test]
fn the_host_check_reads_the_host_header() {
    let fake = FakePeerTube::builder().host("video.example.org").build();
    let server = fake.serve().unwrap();
    let mut connection = connect(server.address());
    send(
        &mut connection,
        &get("/api/v1/oauth-clients/local", &server.address().to_string()),
    );
    assert_eq!(read_answer(&mut connection).unwrap().status, 403);
    send(
        &mut connection,
        &get("/api/v1/oauth-clients/local", "video.example.org"),
    );
    assert_eq!(read_answer(&mut connection).unwrap().status, 200);
}

#[test]
fn the_rate_limit_counts_per_client_address() {
    let fake = FakePeerTube::builder()
        .client("cid", "csecret")
        .login_rate_limit(1, Duration::from_secs(300))
        .build();
    let server = fake.serve().unwrap();
    let host = server.address().to_string();
    let mut connection = connect(server.address());
    send(
        &mut connection,
        &post_form("/api/v1/users/token", &host, "grant_type=password"),
    );
    assert_eq!(read_answer(&mut connection).unwrap().status, 400);
    send(
        &mut connection,
        &post_form("/api/v1/users/token", &host, "grant_type=password"),
    );
    let answer = read_answer(&mut connection).unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("300"));
}

#[test]
fn a_closed_connection_fault_gives_no_answer() {
    let server = fake().serve().unwrap();
    server.inject(None, Fault::Close);
    let mut connection = connect(server.address());
    send(&mut connection, &get("/api/v1/oauth-clients/local", "x"));
    assert!(read_answer(&mut connection).is_none());
    // The next connection is served normally.
    let mut connection = connect(server.address());
    send(&mut connection, &get("/api/v1/oauth-clients/local", "x"));
    assert_eq!(read_answer(&mut connection).unwrap().status, 200);
}

#[test]
fn a_truncated_body_fault_sends_less_than_announced() {
    let server = fake().serve().unwrap();
    server.inject(Some("/api/v1/oauth-clients/local"), Fault::TruncateBody);
    let mut connection = connect(server.address());
    send(&mut connection, &get("/api/v1/oauth-clients/local", "x"));
    let mut raw = Vec::new();
    let _ = connection.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"));
    let announced: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    assert!(body.len() < announced, "{} of {announced}", body.len());
}

#[test]
fn a_delay_fault_holds_the_answer_back() {
    let server = fake().serve().unwrap();
    server.inject(None, Fault::Delay(Duration::from_millis(300)));
    let mut connection = connect(server.address());
    let started = Instant::now();
    send(&mut connection, &get("/api/v1/oauth-clients/local", "x"));
    assert_eq!(read_answer(&mut connection).unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn dropping_the_server_stops_it_and_frees_the_port() {
    let server = fake().serve().unwrap();
    let address = server.address();
    let mut idle = connect(address);
    // A stalled request must not keep the server alive past its drop.
    server.inject(None, Fault::Delay(Duration::from_secs(3600)));
    send(&mut idle, &get("/api/v1/oauth-clients/local", "x"));
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < TIMEOUT);
    assert!(read_answer(&mut idle).is_none());
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err());
}
