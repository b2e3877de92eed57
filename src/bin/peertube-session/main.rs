//! `peertube-session`: log in to a PeerTube instance once, hand fresh access tokens to scripts,
//! see and end the account's login sessions. Built on the `peertube-session` library (feature
//! `cli`).

#![forbid(unsafe_code)]

mod args;
mod commands;
mod failure;
mod input;
mod profile;
mod words;

use args::{Cli, Command, SessionsAction};
use clap::Parser;
use failure::Failure;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 other failure; 2 bad command line; 3 not logged in (log in again);
4 refused by the instance (password, two-factor code, rights); 5 rate limited (the message says
when to retry); 6 instance unreachable; 7 error answer from the instance; 8 instance too old.

Profiles live in the configuration directory (PEERTUBE_SESSION_HOME overrides it), the tokens
in a file only you can read.";

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => return clap_failure(&error),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("peertube-session: {failure}");
            failure.exit_code()
        }
    }
}

/// `--help` and `--version` as clap prints them; a mistake on the command line in one line,
/// like every other failure, with the tool's name and exit code 2.
fn clap_failure(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = error.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("peertube-session: {message} (see --help)");
    ExitCode::from(2)
}

/// What `-v` shows: the session's routine steps and everything above them.
const VERBOSE: &str = "peertube_session=debug";

/// Events to standard error, one line each, when asked for (`-v`, or a filter in
/// `PEERTUBE_SESSION_LOG`); none otherwise, so that `token` prints the token alone.
fn tell_what_happens(verbose: bool) -> Result<(), Failure> {
    let filter = match std::env::var("PEERTUBE_SESSION_LOG") {
        Ok(filter) if !filter.trim().is_empty() => filter,
        _ if verbose => VERBOSE.to_owned(),
        _ => return Ok(()),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).map_err(|error| {
        Failure::usage(&format!("PEERTUBE_SESSION_LOG is not a filter: {error}"))
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    tell_what_happens(cli.verbose)?;
    let profile = profile::Profile::named(&cli.profile)?;
    let json = cli.json;
    match cli.command {
        Command::Login {
            instance,
            username,
            allow_http,
        } => commands::login(&profile, &instance, username, allow_http, json),
        Command::Token => commands::token(&profile, commands::Shape::Token, json),
        Command::Header => commands::token(&profile, commands::Shape::Header, json),
        Command::Status => commands::status(&profile, json),
        Command::Sessions { action } => match action {
            None => commands::sessions(&profile, json),
            Some(SessionsAction::Revoke { id, others }) => {
                commands::revoke(&profile, id, others, json)
            }
        },
        Command::Logout => commands::logout(&profile, json),
    }
}
