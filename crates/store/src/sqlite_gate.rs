//! Gate decisions and approvals on SQLite. Every write runs in a write transaction (the
//! database's one writer lock), which is also what serialises changes to one approval.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::gate::{
    Approval, ApprovalAudit, ApprovalChange, ApprovalNotices, ApprovalOutcome, ApprovalState,
    CallbackJob, CallbackState, CheckDecision, DecisionFilter, DecisionWrite, GateDecision,
    GateStore, SOURCE_ADO_CHECK, Stored, created_audit, document, parse, run_column,
    verdict_column,
};
use crate::sqlite::SqliteStore;
use crate::sqlite_audit::{LOG_TIP, LogTip};
use crate::sqlite_pack::{StoredText, pack_text, unpack};
use crate::sqlite_queue::{BEGIN_WRITE, PreparedJob, enqueue_in, parse_stamp, stamp};
use crate::{AuditDraft, NewJob, StoreError};

async fn enqueue(
    connection: &mut SqliteConnection,
    tenant: &TenantId,
    job: &NewJob,
) -> Result<(), StoreError> {
    let prepared = PreparedJob::new(job)?;
    let now = stamp(OffsetDateTime::now_utc())?;
    enqueue_in(connection, tenant, &prepared, &now).await?;
    Ok(())
}

async fn decision_where(
    connection: &mut SqliteConnection,
    tenant: &TenantId,
    column: &'static str,
    value: &str,
) -> Result<Option<GateDecision>, StoreError> {
    let sql = format!("SELECT document FROM gate_decisions WHERE tenant_id = ? AND {column} = ?");
    let row: Option<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(value)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(stored_decision).transpose()
}

/// A decision's document in its stored form: packed when large (crate::sqlite_pack), so
/// SQL here never reads into it (`json_extract`); what queries need is in columns.
fn decision_document(decision: &GateDecision) -> Result<StoredText, StoreError> {
    Ok(pack_text(document(decision)?))
}

fn stored_decision(stored: Vec<u8>) -> Result<GateDecision, StoreError> {
    let raw = unpack(stored, "gate decision")?;
    serde_json::from_slice(&raw)
        .map_err(|error| StoreError::Corrupt(format!("gate decision: {error}")))
}

async fn write_decision(
    connection: &mut SqliteConnection,
    decision: &GateDecision,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gate_decisions SET callback_state = ?, approval_id = ?, document = ? WHERE id = ?",
    )
    .bind(decision.callback_state.map(CallbackState::as_str))
    .bind(&decision.approval_id)
    .bind(decision_document(decision)?)
    .bind(&decision.id)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Decisions per INSERT statement (12 values each, far below SQLite's 32,766 variables).
const DECISIONS_PER_INSERT: usize = 256;

/// Open the batch's write transaction and insert its decisions, each with its approval and
/// callback job, unless its key is stored or came earlier in the batch (then the stored
/// decision is returned). Returns what happened to each and where the audit log ends.
///
/// Every statement is a round trip to the connection's thread, and the gate's writer runs one
/// batch at a time: so the first statement carries the transaction's `BEGIN` and the read of
/// the audit log's tip, and each insert names the decisions it inserted (`RETURNING`).
async fn open_and_insert_decisions(
    connection: &mut SqliteConnection,
    tenant: &TenantId,
    batch: &[DecisionWrite],
    documents: &[StoredText],
) -> Result<(Vec<Stored>, LogTip), StoreError> {
    let mut inserted: HashSet<String> = HashSet::with_capacity(batch.len());
    let mut tip = LogTip::default();
    let chunks = batch
        .chunks(DECISIONS_PER_INSERT)
        .zip(documents.chunks(DECISIONS_PER_INSERT));
    for (index, (chunk, documents)) in chunks.enumerate() {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let insert = format!(
            "INSERT INTO gate_decisions (id, tenant_id, decision_key, decided_at, environment, \
             verdict, approval_id, callback_state, callback_token, document, source, run_id) \
             VALUES {values} ON CONFLICT (tenant_id, decision_key) DO NOTHING RETURNING id"
        );
        let opening = index == 0;
        let sql = if opening {
            format!("{BEGIN_WRITE}; {LOG_TIP}; {insert}")
        } else {
            insert
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if opening {
            query = query.bind(tenant.as_str());
        }
        for (write, document) in chunk.iter().zip(documents) {
            let decision = &write.new.decision;
            query = query
                .bind(&decision.id)
                .bind(tenant.as_str())
                .bind(&decision.key)
                .bind(stamp(decision.decided_at)?)
                .bind(&decision.environment)
                .bind(decision.verdict.as_str())
                .bind(&decision.approval_id)
                .bind(decision.callback_state.map(CallbackState::as_str))
                .bind(&write.new.callback_token)
                .bind(document)
                .bind(&decision.source)
                .bind(decision.run_id.map(run_column).transpose()?);
        }
        for row in query.fetch_all(&mut *connection).await? {
            // Two shapes of row come back: the id of each decision inserted, and the log's
            // last leaf (seq, logged; none for an empty log).
            if row.try_column("id").is_ok() {
                inserted.insert(row.try_get("id")?);
            } else {
                tip = LogTip::from_row(&row)?;
            }
        }
    }
    let mut recorded = Vec::with_capacity(batch.len());
    for write in batch {
        let new = &write.new;
        let decision = &new.decision;
        if !inserted.contains(&decision.id) {
            let existing = decision_where(connection, tenant, "decision_key", &decision.key)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("gate decision {} vanished", decision.key))
                })?;
            recorded.push(Stored::Existing(Box::new(existing)));
            continue;
        }
        if let Some(approval) = &new.approval {
            sqlx::query(
                "INSERT INTO approvals (id, tenant_id, decision_id, state, created_at, expires_at, document) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&approval.id)
            .bind(tenant.as_str())
            .bind(&decision.id)
            .bind(approval.state.as_str())
            .bind(stamp(approval.created_at)?)
            .bind(stamp(approval.expires_at)?)
            .bind(document(approval)?)
            .execute(&mut *connection)
            .await?;
        }
        for job in new.callback_job.iter().chain(&new.notices) {
            enqueue(connection, tenant, job).await?;
        }
        recorded.push(Stored::Created);
    }
    Ok((recorded, tip))
}

/// A write transaction begun and committed by our own statements, sent together with the
/// statements beside them, rather than by sqlx's `begin` and `commit` (a round trip each).
/// sqlx does not know this transaction is open, so the guard ends it: rolled back after an
/// error, and when even that fails, or the write is dropped half way, the connection is
/// closed rather than returned to the pool inside a transaction (closing rolls it back).
struct OpenWrite {
    connection: PoolConnection<Sqlite>,
    in_transaction: bool,
}

impl OpenWrite {
    fn new(connection: PoolConnection<Sqlite>) -> Self {
        Self {
            connection,
            in_transaction: true,
        }
    }

    /// The last statement committed the transaction.
    fn committed(&mut self) {
        self.in_transaction = false;
    }

    async fn roll_back(&mut self) {
        match sqlx::raw_sql("ROLLBACK")
            .execute(&mut *self.connection)
            .await
        {
            Ok(_) => self.in_transaction = false,
            // The transaction never began (its BEGIN waited out the busy timeout, or the
            // statement failed before it) or SQLite ended it already (a failed COMMIT): the
            // connection is as good as new. SQLite's own words are the only sign of that.
            Err(error) if error.to_string().contains("no transaction is active") => {
                self.in_transaction = false;
            }
            Err(error) => {
                tracing::warn!(%error, "rolling back a gate write failed; closing its connection");
            }
        }
    }
}

impl Drop for OpenWrite {
    fn drop(&mut self) {
        if self.in_transaction {
            self.connection.close_on_drop();
        }
    }
}

#[async_trait]
impl GateStore for SqliteStore {
    async fn record_decisions(
        &self,
        tenant: &TenantId,
        batch: &[DecisionWrite],
    ) -> Result<Vec<Stored>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Encoded and packed before the write lock is taken: it is the database's one writer
        // lock, and other writers (job claims, syncs) wait for it.
        let documents = batch
            .iter()
            .map(|write| decision_document(&write.new.decision))
            .collect::<Result<Vec<_>, _>>()?;
        let mut write = OpenWrite::new(self.durable_pool().acquire().await?);
        let written = async {
            let connection = &mut *write.connection;
            let (recorded, tip) =
                open_and_insert_decisions(connection, tenant, batch, &documents).await?;
            let audit = created_audit(batch, &recorded);
            self.append_after(connection, tenant, tip, &audit, true)
                .await?;
            Ok(recorded)
        }
        .await;
        match written {
            Ok(_) => write.committed(),
            Err(_) => write.roll_back().await,
        }
        written
    }

    async fn decision(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<GateDecision>, StoreError> {
        let mut connection = self.pool().acquire().await?;
        decision_where(&mut connection, tenant, "id", id).await
    }

    async fn decision_by_key(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<GateDecision>, StoreError> {
        let mut connection = self.pool().acquire().await?;
        decision_where(&mut connection, tenant, "decision_key", key).await
    }

    async fn decisions(
        &self,
        tenant: &TenantId,
        filter: &DecisionFilter,
    ) -> Result<Vec<GateDecision>, StoreError> {
        let since = filter.since.map(stamp).transpose()?;
        let run_id = filter.run_id.and_then(|id| i64::try_from(id).ok());
        if filter.run_id.is_some() && run_id.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT document FROM gate_decisions WHERE tenant_id = ? \
             AND (? IS NULL OR environment = ?) AND (? IS NULL OR decided_at >= ?) \
             AND (? IS NULL OR run_id = ?) \
             ORDER BY decided_at DESC, id DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(&filter.environment)
        .bind(&filter.environment)
        .bind(&since)
        .bind(&since)
        .bind(run_id)
        .bind(run_id)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(stored_decision).collect()
    }

    async fn check_decisions(&self, tenant: &TenantId) -> Result<Vec<CheckDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, run_id, environment, verdict, decided_at FROM gate_decisions \
             WHERE tenant_id = ? AND source = ? ORDER BY decided_at, id",
        )
        .bind(tenant.as_str())
        .bind(SOURCE_ADO_CHECK)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let run_id: Option<i64> = row.try_get("run_id")?;
                Ok(CheckDecision {
                    decision_id: row.try_get("id")?,
                    run_id: run_id.and_then(|id| u64::try_from(id).ok()),
                    environment: row.try_get("environment")?,
                    verdict: verdict_column(&row.try_get::<String, _>("verdict")?)?,
                    decided_at: parse_stamp(&row.try_get::<String, _>("decided_at")?)?,
                })
            })
            .collect()
    }

    async fn callback_token(
        &self,
        tenant: &TenantId,
        decision_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let token: Option<Option<String>> = sqlx::query_scalar(
            "SELECT callback_token FROM gate_decisions WHERE tenant_id = ? AND id = ?",
        )
        .bind(tenant.as_str())
        .bind(decision_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(token.flatten())
    }

    async fn finish_callback(
        &self,
        tenant: &TenantId,
        decision_id: &str,
        state: CallbackState,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.durable_pool().begin_with(BEGIN_WRITE).await?;
        let Some(mut decision) =
            decision_where(&mut transaction, tenant, "id", decision_id).await?
        else {
            return Err(StoreError::InvalidInput(format!(
                "no gate decision {decision_id}"
            )));
        };
        decision.callback_state = Some(state);
        write_decision(&mut transaction, &decision).await?;
        sqlx::query("UPDATE gate_decisions SET callback_token = NULL WHERE id = ?")
            .bind(decision_id)
            .execute(&mut *transaction)
            .await?;
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn approval(&self, tenant: &TenantId, id: &str) -> Result<Option<Approval>, StoreError> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT document FROM approvals WHERE tenant_id = ? AND id = ?")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|raw| parse(&raw, "approval")).transpose()
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>, StoreError> {
        let state = state.map(ApprovalState::as_str);
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT document FROM approvals WHERE tenant_id = ? AND (? IS NULL OR state = ?) \
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(state)
        .bind(state)
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|raw| parse(raw, "approval")).collect()
    }

    async fn change_approval(
        &self,
        tenant: &TenantId,
        id: &str,
        change: &ApprovalChange,
        audit: ApprovalAudit<'_>,
        callback: CallbackJob<'_>,
        notices: ApprovalNotices<'_>,
    ) -> Result<ApprovalOutcome, StoreError> {
        let mut transaction = self.durable_pool().begin_with(BEGIN_WRITE).await?;
        let row: Option<String> =
            sqlx::query_scalar("SELECT document FROM approvals WHERE tenant_id = ? AND id = ?")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut *transaction)
                .await?;
        let Some(raw) = row else {
            return Ok(ApprovalOutcome::NotFound);
        };
        let mut approval: Approval = parse(&raw, "approval")?;
        if let Err(refusal) = approval.apply(change) {
            return Ok(ApprovalOutcome::Refused(refusal));
        }
        sqlx::query("UPDATE approvals SET state = ?, document = ? WHERE id = ?")
            .bind(approval.state.as_str())
            .bind(document(&approval)?)
            .bind(&approval.id)
            .execute(&mut *transaction)
            .await?;
        if !approval.is_open()
            && let Some(mut decision) =
                decision_where(&mut transaction, tenant, "id", &approval.decision_id).await?
            && decision.callback_state == Some(CallbackState::Waiting)
            && let Some(job) = callback(&approval, &decision)
        {
            enqueue(&mut transaction, tenant, &job).await?;
            decision.callback_state = Some(CallbackState::Queued);
            write_decision(&mut transaction, &decision).await?;
        }
        if !approval.is_open() {
            for job in notices(&approval) {
                enqueue(&mut transaction, tenant, &job).await?;
            }
        }
        self.append_audit_in(&mut transaction, tenant, &audit(&approval))
            .await?;
        transaction.commit().await?;
        Ok(ApprovalOutcome::Changed(Box::new(approval)))
    }

    async fn due_approvals(
        &self,
        tenant: &TenantId,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM approvals WHERE tenant_id = ? AND state = 'pending' AND expires_at <= ? \
             ORDER BY expires_at",
        )
        .bind(tenant.as_str())
        .bind(stamp(now)?)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("id").map_err(StoreError::from))
            .collect()
    }
}
