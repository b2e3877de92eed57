//! Each command, over the blocking client and the profile's file store.

use crate::failure::Failure;
use crate::input::Input;
use crate::profile::{About, Profile};
use crate::words;
use peertube_session::Credentials;
use peertube_session::api::{Timestamp, TokenSession};
use peertube_session::blocking::{BlockingClient, Config, UreqTransport};
use peertube_session::store::{Ending, FileStore};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Client = BlockingClient<UreqTransport, FileStore>;

/// What the instance records as the device of this tool's sessions.
const USER_AGENT: &str = concat!("peertube-session-cli/", env!("CARGO_PKG_VERSION"));

fn client(about: &About, store: FileStore) -> Result<Client, Failure> {
    let config = Config::builder()
        .user_agent(http::HeaderValue::from_static(USER_AGENT))
        .build();
    Ok(BlockingClient::new(UreqTransport::new(), about.instance()?)
        .with_store(store)
        .with_config(config))
}

fn logged_in_client(profile: &Profile) -> Result<Client, Failure> {
    client(&profile.about()?, profile.store()?)
}

pub fn login(
    profile: &Profile,
    address: &str,
    username: Option<String>,
    allow_http: bool,
    json: bool,
) -> Result<(), Failure> {
    let mut about = About {
        instance: address.to_owned(),
        username: String::new(),
        allow_http,
    };
    // The canonical form, and a bad address refused before anything is asked.
    about.instance = about.instance()?.base_url();
    let mut input = Input::new();
    about.username = match username {
        Some(name) => name,
        None => input.username()?,
    };
    let password = input.password()?;
    let client = client(&about, profile.store()?)?;
    let credentials = Credentials::password(about.username.as_str(), password);
    // Under the profile store's lease: the profile's earlier session is revoked, and two logins
    // at once leave one session.
    let interactive = input.is_interactive();
    match client.login_with_otp_prompt(&credentials, || input.otp()) {
        Err(peertube_session::Error::TwoFactorRequired(_)) if interactive => {
            return Err(Failure::refused(
                "this account needs a two-factor code: the 6 digits your authenticator app shows",
            ));
        }
        other => other?,
    }
    profile.remember(&about)?;
    if json {
        print_json(&serde_json::json!({
            "profile": profile.name(),
            "instance": about.instance,
            "account": about.username,
        }));
    } else {
        eprintln!(
            "logged in to {} as {} (profile {})",
            about.instance,
            about.username,
            profile.name()
        );
    }
    Ok(())
}

/// How `token` prints the token.
pub enum Shape {
    Token,
    /// `Authorization: Bearer <token>`.
    Header,
}

pub fn token(profile: &Profile, shape: Shape, json: bool) -> Result<(), Failure> {
    let client = logged_in_client(profile)?;
    let token = client.access_token()?;
    let secret = token.expose_secret();
    let line = match shape {
        Shape::Token => secret.to_owned(),
        Shape::Header => format!("Authorization: Bearer {secret}"),
    };
    if json {
        let expires = client
            .with_session(|session| session.access_expires_at())
            .map(|at| Timestamp::from(at).to_string());
        let member = match shape {
            Shape::Token => "access_token",
            Shape::Header => "header",
        };
        print_json(&serde_json::json!({ member: line, "expires_at": expires }));
    } else {
        println!("{line}");
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub fn status(profile: &Profile, json: bool) -> Result<(), Failure> {
    let about = profile.about()?;
    let record = profile.record()?;
    let saved = record.as_ref().and_then(|r| r.session.as_ref());
    let tokens = saved.and_then(|s| s.tokens.as_ref());
    let ending = record.as_ref().and_then(|r| r.ending.as_ref());
    // (for scripts, for people)
    let (state_key, state) = match (tokens, ending) {
        (Some(_), _) => ("logged_in", "logged in"),
        (None, Some(Ending::LoggedOut)) => ("logged_out", "logged out"),
        (None, Some(_)) => (
            "login_required",
            "login required (the instance refused the refresh token)",
        ),
        (None, None) => ("not_logged_in", "not logged in"),
    };
    let at = |secs: Option<u64>| secs.map(|s| UNIX_EPOCH + Duration::from_secs(s));
    let access = tokens.and_then(|t| at(t.access_expires_at));
    let refresh = tokens.and_then(|t| at(t.refresh_expires_at));
    let now = SystemTime::now();
    if json {
        let seconds = |moment: Option<SystemTime>| {
            moment.map(|m| match m.duration_since(now) {
                Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
                Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
            })
        };
        let value = serde_json::json!({
            "profile": profile.name(),
            "instance": about.instance,
            "account": about.username,
            "state": state_key,
            "access_token_expires_at": access.map(|m| Timestamp::from(m).to_string()),
            "access_token_expires_in": seconds(access),
            "refresh_token_expires_at": refresh.map(|m| Timestamp::from(m).to_string()),
            "refresh_token_expires_in": seconds(refresh),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(());
    }
    let when = |moment: Option<SystemTime>, label: &str| match moment {
        Some(m) if m > now => format!(
            "{label} expires {} ({})",
            words::relative(m, now),
            Timestamp::from(m)
        ),
        Some(m) => format!(
            "{label} expired {} ({})",
            words::relative(m, now),
            Timestamp::from(m)
        ),
        None => format!("{label}: expiry unknown"),
    };
    println!("profile:  {}", profile.name());
    println!("instance: {}", about.instance);
    println!("account:  {}", about.username);
    println!("state:    {state}");
    if tokens.is_some() {
        println!("{}", when(access, "access token"));
        println!("{}", when(refresh, "refresh token"));
    }
    Ok(())
}

pub fn sessions(profile: &Profile, json: bool) -> Result<(), Failure> {
    let sessions = logged_in_client(profile)?.sessions()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&sessions).unwrap_or_default()
        );
        return Ok(());
    }
    let now = SystemTime::now();
    let rows: Vec<Vec<String>> = sessions.iter().map(|s| row(s, now)).collect();
    println!(
        "{}",
        words::table(
            &["ID", "DEVICE", "IP", "LAST ACTIVITY", "LOGGED IN", ""],
            &rows
        )
    );
    Ok(())
}

fn row(session: &TokenSession, now: SystemTime) -> Vec<String> {
    let ago = |at: Option<Timestamp>| {
        at.map_or("-".to_owned(), |t| words::relative(t.system_time(), now))
    };
    let text = |value: Option<&str>, max| value.map_or("-".to_owned(), |v| words::clean(v, max));
    vec![
        session.id.to_string(),
        text(session.login_device.as_deref(), 48),
        text(
            session
                .last_activity_ip
                .as_deref()
                .or(session.login_ip.as_deref()),
            40,
        ),
        ago(session.last_activity_date),
        ago(session.login_date),
        if session.current_session {
            "(this tool)"
        } else {
            ""
        }
        .to_owned(),
    ]
}

pub fn revoke(profile: &Profile, id: Option<u64>, others: bool, json: bool) -> Result<(), Failure> {
    let client = logged_in_client(profile)?;
    if others {
        let report = client.log_out_other_sessions()?;
        if json {
            let value = serde_json::json!({ "ended": report.ended, "kept": report.kept });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            println!("ended {} other session(s)", report.ended.len());
            for session in &report.ended {
                let device = session.login_device.as_deref().unwrap_or("-");
                println!("  {}  {}", session.id, words::clean(device, 60));
            }
        }
        return Ok(());
    }
    let Some(id) = id else {
        return Err(Failure::usage("give a session id, or --others"));
    };
    let revoked = client.revoke_session(id)?;
    if json {
        let value = serde_json::json!({ "ended": id, "current": revoked.current });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if revoked.current {
        println!(
            "ended session {id}: it was this tool's own, so profile {} is logged out",
            profile.name()
        );
    } else {
        println!("ended session {id}");
    }
    Ok(())
}

pub fn logout(profile: &Profile, json: bool) -> Result<(), Failure> {
    let was_logged_in = match logged_in_client(profile) {
        Ok(client) => match client.logout() {
            Ok(_) => true,
            // Nothing alive on the server to end: forgetting it here is all there is to do.
            Err(error) if Failure::from(error.clone()).is_not_logged_in() => false,
            Err(error) => return Err(error.into()),
        },
        // Logged out already (or never logged in): a repeated logout has done its work.
        Err(failure) if failure.is_not_logged_in() => false,
        Err(failure) => return Err(failure),
    };
    profile.forget()?;
    if json {
        print_json(&serde_json::json!({
            "profile": profile.name(),
            "was_logged_in": was_logged_in,
        }));
    } else if was_logged_in {
        eprintln!("logged out (profile {})", profile.name());
    } else {
        eprintln!("already logged out (profile {})", profile.name());
    }
    Ok(())
}
