//! Where a profile's session lives: `<config dir>/profiles/<name>.json` (which instance, which
//! account) and `<name>.session.json`, the file store holding the tokens (0600 on unix).

use crate::failure::Failure;
use peertube_session::Instance;
use peertube_session::store::{FileStore, Record};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Overrides the configuration directory (for tests, and for keeping profiles elsewhere).
pub const HOME_VARIABLE: &str = "PEERTUBE_SESSION_HOME";

/// A named login.
pub struct Profile {
    name: String,
    dir: PathBuf,
}

/// What a profile remembers besides its tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct About {
    pub instance: String,
    pub username: String,
    #[serde(default)]
    pub allow_http: bool,
}

impl About {
    pub fn instance(&self) -> Result<Instance, Failure> {
        let instance = if self.allow_http {
            Instance::new_allowing_http(&self.instance)
        } else {
            Instance::new(&self.instance)
        };
        instance.map_err(Failure::from)
    }
}

impl Profile {
    /// The profile `name`: 1 to 64 letters, digits, `-`, `_` or `.` (not starting with a dot).
    pub fn named(name: &str) -> Result<Profile, Failure> {
        let valid = (1..=64).contains(&name.len())
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(Failure::usage(
                "a profile name is 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let base = match std::env::var_os(HOME_VARIABLE) {
            Some(home) => PathBuf::from(home),
            None => directories::ProjectDirs::from("", "", "peertube-session")
                .ok_or_else(|| Failure::local("no home directory to keep the profiles in"))?
                .config_dir()
                .to_path_buf(),
        };
        Ok(Profile {
            name: name.to_owned(),
            dir: base.join("profiles"),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn about_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.name))
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join(format!("{}.session.json", self.name))
    }

    /// The profile's file store, its directory created (0700 on unix) when missing.
    pub fn store(&self) -> Result<FileStore, Failure> {
        create_private_dir(&self.dir)?;
        FileStore::open(self.store_path()).map_err(|error| Failure::store(&error))
    }

    /// What the profile remembers, or "not logged in" when it was never used.
    pub fn about(&self) -> Result<About, Failure> {
        let text = match std::fs::read(self.about_path()) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::not_logged_in(&self.name));
            }
            Err(error) => return Err(Failure::local(&format!("cannot read the profile: {error}"))),
        };
        serde_json::from_slice(&text).map_err(|_| {
            Failure::local(&format!(
                "the profile file {} is not one of this tool's",
                self.about_path().display()
            ))
        })
    }

    pub fn remember(&self, about: &About) -> Result<(), Failure> {
        create_private_dir(&self.dir)?;
        let text = serde_json::to_vec_pretty(about).unwrap_or_default();
        std::fs::write(self.about_path(), text)
            .map_err(|error| Failure::local(&format!("cannot write the profile: {error}")))
    }

    /// The stored session as it is now, read without taking any lock (the file store replaces
    /// its file atomically, so a reader never sees half of one).
    pub fn record(&self) -> Result<Option<Record>, Failure> {
        match std::fs::read(self.store_path()) {
            Ok(bytes) if bytes.is_empty() => Ok(None),
            Ok(bytes) => Record::from_json(&bytes)
                .map(Some)
                .map_err(|error| Failure::store(&error)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Failure::local(&format!("cannot read the session: {error}"))),
        }
    }

    /// Forgets the profile here: its session, the store's lock and lease beside it, and what
    /// it remembers.
    pub fn forget(&self) -> Result<(), Failure> {
        let store = self.store_path();
        let beside = |suffix: &str| {
            let mut name = store.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let lock = beside(".lock");
        let lease = beside(".lease");
        for path in [store, lease, lock, self.about_path()] {
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Failure::local(&format!(
                        "cannot remove {}: {error}",
                        path.display()
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), Failure> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|error| Failure::local(&format!("cannot create {}: {error}", dir.display())))
}
