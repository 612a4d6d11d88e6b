//! Copying SQLite's write-ahead log into the database on a connection of its own.
//!
//! Left to itself SQLite copies the log (a checkpoint) inside the commit that makes the log
//! longer than `wal_autocheckpoint` pages: that commit, and so every caller of a group commit,
//! waits for the copy and its fsyncs. Here a background task copies the log as it grows, with
//! `PRAGMA wal_checkpoint(PASSIVE)`, which runs beside writers without blocking them. The next
//! write transaction that finds the log wholly copied starts it over from the beginning. The
//! commits' own automatic checkpoint stays as the fallback: when a commit crosses the mark,
//! most of the log has been copied already, so its share is small.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use tokio::sync::oneshot;

use crate::StoreError;

/// The pause after a pass that copied something: short enough that each pass copies a few
/// group commits' worth (a commit that crosses the automatic mark then has little left to
/// copy), long enough that the passes' fsyncs stay few.
const AFTER_COPY: Duration = Duration::from_millis(10);

/// The pause after a pass that copied part of the log and could go on (more to copy right
/// away).
const AGAIN: Duration = Duration::from_millis(1);

/// The longest pause: the pause doubles from [`AFTER_COPY`] with each pass that copied
/// nothing (an idle database, or a reader whose snapshot holds the copy back), so an idle
/// database costs ten cheap queries a second, and the first commits of a burst still find
/// the copy running before the log reaches the automatic mark (≈ 40 ms at 10,000 checks/s).
const LONGEST: Duration = Duration::from_millis(100);

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CheckpointReport {
    /// Another connection was checkpointing (a commit's automatic checkpoint); then `log` and
    /// `copied` are -1.
    busy: bool,
    /// Frames in the log when the pass began.
    log: i64,
    /// Frames of the log in the database after the pass. Less than `log` when a reader's
    /// snapshot still needs the older pages (a passive checkpoint copies up to the oldest
    /// reader only).
    copied: i64,
}

impl CheckpointReport {
    /// The pause before the next pass, given the pause before this one and the frames that
    /// were in the database after the pass before (`copied_before`).
    fn next_pause(self, pause: Duration, copied_before: i64) -> Duration {
        let progressed = !self.busy && self.copied != copied_before && self.copied > 0;
        if progressed && self.copied < self.log {
            AGAIN
        } else if progressed || self.busy {
            // A commit's own checkpoint holds the lock: it is copying what this pass would
            // have, so come back a little later rather than spin on the lock.
            AFTER_COPY
        } else {
            (pause * 2).clamp(AFTER_COPY, LONGEST)
        }
    }
}

async fn passive_checkpoint(
    connection: &mut SqliteConnection,
) -> Result<CheckpointReport, StoreError> {
    let (busy, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *connection)
        .await?;
    Ok(CheckpointReport {
        busy: busy != 0,
        log,
        copied,
    })
}

/// Stops the background copy when dropped (the store holds it in an `Arc`, so when its last
/// clone is dropped).
#[derive(Debug)]
pub(crate) struct WalCopier {
    _stop: oneshot::Sender<()>,
}

impl WalCopier {
    /// Open a connection of its own to the database `options` name and copy the log on it
    /// until the returned handle is dropped. The task runs on the current runtime; if that
    /// runtime ends first, the copy ends with it and the commits' automatic checkpoints do
    /// the copying alone (as they would without this).
    pub(crate) async fn start(options: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        // A checkpoint syncs with its own connection's flags: at NORMAL (or FULL) the log is
        // synced before it is copied and the database before the log may start over, so
        // nothing a FULL commit acknowledged can be lost to a power cut. Never OFF here.
        let connection = options
            .clone()
            .synchronous(SqliteSynchronous::Normal)
            .connect()
            .await?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(copy_until_stopped(connection, stopped));
        Ok(Self { _stop: stop })
    }
}

async fn copy_until_stopped(mut connection: SqliteConnection, mut stopped: oneshot::Receiver<()>) {
    let mut pause = AFTER_COPY;
    let mut copied_before = 0;
    loop {
        let started = std::time::Instant::now();
        match passive_checkpoint(&mut connection).await {
            Ok(report) => {
                tracing::debug!(
                    busy = report.busy,
                    log = report.log,
                    copied = report.copied,
                    took_us = started.elapsed().as_micros(),
                    "write-ahead log pass"
                );
                pause = report.next_pause(pause, copied_before);
                copied_before = report.copied;
            }
            // The commits' own checkpoints still copy the log; say why this one stopped
            // helping, and try again later.
            Err(error) => {
                tracing::warn!(%error, "copying the SQLite write-ahead log failed");
                pause = LONGEST;
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    // Closing only finalizes statements and the handle; an error here leaves nothing to undo.
    if let Err(error) = connection.close().await {
        tracing::debug!(%error, "closing the write-ahead log copier's connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(busy: bool, log: i64, copied: i64) -> CheckpointReport {
        CheckpointReport { busy, log, copied }
    }

    #[test]
    fn a_pass_held_back_while_copying_goes_again_at_once() {
        assert_eq!(report(false, 300, 200).next_pause(LONGEST, 100), AGAIN);
    }

    #[test]
    fn a_pass_that_copied_everything_or_met_another_checkpoint_pauses_briefly() {
        assert_eq!(report(false, 300, 300).next_pause(LONGEST, 100), AFTER_COPY);
        // The log started over and has grown again since the last pass.
        assert_eq!(report(false, 40, 40).next_pause(LONGEST, 300), AFTER_COPY);
        assert_eq!(report(true, -1, -1).next_pause(LONGEST, 300), AFTER_COPY);
    }

    #[test]
    fn passes_that_copy_nothing_back_off() {
        let mut pause = AFTER_COPY;
        for _ in 0..20 {
            pause = report(false, 300, 300).next_pause(pause, 300);
        }
        assert_eq!(pause, LONGEST);
        assert_eq!(
            report(false, 300, 300).next_pause(AFTER_COPY, 300),
            AFTER_COPY * 2
        );
        // A reader holds the copy back: no progress, so no spinning either.
        assert_eq!(
            report(false, 300, 200).next_pause(AFTER_COPY, 200),
            AFTER_COPY * 2
        );
        // An empty log (nothing written since it started over).
        assert_eq!(
            report(false, 0, 0).next_pause(AFTER_COPY, 300),
            AFTER_COPY * 2
        );
    }
}
