//! The store's core: the [`Store`] handle over either backend's pool, its
//! error type, the migrators, and the few statements that differ per
//! backend ([`Dialect`]). Every query module builds on this one.

use std::str::FromStr;
use std::time::Duration;

use super::changes::Changes;
use scribe_actors::domain::VoiceApi;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Runs `$body` with `$p` bound to the concrete pool of either backend. The
/// body is compiled once per backend, so one query text serves both.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::pool::Pool::Sqlite($p) => $body,
            $crate::store::pool::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// How a write transaction begins on each backend. SQLite takes the write
/// lock up front (`IMMEDIATE`): a deferred transaction that reads before it
/// writes fails at once with "database is locked" when another writer holds
/// the lock, instead of waiting for it.
///
/// A read of one consistent snapshot (the event stream's) is a repeatable-
/// read transaction on PostgreSQL and a plain read transaction on SQLite,
/// which in WAL mode sees one snapshot.
pub(crate) trait Dialect {
    const BEGIN: &'static str;
    const READ_SNAPSHOT: &'static str;
    /// What a SELECT ends with to hold the rows it read against a change
    /// of them until the transaction ends (SQLite's write transaction
    /// already holds the whole database).
    const SHARE_LOCK: &'static str;
    /// What a SELECT ends with to hold the rows it read against a deletion
    /// only ([`Dialect::DELETE_LOCK`]), not against an ordinary change: the
    /// lock a foreign key takes anyway, so an insert that references the
    /// row pays nothing more for it. After waiting out a deletion it reads
    /// the row as the deletion left it.
    const KEY_SHARE_LOCK: &'static str;
    /// The lock of a deletion: against every other locker, including the
    /// inserts that reference the row (`KEY_SHARE_LOCK`).
    const DELETE_LOCK: &'static str;
    /// Whether the backend has `NOTIFY` (lease news between instances).
    const NOTIFIES: bool;
}

impl Dialect for SqlitePool {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const READ_SNAPSHOT: &'static str = "BEGIN";
    const SHARE_LOCK: &'static str = "";
    const KEY_SHARE_LOCK: &'static str = "";
    const DELETE_LOCK: &'static str = "";
    const NOTIFIES: bool = false;
}

impl Dialect for PgPool {
    const BEGIN: &'static str = "BEGIN";
    const READ_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const SHARE_LOCK: &'static str = " FOR SHARE";
    const KEY_SHARE_LOCK: &'static str = " FOR KEY SHARE";
    const DELETE_LOCK: &'static str = " FOR UPDATE";
    const NOTIFIES: bool = true;
}

/// The end of a SELECT that holds its rows on `pool`'s backend.
pub(crate) fn share_lock<P: Dialect>(_pool: &P) -> &'static str {
    P::SHARE_LOCK
}

/// The end of a SELECT that holds its rows against a deletion only.
pub(crate) fn key_share_lock<P: Dialect>(_pool: &P) -> &'static str {
    P::KEY_SHARE_LOCK
}

/// The end of a SELECT that holds its rows for their deletion.
pub(crate) fn delete_lock<P: Dialect>(_pool: &P) -> &'static str {
    P::DELETE_LOCK
}

/// Whether `pool`'s backend carries lease news (`NOTIFY`).
pub(crate) fn notifies<P: Dialect>(_pool: &P) -> bool {
    P::NOTIFIES
}

/// The statement that begins a write transaction on `pool`'s backend.
pub(crate) fn write_begin<P: Dialect>(_pool: &P) -> &'static str {
    P::BEGIN
}

/// The statement that begins a one-snapshot read on `pool`'s backend.
pub(crate) fn read_snapshot<P: Dialect>(_pool: &P) -> &'static str {
    P::READ_SNAPSHOT
}

/// The embedded migrations, one migrator per backend with mirrored versions.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if it names one we support.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: expected `sqlite:<path>` or `postgres://...`")]
    UnsupportedUrl(String),
    #[error("invalid database URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("agent {0} does not exist")]
    UnknownAgent(scribe_actors::ids::AgentId),
    #[error("{0} already reaches another agent")]
    PhoneNumberTaken(crate::domain::phone::PhoneNumber),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the statement broke a UNIQUE constraint (classified by kind,
    /// not by constraint name: SQLite reports none).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// How many connections a store keeps.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize(pub u32);

impl Default for PoolSize {
    fn default() -> Self {
        Self(16)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The one store interface, cheap to clone (it is a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) changes: Changes,
    /// The voice API the calls this instance starts run on (recorded on
    /// each meeting as its call starts).
    pub(crate) voice_api: VoiceApi,
    /// How transcript lines reach PostgreSQL.
    pub(crate) pg_lines: super::PgLines,
}

/// SQLite's page cache per connection, as its pragma takes it (negative:
/// KiB).
const SQLITE_CACHE_KIB: &str = "-512";

/// What SQLite's write-ahead log is truncated to once checkpointed: it may
/// grow past it under a burst of writes, never stay there.
pub const SQLITE_WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Creates the SQLite file `url` names, readable and writable by its owner
/// only, when it does not exist yet (its `-wal` and `-shm` files take the
/// same mode from it). An existing file keeps its mode.
fn create_private(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = options.get_filename();
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") || path.exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

impl Store {
    /// Calls started from now on run on `api`.
    pub fn starting_calls_on(mut self, api: VoiceApi) -> Self {
        self.voice_api = api;
        self
    }

    /// The voice API new calls run on (`SCRIBE_VOICE_API`): the one place
    /// the service keeps it. A call's own API is recorded on its meeting
    /// as it starts and read back in its path.
    pub fn voice_api(&self) -> VoiceApi {
        self.voice_api
    }

    /// Transcript lines go to PostgreSQL this way (the ingest example
    /// compares them; the default is the one it found fastest).
    pub fn writing_lines_by(mut self, how: super::PgLines) -> Self {
        self.pg_lines = how;
        self
    }

    /// Opens a pool for `url`. A SQLite file that does not exist yet is
    /// created. Connections are made lazily for PostgreSQL, at once for SQLite.
    pub async fn connect(url: &str, size: PoolSize) -> Result<Self, StoreError> {
        let pool = match Backend::from_url(url) {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(StoreError::InvalidUrl)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL + NORMAL survives a process crash; only an OS crash
                    // or power loss can drop the last commits.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // Each connection keeps its own page cache (2 MiB by
                    // default, 32 MiB over a pool of 16): 512 KiB each
                    // keeps what the queries touch, and the file's pages
                    // stay in the kernel's cache behind it.
                    .pragma("cache_size", SQLITE_CACHE_KIB)
                    .pragma("journal_size_limit", SQLITE_WAL_LIMIT_BYTES.to_string());
                create_private(&options)?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(size.0.max(1))
                    .connect_with(options)
                    .await?;
                Pool::Sqlite(pool)
            }
            Some(Backend::Postgres) => {
                let options = PgConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
                let pool = PgPoolOptions::new()
                    .max_connections(size.0.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Pool::Postgres(pool)
            }
            None => return Err(StoreError::UnsupportedUrl(redact_url(url))),
        };
        Ok(Self {
            pool,
            changes: Changes::default(),
            voice_api: VoiceApi::Realtime,
            pg_lines: super::PgLines::default(),
        })
    }

    /// Wake-ups for readers of one meeting (see [`Changes`]).
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// Answers when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Copies SQLite's write-ahead log into the database file as far as
    /// readers allow (passive: it waits for nobody), so that the log is
    /// reset and truncated to [`SQLITE_WAL_LIMIT_BYTES`] at the next write.
    /// Returns the log's pages and how many were copied. PostgreSQL: nothing.
    pub async fn checkpoint(&self) -> Result<Option<(i64, i64)>, StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let (_busy, log, copied): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                        .fetch_one(p)
                        .await?;
                Ok(Some((log, copied)))
            }
            Pool::Postgres(_) => Ok(None),
        }
    }

    /// A numeric pragma as one of this store's SQLite connections has it
    /// (`None` on PostgreSQL).
    pub async fn sqlite_pragma(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => {
                if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    return Err(StoreError::Corrupt(format!("not a pragma name: {name}")));
                }
                let (value,): (i64,) =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
                        .fetch_one(p)
                        .await?;
                Ok(Some(value))
            }
            Pool::Postgres(_) => Ok(None),
        }
    }

    /// Waits for checked-out connections to return, then closes them all.
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }

    pub fn is_closed(&self) -> bool {
        on_pool!(self, |p| p.is_closed())
    }
}

/// Rows of one UUID column as meeting ids.
pub(crate) fn meeting_ids(rows: Vec<(uuid::Uuid,)>) -> Vec<scribe_actors::ids::MeetingId> {
    rows.into_iter()
        .map(|(id,)| scribe_actors::ids::MeetingId::from_uuid(id))
        .collect()
}

/// The URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A key/value connection string (`host=db password=x`).
        return url
            .split(' ')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{user}{masked}@{host}")
        }
        None => authority.to_owned(),
    };
    // Secrets given as query parameters (`?password=...`).
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Connection parameters that carry a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "pass", "pwd", "sslpassword", "secret", "token"].contains(&key.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_migrators_list_the_same_versions() {
        let versions = |m: &Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(
            SQLITE_MIGRATOR.iter().next().is_some(),
            "no migrations embedded"
        );
        assert_eq!(versions(&SQLITE_MIGRATOR), versions(&POSTGRES_MIGRATOR));
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/scribe?sslmode=require"),
            "postgres://app:***@db:5432/scribe?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@db/scribe"),
            "postgres://app@db/scribe"
        );
        assert_eq!(redact_url("sqlite://scribe.db"), "sqlite://scribe.db");
        assert_eq!(
            redact_url("postgres://app@db/scribe?sslmode=require&password=s3cret&Sslpassword=k"),
            "postgres://app@db/scribe?sslmode=require&password=***&Sslpassword=***"
        );
        assert_eq!(
            redact_url("postgres://app:s3cret@db?password=s3cret"),
            "postgres://app:***@db?password=***"
        );
        assert_eq!(
            redact_url("host=db user=app password=s3cret dbname=scribe"),
            "host=db user=app password=*** dbname=scribe"
        );
        for url in [
            "postgres://app:s3cret@db/x?password=s3cret",
            "postgresql://u:s3cret@h:5432?pwd=s3cret&application_name=scribe",
            "host=h password=s3cret",
        ] {
            assert!(!redact_url(url).contains("s3cret"), "{url}");
        }
    }

    #[test]
    fn recognises_backends_by_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite:x.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://h/db"), None);
    }
}
