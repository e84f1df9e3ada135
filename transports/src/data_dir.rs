//! The agent's data dir: what a node keeps on disk between runs.
//!
//! A data dir belongs to one node name and holds two files:
//!
//! - `identity.key`: the node's 32-byte secret (an Ed25519 seed), drawn from
//!   the OS RNG the first time the dir is opened, mode 0600. A key that
//!   group or others may access is refused, as ssh does.
//! - `node.redb`: a [redb] database (mode 0600) with five tables: `meta`
//!   (the node's name, generation, version counter and highest
//!   incarnation), `records` (the node's own namespace records, opaque
//!   bytes by slot), `members` (the last known member list, opaque bytes by
//!   name), `keyring` (the cluster keys the node holds, by position, the
//!   primary at 0; empty for a node without a key) and `reconnect` (members
//!   forgotten while dead: name → until when to knock, address; a database
//!   from before it reads as an empty list).
//!
//! Writes go through [`DataDir::commit`]: one durable transaction for a
//! whole [`Batch`], so that the agent can gather every write taken in
//! during one turn of its node task and make them durable at once, before
//! acknowledging any of them.
//!
//! A damaged store is an error naming the file, never an empty store: a
//! `node.redb` that does not open is never recreated, and a new database is
//! built under a temporary name and put in place only once initialised, so
//! that an existing `node.redb` is always a complete one. The key is put in
//! place the same way; neither ever replaces a file already there, so two
//! processes opening a new dir at once agree on its key (and one of them
//! finds the database in use).
//!
//! ```no_run
//! # fn demo() -> Result<(), rumour_transport::data_dir::DataDirError> {
//! use rumour_transport::data_dir::{Batch, DataDir};
//! let path = DataDir::default_path("node-1").expect("HOME is set");
//! let mut dir = DataDir::open(&path, "node-1")?;
//! let mut batch = Batch::new();
//! batch.put_record("greeting", 1, b"hello".to_vec()).set_version(1);
//! dir.commit(&batch)?;
//! assert_eq!(dir.load()?.records[0].slot, "greeting");
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;
use zeroize::Zeroizing;

/// The identity key's file name in the data dir.
pub const KEY_FILE: &str = "identity.key";
/// The database's file name in the data dir.
pub const DB_FILE: &str = "node.redb";

/// The layout of the tables this code reads and writes, kept in `meta`.
const FORMAT: u64 = 1;

/// Node-wide values. Numbers are stored as 8 bytes little-endian, the name
/// as UTF-8.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The node's own namespace: slot → (version, record bytes).
const RECORDS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("records");
/// Known members, dead and left included: name → member bytes.
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
/// The cluster keyring: position (0 is the primary) → key bytes. Written
/// whole by [`DataDir::save_keyring`].
const KEYRING: TableDefinition<u64, &[u8]> = TableDefinition::new("keyring");
/// The reconnect list: name → (until when it is kept, in ms since the Unix
/// epoch; the address as `ip:port`).
const RECONNECT: TableDefinition<&str, (u64, &str)> = TableDefinition::new("reconnect");

const META_FORMAT: &str = "format";
const META_NAME: &str = "name";
const META_GENERATION: &str = "generation";
const META_VERSION: &str = "version";
const META_INCARNATION: &str = "incarnation";
const META_HORIZON: &str = "horizon";
const META_KEYRING_LABEL: &str = "keyring_label";

/// Why a data dir could not be opened, read or written. Every variant names
/// the file or dir involved.
#[derive(Debug, Error)]
pub enum DataDirError {
    /// The dir (or one of its parents) could not be created.
    #[error("cannot create the data dir {}: {source}", .path.display())]
    CreateDir {
        /// The data dir.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The path exists and is not a directory.
    #[error("the data dir {} exists and is not a directory", .path.display())]
    NotADirectory {
        /// The path given as the data dir.
        path: PathBuf,
    },
    /// A file of the dir could not be read or written.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// The file (or the dir, for a sync of the dir).
        path: PathBuf,
        /// What was being done: "read", "write", "sync", …
        action: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The identity key file is not 32 bytes.
    #[error("the identity key {} is damaged: {len} bytes where 32 are expected", .path.display())]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The identity key file may be accessed by group or others.
    #[error(
        "the identity key {} is accessible by group or others (mode {mode:04o}): run chmod 600 on it",
        .path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The database exists but the identity key does not: the node's
    /// identity is lost.
    #[error(
        "the identity key {} is missing while {} exists: restore the key, or move the data dir away to start afresh",
        .path.display(),
        .db.display()
    )]
    KeyMissing {
        /// The key file.
        path: PathBuf,
        /// The database beside it.
        db: PathBuf,
    },
    /// The database could not be opened, read or written: damaged,
    /// unreadable, or the disk failed.
    #[error("cannot {action} the database {}: {source}", .path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What was being done: "open", "read", "write".
        action: &'static str,
        /// The cause, from redb.
        source: Box<redb::Error>,
    },
    /// Another process holds the database open.
    #[error("the database {} is in use by another process (an agent with the same data dir?)", .path.display())]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The database opened but does not hold what it should.
    #[error("the database {} is damaged: {what}", .path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The database was written by a newer rumour.
    #[error("the database {} has format {found}; this rumour reads format {FORMAT}", .path.display())]
    UnsupportedFormat {
        /// The database file.
        path: PathBuf,
        /// The format found in it.
        found: u64,
    },
    /// The dir belongs to another node.
    #[error("the data dir {} belongs to node {stored:?}, not {asked:?}", .path.display())]
    NameMismatch {
        /// The data dir.
        path: PathBuf,
        /// The name stored in it.
        stored: String,
        /// The name it was opened for.
        asked: String,
    },
}

impl DataDirError {
    fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> DataDirError + 'a {
        move |source| DataDirError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// Name the database file in a redb error.
trait OrDb<T> {
    /// The error as a [`DataDirError`] about `path`, while doing `action`.
    fn or_db(self, path: &Path, action: &'static str) -> Result<T, DataDirError>;
}

impl<T, E: Into<redb::Error>> OrDb<T> for Result<T, E> {
    fn or_db(self, path: &Path, action: &'static str) -> Result<T, DataDirError> {
        self.map_err(|e| match e.into() {
            redb::Error::DatabaseAlreadyOpen => DataDirError::InUse {
                path: path.to_path_buf(),
            },
            redb::Error::Corrupted(what) => DataDirError::Corrupt {
                path: path.to_path_buf(),
                what,
            },
            // What redb says of a file without its header (or empty).
            redb::Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => DataDirError::Corrupt {
                path: path.to_path_buf(),
                what: "no redb header: not a database, or overwritten".into(),
            },
            source => DataDirError::Database {
                path: path.to_path_buf(),
                action,
                source: Box::new(source),
            },
        })
    }
}

/// One record of the node's own namespace, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key it is stored under: a later record with the same slot
    /// replaced it.
    pub slot: String,
    /// The namespace version it was written at.
    pub version: u64,
    /// The record, as the caller encoded it.
    pub bytes: Vec<u8>,
}

/// Everything a data dir holds, as [`DataDir::load`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The node's name.
    pub name: String,
    /// The node's generation; `None` until one was committed.
    pub generation: Option<u32>,
    /// The last version of the node's namespace; 0 until one was committed.
    pub version: u64,
    /// The highest incarnation used; 0 until one was committed.
    pub incarnation: u32,
    /// The namespace's GC horizon: tombstones and events up to it were
    /// collected; 0 until one was committed.
    pub horizon: u64,
    /// The node's own records, by version (then slot).
    pub records: Vec<Record>,
    /// The known members, by name: (name, bytes).
    pub members: Vec<(String, Vec<u8>)>,
    /// The reconnect list, by name.
    pub reconnect: Vec<Reconnect>,
}

/// One entry of the reconnect list: a member forgotten while dead, whose
/// last address is knocked on now and then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// The member's name.
    pub name: String,
    /// Its last address, `ip:port`.
    pub addr: String,
    /// Until when it is kept, in milliseconds since the Unix epoch.
    pub until_unix_ms: u64,
}

/// The cluster keyring a data dir keeps: raw keys, the primary first, and
/// the label. `Debug` never shows the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct SavedKeyring {
    /// The keys' bytes, the primary first.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// The label bound to every sealed envelope.
    pub label: String,
}

impl fmt::Debug for SavedKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedKeyring")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("label", &self.label)
            .finish()
    }
}

/// One change of a [`Batch`], applied in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    PutRecord {
        slot: String,
        version: u64,
        bytes: Vec<u8>,
    },
    RemoveRecord(String),
    PutMember(String, Vec<u8>),
    RemoveMember(String),
    ClearMembers,
    PutReconnect(Reconnect),
    ClearReconnect,
}

/// Changes committed together by [`DataDir::commit`]: all of them are
/// durable, or none.
///
/// Record and member changes apply in the order they were added, so a put
/// after a removal of the same slot wins, and the other way round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
    generation: Option<u32>,
    version: Option<u64>,
    incarnation: Option<u32>,
    horizon: Option<u64>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Store `bytes` at `slot` (replacing what the slot held), written at
    /// namespace version `version`.
    pub fn put_record(
        &mut self,
        slot: impl Into<String>,
        version: u64,
        bytes: impl Into<Vec<u8>>,
    ) -> &mut Batch {
        self.ops.push(Op::PutRecord {
            slot: slot.into(),
            version,
            bytes: bytes.into(),
        });
        self
    }

    /// Remove the record at `slot`, if any.
    pub fn remove_record(&mut self, slot: impl Into<String>) -> &mut Batch {
        self.ops.push(Op::RemoveRecord(slot.into()));
        self
    }

    /// Set the namespace's last version.
    pub fn set_version(&mut self, version: u64) -> &mut Batch {
        self.version = Some(version);
        self
    }

    /// Set the node's generation.
    pub fn set_generation(&mut self, generation: u32) -> &mut Batch {
        self.generation = Some(generation);
        self
    }

    /// Set the highest incarnation used.
    pub fn set_incarnation(&mut self, incarnation: u32) -> &mut Batch {
        self.incarnation = Some(incarnation);
        self
    }

    /// Set the namespace's GC horizon.
    pub fn set_horizon(&mut self, horizon: u64) -> &mut Batch {
        self.horizon = Some(horizon);
        self
    }

    /// Store `bytes` for member `name`, replacing what it held.
    pub fn put_member(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> &mut Batch {
        self.ops.push(Op::PutMember(name.into(), bytes.into()));
        self
    }

    /// Forget member `name`.
    pub fn remove_member(&mut self, name: impl Into<String>) -> &mut Batch {
        self.ops.push(Op::RemoveMember(name.into()));
        self
    }

    /// Replace the whole member snapshot with `members`: (name, bytes).
    pub fn replace_members<N, B>(&mut self, members: impl IntoIterator<Item = (N, B)>) -> &mut Batch
    where
        N: Into<String>,
        B: Into<Vec<u8>>,
    {
        self.ops.push(Op::ClearMembers);
        for (name, bytes) in members {
            self.put_member(name, bytes);
        }
        self
    }

    /// Replace the whole reconnect list with `entries`.
    pub fn replace_reconnect(
        &mut self,
        entries: impl IntoIterator<Item = Reconnect>,
    ) -> &mut Batch {
        self.ops.push(Op::ClearReconnect);
        self.ops.extend(entries.into_iter().map(Op::PutReconnect));
        self
    }

    /// True if committing the batch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
            && self.generation.is_none()
            && self.version.is_none()
            && self.incarnation.is_none()
            && self.horizon.is_none()
    }

    /// Empty the batch, keeping its allocation, to gather the next one.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.generation = None;
        self.version = None;
        self.incarnation = None;
        self.horizon = None;
    }
}

/// The node's secret key bytes; `Debug` never shows them.
#[derive(Clone)]
struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An open data dir: the node's identity key and its database. See the
/// [module docs](self).
pub struct DataDir {
    path: PathBuf,
    db_path: PathBuf,
    name: String,
    key: SecretKey,
    db: Database,
}

impl fmt::Debug for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl DataDir {
    /// Opens the data dir of node `name` at `path`, creating it (mode
    /// 0700, parents as needed), its identity key and its database if
    /// missing.
    ///
    /// Fails, naming the file, if the dir cannot be created or written, if
    /// the key is damaged, missing beside a database, or readable by group
    /// or others, if the database is damaged or held by another process, or
    /// if the dir belongs to another name.
    pub fn open(path: &Path, name: &str) -> Result<DataDir, DataDirError> {
        prepare_dir(path)?;
        let key_path = path.join(KEY_FILE);
        let db_path = path.join(DB_FILE);
        let db_exists = exists(&db_path)?;
        let (db, key) = if db_exists {
            // The database first: a damaged one is the error to report.
            let db = Database::open(&db_path).or_db(&db_path, "open")?;
            check_meta(&db, &db_path, path, name)?;
            let key = read_key(&key_path)?.ok_or_else(|| DataDirError::KeyMissing {
                path: key_path.clone(),
                db: db_path.clone(),
            })?;
            (db, key)
        } else {
            let key = match read_key(&key_path)? {
                Some(key) => key,
                None => create_key(path)?,
            };
            let db = create_db(path, name)?;
            // Another process may have created it first, for another name.
            check_meta(&db, &db_path, path, name)?;
            (db, key)
        };
        Ok(DataDir {
            path: path.to_path_buf(),
            db_path,
            name: name.to_string(),
            key,
            db,
        })
    }

    /// The default data dir of node `name`: `$XDG_DATA_HOME/rumour/<name>`,
    /// else `$HOME/.local/share/rumour/<name>`; `None` if neither variable
    /// is set (a relative `XDG_DATA_HOME` is ignored, as the XDG spec asks).
    ///
    /// The name becomes one path component: bytes other than ASCII letters,
    /// digits, `-`, `_` and `.` (and a leading `.`) are written `%XX`, so
    /// `a/b` is `a%2Fb` and `..` is `%2E.`.
    pub fn default_path(name: &str) -> Option<PathBuf> {
        let xdg = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let base = match xdg {
            Some(p) => p,
            None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?)
                .join(".local")
                .join("share"),
        };
        Some(base.join("rumour").join(path_component(name)))
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The dir.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node name the dir belongs to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's 32-byte secret key (an Ed25519 seed), read or created at
    /// open.
    pub fn secret_key(&self) -> [u8; 32] {
        self.key.0
    }

    /// Reads everything the dir holds.
    pub fn load(&self) -> Result<Saved, DataDirError> {
        let path = self.db_path.as_path();
        let tx = self.db.begin_read().or_db(path, "read")?;
        let meta = tx.open_table(META).or_db(path, "read")?;
        let meta_u64 = |key: &str| -> Result<Option<u64>, DataDirError> {
            let value = meta.get(key).or_db(path, "read")?;
            value.map(|v| decode_u64(path, key, v.value())).transpose()
        };
        let meta_u32 = |key: &str| -> Result<Option<u32>, DataDirError> {
            meta_u64(key)?
                .map(|v| {
                    u32::try_from(v).map_err(|_| DataDirError::Corrupt {
                        path: path.to_path_buf(),
                        what: format!("meta {key:?} is {v}, beyond a u32"),
                    })
                })
                .transpose()
        };
        let generation = meta_u32(META_GENERATION)?;
        let version = meta_u64(META_VERSION)?.unwrap_or(0);
        let incarnation = meta_u32(META_INCARNATION)?.unwrap_or(0);
        let horizon = meta_u64(META_HORIZON)?.unwrap_or(0);

        let table = tx.open_table(RECORDS).or_db(path, "read")?;
        let mut records = Vec::new();
        for row in table.iter().or_db(path, "read")? {
            let (slot, value) = row.or_db(path, "read")?;
            let (version, bytes) = value.value();
            records.push(Record {
                slot: slot.value().to_string(),
                version,
                bytes: bytes.to_vec(),
            });
        }
        records.sort_by(|a, b| (a.version, &a.slot).cmp(&(b.version, &b.slot)));

        let table = tx.open_table(MEMBERS).or_db(path, "read")?;
        let mut members = Vec::new();
        for row in table.iter().or_db(path, "read")? {
            let (name, bytes) = row.or_db(path, "read")?;
            members.push((name.value().to_string(), bytes.value().to_vec()));
        }
        let mut reconnect = Vec::new();
        match tx.open_table(RECONNECT) {
            // A database from before the table: nothing to reconnect to.
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            table => {
                let table = table.or_db(path, "read")?;
                for row in table.iter().or_db(path, "read")? {
                    let (name, value) = row.or_db(path, "read")?;
                    let (until_unix_ms, addr) = value.value();
                    reconnect.push(Reconnect {
                        name: name.value().to_string(),
                        addr: addr.to_string(),
                        until_unix_ms,
                    });
                }
            }
        }
        Ok(Saved {
            name: self.name.clone(),
            generation,
            version,
            incarnation,
            horizon,
            records,
            members,
            reconnect,
        })
    }

    /// The cluster keyring kept by [`DataDir::save_keyring`]; `None` if
    /// none was.
    pub fn load_keyring(&self) -> Result<Option<SavedKeyring>, DataDirError> {
        let path = self.db_path.as_path();
        let tx = self.db.begin_read().or_db(path, "read")?;
        let table = match tx.open_table(KEYRING) {
            Ok(t) => t,
            // A dir made before keyrings were kept.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e).or_db(path, "read"),
        };
        let mut keys = Vec::new();
        for row in table.iter().or_db(path, "read")? {
            let (_, bytes) = row.or_db(path, "read")?;
            keys.push(Zeroizing::new(bytes.value().to_vec()));
        }
        if keys.is_empty() {
            return Ok(None);
        }
        let meta = tx.open_table(META).or_db(path, "read")?;
        let label = match meta.get(META_KEYRING_LABEL).or_db(path, "read")? {
            Some(v) => {
                String::from_utf8(v.value().to_vec()).map_err(|_| DataDirError::Corrupt {
                    path: path.to_path_buf(),
                    what: "the keyring's label is not UTF-8".into(),
                })?
            }
            None => String::new(),
        };
        Ok(Some(SavedKeyring { keys, label }))
    }

    /// Replace the kept cluster keyring with `keys` (the primary first)
    /// and `label`, in one durable transaction.
    pub fn save_keyring(&mut self, keys: &[&[u8]], label: &str) -> Result<(), DataDirError> {
        let path = self.db_path.as_path();
        let mut tx = self.db.begin_write().or_db(path, "write")?;
        tx.set_durability(Durability::Immediate)
            .or_db(path, "write")?;
        {
            let mut table = tx.open_table(KEYRING).or_db(path, "write")?;
            table.retain(|_, _| false).or_db(path, "write")?;
            for (i, key) in keys.iter().enumerate() {
                table.insert(i as u64, *key).or_db(path, "write")?;
            }
            let mut meta = tx.open_table(META).or_db(path, "write")?;
            meta.insert(META_KEYRING_LABEL, label.as_bytes())
                .or_db(path, "write")?;
        }
        tx.commit().or_db(path, "write")
    }

    /// Makes the whole batch durable in one write transaction, synced to
    /// disk before this returns: after a crash, all of it is there or none
    /// of it. An empty batch writes nothing.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), DataDirError> {
        if batch.is_empty() {
            return Ok(());
        }
        let path = self.db_path.as_path();
        let mut tx = self.db.begin_write().or_db(path, "write")?;
        tx.set_durability(Durability::Immediate)
            .or_db(path, "write")?;
        {
            let mut meta = tx.open_table(META).or_db(path, "write")?;
            let numbers = [
                (META_GENERATION, batch.generation.map(u64::from)),
                (META_VERSION, batch.version),
                (META_INCARNATION, batch.incarnation.map(u64::from)),
                (META_HORIZON, batch.horizon),
            ];
            for (key, value) in numbers {
                if let Some(v) = value {
                    meta.insert(key, v.to_le_bytes().as_slice())
                        .or_db(path, "write")?;
                }
            }
            let mut records = tx.open_table(RECORDS).or_db(path, "write")?;
            let mut members = tx.open_table(MEMBERS).or_db(path, "write")?;
            let mut reconnect = tx.open_table(RECONNECT).or_db(path, "write")?;
            for op in &batch.ops {
                match op {
                    Op::PutRecord {
                        slot,
                        version,
                        bytes,
                    } => {
                        records
                            .insert(slot.as_str(), (*version, bytes.as_slice()))
                            .or_db(path, "write")?;
                    }
                    Op::RemoveRecord(slot) => {
                        records.remove(slot.as_str()).or_db(path, "write")?;
                    }
                    Op::PutMember(name, bytes) => {
                        members
                            .insert(name.as_str(), bytes.as_slice())
                            .or_db(path, "write")?;
                    }
                    Op::RemoveMember(name) => {
                        members.remove(name.as_str()).or_db(path, "write")?;
                    }
                    Op::ClearMembers => members.retain(|_, _| false).or_db(path, "write")?,
                    Op::PutReconnect(r) => {
                        reconnect
                            .insert(r.name.as_str(), (r.until_unix_ms, r.addr.as_str()))
                            .or_db(path, "write")?;
                    }
                    Op::ClearReconnect => reconnect.retain(|_, _| false).or_db(path, "write")?,
                }
            }
        }
        tx.commit().or_db(path, "write")
    }
}

/// `name` as one path component: see [`DataDir::default_path`].
fn path_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Create the dir if missing (parents with the default mode, the dir
/// itself 0700); check that it is a directory.
fn prepare_dir(path: &Path) -> Result<(), DataDirError> {
    let create = |source| DataDirError::CreateDir {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(DataDirError::NotADirectory {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(create(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(create)?;
    }
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        // Created by someone else meanwhile: fine if it is a dir.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(create(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Whether `path` exists (a broken symlink counts: opening it will say).
fn exists(path: &Path) -> Result<bool, DataDirError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DataDirError::io(path, "read")(e)),
    }
}

/// Make a rename or creation in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), DataDirError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(DataDirError::io(dir, "sync"))
}

/// The key at `path`, or `None` if there is no file.
fn read_key(path: &Path) -> Result<Option<SecretKey>, DataDirError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataDirError::io(path, "read")(e)),
    };
    let meta = file.metadata().map_err(DataDirError::io(path, "read"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(DataDirError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::with_capacity(33);
    (&mut file)
        .take(33)
        .read_to_end(&mut bytes)
        .map_err(DataDirError::io(path, "read"))?;
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| DataDirError::KeyLength {
            path: path.to_path_buf(),
            len: meta.len().max(bytes.len() as u64),
        })?;
    Ok(Some(SecretKey(key)))
}

/// Draw a key from the OS RNG and write it, mode 0600, into `dir`: to a
/// temporary file first, synced, then renamed into place.
fn create_key(dir: &Path) -> Result<SecretKey, DataDirError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| DataDirError::Io {
        path: dir.join(KEY_FILE),
        action: "draw from the OS random source for",
        source: io::Error::other(e.to_string()),
    })?;
    let path = dir.join(KEY_FILE);
    let tmp = temp_path(dir, KEY_FILE)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(DataDirError::io(&tmp, "write"))?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(DataDirError::io(&tmp, "write"))?;
    drop(file);
    if publish(&tmp, &path, dir)? {
        return Ok(SecretKey(key));
    }
    // Another process opening the dir at the same time put its key first:
    // that one is the node's.
    read_key(&path)?.ok_or_else(|| DataDirError::Io {
        path: path.clone(),
        action: "read",
        source: io::ErrorKind::NotFound.into(),
    })
}

/// A name in `dir` to build `file` under, of this open call's own (a stale
/// one from an earlier process with the same id is removed).
fn temp_path(dir: &Path, file: &str) -> Result<PathBuf, DataDirError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{file}.new.{}.{n}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(tmp),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(tmp),
        Err(e) => Err(DataDirError::io(&tmp, "remove")(e)),
    }
}

/// Put the finished file `tmp` in place at `path`, unless a file is
/// already there: then `tmp` is dropped and the answer is false. A hard
/// link does this atomically; on a file system without hard links `tmp`
/// is renamed over `path`.
fn publish(tmp: &Path, path: &Path, dir: &Path) -> Result<bool, DataDirError> {
    let placed = match fs::hard_link(tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(_) => {
            fs::rename(tmp, path).map_err(DataDirError::io(path, "write"))?;
            sync_dir(dir)?;
            return Ok(true);
        }
    };
    fs::remove_file(tmp).map_err(DataDirError::io(tmp, "remove"))?;
    sync_dir(dir)?;
    Ok(placed)
}

/// Build a database for `name` under a temporary name, then put it in
/// place as [`DB_FILE`] (unless another process opening the dir did first)
/// and open it: an existing `node.redb` is always initialised.
fn create_db(dir: &Path, name: &str) -> Result<Database, DataDirError> {
    let path = dir.join(DB_FILE);
    let tmp = temp_path(dir, DB_FILE)?;
    {
        // Mode 0600 like the key: the records are the node's own.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(DataDirError::io(&tmp, "create"))?;
        let db = Database::builder()
            .create_file(file)
            .or_db(&tmp, "create")?;
        let mut tx = db.begin_write().or_db(&tmp, "create")?;
        tx.set_durability(Durability::Immediate)
            .or_db(&tmp, "create")?;
        {
            let mut meta = tx.open_table(META).or_db(&tmp, "create")?;
            meta.insert(META_FORMAT, FORMAT.to_le_bytes().as_slice())
                .or_db(&tmp, "create")?;
            meta.insert(META_NAME, name.as_bytes())
                .or_db(&tmp, "create")?;
            tx.open_table(RECORDS).or_db(&tmp, "create")?;
            tx.open_table(MEMBERS).or_db(&tmp, "create")?;
            tx.open_table(RECONNECT).or_db(&tmp, "create")?;
        }
        tx.commit().or_db(&tmp, "create")?;
    }
    publish(&tmp, &path, dir)?;
    Database::open(&path).or_db(&path, "open")
}

/// Check the format and the name stored in an existing database.
fn check_meta(db: &Database, db_path: &Path, dir: &Path, name: &str) -> Result<(), DataDirError> {
    let tx = db.begin_read().or_db(db_path, "read")?;
    let meta = tx.open_table(META).or_db(db_path, "read")?;
    let missing = |key: &str| DataDirError::Corrupt {
        path: db_path.to_path_buf(),
        what: format!("no {key:?} in its meta table"),
    };
    let format = meta
        .get(META_FORMAT)
        .or_db(db_path, "read")?
        .ok_or_else(|| missing(META_FORMAT))?;
    let format = decode_u64(db_path, META_FORMAT, format.value())?;
    if format != FORMAT {
        return Err(DataDirError::UnsupportedFormat {
            path: db_path.to_path_buf(),
            found: format,
        });
    }
    let stored = meta
        .get(META_NAME)
        .or_db(db_path, "read")?
        .ok_or_else(|| missing(META_NAME))?;
    let stored = std::str::from_utf8(stored.value()).map_err(|_| DataDirError::Corrupt {
        path: db_path.to_path_buf(),
        what: "the stored node name is not UTF-8".into(),
    })?;
    if stored != name {
        return Err(DataDirError::NameMismatch {
            path: dir.to_path_buf(),
            stored: stored.to_string(),
            asked: name.to_string(),
        });
    }
    Ok(())
}

fn decode_u64(path: &Path, key: &str, bytes: &[u8]) -> Result<u64, DataDirError> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| DataDirError::Corrupt {
        path: path.to_path_buf(),
        what: format!("meta {key:?} holds {} bytes, not 8", bytes.len()),
    })?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A dir of the test's own under the system temp dir, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "rumour-data-dir-{tag}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).expect("create the scratch dir");
            Scratch(dir)
        }

        fn join(&self, p: &str) -> PathBuf {
            self.0.join(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_fresh_open_creates_the_dir_the_key_and_the_database() {
        let s = Scratch::new("fresh");
        let path = s.join("nested/node-1");
        let dir = DataDir::open(&path, "node-1").unwrap();
        assert_eq!(dir.path(), path);
        assert_eq!(dir.name(), "node-1");
        assert!(path.is_dir());
        assert_eq!(mode(&path), 0o700);
        let key = path.join(KEY_FILE);
        assert_eq!(mode(&key), 0o600);
        assert_eq!(fs::read(&key).unwrap(), dir.secret_key());
        assert_ne!(dir.secret_key(), [0u8; 32]);
        assert!(path.join(DB_FILE).is_file());
        assert_eq!(mode(&path.join(DB_FILE)), 0o600);
        let mut files: Vec<String> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, [KEY_FILE, DB_FILE]);
        let saved = dir.load().unwrap();
        assert_eq!(
            saved,
            Saved {
                name: "node-1".into(),
                generation: None,
                version: 0,
                incarnation: 0,
                horizon: 0,
                records: vec![],
                members: vec![],
                reconnect: vec![],
            }
        );
        // Another dir draws another key.
        let other = DataDir::open(&s.join("node-2"), "node-2").unwrap();
        assert_ne!(other.secret_key(), dir.secret_key());
    }

    #[test]
    fn a_keyring_is_kept_and_replaced_whole_across_a_reopen() {
        let s = Scratch::new("keyring");
        let path = s.join("n");
        let mut dir = DataDir::open(&path, "n").unwrap();
        assert_eq!(dir.load_keyring().unwrap(), None);
        dir.save_keyring(&[&[1; 32], &[2; 32], &[3; 32]], "prod")
            .unwrap();
        dir.save_keyring(&[&[2; 32], &[1; 32]], "prod").unwrap();
        drop(dir);
        let dir = DataDir::open(&path, "n").unwrap();
        let kept = dir.load_keyring().unwrap().unwrap();
        let keys: Vec<&[u8]> = kept.keys.iter().map(|k| k.as_slice()).collect();
        assert_eq!(keys, [&[2u8; 32][..], &[1u8; 32][..]]);
        assert_eq!(kept.label, "prod");
        assert_eq!(
            format!("{kept:?}"),
            "SavedKeyring { keys: <2 redacted>, label: \"prod\" }"
        );
        // The namespace's tables are untouched.
        assert_eq!(dir.load().unwrap().records, vec![]);
    }

    #[test]
    fn a_reopen_returns_the_same_key_and_what_was_committed() {
        let s = Scratch::new("reopen");
        let path = s.join("n");
        let mut dir = DataDir::open(&path, "n").unwrap();
        let key = dir.secret_key();
        let mut batch = Batch::new();
        batch
            .put_record("b", 2, b"two".to_vec())
            .put_record("a", 1, b"one".to_vec())
            .put_record("gone", 3, b"x".to_vec())
            .remove_record("gone")
            .put_record("a", 4, b"one again".to_vec())
            .set_version(4)
            .set_generation(7)
            .set_incarnation(9)
            .put_member("m1", b"alive".to_vec())
            .put_member("m2", b"dead".to_vec());
        dir.commit(&batch).unwrap();
        let mut batch = Batch::new();
        batch
            .replace_members([("m3", b"left".to_vec()), ("m2", b"alive".to_vec())])
            .remove_member("m3");
        dir.commit(&batch).unwrap();
        drop(dir);

        let dir = DataDir::open(&path, "n").unwrap();
        assert_eq!(dir.secret_key(), key);
        let saved = dir.load().unwrap();
        assert_eq!(saved.generation, Some(7));
        assert_eq!(saved.version, 4);
        assert_eq!(saved.incarnation, 9);
        let record = |slot: &str, version, bytes: &[u8]| Record {
            slot: slot.into(),
            version,
            bytes: bytes.to_vec(),
        };
        assert_eq!(
            saved.records,
            vec![record("b", 2, b"two"), record("a", 4, b"one again")]
        );
        assert_eq!(saved.members, vec![("m2".into(), b"alive".to_vec())]);
    }

    #[test]
    fn the_reconnect_list_is_replaced_whole_and_read_back() {
        let s = Scratch::new("reconnect");
        let path = s.join("n");
        let mut dir = DataDir::open(&path, "n").unwrap();
        let entry = |name: &str, until| Reconnect {
            name: name.into(),
            addr: "10.0.0.1:7946".into(),
            until_unix_ms: until,
        };
        let mut batch = Batch::new();
        batch.replace_reconnect([entry("b", 2), entry("a", 1)]);
        dir.commit(&batch).unwrap();
        let mut batch = Batch::new();
        batch.replace_reconnect([entry("c", 3), entry("a", 4)]);
        dir.commit(&batch).unwrap();
        drop(dir);
        let dir = DataDir::open(&path, "n").unwrap();
        assert_eq!(
            dir.load().unwrap().reconnect,
            vec![entry("a", 4), entry("c", 3)]
        );
    }

    #[test]
    fn an_empty_batch_changes_nothing() {
        let s = Scratch::new("empty");
        let mut dir = DataDir::open(&s.join("n"), "n").unwrap();
        let mut batch = Batch::new();
        assert!(batch.is_empty());
        dir.commit(&batch).unwrap();
        batch.set_version(3);
        assert!(!batch.is_empty());
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(dir.load().unwrap().version, 0);
    }

    /// Run by [`a_killed_writer_leaves_whole_batches`] in a child process:
    /// commit batches until killed. Batch `i` writes 64 slots at version
    /// `i` and sets the namespace version to `i`.
    #[test]
    fn child_writer() {
        let Some(path) = std::env::var_os("RUMOUR_TEST_WRITER_DIR") else {
            return;
        };
        let mut dir = DataDir::open(Path::new(&path), "writer").unwrap();
        let start = dir.load().unwrap().version;
        let mut batch = Batch::new();
        for i in start + 1.. {
            batch.clear();
            for k in 0..64 {
                batch.put_record(format!("k{k}"), i, vec![k as u8; 100]);
            }
            batch.set_version(i);
            dir.commit(&batch).unwrap();
        }
    }

    #[test]
    fn a_killed_writer_leaves_whole_batches() {
        let s = Scratch::new("killed");
        let path = s.join("w");
        let exe = std::env::current_exe().unwrap();
        let mut last = 0;
        for delay_ms in [150, 400, 250] {
            let mut child = Command::new(&exe)
                .args(["data_dir::tests::child_writer", "--exact", "--nocapture"])
                .env("RUMOUR_TEST_WRITER_DIR", &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill().unwrap();
            child.wait().unwrap();
            let dir = DataDir::open(&path, "writer").unwrap();
            let saved = dir.load().unwrap();
            assert!(saved.version >= last, "{} < {last}", saved.version);
            last = saved.version;
            if saved.version == 0 {
                assert!(saved.records.is_empty());
                continue;
            }
            assert_eq!(saved.records.len(), 64);
            for r in &saved.records {
                assert_eq!(r.version, saved.version, "slot {}", r.slot);
            }
        }
        assert!(last > 0, "the writer never committed");
    }

    #[test]
    fn a_garbage_database_is_an_error_naming_it_and_stays_untouched() {
        let s = Scratch::new("garbage");
        for (tag, garbage) in [
            (
                "junk",
                b"this is not a redb database, not at all".repeat(100),
            ),
            ("empty", Vec::new()),
        ] {
            let path = s.join(tag);
            fs::create_dir_all(&path).unwrap();
            let db = path.join(DB_FILE);
            fs::write(&db, &garbage).unwrap();
            let e = DataDir::open(&path, "n").unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, DataDirError::Corrupt { .. }), "{tag}: {e:?}");
            assert!(text.contains(&db.display().to_string()), "{tag}: {text}");
            assert!(text.contains("damaged"), "{tag}: {text}");
            assert_eq!(fs::read(&db).unwrap(), garbage, "{tag}");
            assert!(!path.join(KEY_FILE).exists(), "{tag}");
        }
    }

    #[test]
    fn a_database_without_its_key_is_an_error() {
        let s = Scratch::new("nokey");
        let path = s.join("n");
        drop(DataDir::open(&path, "n").unwrap());
        fs::remove_file(path.join(KEY_FILE)).unwrap();
        let e = DataDir::open(&path, "n").unwrap_err();
        assert!(matches!(e, DataDirError::KeyMissing { .. }), "{e:?}");
        assert!(e.to_string().contains(KEY_FILE), "{e}");
        assert!(!path.join(KEY_FILE).exists());
    }

    #[test]
    fn a_damaged_key_is_an_error_naming_it() {
        let s = Scratch::new("badkey");
        for (tag, bytes) in [
            ("short", vec![1u8; 10]),
            ("long", vec![1u8; 33]),
            ("empty", vec![]),
        ] {
            let path = s.join(tag);
            fs::create_dir_all(&path).unwrap();
            let key = path.join(KEY_FILE);
            write_mode(&key, &bytes, 0o600);
            let e = DataDir::open(&path, "n").unwrap_err();
            assert!(matches!(e, DataDirError::KeyLength { .. }), "{tag}: {e:?}");
            let text = e.to_string();
            assert!(text.contains(&key.display().to_string()), "{tag}: {text}");
            assert!(
                text.contains(&format!("{} bytes", bytes.len())),
                "{tag}: {text}"
            );
            assert_eq!(fs::read(&key).unwrap(), bytes, "{tag}");
        }
        // A directory where the key should be.
        let path = s.join("dir");
        fs::create_dir_all(path.join(KEY_FILE)).unwrap();
        fs::set_permissions(path.join(KEY_FILE), fs::Permissions::from_mode(0o700)).unwrap();
        let e = DataDir::open(&path, "n").unwrap_err();
        assert!(e.to_string().contains(KEY_FILE), "{e}");
    }

    #[test]
    fn a_key_open_to_group_or_others_is_refused() {
        let s = Scratch::new("openkey");
        let path = s.join("n");
        let key = DataDir::open(&path, "n").unwrap().secret_key();
        let key_path = path.join(KEY_FILE);
        for m in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(m)).unwrap();
            let e = DataDir::open(&path, "n").unwrap_err();
            assert!(
                matches!(e, DataDirError::KeyPermissions { .. }),
                "{m:o}: {e:?}"
            );
            let text = e.to_string();
            assert!(text.contains(&key_path.display().to_string()), "{text}");
            assert!(text.contains(&format!("{m:04o}")), "{text}");
            assert!(text.contains("chmod 600"), "{text}");
        }
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(DataDir::open(&path, "n").unwrap().secret_key(), key);
    }

    #[test]
    fn an_unwritable_or_non_dir_path_is_an_error_naming_it() {
        let s = Scratch::new("unwritable");
        let file = s.join("file");
        fs::write(&file, b"a regular file").unwrap();
        let e = DataDir::open(&file, "n").unwrap_err();
        assert!(matches!(e, DataDirError::NotADirectory { .. }), "{e:?}");
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");

        let under = file.join("data");
        let e = DataDir::open(&under, "n").unwrap_err();
        assert!(matches!(e, DataDirError::CreateDir { .. }), "{e:?}");
        assert!(e.to_string().contains(&under.display().to_string()), "{e}");
        assert_eq!(fs::read(&file).unwrap(), b"a regular file");
    }

    #[test]
    fn a_dir_belongs_to_one_name() {
        let s = Scratch::new("name");
        let path = s.join("n");
        drop(DataDir::open(&path, "alice").unwrap());
        let e = DataDir::open(&path, "bob").unwrap_err();
        assert!(matches!(e, DataDirError::NameMismatch { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("\"alice\"") && text.contains("\"bob\""),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        DataDir::open(&path, "alice").unwrap();
    }

    #[test]
    fn a_dir_open_elsewhere_is_in_use() {
        let s = Scratch::new("inuse");
        let path = s.join("n");
        let _first = DataDir::open(&path, "n").unwrap();
        let e = DataDir::open(&path, "n").unwrap_err();
        assert!(matches!(e, DataDirError::InUse { .. }), "{e:?}");
        assert!(e.to_string().contains(DB_FILE), "{e}");
    }

    #[test]
    fn openers_racing_on_a_new_dir_agree_on_its_key() {
        let s = Scratch::new("race");
        let path = s.join("n");
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || DataDir::open(&path, "n"))
            })
            .collect();
        let results: Vec<_> = openers.into_iter().map(|t| t.join().unwrap()).collect();
        let on_disk = fs::read(path.join(KEY_FILE)).unwrap();
        let mut opened = 0;
        for r in &results {
            match r {
                Ok(dir) => {
                    opened += 1;
                    assert_eq!(dir.secret_key().as_slice(), on_disk);
                }
                Err(e) => assert!(matches!(e, DataDirError::InUse { .. }), "{e:?}"),
            }
        }
        assert!(opened >= 1);
        drop(results);
        let files = fs::read_dir(&path).unwrap().count();
        assert_eq!(files, 2, "temporary files left behind");
    }

    #[tokio::test]
    async fn an_agent_opens_its_dir_and_does_not_start_on_a_damaged_one() {
        use crate::{Agent, AgentConfig, StartError};
        let s = Scratch::new("agent");
        let path = s.join("n");
        let mut config = AgentConfig::loopback("n", rumour_core::Config::lan());
        config.data_dir = Some(path.clone());
        let agent = Agent::start(config.clone()).await.unwrap();
        assert_eq!(agent.data_dir(), Some(path.as_path()));
        assert!(path.join(KEY_FILE).is_file() && path.join(DB_FILE).is_file());
        agent.shutdown().await;
        // Closed with the node task: it opens again.
        let key = DataDir::open(&path, "n").unwrap().secret_key();
        assert_eq!(fs::read(path.join(KEY_FILE)).unwrap(), key);

        fs::write(path.join(DB_FILE), b"garbage").unwrap();
        let e = Agent::start(config).await.err().expect("no start");
        assert!(
            matches!(e, StartError::DataDir(DataDirError::Corrupt { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains(DB_FILE), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = Scratch::new("debug");
        let dir = DataDir::open(&s.join("n"), "n").unwrap();
        let shown = format!("{dir:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let key = dir.secret_key();
        assert!(
            !shown.contains(format!("{:?}", &key[..3]).trim_end_matches(']')),
            "{shown}"
        );
    }

    #[test]
    fn a_name_is_one_path_component() {
        assert_eq!(path_component("node-1.a_b"), "node-1.a_b");
        assert_eq!(path_component("a/b"), "a%2Fb");
        assert_eq!(path_component(".."), "%2E.");
        assert_eq!(path_component(".hidden"), "%2Ehidden");
        assert_eq!(path_component("é"), "%C3%A9");
        assert_eq!(path_component("50%"), "50%25");
        if let Some(p) = DataDir::default_path("a/b") {
            assert!(p.ends_with("rumour/a%2Fb"), "{}", p.display());
        }
    }
}
