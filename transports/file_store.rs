//! The file store: one session shared by the processes of one machine through a file.

use crate::lease_holder::holder_name;
use crate::store::{Lease, Record, SessionStore, StoreError, StoreFault, Version, may_save};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The largest record or lease file read: a session is a few hundred bytes.
const MAX_FILE: u64 = 1 << 20;
/// The longest pause between two tries to take the store's lock from another process.
const LOCK_LAST_PAUSE: Duration = Duration::from_millis(8);

/// A session store in a file (feature `file-store`): the embedded default for anything that
/// outlives a process, shared by the processes of one machine.
///
/// - The record is the JSON [`Record`] at `path`, created `0600` on unix (it holds the tokens
///   in clear), and replaced atomically: written to a temporary file beside it, flushed to
///   disk, renamed over it. Readers never see a torn file.
/// - Saves and leases are serialised by an OS advisory lock on `path` + `.lock`, held only for
///   the few file operations of one step, never across a request.
/// - The refresh lease is the file `path` + `.lease` (its fencing token, holder and end), so a
///   holder killed mid-refresh loses it when its time to live runs out.
/// - Checking that a copy is current is one `stat` of the record (its size, modification time
///   and inode), not a read.
/// - A file that is not a record (corrupt, another program's) reads as
///   [`StoreError::Corrupt`]; the next save replaces it, after copying its bytes to `path` +
///   `.corrupt` for a person to look at (one copy, the latest).
/// - The OS lock is taken with `try_lock`, retried until the operation's `until`: a process
///   paused or stuck while holding it makes the others fail with [`StoreFault::Busy`], never
///   hang. A removed directory, a read-only one and a full disk are [`StoreFault::Missing`],
///   [`StoreFault::PermissionDenied`] and [`StoreFault::Full`].
///
/// Its methods do their file operations inline (each one short and local), also in the async
/// driver; a local file system's calls are not interrupted at `until`.
///
/// ```no_run
/// use peertube_session::blocking::{BlockingClient, UreqTransport};
/// use peertube_session::store::FileStore;
/// use peertube_session::Instance;
///
/// let store = FileStore::open("/var/lib/uploader/peertube-session.json")?;
/// let client = BlockingClient::new(UreqTransport::new(), Instance::new("https://video.example.org")?)
///     .with_store(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    lease_path: PathBuf,
    corrupt_path: PathBuf,
}

/// The lease file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    /// The fencing token of the last lease taken; it only grows.
    fence: u64,
    /// Who holds it, if anyone.
    holder: Option<String>,
    /// When the holder's time runs out, in milliseconds since the Unix epoch.
    until_ms: u64,
}

impl FileStore {
    /// A store at `path`. The directory must exist; the record is created at the first save.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let sibling = |suffix: &str| {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let store = FileStore {
            lock_path: sibling(".lock"),
            lease_path: sibling(".lease"),
            corrupt_path: sibling(".corrupt"),
            path,
        };
        // Fail now, not at the first refresh, on a directory that cannot be written.
        drop(store.lock(Instant::now() + Duration::from_secs(5))?);
        Ok(store)
    }

    /// Where the record is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the bytes of an unreadable record go when a save replaces it.
    pub fn corrupt_path(&self) -> &Path {
        &self.corrupt_path
    }

    /// Holds the store's lock until the guard is dropped; another process holding it past
    /// `until` is [`StoreFault::Busy`].
    fn lock(&self, until: Instant) -> Result<File, StoreError> {
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(|e| unavailable("cannot open the lock file", &e))?;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::Error(e)) => {
                    return Err(unavailable("cannot lock the lock file", &e));
                }
                Err(TryLockError::WouldBlock) => {}
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::unavailable(
                    StoreFault::Busy,
                    "another process held the store's lock for the whole time allowed",
                ));
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(LOCK_LAST_PAUSE);
        }
    }

    /// The record file's bytes; `None` when there is none (the directory must exist).
    fn read_bytes(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.no_file(),
            Err(e) => return Err(unavailable("cannot open the session file", &e)),
        };
        read_bounded(&mut file).map(Some)
    }

    /// A missing record is an empty store, but a missing directory is a store that is gone.
    fn no_file<T>(&self) -> Result<Option<T>, StoreError> {
        match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(directory) if !directory.is_dir() => Err(StoreError::unavailable(
                StoreFault::Missing,
                format!("the directory {} is gone", directory.display()),
            )),
            _ => Ok(None),
        }
    }

    fn read_record(&self) -> Result<Record, StoreError> {
        match self.read_bytes()? {
            None => Ok(Record::empty()),
            Some(bytes) => parse(&bytes),
        }
    }

    /// The lease file; an unreadable one counts as no lease (holders are unique names, so a
    /// late holder's save is still refused).
    fn read_lease(&self) -> Result<LeaseFile, StoreError> {
        let mut file = match File::open(&self.lease_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LeaseFile::default()),
            Err(e) => return Err(unavailable("cannot open the lease file", &e)),
        };
        let bytes = read_bounded(&mut file).unwrap_or_default();
        Ok(serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn write_lease(&self, lease: &LeaseFile) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(lease).unwrap_or_default();
        replace(&self.lease_path, &bytes)
    }
}

impl SessionStore for FileStore {
    async fn version(&self, _until: Instant) -> Result<Version, StoreError> {
        // The version is near the start of the record (`Record::to_json` writes it second):
        // one short read, no parse of the session. File metadata cannot stand in for it: a
        // new file may get the old one's inode, size and (coarse) modification time.
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.no_file().map(|_: Option<()>| Version::EMPTY);
            }
            Err(e) => return Err(unavailable("cannot open the session file", &e)),
        };
        let mut head = [0u8; HEAD];
        let mut filled = 0;
        while filled < HEAD {
            match file.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(unavailable("cannot read the session file", &e)),
            }
        }
        match version_in(&head[..filled]) {
            Some(version) => Ok(version),
            None => Ok(self.read_record()?.version),
        }
    }

    async fn load(&self, _until: Instant) -> Result<Record, StoreError> {
        self.read_record()
    }

    async fn save(
        &self,
        expected: Version,
        mut record: Record,
        lease: Option<&Lease>,
        until: Instant,
    ) -> Result<Version, StoreError> {
        let _lock = self.lock(until)?;
        let bytes = self.read_bytes()?;
        let (current, unreadable) = match bytes.as_deref().map(parse) {
            None => (Version::EMPTY, false),
            Some(Ok(stored)) => (stored.version, false),
            // What `version` reads in the same bytes, so that a client's compare-and-set
            // against it holds.
            Some(Err(_)) => {
                let head = bytes
                    .as_deref()
                    .map_or(&[][..], |b| &b[..b.len().min(HEAD)]);
                (version_in(head).unwrap_or(Version::EMPTY), true)
            }
        };
        let held = self.read_lease()?;
        may_save(current, expected, lease, held.fence, held.holder.as_deref())?;
        if unreadable {
            fs::copy(&self.path, &self.corrupt_path)
                .map_err(|e| unavailable("cannot keep the unreadable session file", &e))?;
        }
        record.version = current.next();
        replace(&self.path, &record.to_json())?;
        Ok(record.version)
    }

    async fn try_lease(&self, ttl: Duration, until: Instant) -> Result<Option<Lease>, StoreError> {
        let _lock = self.lock(until)?;
        let mut lease = self.read_lease()?;
        let now = unix_ms(SystemTime::now());
        if lease.holder.is_some() && now < lease.until_ms {
            return Ok(None);
        }
        lease.fence += 1;
        let holder = holder_name();
        lease.holder = Some(holder.clone());
        lease.until_ms = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.write_lease(&lease)?;
        Ok(Some(Lease::new(lease.fence, holder)))
    }

    async fn release(&self, given: Lease, until: Instant) -> Result<(), StoreError> {
        let _lock = self.lock(until)?;
        let mut lease = self.read_lease()?;
        if lease.holder.as_deref() == Some(given.holder()) {
            lease.holder = None;
            lease.until_ms = 0;
            self.write_lease(&lease)?;
        }
        Ok(())
    }
}

/// Writes `bytes` to a new file beside `path`, flushes it to disk and renames it over `path`,
/// then flushes the directory, so that `path` is always a whole old or a whole new file.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static TEMPORARY: AtomicU64 = AtomicU64::new(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMPORARY.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = PathBuf::from(name);
    let written = (|| {
        let mut file = private_options()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        #[cfg(unix)]
        if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(directory)?.sync_all()?;
        }
        Ok(())
    })();
    written.map_err(|e: io::Error| {
        let _ = fs::remove_file(&temporary);
        unavailable("cannot write the session file", &e)
    })
}

/// How much of the record `version` reads.
const HEAD: usize = 128;

/// The `"version": N` member in the start of a record, if it is there.
fn version_in(head: &[u8]) -> Option<Version> {
    const KEY: &[u8] = b"\"version\":";
    let start = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &head[start..];
    let digits_start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = &rest[digits_start..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end])
        .ok()?
        .parse()
        .ok()
        .map(Version)
}

/// At most one byte more than [`MAX_FILE`], so that a larger file is known for what it is.
fn read_bounded(file: &mut File) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable("cannot read the session file", &e))?;
    Ok(bytes)
}

fn parse(bytes: &[u8]) -> Result<Record, StoreError> {
    if bytes.len() as u64 > MAX_FILE {
        return Err(StoreError::Corrupt(
            "the file is too large to be a session record",
        ));
    }
    Record::from_json(bytes)
}

/// Files only their owner can read and write (unix): they hold tokens.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn unavailable(what: &str, error: &io::Error) -> StoreError {
    let fault = match error.kind() {
        io::ErrorKind::NotFound => StoreFault::Missing,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            StoreFault::PermissionDenied
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreFault::Full,
        io::ErrorKind::TimedOut => StoreFault::TimedOut,
        _ => StoreFault::Other,
    };
    StoreError::unavailable(fault, format!("{what}: {error}"))
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_io_failure_has_its_fault() {
        let cases = [
            (io::ErrorKind::NotFound, StoreFault::Missing),
            (
                io::ErrorKind::PermissionDenied,
                StoreFault::PermissionDenied,
            ),
            (
                io::ErrorKind::ReadOnlyFilesystem,
                StoreFault::PermissionDenied,
            ),
            (io::ErrorKind::StorageFull, StoreFault::Full),
            (io::ErrorKind::QuotaExceeded, StoreFault::Full),
            (io::ErrorKind::TimedOut, StoreFault::TimedOut),
            (io::ErrorKind::Other, StoreFault::Other),
        ];
        for (kind, fault) in cases {
            let error = unavailable("cannot write", &io::Error::from(kind));
            match error {
                StoreError::Unavailable {
                    fault: found,
                    detail,
                } => {
                    assert_eq!(found, fault, "{kind:?}");
                    assert!(detail.starts_with("cannot write: "), "{detail}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_version_is_read_from_the_head_of_a_record() {
        assert_eq!(
            version_in(br#"{"format":"x","version": 42,"#),
            Some(Version(42))
        );
        assert_eq!(version_in(br#"{"version":7}"#), Some(Version(7)));
        assert_eq!(version_in(br#"{"version":"#), None);
        assert_eq!(
            version_in(br#"{"version":12"#),
            None,
            "cut short: not a whole number"
        );
        assert_eq!(version_in(b"garbage"), None);
    }
}
