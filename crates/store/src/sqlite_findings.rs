//! Findings and waivers on SQLite.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{ResourceKind, TenantId};

use crate::sqlite::{CHUNK, SqliteStore};
use crate::sqlite_queue::BEGIN_WRITE;
use crate::{
    AuditDraft, Coverage, Finding, FindingAudit, FindingStatus, FindingStore, FindingTransition,
    LifecycleCounts, NewWaiver, Observation, StoreError, Waiver,
};

fn text(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(raw: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|error| StoreError::Corrupt(format!("timestamp {raw:?}: {error}")))
}

fn waiver_from(row: &sqlx::sqlite::SqliteRow) -> Result<Waiver, StoreError> {
    Ok(Waiver {
        id: row.try_get("id")?,
        control: row.try_get("control")?,
        scope: row.try_get("scope")?,
        owner: row.try_get("owner")?,
        reason: row.try_get("reason")?,
        expires_at: parse_time(&row.try_get::<String, _>("expires_at")?)?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
    })
}

fn finding_from(row: &sqlx::sqlite::SqliteRow) -> Result<Finding, StoreError> {
    let kind: String = row.try_get("resource_kind")?;
    let status: String = row.try_get("status")?;
    let evidence: String = row.try_get("evidence")?;
    let fixed_at: Option<String> = row.try_get("fixed_at")?;
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
        first_seen: parse_time(&row.try_get::<String, _>("first_seen")?)?,
        last_seen: parse_time(&row.try_get::<String, _>("last_seen")?)?,
        fixed_at: fixed_at.as_deref().map(parse_time).transpose()?,
        waiver_id: row.try_get("waiver_id")?,
    })
}

#[async_trait]
impl FindingStore for SqliteStore {
    async fn apply_observations(
        &self,
        tenant: &TenantId,
        observations: &[Observation],
        coverage: &Coverage,
        now: OffsetDateTime,
        audit: FindingAudit<'_>,
    ) -> Result<LifecycleCounts, StoreError> {
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let mut transitions: Vec<FindingTransition<'_>> = Vec::new();
        let waivers: Vec<Waiver> = sqlx::query("SELECT * FROM waivers WHERE tenant_id = ?")
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
        let mut existing: HashMap<(String, String, String), (FindingStatus, String)> =
            HashMap::new();
        // A keyed evaluation reads only its resources' findings, so its cost follows what
        // changed rather than how many findings the tenant has.
        let select = "SELECT control, resource_kind, resource_key, status, first_seen FROM findings WHERE tenant_id = ?";
        let mut rows = Vec::new();
        match &coverage.keys {
            None => {
                rows = sqlx::query(select)
                    .bind(tenant.as_str())
                    .fetch_all(&mut *transaction)
                    .await?;
            }
            Some(keys) => {
                for chunk in keys.chunks(CHUNK) {
                    let placeholders = vec!["?"; chunk.len()].join(", ");
                    let sql = format!("{select} AND resource_key IN ({placeholders})");
                    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tenant.as_str());
                    for key in chunk {
                        query = query.bind(key);
                    }
                    rows.extend(query.fetch_all(&mut *transaction).await?);
                }
            }
        }
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
        let now_text = text(now);
        let mut applied: HashSet<(String, String, String)> = HashSet::new();
        for observation in observations {
            let id = (
                observation.control.clone(),
                observation.resource_kind.as_str().to_owned(),
                observation.resource_key.clone(),
            );
            // A finding is one per control and resource; callers merge repeated violations,
            // and a repeat that slips through must not be counted as a second finding.
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
                // Fixed and seen again, or waived and the waiver expired or was removed.
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
            let first_seen = previous
                .map(|(_, first)| first)
                .unwrap_or_else(|| now_text.clone());
            sqlx::query(
                "INSERT INTO findings (tenant_id, control, resource_kind, resource_key, resource_name, project, severity, action, status, message, evidence, first_seen, last_seen, fixed_at, waiver_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) \
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
            .bind(&first_seen)
            .bind(&now_text)
            .bind(waiver.map(|w| w.id))
            .execute(&mut *transaction)
            .await?;
        }
        // Covered findings not observed this time are fixed.
        let mut fixed: Vec<(String, String, String)> = Vec::new();
        for ((control, kind, key), (status, _)) in existing {
            if status == FindingStatus::Fixed {
                continue;
            }
            counts.fixed += 1;
            sqlx::query(
                "UPDATE findings SET status = 'fixed', fixed_at = ?, waiver_id = NULL \
                 WHERE tenant_id = ? AND control = ? AND resource_kind = ? AND resource_key = ?",
            )
            .bind(&now_text)
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
        let rows = sqlx::query(
            "SELECT * FROM findings WHERE tenant_id = ? ORDER BY control, resource_key",
        )
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
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
        let created = OffsetDateTime::now_utc();
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO waivers (tenant_id, control, scope, owner, reason, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(tenant.as_str())
        .bind(&waiver.control)
        .bind(&waiver.scope)
        .bind(&waiver.owner)
        .bind(&waiver.reason)
        .bind(text(waiver.expires_at))
        .bind(text(created))
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
        sqlx::query("SELECT * FROM waivers WHERE tenant_id = ? ORDER BY id")
            .bind(tenant.as_str())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(waiver_from)
            .collect()
    }

    async fn remove_waiver(
        &self,
        tenant: &TenantId,
        id: i64,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let result = sqlx::query("DELETE FROM waivers WHERE tenant_id = ? AND id = ?")
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
