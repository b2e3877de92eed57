//! Where the password and the two-factor code come from: an environment variable, else the
//! terminal (without echo), else the lines of standard input.

use crate::failure::Failure;
use std::io::{BufRead, IsTerminal};

/// The password, for automation (prefer standard input: the environment of a process can be
/// read by others of the same user).
pub const PASSWORD_VARIABLE: &str = "PEERTUBE_PASSWORD";
/// The two-factor code, for automation.
pub const OTP_VARIABLE: &str = "PEERTUBE_OTP";

/// Standard input, read a line at a time when it is not a terminal.
pub struct Input {
    interactive: bool,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Input {
    pub fn new() -> Input {
        let stdin = std::io::stdin();
        Input {
            interactive: stdin.is_terminal(),
            lines: stdin.lock().lines(),
        }
    }

    /// The username, asked for on a terminal (it is not secret, so it is echoed).
    pub fn username(&mut self) -> Result<String, Failure> {
        if !self.interactive {
            return Err(Failure::usage(
                "--username is needed when standard input is not a terminal",
            ));
        }
        eprint!("Username: ");
        let name = self.next_line()?.trim().to_owned();
        if name.is_empty() {
            return Err(Failure::usage("no username given"));
        }
        Ok(name)
    }

    pub fn password(&mut self) -> Result<String, Failure> {
        self.secret("Password: ", PASSWORD_VARIABLE, "password")
    }

    /// Whether a person answers (standard input is a terminal).
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// The two-factor code; `None` when there is none to give. A person who just pressed
    /// Enter is asked again (three times in all).
    pub fn otp(&mut self) -> Option<String> {
        let tries = if self.interactive { 3 } else { 1 };
        (0..tries).find_map(|_| {
            self.secret("Two-factor code: ", OTP_VARIABLE, "two-factor code")
                .ok()
                .map(|code| code.trim().to_owned())
                .filter(|code| !code.is_empty())
        })
    }

    fn secret(&mut self, prompt: &str, variable: &str, what: &str) -> Result<String, Failure> {
        if let Some(value) = std::env::var_os(variable) {
            return value
                .into_string()
                .map_err(|_| Failure::usage(&format!("{variable} is not valid UTF-8")));
        }
        if self.interactive {
            return rpassword::prompt_password(prompt)
                .map_err(|error| Failure::local(&format!("cannot read the {what}: {error}")));
        }
        self.next_line()
            .map_err(|_| Failure::usage(&format!("no {what} on standard input")))
    }

    fn next_line(&mut self) -> Result<String, Failure> {
        match self.lines.next() {
            Some(Ok(line)) => Ok(line.strip_suffix('\r').unwrap_or(&line).to_owned()),
            Some(Err(error)) => Err(Failure::local(&format!(
                "cannot read standard input: {error}"
            ))),
            None => Err(Failure::usage("standard input ended")),
        }
    }
}
