//! A real `redis-server` on a free loopback port, for the Redis store's tests.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on 127.0.0.1 (with `requirepass` if `password` is given), or
    /// `None` when it is not installed. In CI (`CI` set) a missing server is a failure: `.ci/run`
    /// installs it.
    pub fn start(password: Option<&str>) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed, and CI needs it (.ci/run installs it)"
            );
            eprintln!(
                "\n*** SKIPPED: redis-server is not installed (apt-get install redis-server) ***\n"
            );
            return None;
        }
        // Picking a free port and binding it are two steps: servers started by the tests of one
        // binary (which run in parallel) take turns, and a server that lost its port to
        // something else is started again on another.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..5 {
            if let Some(server) = Self::try_start(password) {
                return Some(server);
            }
        }
        panic!("redis-server did not start on a free loopback port in 5 tries");
    }

    fn try_start(password: Option<&str>) -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, password)
    }

    fn start_on(port: u16, password: Option<&str>) -> Option<RedisServer> {
        let mut command = Command::new("redis-server");
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = RedisServer { child, port };
        let started = Instant::now();
        loop {
            // Ours, not whatever else answers on that port: it must still be running.
            if let Ok(Some(_)) = server.child.try_wait() {
                return None;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
                return match server.child.try_wait() {
                    Ok(None) => Some(server),
                    _ => None,
                };
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL): whatever it held is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, empty, on the same port (killing it first if it still runs).
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            if let Some(server) = Self::start_on(self.port, None) {
                *self = server;
                return;
            }
            // The old socket may linger a moment.
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start again on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process (SIGSTOP): it holds its data and its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
