//! The file store on its own: what it writes, what it refuses, its lease.
#![cfg(feature = "file-store")]

mod support;

use peertube_session::store::{FileStore, Record, SessionStore, StoreError, Version};
use peertube_session::{Instance, Session};
use std::path::PathBuf;
use std::time::Duration;

/// A directory of its own for one test, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(support::scratch_dir(&format!("store-{name}")))
    }

    fn file(&self) -> PathBuf {
        self.0.join("session.json")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record() -> Record {
    Record::new(
        Session::new(Instance::new("https://video.example.org").unwrap()).save(),
        None,
    )
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

#[test]
fn a_new_store_is_empty_and_saves_compare_and_set() {
    let scratch = Scratch::new("cas");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    assert_eq!(run(store.version()), Ok(Version::EMPTY));
    assert_eq!(run(store.load()).unwrap(), Record::empty());

    assert_eq!(
        run(store.save(Version::EMPTY, record(), None)),
        Ok(Version(1))
    );
    assert_eq!(run(store.version()), Ok(Version(1)));
    // Made against a version that is no longer current: refused, nothing written.
    assert_eq!(
        run(store.save(Version::EMPTY, record(), None)),
        Err(StoreError::Conflict)
    );
    assert_eq!(run(store.save(Version(1), record(), None)), Ok(Version(2)));
    let loaded = run(store.load()).unwrap();
    assert_eq!(loaded.version, Version(2));
    assert_eq!(loaded.session, record().session);

    // Another handle on the same file sees the same.
    let other = FileStore::open(&path).unwrap();
    assert_eq!(run(other.version()), Ok(Version(2)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    let dir = path.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_file_that_is_not_a_record_is_an_error_never_a_fresh_start() {
    for (name, content) in [
        (
            "torn",
            &br#"{"format":"peertube-session/store/1","version":3,"sess"#[..],
        ),
        ("foreign", &br#"{"format":"other","version":3}"#[..]),
        ("text", &b"hello"[..]),
        ("huge", &vec![b' '; 2 << 20][..]),
    ] {
        let scratch = Scratch::new(name);
        let path = scratch.file();
        std::fs::write(&path, content).unwrap();
        let store = FileStore::open(&path).unwrap();
        let loaded = run(store.load());
        assert!(
            matches!(loaded, Err(StoreError::Corrupt(_))),
            "{name}: {loaded:?}"
        );
        let saved = run(store.save(Version::EMPTY, record(), None));
        assert!(
            matches!(saved, Err(StoreError::Corrupt(_))),
            "{name}: {saved:?}"
        );
        // The file is left as it was for a person to look at.
        assert_eq!(std::fs::read(&path).unwrap(), content, "{name}");
    }
}

#[test]
fn a_directory_that_does_not_exist_is_refused_at_once() {
    let scratch = Scratch::new("missing");
    let path = scratch
        .file()
        .with_file_name("no-such-dir")
        .join("session.json");
    assert!(matches!(
        FileStore::open(&path),
        Err(StoreError::Unavailable(_))
    ));
}

#[test]
fn the_lease_is_exclusive_times_out_and_fences_a_late_save() {
    let scratch = Scratch::new("lease");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    let other = FileStore::open(&path).unwrap();
    let long = Duration::from_secs(60);

    let first = run(store.try_lease(long)).unwrap().unwrap();
    assert_eq!(run(other.try_lease(long)).unwrap(), None);
    run(store.release(first.clone())).unwrap();
    let second = run(other.try_lease(Duration::from_millis(50)))
        .unwrap()
        .unwrap();
    assert!(second.fence() > first.fence());

    std::thread::sleep(Duration::from_millis(120));
    // The holder's time ran out: another takes the lease, and the old holder's save is
    // refused however current its version.
    let third = run(store.try_lease(long)).unwrap().unwrap();
    assert!(third.fence() > second.fence());
    assert_eq!(
        run(other.save(Version::EMPTY, record(), Some(&second))),
        Err(StoreError::LeaseLost)
    );
    // Giving back a lease that was taken over does not free the new holder's.
    run(other.release(second)).unwrap();
    assert_eq!(run(other.try_lease(long)).unwrap(), None);
    assert_eq!(
        run(store.save(Version::EMPTY, record(), Some(&third))),
        Ok(Version(1))
    );
    run(store.release(third)).unwrap();
    assert!(run(other.try_lease(long)).unwrap().is_some());
}

#[test]
fn readers_never_see_a_torn_record_while_it_is_replaced() {
    let scratch = Scratch::new("torn");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    run(store.save(Version::EMPTY, record(), None)).unwrap();
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let store = FileStore::open(&path).unwrap();
            for _ in 0..200 {
                let current = run(store.version()).unwrap();
                run(store.save(current, record(), None)).unwrap();
            }
        })
    };
    let mut last = Version::EMPTY;
    while !writer.is_finished() {
        let loaded = run(store.load()).unwrap();
        assert!(loaded.version >= last);
        last = loaded.version;
        assert_eq!(run(store.version()).map(|v| v >= last), Ok(true));
    }
    writer.join().unwrap();
    assert_eq!(run(store.version()), Ok(Version(201)));
}
