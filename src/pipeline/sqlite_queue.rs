//! The embedded durable queue: one SQLite database (WAL journal, synchronous FULL),
//! safe to share between processes (the watcher sends while a flush receives).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::event::{now_us, ObjectEvent};
use super::queue::{
    DeadLetter, Failed, GroupStats, Message, NewMessage, Queue, QueueError, Receipt, Retry, Sent,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at_us INTEGER NOT NULL,
    visible_at_us INTEGER NOT NULL DEFAULT 0,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (dead, grp, id);
CREATE TABLE IF NOT EXISTS dedup (
    dedup_id TEXT PRIMARY KEY,
    sent_at_us INTEGER NOT NULL
);
";

/// Queue settings, as an SQS queue and its redrive policy would hold them.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    /// Receives after which a failing message goes to the dead letters.
    pub max_receives: u32,
    /// A deduplication id seen within this window is dropped (SQS: 5 minutes).
    pub dedup_window: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_receives: 3,
            dedup_window: Duration::from_secs(300),
        }
    }
}

/// [`Queue`] in a SQLite file.
pub struct SqliteQueue {
    path: PathBuf,
    conn: Connection,
    options: QueueOptions,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue database at `path`.
    pub fn open(path: &Path, options: QueueOptions) -> Result<Self, QueueError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| QueueError::Dir {
                path: path.display().to_string(),
                source,
            })?;
        }
        let error = |source| QueueError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(error)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(error)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(error)?;
        conn.execute_batch(SCHEMA).map_err(error)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn,
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Per group, when its oldest message not yet acknowledged (ready or in flight,
    /// not dead) was sent, in microseconds since the epoch: what SQS reports as
    /// `ApproximateAgeOfOldestMessage`.
    pub fn oldest_pending(&self) -> Result<BTreeMap<String, i64>, QueueError> {
        let mut statement = self
            .conn
            .prepare("SELECT grp, MIN(sent_at_us) FROM messages WHERE dead = 0 GROUP BY grp")
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect::<Result<BTreeMap<String, i64>, _>>())
            .map_err(|e| self.error(e))
    }

    fn error(&self, source: rusqlite::Error) -> QueueError {
        QueueError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn begin(&self) -> Result<rusqlite::Transaction<'_>, QueueError> {
        rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))
    }

    fn event(&self, id: i64, body: &str) -> Result<ObjectEvent, QueueError> {
        serde_json::from_str(body).map_err(|e| QueueError::Body {
            path: self.path.display().to_string(),
            id,
            reason: e.to_string(),
        })
    }

    fn send_one(
        &self,
        tx: &rusqlite::Transaction<'_>,
        message: &NewMessage,
        now: i64,
    ) -> Result<Sent, QueueError> {
        let seen: Option<i64> = tx
            .query_row(
                "SELECT sent_at_us FROM dedup WHERE dedup_id = ?1",
                [&message.dedup_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        if seen.is_some_and(|at| now - at < micros(self.options.dedup_window)) {
            return Ok(Sent::Duplicate);
        }
        let body = serde_json::to_string(&message.event).map_err(|e| QueueError::Body {
            path: self.path.display().to_string(),
            id: 0,
            reason: e.to_string(),
        })?;
        tx.execute(
            "INSERT OR REPLACE INTO dedup (dedup_id, sent_at_us) VALUES (?1, ?2)",
            params![message.dedup_id, now],
        )
        .map_err(|e| self.error(e))?;
        tx.execute(
            "INSERT INTO messages (grp, dedup_id, body, sent_at_us) VALUES (?1, ?2, ?3, ?4)",
            params![message.group, message.dedup_id, body, now],
        )
        .map_err(|e| self.error(e))?;
        Ok(Sent::Enqueued(tx.last_insert_rowid()))
    }

    fn move_to_dead_letters(
        &self,
        tx: &rusqlite::Transaction<'_>,
        id: i64,
        error: &str,
    ) -> Result<(), QueueError> {
        tx.execute(
            "UPDATE messages SET dead = 1, last_error = ?2 WHERE id = ?1",
            params![id, error],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }
}

impl Queue for SqliteQueue {
    fn send(&self, messages: &[NewMessage]) -> Result<Vec<Sent>, QueueError> {
        let now = now_us();
        let tx = self.begin()?;
        tx.execute(
            "DELETE FROM dedup WHERE sent_at_us < ?1",
            [now - micros(self.options.dedup_window)],
        )
        .map_err(|e| self.error(e))?;
        let sent = messages
            .iter()
            .map(|m| self.send_one(&tx, m, now))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(|e| self.error(e))?;
        Ok(sent)
    }

    fn receive(
        &self,
        group: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let now = now_us();
        let tx = self.begin()?;
        let in_flight: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE dead = 0 AND grp = ?1 AND visible_at_us > ?2",
                params![group, now],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))?;
        if in_flight > 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, u32, i64)> = {
            let mut statement = tx
                .prepare(
                    "SELECT id, body, receive_count, receipt FROM messages
                     WHERE dead = 0 AND grp = ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(|e| self.error(e))?;
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            statement
                .query_map(params![group, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.error(e))?
        };
        let mut messages = Vec::with_capacity(rows.len());
        for (id, body, count, token) in rows {
            if count >= self.options.max_receives {
                let error = format!(
                    "received {count} times without being acknowledged (its consumer died?)"
                );
                self.move_to_dead_letters(&tx, id, &error)?;
                continue;
            }
            tx.execute(
                "UPDATE messages SET receive_count = receive_count + 1, receipt = receipt + 1,
                 visible_at_us = ?2 WHERE id = ?1",
                params![id, now.saturating_add(micros(visibility))],
            )
            .map_err(|e| self.error(e))?;
            messages.push(Message {
                id,
                group: group.to_string(),
                receipt: Receipt {
                    id,
                    token: token + 1,
                },
                receive_count: count + 1,
                event: self.event(id, &body)?,
            });
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(messages)
    }

    fn recover(&self, group: &str) -> Result<u64, QueueError> {
        let changed = self
            .conn
            .execute(
                "UPDATE messages SET visible_at_us = 0
                 WHERE dead = 0 AND grp = ?1 AND visible_at_us > ?2",
                params![group, now_us()],
            )
            .map_err(|e| self.error(e))?;
        Ok(changed as u64)
    }

    fn ack(&self, receipts: &[Receipt]) -> Result<u64, QueueError> {
        let tx = self.begin()?;
        let mut acked = 0;
        for receipt in receipts {
            acked += tx
                .execute(
                    "DELETE FROM messages WHERE id = ?1 AND receipt = ?2 AND dead = 0",
                    params![receipt.id, receipt.token],
                )
                .map_err(|e| self.error(e))? as u64;
        }
        tx.commit().map_err(|e| self.error(e))?;
        crate::fault::point();
        Ok(acked)
    }

    fn fail(&self, receipt: Receipt, error: &str, retry: Retry) -> Result<Failed, QueueError> {
        let tx = self.begin()?;
        let count: Option<u32> = tx
            .query_row(
                "SELECT receive_count FROM messages WHERE id = ?1 AND receipt = ?2 AND dead = 0",
                params![receipt.id, receipt.token],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let failed = match (count, retry) {
            (None, _) => Failed::Stale,
            (Some(_), Retry::Never) => {
                self.move_to_dead_letters(&tx, receipt.id, error)?;
                Failed::DeadLettered
            }
            (Some(count), Retry::After(_)) if count >= self.options.max_receives => {
                self.move_to_dead_letters(&tx, receipt.id, error)?;
                Failed::DeadLettered
            }
            (Some(_), Retry::After(delay)) => {
                tx.execute(
                    "UPDATE messages SET visible_at_us = ?3, last_error = ?2 WHERE id = ?1",
                    params![receipt.id, error, now_us().saturating_add(micros(delay))],
                )
                .map_err(|e| self.error(e))?;
                Failed::Retry
            }
        };
        tx.commit().map_err(|e| self.error(e))?;
        Ok(failed)
    }

    fn groups(&self) -> Result<Vec<String>, QueueError> {
        let mut statement = self
            .conn
            .prepare("SELECT DISTINCT grp FROM messages WHERE dead = 0 ORDER BY grp")
            .map_err(|e| self.error(e))?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.error(e))
    }

    fn stats(&self) -> Result<Vec<GroupStats>, QueueError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT grp,
                    SUM(dead = 0 AND visible_at_us <= ?1),
                    SUM(dead = 0 AND visible_at_us > ?1),
                    SUM(dead = 1)
                 FROM messages GROUP BY grp ORDER BY grp",
            )
            .map_err(|e| self.error(e))?;
        statement
            .query_map([now_us()], |row| {
                let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok(GroupStats {
                    group: row.get(0)?,
                    ready: count(1)?,
                    in_flight: count(2)?,
                    dead: count(3)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.error(e))
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let rows: Vec<(i64, String, u32, Option<String>, String)> = {
            let mut statement = self
                .conn
                .prepare(
                    "SELECT id, grp, receive_count, last_error, body FROM messages
                     WHERE dead = 1 ORDER BY id",
                )
                .map_err(|e| self.error(e))?;
            statement
                .query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.error(e))?
        };
        rows.into_iter()
            .map(|(id, group, receive_count, last_error, body)| {
                Ok(DeadLetter {
                    id,
                    group,
                    receive_count,
                    last_error,
                    event: self.event(id, &body)?,
                })
            })
            .collect()
    }

    fn replay(&self, ids: &[i64]) -> Result<u64, QueueError> {
        let tx = self.begin()?;
        let reset = "UPDATE messages SET dead = 0, receive_count = 0, visible_at_us = 0
                     WHERE dead = 1";
        let moved = if ids.is_empty() {
            tx.execute(reset, []).map_err(|e| self.error(e))? as u64
        } else {
            let mut moved = 0;
            for id in ids {
                moved += tx
                    .execute(&format!("{reset} AND id = ?1"), [id])
                    .map_err(|e| self.error(e))? as u64;
            }
            moved
        };
        tx.commit().map_err(|e| self.error(e))?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    //! The queue's contract (order, groups, visibility, failures, dead letters,
    //! deduplication) is tested by the conformance suite that every queue runs
    //! (`tests/queue_conformance.rs`); these tests are about this implementation.

    use super::*;

    fn queue(dir: &Path, max_receives: u32) -> SqliteQueue {
        let options = QueueOptions {
            max_receives,
            dedup_window: Duration::from_secs(300),
        };
        SqliteQueue::open(&dir.join("state/queue.sqlite"), options).unwrap()
    }

    fn message(group: &str, key: &str, dedup: &str) -> NewMessage {
        NewMessage {
            group: group.into(),
            dedup_id: dedup.into(),
            event: ObjectEvent::local_removed(key.into()),
        }
    }

    const LONG: Duration = Duration::from_secs(600);

    #[test]
    fn backoff_doubles_from_one_second_up_to_fifteen_minutes() {
        let secs = |n| match Retry::backoff(n) {
            Retry::After(d) => d.as_secs(),
            Retry::Never => u64::MAX,
        };
        assert_eq!([secs(1), secs(2), secs(3), secs(5)], [1, 2, 4, 16]);
        assert_eq!(secs(40), 900);
    }

    #[test]
    fn recover_makes_a_dead_consumers_messages_visible_and_counts_receives() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 2);
        q.send(&[message("sst", "a", "1")]).unwrap();
        let _lost = q.receive("sst", 1, LONG).unwrap();
        assert_eq!(q.recover("sst").unwrap(), 1);
        let _lost_again = q.receive("sst", 1, LONG).unwrap();
        q.recover("sst").unwrap();
        assert!(q.receive("sst", 1, LONG).unwrap().is_empty());
        let dead = q.dead_letters().unwrap();
        assert!(dead[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("2 times"));
    }

    #[test]
    fn the_queue_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        queue(dir.path(), 3)
            .send(&[message("sst", "a", "1")])
            .unwrap();
        let reopened = queue(dir.path(), 3);
        assert_eq!(reopened.receive("sst", 5, LONG).unwrap().len(), 1);
    }
}
