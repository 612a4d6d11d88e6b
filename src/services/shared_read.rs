//! One read shared by everyone who asked while another was under way.
//!
//! The gate reads two small values on every check (its capability and the inventory's
//! version). Under a burst that read, not the judging, becomes the cost: a statement handed to
//! SQLite's connection thread, a round trip to PostgreSQL. A [`SharedRead`] lets the
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
        self.shared.pass_turn();
    }
}

/// A caller's place in the queue. Dropping it unanswered — its future dropped while waiting —
/// passes on a turn that was sent to it but not yet taken: a turn lost in the channel would
/// leave everyone after it waiting for good.
struct Waiting<'a, T> {
    shared: &'a SharedRead<T>,
    turn: oneshot::Receiver<Turn<T>>,
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.turn.close();
        if let Ok(Turn::Lead) = self.turn.try_recv() {
            self.shared.pass_turn();
        }
    }
}

impl<T> SharedRead<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Give the turn to read to the latest caller still waiting, or give it back.
    fn pass_turn(&self) {
        let mut state = self.lock();
        while let Some(next) = state.waiting.pop() {
            // A caller whose future was dropped cannot take the turn; try the next.
            if next.send(Turn::Lead).is_ok() {
                return;
            }
        }
        state.reading = false;
    }
}

impl<T: Clone> SharedRead<T> {
    /// A value `read` returned in a read that began after this call.
    pub async fn read<F, Fut>(&self, read: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        let waiting = {
            let mut state = self.lock();
            if state.reading {
                let (sender, turn) = oneshot::channel();
                state.waiting.push(sender);
                Some(Waiting { shared: self, turn })
            } else {
                state.reading = true;
                None
            }
        };
        if let Some(mut waiting) = waiting {
            match (&mut waiting.turn).await {
                Ok(Turn::Value(value)) => return value,
                Ok(Turn::Lead) => {}
                // The reader this caller waited for was dropped before it read: read alone
                // (the turn has passed on already).
                Err(_) => return read().await,
            }
        }
        // Everyone waiting now asked before this read begins.
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

    use futures_util::FutureExt as _;
    use tokio::sync::Notify;

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

    /// A read that says when it has begun and ends when released (or never).
    struct Gate {
        begun: Notify,
        release: Notify,
    }

    impl Gate {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                begun: Notify::new(),
                release: Notify::new(),
            })
        }

        async fn read(&self, value: usize) -> usize {
            self.begun.notify_one();
            self.release.notified().await;
            value
        }
    }

    async fn waiters(shared: &SharedRead<usize>, count: usize) {
        while shared.lock().waiting.len() < count {
            tokio::task::yield_now().await;
        }
    }

    async fn within<F: Future>(what: &str, future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish"))
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
    async fn a_reader_that_goes_away_passes_its_turn_to_those_waiting() {
        let shared = Arc::new(SharedRead::<usize>::default());
        let gate = Gate::new();
        let stuck = {
            let (shared, gate) = (shared.clone(), gate.clone());
            tokio::spawn(async move { shared.read(|| gate.read(0)).await })
        };
        gate.begun.notified().await;
        let mut callers = Vec::new();
        for answer in 1..=3 {
            let shared = shared.clone();
            callers.push(tokio::spawn(async move {
                shared.read(|| async move { answer }).await
            }));
        }
        waiters(&shared, 3).await;
        stuck.abort();
        for caller in callers {
            let value = within("a waiting caller", caller)
                .await
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
    async fn callers_whose_reader_went_away_mid_read_read_alone() {
        let shared = Arc::new(SharedRead::<usize>::default());
        let first = Gate::new();
        let leader = {
            let (shared, first) = (shared.clone(), first.clone());
            tokio::spawn(async move { shared.read(|| first.read(0)).await })
        };
        first.begun.notified().await;
        // Two callers queue, then a third: the third gets the turn after the first read and
        // reads for the other two — and goes away in the middle of it.
        let mut alone = Vec::new();
        for answer in 1..=2 {
            let shared = shared.clone();
            alone.push(tokio::spawn(async move {
                shared.read(|| async move { answer }).await
            }));
        }
        waiters(&shared, 2).await;
        let second = Gate::new();
        let next_reader = {
            let (shared, second) = (shared.clone(), second.clone());
            tokio::spawn(async move { shared.read(|| second.read(99)).await })
        };
        waiters(&shared, 3).await;
        first.release.notify_one();
        assert_eq!(
            within("the first reader", leader).await.expect("finished"),
            0
        );
        second.begun.notified().await;
        next_reader.abort();
        let mut answers = Vec::new();
        for caller in alone {
            answers.push(within("a caller", caller).await.expect("finished"));
        }
        answers.sort_unstable();
        assert_eq!(answers, vec![1, 2], "each read for itself");
        assert!(
            !shared.lock().reading,
            "the turn to read was not given back"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_caller_that_went_away_is_skipped_when_the_turn_passes() {
        let shared = Arc::new(SharedRead::<usize>::default());
        let gate = Gate::new();
        let first = {
            let (shared, gate) = (shared.clone(), gate.clone());
            tokio::spawn(async move { shared.read(|| gate.read(1)).await })
        };
        gate.begun.notified().await;
        // Two callers wait; the later one — the first offered the turn — goes away.
        let last = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.read(|| async { 3 }).await })
        };
        waiters(&shared, 1).await;
        let gone = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.read(|| async { 2 }).await })
        };
        waiters(&shared, 2).await;
        gone.abort();
        let _ = gone.await;
        gate.release.notify_one();
        assert_eq!(
            within("the first caller", first).await.expect("finished"),
            1
        );
        // `last` asked during the first read, so that read is too old for it: it reads next.
        assert_eq!(within("the last caller", last).await.expect("finished"), 3);
        assert!(
            !shared.lock().reading,
            "the turn to read was not given back"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_sent_to_a_caller_that_then_went_away_is_passed_on() {
        let shared = SharedRead::<usize>::default();
        let gate = Gate::new();
        let mut first = Box::pin(shared.read(|| gate.read(1)));
        assert!(
            (&mut first).now_or_never().is_none(),
            "the first read waits"
        );
        // A caller queues (polled once), is handed the turn when the first read ends, and
        // is dropped before it is polled again.
        let mut queued = Box::pin(shared.read(|| async { 2 }));
        assert!((&mut queued).now_or_never().is_none(), "the caller waits");
        gate.release.notify_one();
        assert_eq!(within("the first read", first).await, 1);
        drop(queued);
        assert_eq!(
            within(
                "a caller after the one that went away",
                shared.read(|| async { 3 })
            )
            .await,
            3
        );
        assert!(
            !shared.lock().reading,
            "the turn to read was not given back"
        );
    }
}
