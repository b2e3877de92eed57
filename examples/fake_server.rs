//! Serves the bundled fake PeerTube on a loopback port until stopped (or for as many seconds as
//! given), to try the command line or your own client on: user `alice`, password
//! `correct horse battery staple`; PeerTube 8 answers, token sessions included.
//!
//!     cargo run --example fake_server --features fake -- 600

use peertube_session::fake::{FakePeerTube, FakeUser};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => u64::MAX,
    };
    let fake = FakePeerTube::builder()
        .user(FakeUser::new(
            "alice",
            "alice@example.org",
            "correct horse battery staple",
        ))
        // Its clock starts now (and then stands still: tokens never expire on their own).
        .clock_start(std::time::SystemTime::now())
        .build();
    let server = fake.serve()?;
    println!("{}", server.base_url());
    std::thread::sleep(Duration::from_secs(seconds.min(u64::from(u32::MAX))));
    drop(server);
    Ok(())
}
