//! Findings and waivers on PostgreSQL (the same lifecycle as `sqlite_findings.rs`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use tollgate_domain::{ResourceKind, TenantId};

use crate::postgres::{PostgresStore, now};
use crate::{
    AuditDraft, Coverage, Finding, FindingAudit, FindingStatus, FindingStore, FindingTransition,
    LifecycleCounts, NewWaiver, Observation, StoreError, Waiver,
};

fn waiver_from(row: &PgRow) -> Result<Waiver, StoreError> {
    Ok(Waiver {
        id: row.try_get("id")?,
        control: row.try_get("control")?,
        scope: row.try_get("scope")?,
        owner: row.try_get("owner")?,
        reason: row.try_get("reason")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
    })
}

fn finding_from(row: &PgRow) -> Result<Finding, StoreError> {
    let kind: String = row.try_get("resource_kind")?;
    let status: String = row.try_get("status")?;
    let evidence: String = row.try_get("evidence")?;
    Ok(Finding {
        control: row.try_get("control")?,
        resource_kind: kind
            .parse::<ResourceKind>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        resource_key: row.try_get("resource_key")?,
        resource_name: row.try_get("resource_name")?,
        project: row.try_get("project")?,
        severity: row.try_get("severity")?,
        action: row.try_get("action")?,
        status: FindingStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("finding status {status:?}")))?,
        message: row.try_get("message")?,
        evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        fixed_at: row.try_get("fixed_at")?,
        waiver_id: row.try_get("waiver_id")?,
    })
}

#[async_trait]
impl FindingStore for PostgresStore {
    async fn apply_observations(
        &self,
        tenant: &TenantId,
        observations: &[Observation],
        coverage: &Coverage,
        now: OffsetDateTime,
        audit: FindingAudit<'_>,
    ) -> Result<LifecycleCounts, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let mut transitions: Vec<FindingTransition<'_>> = Vec::new();
        let waivers: Vec<Waiver> = sqlx::query(
            "SELECT id, control, scope, owner, reason, expires_at, created_at FROM waivers \
             WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *transaction)
        .await?
        .iter()
        .map(waiver_from)
        .collect::<Result<_, _>>()?;
        let controls: HashSet<&str> = coverage.controls.iter().map(String::as_str).collect();
        let kinds: HashSet<&str> = coverage.kinds.iter().map(|k| k.as_str()).collect();
        let keys: Option<HashSet<&str>> = coverage
            .keys
            .as_ref()
            .map(|keys| keys.iter().map(String::as_str).collect());
        let mut existing: HashMap<(String, String, String), (FindingStatus, OffsetDateTime)> =
            HashMap::new();
        // A keyed evaluation reads only its resources' findings.
        let rows = sqlx::query(
            "SELECT control, resource_kind, resource_key, status, first_seen FROM findings \
             WHERE tenant_id = $1 AND ($2::text[] IS NULL OR resource_key = ANY($2))",
        )
        .bind(tenant.as_str())
        .bind(coverage.keys.as_ref())
        .fetch_all(&mut *transaction)
        .await?;
        for row in rows {
            let control: String = row.try_get("control")?;
            let kind: String = row.try_get("resource_kind")?;
            let key: String = row.try_get("resource_key")?;
            let covered = controls.contains(control.as_str())
                && kinds.contains(kind.as_str())
                && keys.as_ref().is_none_or(|keys| keys.contains(key.as_str()));
            if !covered {
                continue;
            }
            let status: String = row.try_get("status")?;
            let status = FindingStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("finding status {status:?}")))?;
            existing.insert((control, kind, key), (status, row.try_get("first_seen")?));
        }

        let mut counts = LifecycleCounts::default();
        let mut applied: HashSet<(String, String, String)> = HashSet::new();
        for observation in observations {
            let id = (
                observation.control.clone(),
                observation.resource_kind.as_str().to_owned(),
                observation.resource_key.clone(),
            );
            if !applied.insert(id.clone()) {
                continue;
            }
            let previous = existing.remove(&id);
            let waiver = waivers
                .iter()
                .find(|w| w.covers(&observation.control, &observation.resource_key, now));
            let status = match (waiver, previous.as_ref().map(|(status, _)| *status)) {
                (Some(_), _) => {
                    counts.waived += 1;
                    FindingStatus::Waived
                }
                (None, None) => {
                    counts.opened += 1;
                    transitions.push(FindingTransition {
                        observation: Some(observation),
                        control: &observation.control,
                        resource_kind: observation.resource_kind.as_str(),
                        resource_key: &observation.resource_key,
                        to: FindingStatus::Open,
                    });
                    FindingStatus::Open
                }
                (None, Some(status @ (FindingStatus::Open | FindingStatus::Reopened))) => {
                    counts.still_open += 1;
                    status
                }
                (None, Some(FindingStatus::Fixed | FindingStatus::Waived)) => {
                    counts.reopened += 1;
                    transitions.push(FindingTransition {
                        observation: Some(observation),
                        control: &observation.control,
                        resource_kind: observation.resource_kind.as_str(),
                        resource_key: &observation.resource_key,
                        to: FindingStatus::Reopened,
                    });
                    FindingStatus::Reopened
                }
            };
            let first_seen = previous.map_or(now, |(_, first)| first);
            sqlx::query(
                "INSERT INTO findings (tenant_id, control, resource_kind, resource_key, resource_name, project, severity, action, status, message, evidence, first_seen, last_seen, fixed_at, waiver_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14) \
                 ON CONFLICT (tenant_id, control, resource_kind, resource_key) DO UPDATE SET resource_name = excluded.resource_name, project = excluded.project, \
                 severity = excluded.severity, action = excluded.action, status = excluded.status, message = excluded.message, evidence = excluded.evidence, \
                 last_seen = excluded.last_seen, fixed_at = NULL, waiver_id = excluded.waiver_id",
            )
            .bind(tenant.as_str())
            .bind(&observation.control)
            .bind(observation.resource_kind.as_str())
            .bind(&observation.resource_key)
            .bind(&observation.resource_name)
            .bind(&observation.project)
            .bind(&observation.severity)
            .bind(&observation.action)
            .bind(status.as_str())
            .bind(&observation.message)
            .bind(observation.evidence.to_string())
            .bind(first_seen)
            .bind(now)
            .bind(waiver.map(|w| w.id))
            .execute(&mut *transaction)
            .await?;
        }
        let mut fixed: Vec<(String, String, String)> = Vec::new();
        for ((control, kind, key), (status, _)) in existing {
            if status == FindingStatus::Fixed {
                continue;
            }
            counts.fixed += 1;
            sqlx::query(
                "UPDATE findings SET status = 'fixed', fixed_at = $1, waiver_id = NULL \
                 WHERE tenant_id = $2 AND control = $3 AND resource_kind = $4 AND resource_key = $5",
            )
            .bind(now)
            .bind(tenant.as_str())
            .bind(&control)
            .bind(&kind)
            .bind(&key)
            .execute(&mut *transaction)
            .await?;
            fixed.push((control, kind, key));
        }
        transitions.extend(fixed.iter().map(|(control, kind, key)| FindingTransition {
            observation: None,
            control,
            resource_kind: kind,
            resource_key: key,
            to: FindingStatus::Fixed,
        }));
        let records = audit(&transitions, &counts);
        self.append_audit_in(&mut transaction, tenant, &records)
            .await?;
        transaction.commit().await?;
        Ok(counts)
    }

    async fn findings(
        &self,
        tenant: &TenantId,
        statuses: &[FindingStatus],
    ) -> Result<Vec<Finding>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM findings WHERE tenant_id = $1 ORDER BY control, resource_key",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let mut findings = Vec::with_capacity(rows.len());
        for row in &rows {
            let finding = finding_from(row)?;
            if statuses.is_empty() || statuses.contains(&finding.status) {
                findings.push(finding);
            }
        }
        Ok(findings)
    }

    async fn add_waiver(
        &self,
        tenant: &TenantId,
        waiver: &NewWaiver,
        audit: &[AuditDraft],
    ) -> Result<Waiver, StoreError> {
        let created = now();
        let mut transaction = self.begin_for(tenant).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO waivers (tenant_id, control, scope, owner, reason, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(tenant.as_str())
        .bind(&waiver.control)
        .bind(&waiver.scope)
        .bind(&waiver.owner)
        .bind(&waiver.reason)
        .bind(waiver.expires_at)
        .bind(created)
        .fetch_one(&mut *transaction)
        .await?;
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(Waiver {
            id,
            control: waiver.control.clone(),
            scope: waiver.scope.clone(),
            owner: waiver.owner.clone(),
            reason: waiver.reason.clone(),
            expires_at: waiver.expires_at,
            created_at: created,
        })
    }

    async fn waivers(&self, tenant: &TenantId) -> Result<Vec<Waiver>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT id, control, scope, owner, reason, expires_at, created_at FROM waivers \
             WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(waiver_from).collect()
    }

    async fn remove_waiver(
        &self,
        tenant: &TenantId,
        id: i64,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let result = sqlx::query("DELETE FROM waivers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        let existed = result.rows_affected() > 0;
        if existed {
            self.append_audit_in(&mut transaction, tenant, audit)
                .await?;
        }
        transaction.commit().await?;
        Ok(existed)
    }
}
