//! The `peertube-session` command line, run as a person or a script would run it: the real
//! binary, against the fake PeerTube on loopback, with its profiles in a scratch directory.
#![cfg(all(feature = "cli", feature = "fake"))]

use peertube_session::fake::{FakePeerTube, FakeUser, LoopbackServer, totp};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_peertube-session");
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// The binary reads this machine's clock: the fake's clock starts at the same moment, as a real
/// instance's would be (a server whose clock is off is `tests/clock_skew.rs`'s subject).
fn fake_builder() -> peertube_session::fake::FakeBuilder {
    FakePeerTube::builder().clock_start(std::time::SystemTime::now())
}

/// A fake instance on loopback and a scratch configuration directory.
struct World {
    fake: FakePeerTube,
    server: LoopbackServer,
    home: PathBuf,
}

impl World {
    fn new(name: &str) -> World {
        World::with(
            name,
            fake_builder()
                .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
                .user(FakeUser::new("bob", "bob@example.org", "bob-pw").with_totp(TOTP_SECRET))
                .no_rate_limit()
                .build(),
        )
    }

    fn with(name: &str, fake: FakePeerTube) -> World {
        let server = fake.serve().expect("serve the fake on loopback");
        let home = std::env::temp_dir().join(format!(
            "peertube-session-cli-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&home);
        World { fake, server, home }
    }

    fn url(&self) -> String {
        self.server.base_url()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env("PEERTUBE_SESSION_HOME", &self.home)
            .env_remove("PEERTUBE_PASSWORD")
            .env_remove("PEERTUBE_OTP")
            .env_remove("PEERTUBE_SESSION_PROFILE");
        command
    }

    /// Runs the binary with `stdin` as its standard input (not a terminal).
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the binary");
        feed(&mut child, stdin);
        wait(child)
    }

    /// Runs the binary with `name=value` in its environment, nothing on its standard input.
    fn run_with_env(&self, args: &[&str], name: &str, value: &str) -> Output {
        let child = self
            .command(args)
            .env(name, value)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the binary");
        wait(child)
    }

    fn login_alice(&self) {
        let out = self.run(
            &["login", "--instance", &self.url(), "--username", "alice"],
            "alice-pw\n",
        );
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }

    fn session_file(&self, profile: &str) -> PathBuf {
        self.home
            .join("profiles")
            .join(format!("{profile}.session.json"))
    }

    /// A token the fake accepts right now.
    fn accepts(&self, token: &str) -> bool {
        let request = http::Request::get("/api/v1/users/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Vec::new())
            .unwrap();
        self.fake.handle(&request).status() == http::StatusCode::OK
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Waits for a child, killing it after 30 s: no test hangs.
fn wait(mut child: std::process::Child) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Writes `input` to the child's standard input and closes it. A child that ended before
/// reading it (a usage error found first) closed its end: the pipe is broken, and that is no
/// failure of the test. (Under load the child may well end before the write; this was the
/// suite's one flaky step.)
fn feed(child: &mut std::process::Child, input: &str) {
    let mut stdin = child.stdin.take().unwrap();
    match stdin.write_all(input.as_bytes()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command failed with exit code `expected`, its message starting with `start`.
fn assert_fails(out: &Output, expected: i32, start: &str) {
    let said = text(&out.stderr);
    assert_eq!(code(out), expected, "{said}");
    assert!(said.starts_with(start), "{said}");
}

#[test]
fn a_whole_session_from_the_command_line() {
    let world = World::new("whole");
    world.login_alice();
    // The tokens are in a file only the user can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(world.session_file("default"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = world.run(&["token"], "");
    assert_eq!(code(&token), 0, "{}", text(&token.stderr));
    let token = text(&token.stdout).trim().to_owned();
    assert!(world.accepts(&token));
    let header = world.run(&["header"], "");
    assert_eq!(
        text(&header.stdout),
        format!("Authorization: Bearer {token}\n")
    );

    let status = world.run(&["status"], "");
    let shown = text(&status.stdout);
    assert!(shown.contains("account:  alice"), "{shown}");
    assert!(shown.contains("state:    logged in"), "{shown}");
    assert!(
        shown.contains("access token expires in 23 h 59 min"),
        "{shown}"
    );
    assert!(
        shown.contains("refresh token expires in 13 d 23 h"),
        "{shown}"
    );
    assert!(!shown.contains(&token));
    let status: serde_json::Value =
        serde_json::from_slice(&world.run(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status["state"], "logged_in");
    assert_eq!(status["account"], "alice");
    assert_eq!(status["instance"], world.url());
    assert!(status["access_token_expires_in"].as_i64().unwrap() > 86_000);

    let sessions = world.run(&["sessions"], "");
    let table = text(&sessions.stdout);
    assert_eq!(code(&sessions), 0, "{}", text(&sessions.stderr));
    assert!(table.starts_with("ID  DEVICE"), "{table}");
    assert!(table.contains("peertube-session-cli/"), "{table}");
    assert!(table.contains("(this tool)"), "{table}");
    let listed: serde_json::Value =
        serde_json::from_slice(&world.run(&["sessions", "--json"], "").stdout).unwrap();
    assert_eq!(listed[0]["currentSession"], true);
    assert_eq!(listed[0]["loginIP"], "127.0.0.1");

    let as_json: serde_json::Value =
        serde_json::from_slice(&world.run(&["token", "--json"], "").stdout).unwrap();
    assert_eq!(as_json["access_token"], token.as_str());
    assert!(as_json["expires_at"].as_str().unwrap().ends_with('Z'));

    let out = world.run(&["logout", "--json"], "");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["was_logged_in"], true);
    assert!(!world.accepts(&token));
    assert_eq!(world.fake.counters().live_sessions, 0);
    let after = world.run(&["token"], "");
    assert_eq!(code(&after), 3);
    assert!(text(&after.stderr).contains("not logged in"));
}

#[test]
fn errors_are_one_line_with_the_reason_and_a_distinct_code() {
    let world = World::new("errors");
    let wrong = world.run(
        &["login", "-i", &world.url(), "-u", "alice"],
        "not-the-password\n",
    );
    assert_eq!(code(&wrong), 4);
    assert_eq!(
        text(&wrong.stderr),
        "peertube-session: wrong username or password\n"
    );
    let status = world.run(&["status"], "");
    assert_eq!(code(&status), 3, "a failed login saves no profile");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = world.run(
        &[
            "login",
            "-i",
            &format!("http://127.0.0.1:{port}"),
            "-u",
            "alice",
        ],
        "alice-pw\n",
    );
    assert_eq!(code(&unreachable), 6, "{}", text(&unreachable.stderr));
    assert!(text(&unreachable.stderr).starts_with("peertube-session: the instance is unreachable"));

    let plain = world.run(
        &["login", "-i", "http://video.example.org", "-u", "alice"],
        "alice-pw\n",
    );
    assert_eq!(code(&plain), 2, "{}", text(&plain.stderr));
    let long = "p".repeat(65);
    for name in ["../etc", ".hidden", long.as_str(), ""] {
        let bad_profile = world.run(&["status", "--profile", name], "");
        assert_eq!(code(&bad_profile), 2, "{name:?}");
    }
    assert_eq!(code(&world.run(&["status", "-p", &long[1..]], "")), 3);
    let usage = world.run(&["sessions", "revoke"], "");
    assert_eq!(code(&usage), 2);
    for out in [&wrong, &unreachable, &plain] {
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("alice-pw"));
    }
}

#[test]
fn rate_limited_says_when_to_retry() {
    let world = World::with(
        "limited",
        fake_builder()
            .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
            .login_rate_limit(1, Duration::from_secs(300))
            .build(),
    );
    world.login_alice();
    let second = world.run(
        &["login", "-i", &world.url(), "-u", "alice", "-p", "other"],
        "alice-pw\n",
    );
    assert_eq!(code(&second), 5);
    assert_eq!(
        text(&second.stderr),
        "peertube-session: rate limited by the instance: retry in 300 s\n"
    );
}

#[test]
fn two_factor_codes_come_after_the_password() {
    let world = World::new("otp");
    let code_now = totp(TOTP_SECRET, world.fake.now()).unwrap();
    let out = world.run(
        &["login", "-i", &world.url(), "-u", "bob"],
        &format!("bob-pw\n{code_now}\n"),
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(world.fake.counters().logins, 1);
    let missing = world.run(
        &["login", "-i", &world.url(), "-u", "bob", "-p", "b"],
        "bob-pw\n",
    );
    assert_eq!(code(&missing), 4);
    // A script is told where a code goes.
    assert_eq!(
        text(&missing.stderr),
        "peertube-session: this account needs a two-factor code (PEERTUBE_OTP, or the line \
         after the password)\n"
    );
    let wrong = world.run(
        &["login", "-i", &world.url(), "-u", "bob", "-p", "c"],
        "bob-pw\n000000\n",
    );
    assert_eq!(code(&wrong), 4);
    assert!(text(&wrong.stderr).contains("wrong or has expired"));
    // The environment works too, for automation.
    let out = world
        .command(&["login", "-i", &world.url(), "-u", "bob", "-p", "d"])
        .env("PEERTUBE_PASSWORD", "bob-pw")
        .env("PEERTUBE_OTP", totp(TOTP_SECRET, world.fake.now()).unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
}

#[test]
fn profiles_keep_accounts_side_by_side_and_a_new_login_ends_the_old_one() {
    let world = World::new("profiles");
    world.login_alice();
    let code_now = totp(TOTP_SECRET, world.fake.now()).unwrap();
    let bob = world.run(
        &["--profile", "bob", "login", "-i", &world.url(), "-u", "bob"],
        &format!("bob-pw\n{code_now}\n"),
    );
    assert_eq!(code(&bob), 0);
    let status: serde_json::Value =
        serde_json::from_slice(&world.run(&["status", "--json", "-p", "bob"], "").stdout).unwrap();
    let json_login = world.run(
        &[
            "--json",
            "login",
            "-i",
            &world.url(),
            "-u",
            "alice",
            "-p",
            "scripted",
        ],
        "alice-pw\n",
    );
    let said: serde_json::Value = serde_json::from_slice(&json_login.stdout).unwrap();
    assert_eq!(
        (said["profile"].as_str(), said["account"].as_str()),
        (Some("scripted"), Some("alice"))
    );
    assert_eq!(
        world.run(&["logout", "-p", "scripted"], "").status.code(),
        Some(0)
    );
    assert_eq!(status["account"], "bob");
    assert_eq!(world.fake.counters().live_sessions, 2);
    world.login_alice();
    assert_eq!(
        world.fake.counters().live_sessions,
        2,
        "the default profile's first session ended"
    );
    // A profile whose session file is gone says so, to people and to scripts.
    let json_login = world.run(
        &[
            "--json",
            "login",
            "-i",
            &world.url(),
            "-u",
            "alice",
            "-p",
            "emptied",
        ],
        "alice-pw\n",
    );
    assert_eq!(code(&json_login), 0);
    std::fs::remove_file(world.session_file("emptied")).unwrap();
    let emptied: serde_json::Value =
        serde_json::from_slice(&world.run(&["status", "--json", "-p", "emptied"], "").stdout)
            .unwrap();
    assert_eq!(emptied["state"], "not_logged_in");
    assert!(
        text(&world.run(&["status", "-p", "emptied"], "").stdout)
            .contains("state:    not logged in")
    );
}

#[test]
fn sessions_can_be_ended_one_by_one_or_all_but_this_one() {
    let world = World::new("revoke");
    world.login_alice();
    for profile in ["laptop", "phone"] {
        let out = world.run(
            &["login", "-i", &world.url(), "-u", "alice", "-p", profile],
            "alice-pw\n",
        );
        assert_eq!(code(&out), 0);
    }
    let listed: serde_json::Value = serde_json::from_slice(
        &world
            .run(&["sessions", "--json", "-p", "laptop"], "")
            .stdout,
    )
    .unwrap();
    let laptop = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["currentSession"] == true)
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let out = world.run(&["sessions", "revoke", &laptop.to_string()], "");
    assert_eq!(text(&out.stdout), format!("ended session {laptop}\n"));
    // `token` does not ask the instance (a script's every call would cost a request): the
    // laptop's token is printed, and refused; its next call that reaches the instance finds
    // the session gone.
    let stale = text(&world.run(&["token", "-p", "laptop"], "").stdout);
    assert!(!world.accepts(stale.trim()));
    let gone = world.run(&["sessions", "-p", "laptop"], "");
    assert_eq!(code(&gone), 3, "{}", text(&gone.stderr));
    let again = world.run(&["sessions", "revoke", &laptop.to_string()], "");
    assert_eq!(code(&again), 7, "the instance's error answer");
    assert!(
        text(&again.stderr).contains("does not exist"),
        "{}",
        text(&again.stderr)
    );

    let others = world.run(&["sessions", "revoke", "--others", "--json"], "");
    let report: serde_json::Value = serde_json::from_slice(&others.stdout).unwrap();
    assert_eq!(report["ended"].as_array().unwrap().len(), 1);
    assert_eq!(world.fake.counters().live_sessions, 1);
    assert_eq!(code(&world.run(&["token"], "")), 0);

    // Ending this tool's own session is a logout.
    let mine = world.run(&["sessions", "--json"], "");
    let mine: serde_json::Value = serde_json::from_slice(&mine.stdout).unwrap();
    let id = mine[0]["id"].as_u64().unwrap().to_string();
    let out = world.run(&["sessions", "revoke", &id], "");
    assert!(
        text(&out.stdout).contains("logged out"),
        "{}",
        text(&out.stdout)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&world.run(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status["state"], "logged_out");
}

#[test]
fn an_old_instance_has_no_sessions_to_show() {
    let world = World::with(
        "old",
        fake_builder()
            .version(peertube_session::fake::ServerVersion::PeerTube6)
            .user(FakeUser::new("alice", "alice@example.org", "alice-pw"))
            .build(),
    );
    world.login_alice();
    let out = world.run(&["sessions"], "");
    assert_eq!(code(&out), 8);
    assert!(text(&out.stderr).contains("PeerTube 7.3"));
}

/// Sets the stored access token's expiry 10 s in the past, as if a day had gone by.
fn expire_access_token(file: &Path) {
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let tokens = &mut record["session"]["tokens"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokens["access_expires_at"] = serde_json::json!(now - 10);
    let scratch = file.with_extension("edit");
    std::fs::write(&scratch, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::rename(scratch, file).unwrap();
}

#[test]
fn fifty_token_commands_at_once_refresh_once() {
    let world = World::new("fifty");
    world.login_alice();
    let before = text(&world.run(&["token"], "").stdout).trim().to_owned();
    // A day later: the access token has expired, here and on the instance.
    world.fake.advance(Duration::from_secs(86_400));
    expire_access_token(&world.session_file("default"));
    let children: Vec<_> = (0..50)
        .map(|_| {
            world
                .command(&["token"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(wait).collect();
    let counters = world.fake.counters();
    assert!(!world.accepts(&before));
    assert_eq!(counters.refreshes, 1, "{counters:?}");
    assert_eq!(counters.max_refreshes_per_token(), 1);
    assert_eq!(counters.invalid_grants, 0);
    for out in &outputs {
        assert_eq!(code(out), 0, "{}", text(&out.stderr));
        let token = text(&out.stdout).trim().to_owned();
        assert_ne!(token, before);
        assert!(world.accepts(&token), "a printed token is refused");
    }
}

#[cfg(unix)]
#[test]
fn the_password_prompt_echoes_nothing_in_a_terminal() {
    use expectrl::{Eof, Expect, Session};

    let world = World::new("pty");
    let mut command = world.command(&["login", "-i", &world.url()]);
    command.env("TERM", "dumb");
    let mut terminal = Session::spawn(command).expect("spawn in a pseudo-terminal");
    terminal.set_expect_timeout(Some(Duration::from_secs(20)));
    terminal.expect("Username: ").unwrap();
    terminal.send_line("alice").unwrap();
    terminal.expect("Password: ").unwrap();
    terminal.send_line("alice-pw").unwrap();
    let rest = terminal.expect(Eof).unwrap();
    let shown = format!("{}{}", text(rest.before()), text(rest.as_bytes()));
    assert!(shown.contains("logged in to"), "{shown:?}");
    assert!(
        !shown.contains("alice-pw"),
        "the password was echoed: {shown:?}"
    );
    assert_eq!(world.fake.counters().logins, 1);
}

#[test]
fn logins_at_once_on_one_profile_leave_one_session() {
    for logins in [2, 4] {
        let world = World::new(&format!("racing-{logins}"));
        let children: Vec<_> = (0..logins)
            .map(|_| {
                let mut child = world
                    .command(&["login", "--instance", &world.url(), "--username", "alice"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                feed(&mut child, "alice-pw\n");
                child
            })
            .collect();
        for out in children.into_iter().map(wait) {
            assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        }
        let counters = world.fake.counters();
        assert_eq!(counters.logins, logins, "{counters:?}");
        assert_eq!(counters.live_sessions, 1, "{counters:?}");
        // The one left is the profile's.
        let token = text(&world.run(&["token"], "").stdout).trim().to_owned();
        assert!(world.accepts(&token));
    }
}

#[test]
fn a_person_at_the_command_line_gets_plain_words() {
    let world = World::new("person");
    // https:// to a port that speaks plain HTTP.
    let address = world.url().replace("http://", "https://");
    let tls = world.run(&["login", "-i", &address, "-u", "alice"], "alice-pw\n");
    assert_eq!(code(&tls), 6, "{}", text(&tls.stderr));
    assert_eq!(
        text(&tls.stderr),
        "peertube-session: the instance does not speak TLS there (did you mean http:// ?)\n"
    );
    // A mistake on the command line: one line, the tool's name, exit 2.
    world.login_alice();
    let bad = world.run(&["sessions", "revoke", "abc"], "");
    assert_eq!(code(&bad), 2);
    let said = text(&bad.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("peertube-session: invalid value 'abc'"),
        "{said}"
    );
    assert!(said.ends_with("(see --help)\n"), "{said}");
    let help = world.run(&["--help"], "");
    assert_eq!(code(&help), 0);
    assert!(text(&help.stdout).contains("Exit codes"));
    // An unknown session: the instance's error answer, 7 as --help says.
    let unknown = world.run(&["sessions", "revoke", "999999"], "");
    assert_eq!(code(&unknown), 7, "{}", text(&unknown.stderr));
    assert!(text(&unknown.stderr).starts_with("peertube-session: not found on the instance"));
    // A repeated logout has done its work; nothing of the profile is left behind.
    let first = world.run(&["logout"], "");
    assert_eq!(code(&first), 0, "{}", text(&first.stderr));
    let again = world.run(&["logout"], "");
    assert_eq!(code(&again), 0, "{}", text(&again.stderr));
    assert_eq!(
        text(&again.stderr),
        "already logged out (profile default)\n"
    );
    let left: Vec<_> = std::fs::read_dir(world.home.join("profiles"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `login` for bob (who has two-factor) in a pseudo-terminal, his password typed: each of
/// `codes` is typed at the two-factor prompt; what the terminal showed after the last.
fn bob_logs_in_at_a_terminal(world: &World, codes: &[&str]) -> String {
    use expectrl::{Eof, Expect, Session};

    let mut command = world.command(&["login", "-i", &world.url(), "-u", "bob"]);
    command.env("TERM", "dumb");
    let mut terminal = Session::spawn(command).expect("spawn in a pseudo-terminal");
    terminal.set_expect_timeout(Some(Duration::from_secs(20)));
    terminal.expect("Password: ").unwrap();
    terminal.send_line("bob-pw").unwrap();
    for code in codes {
        terminal.expect("Two-factor code: ").unwrap();
        terminal.send_line(code).unwrap();
    }
    let rest = terminal.expect(Eof).unwrap();
    format!("{}{}", text(rest.before()), text(rest.as_bytes()))
}

#[test]
fn an_empty_two_factor_code_at_a_terminal_is_asked_again() {
    let world = World::new("pty-otp");
    let code = totp(TOTP_SECRET, world.fake.now()).unwrap();
    let shown = bob_logs_in_at_a_terminal(&world, &["", &code]);
    assert!(shown.contains("logged in to"), "{shown:?}");
    assert_eq!(world.fake.counters().logins, 1);
}

#[test]
fn a_person_who_gives_no_two_factor_code_is_told_where_to_find_it() {
    let world = World::new("pty-no-otp");
    let shown = bob_logs_in_at_a_terminal(&world, &["", "", ""]);
    assert!(
        shown.contains("the 6 digits your authenticator app shows"),
        "{shown:?}"
    );
    assert_eq!(world.fake.counters().logins, 0);
}

#[test]
fn verbose_tells_on_standard_error_what_the_session_did_and_the_token_stays_alone() {
    let world = World::new("verbose");
    world.login_alice();
    world.fake.advance(Duration::from_secs(86_400));
    expire_access_token(&world.session_file("default"));
    let quiet = world.run(&["token"], "");
    assert_eq!(code(&quiet), 0, "{}", text(&quiet.stderr));
    assert!(text(&quiet.stderr).is_empty(), "{}", text(&quiet.stderr));
    world.fake.advance(Duration::from_secs(86_400));
    expire_access_token(&world.session_file("default"));
    let told = world.run(&["token", "-v"], "");
    assert_eq!(code(&told), 0, "{}", text(&told.stderr));
    let token = text(&told.stdout);
    assert_eq!(token.lines().count(), 1, "the token alone: {token}");
    assert!(world.accepts(token.trim()));
    let trail = text(&told.stderr);
    for step in [
        "refresh lease taken",
        "refresh sent",
        "answered",
        "the new pair: saved",
    ] {
        assert!(trail.contains(step), "no {step:?} in:\n{trail}");
    }
    assert!(
        trail.lines().all(|line| line.contains("peertube_session")),
        "{trail}"
    );
    assert!(!trail.contains(token.trim()), "the token in the trail");
    // An empty filter is no filter: `-v` stands.
    world.fake.advance(Duration::from_secs(86_400));
    expire_access_token(&world.session_file("default"));
    let blank = world.run_with_env(&["token", "--verbose"], "PEERTUBE_SESSION_LOG", "  ");
    assert_eq!(code(&blank), 0, "{}", text(&blank.stderr));
    assert!(
        text(&blank.stderr).contains("refresh sent"),
        "{}",
        text(&blank.stderr)
    );
    // A filter of one's own: only warnings, so nothing for a refresh that went well.
    world.fake.advance(Duration::from_secs(86_400));
    expire_access_token(&world.session_file("default"));
    let filtered = world.run_with_env(&["token"], "PEERTUBE_SESSION_LOG", "peertube_session=warn");
    assert_eq!(code(&filtered), 0, "{}", text(&filtered.stderr));
    assert!(
        text(&filtered.stderr).is_empty(),
        "{}",
        text(&filtered.stderr)
    );
    let wrong = world.run_with_env(&["token"], "PEERTUBE_SESSION_LOG", "peertube_session=loud");
    assert_eq!(code(&wrong), 2, "{}", text(&wrong.stderr));
    assert!(text(&wrong.stderr).starts_with("peertube-session: PEERTUBE_SESSION_LOG"));
}

#[test]
fn status_tells_an_expired_access_token_as_past() {
    let world = World::new("expired");
    world.login_alice();
    expire_access_token(&world.session_file("default"));
    let status: serde_json::Value =
        serde_json::from_slice(&world.run(&["status", "--json"], "").stdout).unwrap();
    let seconds = status["access_token_expires_in"].as_i64().unwrap();
    assert!((-60..0).contains(&seconds), "{status}");
    assert!(status["refresh_token_expires_in"].as_i64().unwrap() > 0);
    let shown = text(&world.run(&["status"], "").stdout);
    assert!(shown.contains("access token expired "), "{shown}");
    assert!(shown.contains(" ago ("), "{shown}");
    assert!(shown.contains("refresh token expires in "), "{shown}");
}

#[test]
fn logout_keeps_the_profile_when_the_instance_cannot_be_reached() {
    let mut world = World::new("unreachable");
    world.login_alice();
    // The instance goes away (another server takes the world's place).
    let elsewhere = world.fake.serve().unwrap();
    drop(std::mem::replace(&mut world.server, elsewhere));
    expire_access_token(&world.session_file("default"));
    let out = world.run(&["logout"], "");
    assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    assert!(
        world.session_file("default").exists(),
        "the profile is kept"
    );
}

#[test]
fn logout_of_a_session_the_instance_already_ended_forgets_it() {
    let world = World::new("ended");
    world.login_alice();
    // The password changed elsewhere: the refresh token is dead, the access token expired.
    world.fake.change_password("alice", "new-pw");
    world.fake.advance(Duration::from_secs(86_400));
    expire_access_token(&world.session_file("default"));
    let out = world.run(&["logout"], "");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "already logged out (profile default)\n");
    assert!(!world.session_file("default").exists());
}

/// Replaces `path` (a file of the profile) with a directory: what a person's mistake or a
/// broken disk leaves, a path that is there and cannot be read as a file.
fn make_unreadable(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path).unwrap();
}

#[test]
fn a_session_file_that_cannot_be_read_is_an_error_and_logout_keeps_the_profile() {
    let world = World::new("unreadable");
    world.login_alice();
    make_unreadable(&world.session_file("default"));
    let token = world.run(&["token"], "");
    assert_fails(&token, 1, "peertube-session: the saved session: ");
    let status = world.run(&["status"], "");
    assert_fails(&status, 1, "peertube-session: cannot read the session: ");
    // Not "already logged out": the session may well be alive, and is not forgotten.
    let logout = world.run(&["logout"], "");
    assert_eq!(code(&logout), 1, "{}", text(&logout.stderr));
    assert!(world.home.join("profiles/default.json").exists());
}

#[test]
fn a_profile_file_that_cannot_be_read_is_an_error_not_a_profile_never_used() {
    let world = World::new("unreadable-profile");
    world.login_alice();
    make_unreadable(&world.home.join("profiles/default.json"));
    let status = world.run(&["status"], "");
    assert_fails(&status, 1, "peertube-session: cannot read the profile: ");
}

#[test]
fn a_profile_file_of_another_program_is_an_error_and_logout_keeps_the_session() {
    let world = World::new("foreign-profile");
    world.login_alice();
    std::fs::write(world.home.join("profiles/default.json"), b"[1, 2, 3]").unwrap();
    let out = world.run(&["logout"], "");
    assert_fails(&out, 1, "peertube-session: the profile file ");
    assert!(text(&out.stderr).contains("is not one of this tool's"));
    assert!(world.session_file("default").exists(), "not forgotten");
    assert_eq!(world.fake.counters().live_sessions, 1);
}

#[test]
fn an_empty_session_file_is_no_session() {
    let world = World::new("empty-session");
    world.login_alice();
    std::fs::write(world.session_file("default"), b"").unwrap();
    let status = world.run(&["status"], "");
    assert_eq!(code(&status), 0, "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains("state:    not logged in"),
        "{}",
        text(&status.stdout)
    );
}

#[test]
fn a_logout_that_cannot_remove_the_profile_s_files_says_so() {
    let world = World::new("stuck");
    world.login_alice();
    // The lease file beside the session, as a directory: `remove_file` fails on it.
    let mut lease = world.session_file("default").into_os_string();
    lease.push(".lease");
    make_unreadable(Path::new(&lease));
    let out = world.run(&["logout"], "");
    assert_fails(&out, 1, "peertube-session: cannot remove ");
}

#[test]
fn refusals_say_what_the_instance_refused() {
    let world = World::new("refusals");
    world.login_alice();
    world.fake.respond_once(
        Some("/api/v1/users/1/token-sessions"),
        http::StatusCode::FORBIDDEN,
        &[("content-type", "application/problem+json; charset=utf-8")],
        br#"{"type":"about:blank","title":"Forbidden","detail":"Not for you.","status":403}"#
            .to_vec(),
    );
    let forbidden = world.run(&["sessions"], "");
    assert_eq!(code(&forbidden), 4, "{}", text(&forbidden.stderr));
    assert_eq!(
        text(&forbidden.stderr),
        "peertube-session: not allowed for this account: Not for you.\n"
    );
    world.fake.block_user("alice");
    let blocked = world.run(
        &["login", "-i", &world.url(), "-u", "alice", "-p", "again"],
        "alice-pw\n",
    );
    assert_eq!(code(&blocked), 4, "{}", text(&blocked.stderr));
    assert_eq!(
        text(&blocked.stderr),
        "peertube-session: this account cannot log in: User is blocked.\n"
    );
}

/// A server on `127.0.0.1` that answers every TLS `ClientHello` with a fatal
/// `handshake_failure` alert: a TLS server that will not talk to this client.
fn refusing_tls_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut hello = [0u8; 512];
            let _ = std::io::Read::read(&mut stream, &mut hello);
            let _ = stream.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
        }
    });
    port
}

#[test]
fn a_tls_server_that_refuses_the_handshake_is_unreachable_not_plain_http() {
    let world = World::new("tls-alert");
    let port = refusing_tls_server();
    let out = world.run(
        &[
            "login",
            "-i",
            &format!("https://127.0.0.1:{port}"),
            "-u",
            "alice",
        ],
        "alice-pw\n",
    );
    assert_fails(&out, 6, "peertube-session: the instance is unreachable");
    assert!(!text(&out.stderr).contains("does not speak TLS"));
}
