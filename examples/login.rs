//! Log in to a real PeerTube instance, print the account name, log out.
//!
//!     cargo run --example login --features ureq -- --instance https://video.example.org --username alice
//!
//! The password comes from the environment variable `PEERTUBE_PASSWORD`, or is asked on the
//! terminal without echo; the two-factor code is asked only if the server wants one.
//!
//! No logger is set up here on purpose: with a `log` logger at `Trace` for the `ureq` target,
//! ureq prints each request's head, the `Authorization: Bearer` token included. If you add one,
//! keep ureq at `Debug` or below (`RUST_LOG=ureq=debug`).

use peertube_session::blocking::{BlockingClient, UreqTransport};
use peertube_session::{Body, Credentials, Instance};
use std::io::{BufRead, Write};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut instance = None;
    let mut username = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--instance" => instance = args.next(),
            "--username" => username = args.next(),
            other => {
                return Err(format!(
                    "unknown argument {other}; use --instance URL --username NAME"
                )
                .into());
            }
        }
    }
    let (Some(instance), Some(username)) = (instance, username) else {
        return Err("usage: login --instance URL --username NAME".into());
    };

    let password = match std::env::var("PEERTUBE_PASSWORD") {
        Ok(password) => password,
        Err(_) => rpassword::prompt_password("password: ")?,
    };
    let client = BlockingClient::new(UreqTransport::new(), Instance::new(&instance)?);
    let credentials = Credentials::password(username, password);
    client.login_with_otp_prompt(&credentials, || ask("two-factor code: ").ok())?;

    let me = http::Request::get(client.instance().uri("/api/v1/users/me")?).body(Body::default())?;
    let answer = client.send_authorized(me)?;
    let account: serde_json::Value = serde_json::from_slice(answer.body())?;
    println!(
        "logged in as {}",
        account["username"].as_str().unwrap_or("?")
    );

    if let Some(redirect) = client.logout()?.redirect_url {
        println!("logged out; the auth plugin asks to visit {redirect}");
    } else {
        println!("logged out");
    }
    Ok(())
}

fn ask(prompt: &str) -> std::io::Result<String> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
