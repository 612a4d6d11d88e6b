//! One read shared by everyone who asked while another was under way.
//!
//! The gate reads two small values on every check (its capability and the inventory's
//! version). Under a burst that read, not the judging, becomes the cost: a statement handed to
//! SQLite's connection thread, three round trips to PostgreSQL. A [`SharedRead`] lets the
//! callers that arrive while a read is running wait for the *next* read and share it — never
//! the running one, which began before they asked and may have missed a commit they must see.
//! So every caller gets a value read after it asked, as if it had read alone; under light load
//! each caller reads alone, under a burst there is one read per read's duration.
//!
//! No task is spawned: the caller that finds no read running reads, and when it is done it
//! hands the turn to one of the callers that waited meanwhile, which reads for all of them.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

enum Turn<T> {
    /// The value read for you.
    Value(T),
    /// Read now, for yourself and whoever waits.
    Lead,
}

struct State<T> {
    reading: bool,
    waiting: Vec<oneshot::Sender<Turn<T>>>,
}

pub struct SharedRead<T> {
    state: Mutex<State<T>>,
}

impl<T> Default for SharedRead<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                reading: false,
                waiting: Vec::new(),
            }),
        }
    }
}

/// The turn to read, held while reading. Dropping it — after the read, or because the caller's
/// future was dropped mid-read — passes the turn on, so the callers waiting never wait for
/// a reader that is gone.
struct Reading<'a, T> {
    shared: &'a SharedRead<T>,
    /// The callers this read is for; if the read never finishes they are dropped unanswered
    /// and each reads for itself.
    batch: Vec<oneshot::Sender<Turn<T>>>,
}

impl<T> Drop for Reading<'_, T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        while let Some(next) = state.waiting.pop() {
            // A caller whose future was dropped cannot take the turn; try the next.
            if next.send(Turn::Lead).is_ok() {
                return;
            }
        }
        state.reading = false;
    }
}

impl<T> SharedRead<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone> SharedRead<T> {
    /// A value `read` returned in a read that began after this call.
    pub async fn read<F, Fut>(&self, read: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        let turn = {
            let mut state = self.lock();
            if state.reading {
                let (sender, receiver) = oneshot::channel();
                state.waiting.push(sender);
                Some(receiver)
            } else {
                state.reading = true;
                None
            }
        };
        if let Some(turn) = turn {
            match turn.await {
                Ok(Turn::Value(value)) => return value,
                Ok(Turn::Lead) => {}
                // The reader this caller waited for was dropped before it read: read alone
                // (the turn has passed on already).
                Err(_) => return read().await,
            }
        }
        let mut reading = Reading {
            shared: self,
            batch: std::mem::take(&mut self.lock().waiting),
        };
        let value = read().await;
        for caller in reading.batch.drain(..) {
            // A caller that went away needs no answer.
            let _ = caller.send(Turn::Value(value.clone()));
        }
        drop(reading);
        value
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A store whose value changes with every commit and whose reads take a while.
    #[derive(Default)]
    struct Versioned {
        committed: AtomicUsize,
        reads: AtomicUsize,
    }

    impl Versioned {
        async fn read(&self) -> usize {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let seen = self.committed.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            seen
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_sees_what_was_committed_before_it_asked_and_a_burst_shares_reads() {
        let store = Arc::new(Versioned::default());
        let shared = Arc::new(SharedRead::default());
        let mut callers = Vec::new();
        for _ in 0..200 {
            let (store, shared) = (store.clone(), shared.clone());
            callers.push(tokio::spawn(async move {
                let committed = store.committed.fetch_add(1, Ordering::SeqCst) + 1;
                let seen = shared.read(|| store.read()).await;
                (committed, seen)
            }));
            tokio::task::yield_now().await;
        }
        for caller in callers {
            let (committed, seen) = caller.await.expect("the caller finished");
            assert!(
                seen >= committed,
                "a caller that committed {committed} read {seen}, an older value"
            );
        }
        let reads = store.reads.load(Ordering::SeqCst);
        assert!(
            reads < 100,
            "200 callers during 5 ms reads made {reads} reads"
        );
        assert!(
            !shared.lock().reading,
            "the turn to read was not given back"
        );
    }

    #[tokio::test]
    async fn a_caller_alone_reads_for_itself_every_time() {
        let store = Versioned::default();
        let shared = SharedRead::default();
        for expected in 0..3 {
            store.committed.store(expected, Ordering::SeqCst);
            assert_eq!(shared.read(|| store.read()).await, expected);
        }
        assert_eq!(store.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_goes_away_does_not_leave_the_others_waiting() {
        let shared = Arc::new(SharedRead::<usize>::default());
        // The first reader never finishes its read; it is dropped while others wait for it.
        let stuck = {
            let shared = shared.clone();
            tokio::spawn(async move {
                shared
                    .read(|| async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        0
                    })
                    .await
            })
        };
        while !shared.lock().reading {
            tokio::task::yield_now().await;
        }
        let mut waiting = Vec::new();
        for answer in 1..=3 {
            let shared = shared.clone();
            waiting.push(tokio::spawn(async move {
                shared.read(|| async move { answer }).await
            }));
        }
        while shared.lock().waiting.len() < 3 {
            tokio::task::yield_now().await;
        }
        stuck.abort();
        for caller in waiting {
            let value = tokio::time::timeout(Duration::from_secs(10), caller)
                .await
                .expect("a waiting caller was answered")
                .expect("the caller finished");
            assert!((1..=3).contains(&value), "got {value}");
        }
        assert!(
            !shared.lock().reading,
            "the turn to read was not given back"
        );
        assert_eq!(shared.read(|| async { 7 }).await, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_caller_that_went_away_is_skipped_when_the_turn_passes() {
        let shared = Arc::new(SharedRead::<usize>::default());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let first = {
            let (shared, released) = (shared.clone(), released.clone());
            tokio::spawn(async move {
                shared
                    .read(|| {
                        let released = released.clone();
                        async move {
                            if let Some(released) = released.lock().await.take() {
                                let _ = released.await;
                            }
                            1
                        }
                    })
                    .await
            })
        };
        while !shared.lock().reading {
            tokio::task::yield_now().await;
        }
        // Two callers wait; the later one — the first offered the turn — goes away.
        let last = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.read(|| async { 3 }).await })
        };
        while shared.lock().waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        let gone = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.read(|| async { 2 }).await })
        };
        while shared.lock().waiting.len() < 2 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        release.send(()).expect("the first read waits");
        assert_eq!(first.await.expect("the first caller finished"), 1);
        // `last` asked during the first read, so that read is too old for it: it reads next.
        assert_eq!(last.await.expect("the last caller finished"), 3);
        assert!(
            !shared.lock().reading,
            "the turn to read was not given back"
        );
    }
}
