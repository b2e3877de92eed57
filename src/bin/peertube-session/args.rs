//! The command line, as clap reads it.

use clap::{Parser, Subcommand};

/// Log in to a PeerTube instance once, then hand fresh access tokens to scripts, and see and
/// end the account's login sessions.
///
/// The password is never an argument: it is asked for without echo, read from standard input
/// when that is not a terminal, or taken from PEERTUBE_PASSWORD. The two-factor code, when the
/// server wants one, comes the same ways (PEERTUBE_OTP).
#[derive(Debug, Parser)]
#[command(name = "peertube-session", version, max_term_width = 100, after_help = crate::EXIT_CODES)]
pub struct Cli {
    /// The saved login to use: several instances and accounts live side by side
    #[arg(
        long,
        short,
        global = true,
        default_value = "default",
        env = "PEERTUBE_SESSION_PROFILE"
    )]
    pub profile: String,

    /// Print what the command did as JSON, for scripts
    #[arg(long, global = true)]
    pub json: bool,

    /// Tell on standard error what the session did (logins, refreshes, the store's lease and
    /// steps), one line each; never a token or password. PEERTUBE_SESSION_LOG takes a filter
    /// instead (`peertube_session=debug`, `info`, …)
    #[arg(long, short, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in and save the session under the profile (the profile's earlier session is logged
    /// out first)
    Login {
        /// The instance's address, like https://video.example.org
        #[arg(long, short)]
        instance: String,
        /// The account's username or e-mail address (asked for when missing)
        #[arg(long, short)]
        username: Option<String>,
        /// Allow plain http to a host that is not loopback (the password then crosses the
        /// network in clear)
        #[arg(long)]
        allow_http: bool,
    },
    /// Print a valid access token, refreshing it first when due (one refresh however many
    /// processes ask at once)
    Token,
    /// Print `Authorization: Bearer <token>`, for `curl -H @-`
    Header,
    /// Show the instance, the account, the state and when the tokens expire
    Status,
    /// List the account's login sessions (PeerTube 7.3 or later), or end some
    Sessions {
        #[command(subcommand)]
        action: Option<SessionsAction>,
    },
    /// Log out: revoke the session on the instance and forget it here
    Logout,
}

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// End one login session by its id, or every one but this tool's with --others
    Revoke {
        /// The session's id, as `sessions` lists it
        #[arg(required_unless_present = "others")]
        id: Option<u64>,
        /// End every session of the account but this tool's own
        #[arg(long, conflicts_with = "id")]
        others: bool,
    },
}
