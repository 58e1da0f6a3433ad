//! The budgets' counts on disk: one SQLite database (rusqlite, SQLite built in), one row per
//! budget with the start of the period it counts and the bytes used in it.
//!
//! Durability: the database is in WAL mode with `synchronous = NORMAL`, so a write that
//! returned survives the process being killed (SIGKILL); a power cut may lose the last
//! writes. The live bridge writes every `flush` interval when a count changed, and at stop:
//! a crash loses at most that interval's counting (tests/service.rs kills it to see).
//! Budgets no longer in the config are forgotten at the next write.

use super::Saved;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// The database file when the config names none.
pub const DEFAULT_PATH: &str = "/var/lib/weir/budgets.sqlite";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS budget_count (
        name TEXT PRIMARY KEY,
        period_start_ns INTEGER NOT NULL,
        used_bytes INTEGER NOT NULL,
        ran_out_at_ns INTEGER,
        written_at_ns INTEGER NOT NULL
    );
";

/// An open budget database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// What went wrong with the database, and with which file.
#[derive(Debug, thiserror::Error)]
#[error("budget database {}: {what}: {source}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub what: &'static str,
    #[source]
    pub source: rusqlite::Error,
}

impl Store {
    /// Open (creating it and its folder when missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| StoreError { path, what, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // An error here shows up as the open's own, with the path.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err("cannot open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(err("cannot set a busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("cannot use WAL mode"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("cannot set synchronous"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("cannot create its table"))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Open an existing database read-only (`weir budget` when no bridge runs).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| StoreError {
                path: path.to_path_buf(),
                what: "cannot open",
                source,
            },
        )?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every count stored, with when it was written (ns since the epoch).
    pub fn load(&self) -> Result<Vec<(Saved, i128)>, StoreError> {
        let err = |source| StoreError {
            path: self.path.clone(),
            what: "cannot read the counts",
            source,
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, period_start_ns, used_bytes, ran_out_at_ns, written_at_ns \
                 FROM budget_count ORDER BY name",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    Saved {
                        name: r.get(0)?,
                        start: i128::from(r.get::<_, i64>(1)?),
                        used: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        ran_out_at: r.get::<_, Option<i64>>(3)?.map(i128::from),
                    },
                    i128::from(r.get::<_, i64>(4)?),
                ))
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// Replace the stored counts with `counts` (one transaction), at wall time `now`.
    pub fn save(&mut self, counts: &[Saved], now: i128) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = move |source| StoreError {
            path: path.clone(),
            what: "cannot write the counts",
            source,
        };
        let clamp = |x: i128| i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX });
        let tx = self.conn.transaction().map_err(err.clone())?;
        tx.execute("DELETE FROM budget_count", [])
            .map_err(err.clone())?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO budget_count \
                     (name, period_start_ns, used_bytes, ran_out_at_ns, written_at_ns) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err.clone())?;
            for c in counts {
                insert
                    .execute(params![
                        c.name,
                        clamp(c.start),
                        i64::try_from(c.used).unwrap_or(i64::MAX),
                        c.ran_out_at.map(clamp),
                        clamp(now),
                    ])
                    .map_err(err.clone())?;
            }
        }
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_a_reopen_and_forgotten_budgets_go() {
        let dir = std::env::temp_dir().join(format!("weir-store-{}", std::process::id()));
        let path = dir.join("sub/budgets.sqlite");
        let _ = std::fs::remove_dir_all(&dir);
        let a = Saved {
            name: "month".into(),
            start: 1_700_000_000_000_000_000,
            used: 400_000_000,
            ran_out_at: Some(1_700_000_100_000_000_000),
        };
        let b = Saved {
            name: "kids".into(),
            start: 1_700_000_000_000_000_000,
            used: 5,
            ran_out_at: None,
        };
        {
            let mut s = Store::open(&path).unwrap();
            s.save(&[a.clone(), b.clone()], 42).unwrap();
            s.save(std::slice::from_ref(&a), 43).unwrap();
        }
        let s = Store::open_read_only(&path).unwrap();
        assert_eq!(s.load().unwrap(), vec![(a, 43)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unusable_path_says_which_file() {
        let e = Store::open(Path::new("/proc/weir-no/budgets.sqlite"))
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("/proc/weir-no/budgets.sqlite"),
            "{e}"
        );
    }
}
