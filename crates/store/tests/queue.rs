//! Webhook events and the job queue: behaviour every `EventStore` + `JobStore` must show, run
//! on real SQLite files and on PostgreSQL (see tests/common).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use common::Fixture;
use serde_json::json;
use sqlx::Connection;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tollgate_domain::TenantId;
use tollgate_store::{
    EventFilter, EventId, EventStatus, EventStore, IngestOutcome, JobFilter, JobId, JobStatus,
    JobStore, NewEvent, NewJob, QueueStats, ReplayOutcome, ReplaySelection, Retry, SqliteStore,
    StoreError, StoredEvent, SynchronousLevels,
};

const LEASE: StdDuration = StdDuration::from_secs(60);

struct SqliteFixture {
    /// Bind it (`SqliteFixture { _dir, .. }`): the database lives only as long as the directory.
    _dir: tempfile::TempDir,
    path: String,
    store: SqliteStore,
}

async fn sqlite() -> SqliteFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir
        .path()
        .join("queue.db")
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    let store = SqliteStore::open(&path).await.expect("open store");
    SqliteFixture {
        _dir: dir,
        path,
        store,
    }
}

/// A fixed clock: `at(s)` is `s` seconds after noon.
fn at(seconds: i64) -> OffsetDateTime {
    datetime!(2026-05-04 12:00 UTC) + Duration::seconds(seconds)
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn globex() -> TenantId {
    TenantId::parse("globex").unwrap()
}

fn job(kind: &str, dedupe_key: Option<&str>, run_after: OffsetDateTime) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        payload: json!({ "kind": kind }),
        dedupe_key: dedupe_key.map(str::to_owned),
        run_after,
        max_attempts: 3,
    }
}

fn event(ado_id: Option<&str>, received_at: OffsetDateTime, job: Option<NewJob>) -> NewEvent {
    NewEvent {
        tenant: acme(),
        event_id: ado_id.map(str::to_owned),
        event_type: Some("git.push".to_owned()),
        subscription_id: Some("sub-1".to_owned()),
        status: EventStatus::Received,
        body: format!(r#"{{"id":{ado_id:?}}}"#).into_bytes(),
        error: None,
        received_at,
        job,
    }
}

fn stored(outcome: &IngestOutcome) -> (EventId, Option<JobId>) {
    match outcome {
        IngestOutcome::Stored { id, job } => (*id, *job),
        IngestOutcome::Duplicate { id } => panic!("event {id} should be new"),
    }
}

async fn all_jobs(store: &dyn JobStore, tenant: &TenantId) -> Vec<tollgate_store::Job> {
    store
        .jobs(
            tenant,
            &JobFilter {
                limit: 1000,
                ..JobFilter::default()
            },
        )
        .await
        .unwrap()
}

async fn all_events(store: &dyn EventStore, tenant: &TenantId) -> Vec<StoredEvent> {
    store
        .events(
            tenant,
            &EventFilter {
                limit: 1000,
                ..EventFilter::default()
            },
        )
        .await
        .unwrap()
}

async fn redelivered_events_are_stored_once_and_counted(fixture: Fixture) {
    let store = &*fixture.store;
    let first = store
        .ingest(&[event(Some("ado-1"), at(0), None)], &|_, _| Vec::new())
        .await
        .unwrap();
    let (id, _) = stored(&first[0]);

    // Redelivered in a later batch, and twice within one batch next to a new event.
    let again = store
        .ingest(
            &[
                event(Some("ado-1"), at(5), None),
                event(Some("ado-2"), at(5), None),
                event(Some("ado-2"), at(5), None),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(again[0], IngestOutcome::Duplicate { id });
    let (second, _) = stored(&again[1]);
    assert_eq!(again[2], IngestOutcome::Duplicate { id: second });
    assert_eq!(again[2].event(), second);

    let stored_first = store.event(&acme(), id).await.unwrap().unwrap();
    assert_eq!(stored_first.deliveries, 2);
    assert_eq!(
        stored_first.received_at,
        at(0),
        "a redelivery changes nothing but the count"
    );
    assert_eq!(
        store
            .event(&acme(), second)
            .await
            .unwrap()
            .unwrap()
            .deliveries,
        2
    );

    // Events without an id are never duplicates; the same id in another tenant is another event.
    let anonymous = store
        .ingest(
            &[event(None, at(6), None), event(None, at(6), None)],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    assert!(
        anonymous
            .iter()
            .all(|outcome| matches!(outcome, IngestOutcome::Stored { .. }))
    );
    let mut other_tenant = event(Some("ado-1"), at(7), None);
    other_tenant.tenant = globex();
    let (foreign, _) = stored(
        &store
            .ingest(&[other_tenant], &|_, _| Vec::new())
            .await
            .unwrap()[0],
    );
    assert_ne!(foreign, id);
    assert_eq!(all_events(store, &acme()).await.len(), 4);
    assert!(
        store.event(&acme(), foreign).await.unwrap().is_none(),
        "a tenant sees only its own events"
    );
}

async fn stored_events_keep_every_field_and_the_exact_body(fixture: Fixture) {
    let store = &*fixture.store;
    let body = b"{\"id\":\"x\", \"resource\": \"\xff not utf-8\"}".to_vec();
    let received = datetime!(2026-05-04 14:00:00.123456789 +02:00);
    let new = NewEvent {
        tenant: acme(),
        event_id: Some("x".to_owned()),
        event_type: None,
        subscription_id: None,
        status: EventStatus::Malformed,
        body: body.clone(),
        error: Some("expected value at line 1".to_owned()),
        received_at: received,
        job: None,
    };
    let (id, job) = stored(&store.ingest(&[new], &|_, _| Vec::new()).await.unwrap()[0]);
    assert_eq!(job, None);
    let event = store.event(&acme(), id).await.unwrap().unwrap();
    assert_eq!(
        event,
        StoredEvent {
            id,
            tenant: acme(),
            event_id: Some("x".to_owned()),
            event_type: None,
            subscription_id: None,
            status: EventStatus::Malformed,
            body,
            error: Some("expected value at line 1".to_owned()),
            received_at: received.truncate_to_microsecond(),
            processed_at: None,
            deliveries: 1,
            job: None,
        }
    );
}

async fn a_job_is_enqueued_with_a_new_event_only(fixture: Fixture) {
    let store = &*fixture.store;
    let outcomes = store
        .ingest(
            &[event(Some("ado-1"), at(0), Some(job("sync", None, at(0))))],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    let (id, job_id) = stored(&outcomes[0]);
    let job_id = job_id.expect("a job for a new event");
    assert_eq!(
        store.event(&acme(), id).await.unwrap().unwrap().job,
        Some(job_id)
    );
    let queued = store.job(&acme(), job_id).await.unwrap().unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.tenant, acme());
    assert_eq!(queued.kind, "sync");
    assert_eq!(queued.payload, json!({ "kind": "sync" }));
    assert_eq!(queued.attempts, 0);

    let redelivered = store
        .ingest(
            &[event(Some("ado-1"), at(1), Some(job("sync", None, at(1))))],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(redelivered[0], IngestOutcome::Duplicate { id });
    assert_eq!(
        all_jobs(store, &acme()).await.len(),
        1,
        "a redelivery enqueues nothing"
    );
}

async fn a_batch_that_fails_midway_stores_nothing(fixture: Fixture) {
    let store = &*fixture.store;
    let (earlier, _) = stored(
        &store
            .ingest(&[event(Some("earlier"), at(0), None)], &|_, _| Vec::new())
            .await
            .unwrap()[0],
    );

    // A real failure inside the transaction, after other rows of the batch were written.
    fixture
        .behind_the_store(
            "acme",
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_id = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.event_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; \
             END $$; CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW \
             EXECUTE FUNCTION poison()",
        )
        .await;

    let batch = [
        event(Some("new"), at(1), Some(job("sync", Some("k"), at(1)))),
        event(Some("earlier"), at(1), None),
        event(Some("poison"), at(1), None),
    ];
    let error = store.ingest(&batch, &|_, _| Vec::new()).await.unwrap_err();
    assert!(error.to_string().contains("poisoned"), "{error}");

    let events = all_events(store, &acme()).await;
    assert_eq!(events.len(), 1, "only the earlier event: {events:?}");
    assert_eq!(events[0].id, earlier);
    assert_eq!(
        events[0].deliveries, 1,
        "the redelivery was rolled back too"
    );
    assert!(all_jobs(store, &acme()).await.is_empty());

    fixture
        .behind_the_store(
            "acme",
            "DROP TRIGGER poison",
            "DROP TRIGGER poison ON events",
        )
        .await;
    let outcomes = store.ingest(&batch, &|_, _| Vec::new()).await.unwrap();
    assert!(matches!(
        outcomes[0],
        IngestOutcome::Stored { job: Some(_), .. }
    ));
    assert_eq!(outcomes[1], IngestOutcome::Duplicate { id: earlier });
    assert!(matches!(outcomes[2], IngestOutcome::Stored { .. }));
}

async fn an_invalid_job_refuses_the_whole_batch(fixture: Fixture) {
    let store = &*fixture.store;
    let mut endless = job("sync", None, at(0));
    endless.max_attempts = 0;
    let error = store
        .ingest(
            &[
                event(Some("fine"), at(0), Some(job("sync", None, at(0)))),
                event(Some("bad"), at(0), Some(endless.clone())),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error}");
    assert!(all_events(store, &acme()).await.is_empty());
    let mut nameless = job("", None, at(0));
    nameless.max_attempts = 1;
    for bad in [endless, nameless] {
        let error = store.enqueue(&acme(), &bad, &[]).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput(_)), "{error}");
    }
    assert!(all_jobs(store, &acme()).await.is_empty());
}

async fn dedupe_keys_coalesce_only_while_the_job_is_queued(fixture: Fixture) {
    let store = &*fixture.store;
    let mut first = job("resync", Some("project-a"), at(60));
    first.payload = json!({ "first": true });
    let queued = store.enqueue(&acme(), &first, &[]).await.unwrap();

    // Coalesces, and the earlier run_after wins.
    let sooner = job("resync", Some("project-a"), at(30));
    assert_eq!(store.enqueue(&acme(), &sooner, &[]).await.unwrap(), queued);
    let later = job("resync", Some("project-a"), at(90));
    assert_eq!(store.enqueue(&acme(), &later, &[]).await.unwrap(), queued);
    let coalesced = store.job(&acme(), queued).await.unwrap().unwrap();
    assert_eq!(coalesced.run_after, at(30));
    assert_eq!(
        coalesced.payload,
        json!({ "first": true }),
        "the queued job keeps its payload"
    );

    // Another key, kind or tenant is another job; so is no key at all.
    for (tenant, new) in [
        (acme(), job("resync", Some("project-b"), at(0))),
        (acme(), job("scan", Some("project-a"), at(0))),
        (globex(), job("resync", Some("project-a"), at(0))),
        (acme(), job("resync", None, at(0))),
        (acme(), job("resync", None, at(0))),
    ] {
        assert_ne!(store.enqueue(&tenant, &new, &[]).await.unwrap(), queued);
    }

    // Once claimed, the key no longer coalesces: the change may have come after the read.
    let claimed = store.claim("w1", 10, LEASE, at(30)).await.unwrap();
    assert!(claimed.iter().any(|job| job.id == queued));
    let fresh = store
        .enqueue(&acme(), &job("resync", Some("project-a"), at(40)), &[])
        .await
        .unwrap();
    assert_ne!(fresh, queued);
    assert_eq!(
        store
            .enqueue(&acme(), &job("resync", Some("project-a"), at(50)), &[])
            .await
            .unwrap(),
        fresh
    );
}

async fn events_coalesced_into_one_job_are_marked_together(fixture: Fixture) {
    let store = &*fixture.store;
    let outcomes = store
        .ingest(
            &[
                event(Some("a"), at(0), Some(job("resync", Some("p"), at(10)))),
                event(Some("b"), at(1), Some(job("resync", Some("p"), at(11)))),
                event(Some("c"), at(2), Some(job("resync", Some("q"), at(12)))),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    let jobs: Vec<JobId> = outcomes
        .iter()
        .map(|outcome| stored(outcome).1.unwrap())
        .collect();
    assert_eq!(jobs[0], jobs[1]);
    assert_ne!(jobs[0], jobs[2]);

    let marked = store
        .mark_job_events(&acme(), jobs[0], EventStatus::Processed, None, at(20))
        .await
        .unwrap();
    assert_eq!(marked, 2);
    let events = all_events(store, &acme()).await;
    assert_eq!(events[0].status, EventStatus::Processed);
    assert_eq!(events[0].processed_at, Some(at(20)));
    assert_eq!(events[1].status, EventStatus::Processed);
    assert_eq!(events[2].status, EventStatus::Received);
    assert_eq!(
        store
            .mark_job_events(&globex(), jobs[2], EventStatus::Failed, Some("x"), at(20))
            .await
            .unwrap(),
        0,
        "another tenant's job marks nothing"
    );
}

async fn concurrent_claimers_never_get_the_same_job(fixture: Fixture) {
    let store = &*fixture.store;
    let batch: Vec<NewEvent> = (0..200)
        .map(|n| {
            event(
                Some(&format!("ado-{n}")),
                at(0),
                Some(job("sync", None, at(n % 7))),
            )
        })
        .collect();
    store.ingest(&batch, &|_, _| Vec::new()).await.unwrap();

    let store = fixture.store.clone();
    let claimers: Vec<_> = (0..8)
        .map(|worker| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let name = format!("worker-{worker}");
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim(&name, 3, LEASE, at(10)).await.unwrap();
                    if claimed.is_empty() {
                        // SKIP LOCKED may pass over rows another claimer holds and then
                        // releases; like a worker's next poll, try again while any is queued.
                        if store.queue_stats(at(10)).await.unwrap().queued == 0 {
                            break;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    for job in claimed {
                        assert_eq!(job.status, JobStatus::Running);
                        assert_eq!(job.lease_owner.as_deref(), Some(name.as_str()));
                        assert_eq!(job.lease_until, Some(at(70)));
                        assert_eq!(job.attempts, 1);
                        mine.push(job.id);
                    }
                }
                mine
            })
        })
        .collect();
    let mut claims: HashMap<JobId, usize> = HashMap::new();
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            *claims.entry(id).or_default() += 1;
        }
    }
    assert_eq!(claims.len(), 200, "every job was claimed");
    assert!(
        claims.values().all(|count| *count == 1),
        "a job was claimed twice: {:?}",
        claims
            .iter()
            .filter(|(_, count)| **count > 1)
            .collect::<Vec<_>>()
    );
}

async fn claims_take_due_jobs_oldest_first(fixture: Fixture) {
    let store = &*fixture.store;
    let late = store
        .enqueue(&acme(), &job("b", None, at(20)), &[])
        .await
        .unwrap();
    let early = store
        .enqueue(&globex(), &job("a", None, at(10)), &[])
        .await
        .unwrap();
    let future = store
        .enqueue(&acme(), &job("c", None, at(100)), &[])
        .await
        .unwrap();
    assert!(store.claim("w", 0, LEASE, at(50)).await.unwrap().is_empty());
    let claimed: Vec<JobId> = store
        .claim("w", 10, LEASE, at(50))
        .await
        .unwrap()
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(
        claimed,
        vec![early, late],
        "due jobs of every tenant, oldest first"
    );
    let next = store.claim("w", 10, LEASE, at(100)).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, future);
}

async fn a_run_after_within_the_second_is_respected(fixture: Fixture) {
    // Catches times stored as text that does not sort like the times: "…:00.5Z" < "…:00Z".
    let store = &*fixture.store;
    let half_past = at(0) + Duration::milliseconds(500);
    let id = store
        .enqueue(&acme(), &job("sync", None, half_past), &[])
        .await
        .unwrap();
    assert!(store.claim("w", 1, LEASE, at(0)).await.unwrap().is_empty());
    assert!(
        store
            .claim("w", 1, LEASE, half_past - Duration::microseconds(1))
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim("w", 1, LEASE, half_past).await.unwrap();
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].run_after, half_past);
}

async fn an_expired_lease_is_claimed_again_and_the_old_worker_loses_it(fixture: Fixture) {
    let store = &*fixture.store;
    let id = store
        .enqueue(&acme(), &job("sync", None, at(0)), &[])
        .await
        .unwrap();
    assert_eq!(store.claim("w1", 1, LEASE, at(0)).await.unwrap()[0].id, id);
    assert!(
        store
            .claim("w2", 1, LEASE, at(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.extend_lease(id, "w1", at(90)).await.unwrap());
    assert!(
        !store.extend_lease(id, "w2", at(900)).await.unwrap(),
        "only the holder extends"
    );
    assert!(
        store
            .claim("w2", 1, LEASE, at(70))
            .await
            .unwrap()
            .is_empty(),
        "the extended lease holds"
    );

    let reclaimed = store.claim("w2", 1, LEASE, at(90)).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, id);
    assert_eq!(reclaimed[0].attempts, 2);
    assert_eq!(reclaimed[0].lease_owner.as_deref(), Some("w2"));

    assert!(!store.complete(id, "w1", at(95)).await.unwrap());
    assert!(!store.extend_lease(id, "w1", at(200)).await.unwrap());
    assert_eq!(
        store
            .fail(id, "w1", "late", Retry::At(at(100)), at(95), &[])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.job(&acme(), id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    assert!(store.complete(id, "w2", at(96)).await.unwrap());
    let done = store.job(&acme(), id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.lease_owner, None);
    assert_eq!(done.updated_at, at(96));
    assert!(
        !store.complete(id, "w2", at(97)).await.unwrap(),
        "done is done"
    );
}

async fn a_job_whose_worker_keeps_dying_goes_dead(fixture: Fixture) {
    let store = &*fixture.store;
    let mut fragile = job("sync", None, at(0));
    fragile.max_attempts = 2;
    let id = store.enqueue(&acme(), &fragile, &[]).await.unwrap();
    assert_eq!(store.claim("w1", 1, LEASE, at(0)).await.unwrap().len(), 1);
    assert_eq!(store.claim("w2", 1, LEASE, at(60)).await.unwrap().len(), 1);
    assert!(
        store
            .claim("w3", 1, LEASE, at(120))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = store.job(&acme(), id).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.attempts, 2);
    let error = dead.last_error.unwrap();
    assert!(error.contains("w2") && error.contains("expired"), "{error}");
}

async fn failed_attempts_back_off_then_the_job_dies_and_can_be_retried(fixture: Fixture) {
    let store = &*fixture.store;
    let mut flaky = job("sync", None, at(0));
    flaky.max_attempts = 2;
    let id = store.enqueue(&acme(), &flaky, &[]).await.unwrap();

    assert_eq!(store.claim("w", 1, LEASE, at(0)).await.unwrap().len(), 1);
    assert_eq!(
        store
            .fail(id, "w", "ADO said 503", Retry::At(at(10)), at(1), &[])
            .await
            .unwrap(),
        Some(JobStatus::Queued)
    );
    let waiting = store.job(&acme(), id).await.unwrap().unwrap();
    assert_eq!(waiting.run_after, at(10));
    assert_eq!(waiting.last_error.as_deref(), Some("ADO said 503"));
    assert_eq!(waiting.lease_owner, None);
    assert!(
        store.claim("w", 1, LEASE, at(9)).await.unwrap().is_empty(),
        "the backoff holds"
    );

    let second = store.claim("w", 1, LEASE, at(10)).await.unwrap();
    assert_eq!(second[0].attempts, 2);
    assert_eq!(
        store
            .fail(
                id,
                "w",
                "ADO said 503 again",
                Retry::At(at(20)),
                at(11),
                &[]
            )
            .await
            .unwrap(),
        Some(JobStatus::Dead),
        "out of attempts"
    );
    assert!(
        store
            .claim("w", 1, LEASE, at(500))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        !store.retry_job(&globex(), id, at(600), &[]).await.unwrap(),
        "not another tenant's to retry"
    );
    assert!(store.retry_job(&acme(), id, at(600), &[]).await.unwrap());
    let retried = store.job(&acme(), id).await.unwrap().unwrap();
    assert_eq!(retried.status, JobStatus::Queued);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.run_after, at(600));
    assert!(
        !store.retry_job(&acme(), id, at(600), &[]).await.unwrap(),
        "only dead jobs are retried"
    );
    assert_eq!(store.claim("w", 1, LEASE, at(600)).await.unwrap()[0].id, id);

    // Never: dead at once, whatever attempts remain.
    let hopeless = store
        .enqueue(&acme(), &job("sync", None, at(0)), &[])
        .await
        .unwrap();
    store.claim("w", 10, LEASE, at(700)).await.unwrap();
    assert_eq!(
        store
            .fail(hopeless, "w", "bad payload", Retry::Never, at(701), &[])
            .await
            .unwrap(),
        Some(JobStatus::Dead)
    );
}

async fn replay_enqueues_again_by_ids_and_by_time_range(fixture: Fixture) {
    let store = &*fixture.store;
    let malformed = NewEvent {
        status: EventStatus::Malformed,
        error: Some("not JSON".to_owned()),
        event_type: None,
        ..event(None, at(10), None)
    };
    let unknown = NewEvent {
        status: EventStatus::Unknown,
        event_type: Some("ms.vss-pipelines.stage-state-changed-event".to_owned()),
        ..event(Some("u"), at(20), None)
    };
    let outcomes = store
        .ingest(
            &[
                event(Some("p"), at(0), Some(job("sync", None, at(0)))),
                malformed,
                unknown,
                event(Some("f"), at(30), Some(job("sync", None, at(30)))),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    let ids: Vec<EventId> = outcomes.iter().map(IngestOutcome::event).collect();
    let first_job = stored(&outcomes[0]).1.unwrap();
    store
        .mark_event(&acme(), ids[0], EventStatus::Processed, None, at(40))
        .await
        .unwrap();
    store
        .mark_event(&acme(), ids[3], EventStatus::Failed, Some("boom"), at(41))
        .await
        .unwrap();

    let job_for = |event: &StoredEvent| {
        (event.event_type.as_deref() == Some("git.push")).then(|| NewJob {
            payload: json!({ "event": event.id }),
            ..job("replay", None, at(50))
        })
    };
    let by_ids = store
        .replay(
            &acme(),
            &ReplaySelection::Ids(vec![ids[0], ids[1], ids[0], EventId(9999)]),
            &job_for,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        by_ids,
        ReplayOutcome {
            enqueued: 1,
            skipped: 1,
            not_found: 1
        }
    );
    let replayed = store.event(&acme(), ids[0]).await.unwrap().unwrap();
    assert_eq!(replayed.status, EventStatus::Received);
    assert_eq!(replayed.processed_at, None);
    let replay_job = replayed.job.unwrap();
    assert_ne!(replay_job, first_job);
    let replay_job = store.job(&acme(), replay_job).await.unwrap().unwrap();
    assert_eq!(replay_job.kind, "replay");
    assert_eq!(replay_job.payload, json!({ "event": ids[0].0 }));
    assert_eq!(
        store.event(&acme(), ids[1]).await.unwrap().unwrap().status,
        EventStatus::Malformed,
        "a malformed event stays as it was"
    );

    // [10, 30): the malformed and the unknown event, neither given a job.
    let middle = store
        .replay(
            &acme(),
            &ReplaySelection::Received {
                since: at(10),
                until: at(30),
            },
            &job_for,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        middle,
        ReplayOutcome {
            enqueued: 0,
            skipped: 2,
            not_found: 0
        }
    );
    assert_eq!(
        store.event(&acme(), ids[2]).await.unwrap().unwrap().status,
        EventStatus::Unknown
    );

    let everything = store
        .replay(
            &acme(),
            &ReplaySelection::Received {
                since: at(0),
                until: at(31),
            },
            &job_for,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(everything.enqueued, 2);
    assert_eq!(everything.skipped, 2);
    let failed_before = store.event(&acme(), ids[3]).await.unwrap().unwrap();
    assert_eq!(failed_before.status, EventStatus::Received);
    assert_eq!(failed_before.error, None);

    let elsewhere = store
        .replay(
            &globex(),
            &ReplaySelection::Ids(vec![ids[0]]),
            &job_for,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        elsewhere,
        ReplayOutcome {
            enqueued: 0,
            skipped: 0,
            not_found: 1
        },
        "another tenant's events are not found"
    );
}

async fn marking_names_an_existing_event_and_an_outcome(fixture: Fixture) {
    let store = &*fixture.store;
    let (id, _) = stored(
        &store
            .ingest(&[event(Some("a"), at(0), None)], &|_, _| Vec::new())
            .await
            .unwrap()[0],
    );
    let error = store
        .mark_event(&globex(), id, EventStatus::Processed, None, at(1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::UnknownEvent(unknown) if unknown == id),
        "{error}"
    );
    let error = store
        .mark_event(&acme(), id, EventStatus::Received, None, at(1))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error}");
    store
        .mark_event(&acme(), id, EventStatus::Failed, Some("ADO 404"), at(2))
        .await
        .unwrap();
    let failed = store.event(&acme(), id).await.unwrap().unwrap();
    assert_eq!(failed.status, EventStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("ADO 404"));
    assert_eq!(failed.processed_at, Some(at(2)));
}

async fn pruning_events_keeps_the_newer_ones_and_their_dedupe_memory(fixture: Fixture) {
    let store = &*fixture.store;
    let old = datetime!(2026-05-01 0:00 UTC);
    let mut other = event(Some("other-old"), old, None);
    other.tenant = globex();
    store
        .ingest(
            &[
                event(Some("old"), old, None),
                other,
                event(Some("new"), at(0), None),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(store.prune_events(at(0)).await.unwrap(), 2);
    let left = all_events(store, &acme()).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_id.as_deref(), Some("new"));
    assert!(all_events(store, &globex()).await.is_empty());
    assert!(matches!(
        store
            .ingest(&[event(Some("new"), at(1), None)], &|_, _| Vec::new())
            .await
            .unwrap()[0],
        IngestOutcome::Duplicate { .. }
    ));
}

async fn events_filter_and_page_by_id(fixture: Fixture) {
    let store = &*fixture.store;
    let batch: Vec<NewEvent> = (0..7)
        .map(|n| NewEvent {
            event_type: Some(
                if n % 2 == 0 {
                    "git.push"
                } else {
                    "build.complete"
                }
                .to_owned(),
            ),
            ..event(Some(&format!("e{n}")), at(n * 10), None)
        })
        .collect();
    let ids: Vec<EventId> = store
        .ingest(&batch, &|_, _| Vec::new())
        .await
        .unwrap()
        .iter()
        .map(IngestOutcome::event)
        .collect();
    let mut foreign = event(Some("e0"), at(0), None);
    foreign.tenant = globex();
    store.ingest(&[foreign], &|_, _| Vec::new()).await.unwrap();
    for id in [ids[1], ids[4]] {
        store
            .mark_event(&acme(), id, EventStatus::Processed, None, at(100))
            .await
            .unwrap();
    }
    let list = |filter: EventFilter| async move {
        store
            .events(&acme(), &filter)
            .await
            .unwrap()
            .iter()
            .map(|event| event.id)
            .collect::<Vec<_>>()
    };

    let mut pages = Vec::new();
    let mut after_id = None;
    loop {
        let page = list(EventFilter {
            after_id,
            limit: 3,
            ..EventFilter::default()
        })
        .await;
        let Some(last) = page.last() else { break };
        after_id = Some(*last);
        pages.push(page);
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages.concat(),
        ids,
        "pages cover every event once, in order"
    );

    assert_eq!(
        list(EventFilter {
            status: Some(EventStatus::Processed),
            limit: 10,
            ..EventFilter::default()
        })
        .await,
        vec![ids[1], ids[4]]
    );
    assert_eq!(
        list(EventFilter {
            event_type: Some("build.complete".to_owned()),
            limit: 10,
            ..EventFilter::default()
        })
        .await,
        vec![ids[1], ids[3], ids[5]]
    );
    assert_eq!(
        list(EventFilter {
            since: Some(at(20)),
            until: Some(at(50)),
            limit: 10,
            ..EventFilter::default()
        })
        .await,
        vec![ids[2], ids[3], ids[4]],
        "since inclusive, until exclusive"
    );
    assert_eq!(
        list(EventFilter {
            event_type: Some("git.push".to_owned()),
            status: Some(EventStatus::Received),
            since: Some(at(5)),
            after_id: Some(ids[2]),
            limit: 10,
            ..EventFilter::default()
        })
        .await,
        vec![ids[6]]
    );
}

async fn jobs_filter_and_page_by_id_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let mut ids = Vec::new();
    for n in 0..5 {
        let kind = if n % 2 == 0 { "sync" } else { "scan" };
        ids.push(
            store
                .enqueue(&acme(), &job(kind, None, at(n)), &[])
                .await
                .unwrap(),
        );
    }
    store
        .enqueue(&globex(), &job("sync", None, at(0)), &[])
        .await
        .unwrap();
    store.claim("w", 1, LEASE, at(0)).await.unwrap();
    let list = |filter: JobFilter| async move {
        store
            .jobs(&acme(), &filter)
            .await
            .unwrap()
            .iter()
            .map(|job| job.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(JobFilter {
            limit: 2,
            ..JobFilter::default()
        })
        .await,
        ids[..2]
    );
    assert_eq!(
        list(JobFilter {
            after_id: Some(ids[1]),
            limit: 10,
            ..JobFilter::default()
        })
        .await,
        ids[2..]
    );
    assert_eq!(
        list(JobFilter {
            kind: Some("sync".to_owned()),
            status: Some(JobStatus::Queued),
            limit: 10,
            ..JobFilter::default()
        })
        .await,
        vec![ids[2], ids[4]],
        "the first sync job is running"
    );
    assert!(
        store.job(&globex(), ids[0]).await.unwrap().is_none(),
        "a tenant sees only its own jobs"
    );
    assert_eq!(all_jobs(store, &globex()).await.len(), 1);
}

async fn queue_stats_count_every_status_and_the_lag(fixture: Fixture) {
    let store = &*fixture.store;
    assert_eq!(
        store.queue_stats(at(0)).await.unwrap(),
        QueueStats::default()
    );
    let mut once = job("sync", None, at(0));
    once.max_attempts = 1;
    let doomed = store.enqueue(&acme(), &once, &[]).await.unwrap();
    let finished = store
        .enqueue(&acme(), &job("sync", None, at(1)), &[])
        .await
        .unwrap();
    store
        .enqueue(&globex(), &job("sync", None, at(2)), &[])
        .await
        .unwrap();
    store.claim("w", 3, LEASE, at(2)).await.unwrap();
    store
        .fail(doomed, "w", "bad", Retry::At(at(3)), at(3), &[])
        .await
        .unwrap();
    store.complete(finished, "w", at(3)).await.unwrap();
    for (tenant, run_after) in [(acme(), at(5)), (globex(), at(7)), (acme(), at(100))] {
        store
            .enqueue(&tenant, &job("scan", None, run_after), &[])
            .await
            .unwrap();
    }
    assert_eq!(
        store.queue_stats(at(10)).await.unwrap(),
        QueueStats {
            queued: 3,
            due: 2,
            running: 1,
            dead: 1,
            done: 1,
            oldest_queued_at: Some(at(5)),
        }
    );
}

async fn pruning_jobs_deletes_old_done_jobs_only(fixture: Fixture) {
    let store = &*fixture.store;
    let mut once = job("sync", None, at(0));
    once.max_attempts = 1;
    let old_done = store.enqueue(&acme(), &once, &[]).await.unwrap();
    let dead = store.enqueue(&acme(), &once, &[]).await.unwrap();
    let new_done = store.enqueue(&acme(), &once, &[]).await.unwrap();
    let queued = store
        .enqueue(&acme(), &job("sync", None, at(1000)), &[])
        .await
        .unwrap();
    store.claim("w", 10, LEASE, at(0)).await.unwrap();
    store.complete(old_done, "w", at(10)).await.unwrap();
    store
        .fail(dead, "w", "bad", Retry::Never, at(10), &[])
        .await
        .unwrap();
    store.complete(new_done, "w", at(30)).await.unwrap();
    assert_eq!(store.prune_jobs(at(20)).await.unwrap(), 1);
    let left: Vec<JobId> = all_jobs(store, &acme())
        .await
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(left, vec![dead, new_done, queued]);
}

#[tokio::test]
async fn ingestion_commits_with_synchronous_full_while_the_rest_uses_normal() {
    let SqliteFixture { _dir, store, path } = sqlite().await;
    assert_eq!(
        store.synchronous_levels().await.unwrap(),
        SynchronousLevels {
            general: 1,
            durable: 2
        }
    );
    let (id, _) = stored(
        &store
            .ingest(&[event(Some("a"), at(0), None)], &|_, _| Vec::new())
            .await
            .unwrap()[0],
    );
    drop(store);
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert!(reopened.event(&acme(), id).await.unwrap().is_some());
}

#[test]
fn ids_and_outcomes_serialise_as_the_api_shows_them() {
    assert_eq!(serde_json::to_value(EventId(7)).unwrap(), json!(7));
    assert_eq!(JobId(8).to_string(), "8");
    assert_eq!(
        serde_json::to_value(IngestOutcome::Stored {
            id: EventId(7),
            job: Some(JobId(8))
        })
        .unwrap(),
        json!({ "outcome": "stored", "id": 7, "job": 8 })
    );
    assert_eq!(
        serde_json::to_value(EventStatus::Malformed).unwrap(),
        json!("malformed")
    );
    for status in EventStatus::ALL {
        assert_eq!(EventStatus::parse(status.as_str()), Some(status));
    }
    for status in JobStatus::ALL {
        assert_eq!(JobStatus::parse(status.as_str()), Some(status));
    }
}

async fn a_batch_joins_one_coalesced_job_per_tenant_and_key(fixture: Fixture) {
    let store = &*fixture.store;
    let mut other_tenant = event(Some("g"), at(3), Some(job("resync", Some("p"), at(13))));
    other_tenant.tenant = globex();
    let outcomes = store
        .ingest(
            &[
                event(Some("a"), at(0), Some(job("resync", Some("p"), at(10)))),
                // Asks earlier than the job the batch opened: the job runs no later than this.
                event(Some("b"), at(1), Some(job("resync", Some("p"), at(5)))),
                other_tenant,
                event(Some("c"), at(2), Some(job("resync", Some("p"), at(12)))),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    let jobs: Vec<JobId> = outcomes
        .iter()
        .map(|outcome| stored(outcome).1.unwrap())
        .collect();
    assert_eq!(jobs[0], jobs[1]);
    assert_eq!(jobs[0], jobs[3]);
    assert_ne!(jobs[0], jobs[2], "tenants never share a job");
    let acme_jobs = all_jobs(store, &acme()).await;
    assert_eq!(acme_jobs.len(), 1);
    assert_eq!(acme_jobs[0].run_after, at(5));
    assert_eq!(all_jobs(store, &globex()).await.len(), 1);

    // A later batch joins the job while it is still queued.
    let later = store
        .ingest(
            &[event(
                Some("d"),
                at(20),
                Some(job("resync", Some("p"), at(30))),
            )],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(stored(&later[0]).1, Some(jobs[0]));
    assert_eq!(
        store
            .mark_job_events(&acme(), jobs[0], EventStatus::Processed, None, at(40))
            .await
            .unwrap(),
        4
    );
}

async fn a_batch_of_redeliveries_leaves_no_job_behind(fixture: Fixture) {
    let store = &*fixture.store;
    let first = store
        .ingest(
            &[event(Some("a"), at(0), Some(job("once", None, at(0))))],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    let (_, job_id) = stored(&first[0]);
    store
        .claim("w", 10, LEASE, at(1))
        .await
        .unwrap()
        .into_iter()
        .find(|claimed| Some(claimed.id) == job_id)
        .expect("the first job is claimed");

    // The first job is running, so nothing queued can be joined: the batch opens new jobs,
    // and must drop them, because every event in it is a redelivery.
    let again = store
        .ingest(
            &[
                event(Some("a"), at(2), Some(job("once", None, at(2)))),
                event(Some("a"), at(3), Some(job("keyed", Some("k"), at(3)))),
            ],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .all(|outcome| matches!(outcome, IngestOutcome::Duplicate { .. }))
    );
    let jobs = all_jobs(store, &acme()).await;
    assert_eq!(jobs.len(), 1, "only the first job exists: {jobs:?}");
    assert_eq!(Some(jobs[0].id), job_id);
}

/// A database written before event bodies had their own table keeps every body byte for byte.
#[tokio::test]
async fn upgrading_moves_the_bodies_of_stored_events_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         applied_at TEXT NOT NULL)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    for (version, sql) in [
        (1, include_str!("../migrations/sqlite/0001_inventory.sql")),
        (2, include_str!("../migrations/sqlite/0002_findings.sql")),
        (3, include_str!("../migrations/sqlite/0003_changes.sql")),
        (4, include_str!("../migrations/sqlite/0004_events.sql")),
        (5, include_str!("../migrations/sqlite/0005_api_keys.sql")),
    ] {
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations VALUES (?, 'old', '2026-01-01T00:00:00Z')")
            .bind(version)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let body = b"{\"id\":\"old-1\",\"odd bytes\":\"\xff\xfe\"}".to_vec();
    sqlx::query(
        "INSERT INTO events (tenant_id, event_id, event_type, status, body, received_at) \
         VALUES ('acme', 'old-1', 'git.push', 'processed', ?, '2026-05-04T12:00:00.000000Z')",
    )
    .bind(&body)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();

    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    store.ready().await.unwrap();
    let events = all_events(&store, &acme()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].body, body);
    assert_eq!(events[0].status, EventStatus::Processed);
    // And the upgraded table takes new events as before.
    let new = event(Some("new-1"), at(0), None);
    let outcomes = store
        .ingest(std::slice::from_ref(&new), &|_, _| Vec::new())
        .await
        .unwrap();
    let (id, _) = stored(&outcomes[0]);
    assert_eq!(
        store.event(&acme(), id).await.unwrap().unwrap().body,
        new.body
    );
}

async fn a_scheduled_turn_is_taken_once_per_period_across_replicas(fixture: Fixture) {
    const EVERY: StdDuration = StdDuration::from_secs(60);
    let claim_together = |now: OffsetDateTime| {
        let store = fixture.store.clone();
        async move {
            let claimers: Vec<_> = (0..8)
                .map(|_| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        store
                            .claim_schedule(&acme(), "tenant.full_sync", now, EVERY)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut taken = 0;
            for claimer in claimers {
                taken += usize::from(claimer.await.unwrap());
            }
            taken
        }
    };
    assert_eq!(
        claim_together(at(0)).await,
        1,
        "one replica takes the first turn"
    );
    assert_eq!(claim_together(at(30)).await, 0, "nobody within the period");
    assert_eq!(
        claim_together(at(58)).await,
        0,
        "nor two seconds before its end"
    );
    assert_eq!(
        claim_together(at(59)).await,
        1,
        "a timer a second early still gets the next turn"
    );
    assert_eq!(
        claim_together(at(130)).await,
        1,
        "a missed period does not pile up"
    );

    let store = &*fixture.store;
    let other = globex();
    assert!(
        store
            .claim_schedule(&other, "tenant.full_sync", at(130), EVERY)
            .await
            .unwrap(),
        "tenants have their own turns"
    );
    assert!(
        store
            .claim_schedule(&acme(), "tenant.refresh", at(130), EVERY)
            .await
            .unwrap(),
        "and so has each kind"
    );
    assert!(
        !store
            .claim_schedule(&acme(), "tenant.full_sync", at(131), EVERY)
            .await
            .unwrap()
    );
}

async fn a_lease_has_one_holder_until_it_expires(fixture: Fixture) {
    const LEASE_FOR: StdDuration = StdDuration::from_secs(30);
    let store = fixture.store.clone();
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let holder = format!("replica-{n}");
                store
                    .claim_lease(&acme(), "export:archive", &holder, at(0), LEASE_FOR)
                    .await
                    .unwrap()
                    .then_some(holder)
            })
        })
        .collect();
    let mut holders = Vec::new();
    for claimer in claimers {
        holders.extend(claimer.await.unwrap());
    }
    assert_eq!(holders.len(), 1, "one holder: {holders:?}");
    let holder = holders[0].clone();
    let other = if holder == "replica-0" {
        "replica-1"
    } else {
        "replica-0"
    };
    let store = &*fixture.store;
    assert!(
        !store
            .claim_lease(&acme(), "export:archive", other, at(29), LEASE_FOR)
            .await
            .unwrap(),
        "not while it runs"
    );
    assert!(
        store
            .claim_lease(&acme(), "export:archive", &holder, at(29), LEASE_FOR)
            .await
            .unwrap(),
        "the holder renews it"
    );
    assert!(
        !store
            .claim_lease(&acme(), "export:archive", other, at(58), LEASE_FOR)
            .await
            .unwrap(),
        "renewed until 59"
    );
    assert!(
        store
            .claim_lease(&acme(), "export:archive", other, at(59), LEASE_FOR)
            .await
            .unwrap(),
        "an expired lease goes to whoever asks"
    );
    assert!(
        store
            .claim_lease(&globex(), "export:archive", &holder, at(59), LEASE_FOR)
            .await
            .unwrap(),
        "each tenant has its own"
    );
}

on_both_backends!(
    redelivered_events_are_stored_once_and_counted,
    stored_events_keep_every_field_and_the_exact_body,
    a_job_is_enqueued_with_a_new_event_only,
    a_batch_that_fails_midway_stores_nothing,
    an_invalid_job_refuses_the_whole_batch,
    dedupe_keys_coalesce_only_while_the_job_is_queued,
    events_coalesced_into_one_job_are_marked_together,
    concurrent_claimers_never_get_the_same_job,
    claims_take_due_jobs_oldest_first,
    a_run_after_within_the_second_is_respected,
    an_expired_lease_is_claimed_again_and_the_old_worker_loses_it,
    a_job_whose_worker_keeps_dying_goes_dead,
    failed_attempts_back_off_then_the_job_dies_and_can_be_retried,
    replay_enqueues_again_by_ids_and_by_time_range,
    marking_names_an_existing_event_and_an_outcome,
    pruning_events_keeps_the_newer_ones_and_their_dedupe_memory,
    events_filter_and_page_by_id,
    jobs_filter_and_page_by_id_per_tenant,
    queue_stats_count_every_status_and_the_lag,
    pruning_jobs_deletes_old_done_jobs_only,
    a_batch_joins_one_coalesced_job_per_tenant_and_key,
    a_batch_of_redeliveries_leaves_no_job_behind,
    a_scheduled_turn_is_taken_once_per_period_across_replicas,
    a_lease_has_one_holder_until_it_expires,
);
