//! The file store on its own: what it writes, what it refuses, its lease.
#![cfg(feature = "file-store")]

mod support;

use peertube_session::store::{FileStore, Record, SessionStore, StoreError, StoreFault, Version};
use peertube_session::{Instance, Session};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn fault(error: &StoreError) -> Option<StoreFault> {
    match error {
        StoreError::Unavailable { fault, .. } => Some(*fault),
        _ => None,
    }
}

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
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    assert_eq!(run(store.load(far())).unwrap(), Record::empty());

    assert_eq!(
        run(store.save(Version::EMPTY, record(), None, far())),
        Ok(Version(1))
    );
    assert_eq!(run(store.version(far())), Ok(Version(1)));
    // Made against a version that is no longer current: refused, nothing written.
    assert_eq!(
        run(store.save(Version::EMPTY, record(), None, far())),
        Err(StoreError::Conflict)
    );
    assert_eq!(
        run(store.save(Version(1), record(), None, far())),
        Ok(Version(2))
    );
    let loaded = run(store.load(far())).unwrap();
    assert_eq!(loaded.version, Version(2));
    assert_eq!(loaded.session, record().session);

    // Another handle on the same file sees the same.
    let other = FileStore::open(&path).unwrap();
    assert_eq!(run(other.version(far())), Ok(Version(2)));
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
fn a_file_that_is_not_a_record_reads_as_corrupt_and_a_save_replaces_it_keeping_its_bytes() {
    for (name, content, version) in [
        (
            "torn",
            &br#"{"format":"peertube-session/store/1","version":3,"sess"#[..],
            Version(3),
        ),
        (
            "foreign",
            &br#"{"format":"other","version":3}"#[..],
            Version(3),
        ),
        ("text", &b"hello"[..], Version::EMPTY),
        ("huge", &vec![b' '; 2 << 20][..], Version::EMPTY),
    ] {
        let scratch = Scratch::new(name);
        let path = scratch.file();
        std::fs::write(&path, content).unwrap();
        let store = FileStore::open(&path).unwrap();
        let loaded = run(store.load(far()));
        assert!(
            matches!(loaded, Err(StoreError::Corrupt(_))),
            "{name}: {loaded:?}"
        );
        // The version a client reads is the one a save is checked against.
        let current = run(store.version(far())).unwrap_or(Version::EMPTY);
        assert_eq!(current, version, "{name}");
        assert_eq!(
            run(store.save(current.next(), record(), None, far())),
            Err(StoreError::Conflict),
            "{name}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            content,
            "{name}: refused, untouched"
        );
        assert_eq!(
            run(store.save(current, record(), None, far())),
            Ok(current.next()),
            "{name}"
        );
        assert_eq!(
            run(store.load(far())).unwrap().session,
            record().session,
            "{name}"
        );
        // The unreadable bytes are kept beside it for a person to look at.
        assert_eq!(
            store.corrupt_path(),
            path.with_file_name("session.json.corrupt")
        );
        assert_eq!(
            std::fs::read(store.corrupt_path()).unwrap(),
            content,
            "{name}"
        );
    }
}

#[test]
fn a_directory_that_does_not_exist_is_refused_at_once() {
    let scratch = Scratch::new("missing");
    let path = scratch
        .file()
        .with_file_name("no-such-dir")
        .join("session.json");
    let error = FileStore::open(&path).unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::Missing), "{error:?}");
}

#[test]
fn the_lease_is_exclusive_times_out_and_fences_a_late_save() {
    let scratch = Scratch::new("lease");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    let other = FileStore::open(&path).unwrap();
    let long = Duration::from_secs(60);

    let first = run(store.try_lease(long, far())).unwrap().unwrap();
    assert_eq!(run(other.try_lease(long, far())).unwrap(), None);
    run(store.release(first.clone(), far())).unwrap();
    let second = run(other.try_lease(Duration::from_millis(50), far()))
        .unwrap()
        .unwrap();
    assert!(second.fence() > first.fence());

    std::thread::sleep(Duration::from_millis(120));
    // The holder's time ran out: another takes the lease, and the old holder's save is
    // refused however current its version.
    let third = run(store.try_lease(long, far())).unwrap().unwrap();
    assert!(third.fence() > second.fence());
    assert_eq!(
        run(other.save(Version::EMPTY, record(), Some(&second), far())),
        Err(StoreError::LeaseLost)
    );
    // Giving back a lease that was taken over does not free the new holder's.
    run(other.release(second, far())).unwrap();
    assert_eq!(run(other.try_lease(long, far())).unwrap(), None);
    assert_eq!(
        run(store.save(Version::EMPTY, record(), Some(&third), far())),
        Ok(Version(1))
    );
    run(store.release(third, far())).unwrap();
    assert!(run(other.try_lease(long, far())).unwrap().is_some());
}

#[test]
fn readers_never_see_a_torn_record_while_it_is_replaced() {
    let scratch = Scratch::new("torn");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let store = FileStore::open(&path).unwrap();
            for _ in 0..200 {
                let current = run(store.version(far())).unwrap();
                run(store.save(current, record(), None, far())).unwrap();
            }
        })
    };
    let mut last = Version::EMPTY;
    while !writer.is_finished() {
        let loaded = run(store.load(far())).unwrap();
        assert!(loaded.version >= last);
        last = loaded.version;
        assert_eq!(run(store.version(far())).map(|v| v >= last), Ok(true));
    }
    writer.join().unwrap();
    assert_eq!(run(store.version(far())), Ok(Version(201)));
}

#[test]
fn a_lock_held_by_a_stuck_process_is_busy_by_the_deadline_not_a_hang() {
    let scratch = Scratch::new("stuck");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    // Another process holds the store's lock and does not let go (paused, or stuck on a disk).
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(path.with_file_name("session.json.lock"))
        .unwrap();
    held.lock().unwrap();
    let started = Instant::now();
    let until = Instant::now() + Duration::from_millis(150);
    let error = run(store.save(Version::EMPTY, record(), None, until)).unwrap_err();
    let waited = started.elapsed();
    assert_eq!(fault(&error), Some(StoreFault::Busy), "{error:?}");
    assert!(waited >= Duration::from_millis(140), "{waited:?}");
    assert!(waited < Duration::from_millis(600), "{waited:?}");
    let error = run(store.try_lease(Duration::from_secs(1), until)).unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::Busy), "{error:?}");
    // Reading needs no lock.
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    held.unlock().unwrap();
    assert_eq!(
        run(store.save(Version::EMPTY, record(), None, far())),
        Ok(Version(1))
    );
    // Opening a store waits (up to five seconds) for a lock another process holds a moment.
    held.lock().unwrap();
    let opened = std::thread::scope(|scope| {
        let opening = scope.spawn(|| FileStore::open(&path));
        std::thread::sleep(Duration::from_millis(200));
        held.unlock().unwrap();
        opening.join().unwrap()
    });
    assert!(opened.is_ok(), "{opened:?}");
}

/// `FileStore::open("session.json")`: the record in the working directory, whose name as a
/// parent is empty. Run in a process of its own started in a scratch directory (a test cannot
/// change its own process's working directory under the others).
#[test]
fn a_store_named_by_a_bare_file_name_lives_in_the_working_directory() {
    const CHILD: &str = "PEERTUBE_SESSION_TEST_BARE_NAME";
    if std::env::var_os(CHILD).is_some() {
        let store = FileStore::open("session.json").unwrap();
        assert_eq!(
            run(store.save(Version::EMPTY, record(), None, far())),
            Ok(Version(1))
        );
        return;
    }
    let scratch = Scratch::new("bare-name");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_store_named_by_a_bare_file_name_lives_in_the_working_directory",
        ])
        .env(CHILD, "1")
        .current_dir(&scratch.0)
        .output()
        .unwrap();
    assert!(child.status.success(), "{child:?}");
    let store = FileStore::open(scratch.file()).unwrap();
    assert_eq!(run(store.version(far())), Ok(Version(1)));
}

/// A file over a megabyte is not a session record (one is a few hundred bytes): no more than
/// that is read, and it is refused however well-formed.
#[test]
fn a_file_over_a_megabyte_is_not_read_as_a_record() {
    let scratch = Scratch::new("large");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    for (length, readable) in [(1 << 20, true), ((1 << 20) + 1, false)] {
        // The record's JSON, padded with white space up to `length` bytes.
        let mut bytes = record().to_json();
        bytes.resize(length, b' ');
        std::fs::write(&path, bytes).unwrap();
        let loaded = run(store.load(far()));
        if readable {
            assert_eq!(loaded.unwrap().session, record().session);
        } else {
            assert_eq!(
                loaded,
                Err(StoreError::Corrupt(
                    "the file is too large to be a session record"
                ))
            );
        }
    }
}

#[test]
fn a_directory_where_the_record_should_be_is_an_error_not_a_hang() {
    let scratch = Scratch::new("record-directory");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    // Opened, a directory refuses to be read (EISDIR): an error, not a read tried again.
    std::fs::create_dir(&path).unwrap();
    let (sender, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send((run(store.version(far())), run(store.load(far()))));
    });
    let (version, load) = answers
        .recv_timeout(Duration::from_secs(10))
        .expect("the store answers");
    for error in [version.unwrap_err(), load.unwrap_err()] {
        assert_eq!(fault(&error), Some(StoreFault::Other), "{error:?}");
        assert!(
            error.to_string().contains("cannot read the session file"),
            "{error}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_record_that_cannot_be_opened_is_an_error_not_an_empty_store() {
    let scratch = Scratch::new("unopenable");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    // A link to itself: opening it fails, and not because it is missing.
    std::os::unix::fs::symlink(&path, &path).unwrap();
    for error in [
        run(store.version(far())).unwrap_err(),
        run(store.load(far())).unwrap_err(),
    ] {
        assert_eq!(fault(&error), Some(StoreFault::Other), "{error:?}");
        assert!(
            error.to_string().contains("cannot open the session file"),
            "{error}"
        );
    }
    let lease = path.with_file_name("session.json.lease");
    std::os::unix::fs::symlink(&lease, &lease).unwrap();
    let error = run(store.try_lease(Duration::from_secs(1), far())).unwrap_err();
    assert_eq!(fault(&error), Some(StoreFault::Other), "{error:?}");
    assert!(
        error.to_string().contains("cannot open the lease file"),
        "{error}"
    );
}

#[test]
fn a_directory_removed_under_the_store_is_missing_not_empty() {
    let scratch = Scratch::new("removed");
    let path = scratch.file();
    let store = FileStore::open(&path).unwrap();
    run(store.save(Version::EMPTY, record(), None, far())).unwrap();
    std::fs::remove_dir_all(&scratch.0).unwrap();
    for error in [
        run(store.version(far())).unwrap_err(),
        run(store.load(far())).unwrap_err(),
        run(store.save(Version(1), record(), None, far())).unwrap_err(),
        run(store.try_lease(Duration::from_secs(1), far())).unwrap_err(),
    ] {
        assert_eq!(fault(&error), Some(StoreFault::Missing), "{error:?}");
    }
    // Made again, the store starts over.
    std::fs::create_dir_all(&scratch.0).unwrap();
    assert_eq!(run(store.version(far())), Ok(Version::EMPTY));
    assert_eq!(
        run(store.save(Version::EMPTY, record(), None, far())),
        Ok(Version(1))
    );
}
