//! What the `tracing` feature costs a whole loopback session (issue 22), recorded in
//! BENCHMARKS.md. Run it twice, without and with the feature, and compare the driver's
//! sessions per CPU-second of the thread that runs it (what the machine's other work weighs
//! least on) between the two builds; plain ureq runs beside it as a yardstick:
//!
//!     cargo bench --bench tracing_cost --features ureq,hyper,fake
//!     cargo bench --bench tracing_cost --features ureq,hyper,fake,tracing
//!
//! With the feature, a third variant runs the driver under a subscriber that filters the crate
//! out, compared with the driver round by round.

mod support;

use peertube_session::Instance;
use peertube_session::blocking::UreqTransport;
use std::time::Duration;
use support::*;

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs benches as tests; this one is run by hand.
    }
    let fake = fake();
    let server = fake.serve().unwrap();
    let base = server.base_url();
    let instance = Instance::new(&base).unwrap();
    let transport = UreqTransport::new();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut driver = || blocking_driver_session(&fake, &instance, &transport, true);
    let mut plain = || {
        plain_ureq_session(&agent, &base, true);
    };
    #[cfg(feature = "tracing")]
    let filtered = {
        use tracing_subscriber::layer::SubscriberExt;
        let out = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::TRACE)
            .with_target("peertube_session", tracing::level_filters::LevelFilter::OFF);
        tracing::Dispatch::new(tracing_subscriber::registry().with(out))
    };
    #[cfg(feature = "tracing")]
    let mut driver_filtered = || {
        tracing::dispatcher::with_default(&filtered, || {
            blocking_driver_session(&fake, &instance, &transport, true)
        })
    };
    let mut variants: Vec<(&str, &mut dyn FnMut())> =
        vec![("driver", &mut driver), ("plain ureq", &mut plain)];
    #[cfg(feature = "tracing")]
    variants.push((
        "driver, subscriber filtering the crate out",
        &mut driver_filtered,
    ));
    let rates = race_rounds(15, &mut variants);
    let feature = if cfg!(feature = "tracing") {
        "on"
    } else {
        "off"
    };
    println!("## tracing feature {feature}\n");
    println!("| variant | sessions/s | sessions per CPU-second | of the driver |");
    println!("|---|---|---|---|");
    for (index, (name, _)) in variants.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.0} | {:.3} |",
            rates.rate(index),
            rates.cpu_rate(index),
            rates.cpu_ratio(index, 0)
        );
    }
}
