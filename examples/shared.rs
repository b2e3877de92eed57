//! One session shared by 4 processes through the file store, against the bundled fake
//! PeerTube on a loopback port. Access tokens die every 100 calls; the processes refresh once
//! per death between them, and a logout in one is seen by all.
//!
//!     cargo run --example shared --features ureq,fake,file-store

use peertube_session::blocking::{BlockingClient, UreqTransport};
use peertube_session::fake::{FakePeerTube, FakeUser};
use peertube_session::store::FileStore;
use peertube_session::{Credentials, Error, Instance};
use std::process::Command;
use std::sync::Arc;

const PROCESSES: usize = 4;
const THREADS: usize = 4;
const CALLS: usize = 25;

fn client(base_url: &str, store: &str) -> Result<BlockingClient<UreqTransport, FileStore>, Error> {
    let store = FileStore::open(store).map_err(Error::Store)?;
    Ok(BlockingClient::new(UreqTransport::new(), Instance::new(base_url)?).with_store(store))
}

/// One worker process: its threads make their calls with the stored session.
fn worker(base_url: &str, store: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Arc::new(client(base_url, store)?);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || -> Result<usize, Error> {
                let mut ok = 0;
                for _ in 0..CALLS {
                    let me = http::Request::get("/api/v1/users/me")
                        .body(())
                        .expect("a static request");
                    ok += usize::from(client.send_authorized(me)?.status() == 200);
                }
                Ok(ok)
            })
        })
        .collect();
    let mut ok = 0;
    for thread in threads {
        ok += thread.join().map_err(|_| "a thread panicked")??;
    }
    println!(
        "  process {}: {ok} of {} calls answered 200",
        std::process::id(),
        THREADS * CALLS
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, base_url, store] = args.as_slice()
        && mode == "worker"
    {
        return worker(base_url, store);
    }

    let fake = FakePeerTube::builder()
        .user(FakeUser::new("alice", "alice@example.org", "correct horse"))
        .access_token_uses(100)
        .build();
    let server = fake.serve()?;
    let dir = std::env::temp_dir().join(format!("peertube-session-shared-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("session.json").to_string_lossy().into_owned();
    println!(
        "fake PeerTube at {}, session file {store}",
        server.base_url()
    );

    let first = client(&server.base_url(), &store)?;
    first.login(&Credentials::password("alice", "correct horse"))?;
    println!("logged in once; starting {PROCESSES} processes");

    let children = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["worker", &server.base_url(), &store])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut child in children {
        if !child.wait()?.success() {
            return Err("a worker failed".into());
        }
    }

    let counters = fake.counters();
    println!(
        "the fake saw {} logins, {} access tokens used up, {} refreshes, {} refused refreshes",
        counters.logins, counters.worn_out_tokens, counters.refreshes, counters.invalid_grants
    );
    first.logout()?;
    let other = client(&server.base_url(), &store)?;
    println!(
        "after a logout in one process, another gets: {:?}",
        other.access_token().unwrap_err()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
