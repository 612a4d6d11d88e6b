//! Gate decisions and approvals on PostgreSQL: the same documents as on SQLite (JSONB), each
//! transaction scoped to its tenant; a change to an approval locks its row (FOR UPDATE), so
//! two replicas deciding the same approval at once apply their votes one after the other.
//! Documents travel as text (`::jsonb` on the way in, `::text` on the way out).

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::gate::{
    Approval, ApprovalAudit, ApprovalChange, ApprovalNotices, ApprovalOutcome, ApprovalState,
    CallbackJob, CallbackState, CheckDecision, DecisionFilter, DecisionWrite, GateDecision,
    GateStore, SOURCE_ADO_CHECK, Stored, created_audit, document, parse, run_column,
    verdict_column,
};
use crate::postgres::PostgresStore;
use crate::postgres_queue::{PreparedJob, enqueue_in};
use crate::{AuditDraft, NewJob, StoreError};

async fn enqueue(
    connection: &mut PgConnection,
    tenant: &TenantId,
    job: &NewJob,
) -> Result<(), StoreError> {
    let prepared = PreparedJob::new(job)?;
    enqueue_in(connection, tenant, &prepared, crate::postgres::now()).await?;
    Ok(())
}

async fn decision_where(
    connection: &mut PgConnection,
    column: &'static str,
    value: &str,
    lock: bool,
) -> Result<Option<GateDecision>, StoreError> {
    let sql = format!(
        "SELECT document::text FROM gate_decisions WHERE {column} = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(|raw| parse(&raw, "gate decision")).transpose()
}

async fn write_decision(
    connection: &mut PgConnection,
    decision: &GateDecision,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE gate_decisions SET callback_state = $1, approval_id = $2, document = $3::jsonb WHERE id = $4",
    )
    .bind(decision.callback_state.map(CallbackState::as_str))
    .bind(&decision.approval_id)
    .bind(document(decision)?)
    .bind(&decision.id)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Decisions per INSERT statement (12 parameters each, far below PostgreSQL's 65,535).
const DECISIONS_PER_INSERT: usize = 256;

/// Insert a batch's decisions, each with its approval and callback job, unless its key is
/// stored or came earlier in the batch (then the stored decision is returned). One statement
/// inserts the decisions and names those it inserted (a round trip per statement; the gate's
/// writer runs one batch at a time). ON CONFLICT DO NOTHING: two replicas receiving the same
/// check at once both try; one row wins and the other returns it.
async fn insert_decisions(
    connection: &mut PgConnection,
    tenant: &TenantId,
    batch: &[DecisionWrite],
) -> Result<Vec<Stored>, StoreError> {
    let mut inserted: HashSet<String> = HashSet::with_capacity(batch.len());
    // In key order (stable: of two writes with one key the batch's first wins), so two
    // replicas inserting the same keys lock them in the same order and cannot deadlock.
    let mut ordered: Vec<&DecisionWrite> = batch.iter().collect();
    ordered.sort_by(|a, b| a.new.decision.key.cmp(&b.new.decision.key));
    for chunk in ordered.chunks(DECISIONS_PER_INSERT) {
        let values = (0..chunk.len())
            .map(|row| {
                let p = |column: usize| format!("${}", row * 12 + column);
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}::jsonb, {}, {})",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7),
                    p(8),
                    p(9),
                    p(10),
                    p(11),
                    p(12)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO gate_decisions (id, tenant_id, decision_key, decided_at, environment, \
             verdict, approval_id, callback_state, callback_token, document, source, run_id) \
             VALUES {values} ON CONFLICT (tenant_id, decision_key) DO NOTHING RETURNING id"
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for write in chunk {
            let decision = &write.new.decision;
            query = query
                .bind(&decision.id)
                .bind(tenant.as_str())
                .bind(&decision.key)
                .bind(decision.decided_at)
                .bind(&decision.environment)
                .bind(decision.verdict.as_str())
                .bind(&decision.approval_id)
                .bind(decision.callback_state.map(CallbackState::as_str))
                .bind(&write.new.callback_token)
                .bind(document(decision)?)
                .bind(&decision.source)
                .bind(decision.run_id.map(run_column).transpose()?);
        }
        inserted.extend(query.fetch_all(&mut *connection).await?);
    }
    let mut recorded = Vec::with_capacity(batch.len());
    for write in batch {
        let new = &write.new;
        let decision = &new.decision;
        if !inserted.contains(&decision.id) {
            let existing = decision_where(connection, "decision_key", &decision.key, false)
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            )
            .bind(&approval.id)
            .bind(tenant.as_str())
            .bind(&decision.id)
            .bind(approval.state.as_str())
            .bind(approval.created_at)
            .bind(approval.expires_at)
            .bind(document(approval)?)
            .execute(&mut *connection)
            .await?;
        }
        for job in new.callback_job.iter().chain(&new.notices) {
            enqueue(connection, tenant, job).await?;
        }
        recorded.push(Stored::Created);
    }
    Ok(recorded)
}

#[async_trait]
impl GateStore for PostgresStore {
    async fn record_decisions(
        &self,
        tenant: &TenantId,
        batch: &[DecisionWrite],
    ) -> Result<Vec<Stored>, StoreError> {
        let mut transaction = self.begin_durable_for(tenant).await?;
        let recorded = insert_decisions(&mut transaction, tenant, batch).await?;
        let audit = created_audit(batch, &recorded);
        self.append_audit_in(&mut transaction, tenant, &audit)
            .await?;
        transaction.commit().await?;
        Ok(recorded)
    }

    async fn decision(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<GateDecision>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let found = decision_where(&mut transaction, "id", id, false).await?;
        transaction.commit().await?;
        Ok(found)
    }

    async fn decision_by_key(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<GateDecision>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let found = decision_where(&mut transaction, "decision_key", key, false).await?;
        transaction.commit().await?;
        Ok(found)
    }

    async fn decisions(
        &self,
        tenant: &TenantId,
        filter: &DecisionFilter,
    ) -> Result<Vec<GateDecision>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT document::text FROM gate_decisions \
             WHERE ($1::text IS NULL OR environment = $1) AND ($2::timestamptz IS NULL OR decided_at >= $2) \
             AND ($4::text IS NULL OR document->>'run_id' = $4) \
             ORDER BY decided_at DESC, id DESC LIMIT $3",
        )
        .bind(&filter.environment)
        .bind(filter.since)
        .bind(i64::from(filter.limit.max(1)))
        // Compared as text: the document holds the id as a JSON number, `->>` renders it
        // in its shortest decimal form, as `to_string` does.
        .bind(filter.run_id.map(|id| id.to_string()))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(|raw| parse(raw, "gate decision")).collect()
    }

    async fn check_decisions(&self, tenant: &TenantId) -> Result<Vec<CheckDecision>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT id, run_id, environment, verdict, decided_at FROM gate_decisions \
             WHERE tenant_id = $1 AND source = $2 ORDER BY decided_at, id",
        )
        .bind(tenant.as_str())
        .bind(SOURCE_ADO_CHECK)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter()
            .map(|row| {
                let run_id: Option<i64> = row.try_get("run_id")?;
                Ok(CheckDecision {
                    decision_id: row.try_get("id")?,
                    run_id: run_id.and_then(|id| u64::try_from(id).ok()),
                    environment: row.try_get("environment")?,
                    verdict: verdict_column(&row.try_get::<String, _>("verdict")?)?,
                    decided_at: row.try_get("decided_at")?,
                })
            })
            .collect()
    }

    async fn callback_token(
        &self,
        tenant: &TenantId,
        decision_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let token: Option<Option<String>> =
            sqlx::query_scalar("SELECT callback_token FROM gate_decisions WHERE id = $1")
                .bind(decision_id)
                .fetch_optional(&mut *transaction)
                .await?;
        transaction.commit().await?;
        Ok(token.flatten())
    }

    async fn finish_callback(
        &self,
        tenant: &TenantId,
        decision_id: &str,
        state: CallbackState,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_durable_for(tenant).await?;
        let Some(mut decision) = decision_where(&mut transaction, "id", decision_id, true).await?
        else {
            return Err(StoreError::InvalidInput(format!(
                "no gate decision {decision_id}"
            )));
        };
        decision.callback_state = Some(state);
        write_decision(&mut transaction, &decision).await?;
        sqlx::query("UPDATE gate_decisions SET callback_token = NULL WHERE id = $1")
            .bind(decision_id)
            .execute(&mut *transaction)
            .await?;
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn approval(&self, tenant: &TenantId, id: &str) -> Result<Option<Approval>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let row: Option<String> =
            sqlx::query_scalar("SELECT document::text FROM approvals WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *transaction)
                .await?;
        transaction.commit().await?;
        row.map(|raw| parse(&raw, "approval")).transpose()
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT document::text FROM approvals WHERE ($1::text IS NULL OR state = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(state.map(ApprovalState::as_str))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let mut transaction = self.begin_durable_for(tenant).await?;
        let row: Option<String> =
            sqlx::query_scalar("SELECT document::text FROM approvals WHERE id = $1 FOR UPDATE")
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
        sqlx::query("UPDATE approvals SET state = $1, document = $2::jsonb WHERE id = $3")
            .bind(approval.state.as_str())
            .bind(document(&approval)?)
            .bind(&approval.id)
            .execute(&mut *transaction)
            .await?;
        if !approval.is_open()
            && let Some(mut decision) =
                decision_where(&mut transaction, "id", &approval.decision_id, true).await?
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
        let mut transaction = self.begin_for(tenant).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM approvals WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at",
        )
        .bind(now)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(ids)
    }
}
