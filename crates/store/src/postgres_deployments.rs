//! Deployments on PostgreSQL: the same documents as on SQLite (JSONB), each transaction
//! scoped to its tenant; a status update locks the row (FOR UPDATE), so two replicas
//! following the same run apply their answers one after the other.

use async_trait::async_trait;
use sqlx::PgConnection;
use tollgate_domain::TenantId;

use crate::deployments::{Deployment, DeploymentFilter, DeploymentStore, RunStatus, apply_status};
use crate::gate::{document, parse};
use crate::postgres::PostgresStore;
use crate::{AuditDraft, StoreError};

fn as_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::InvalidInput(format!("{what} {value} is too large")))
}

async fn deployment_by_id(
    connection: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
    lock: bool,
) -> Result<Option<Deployment>, StoreError> {
    let sql = format!(
        "SELECT document::text FROM deployments WHERE tenant_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(|raw| parse(&raw, "deployment")).transpose()
}

#[async_trait]
impl DeploymentStore for PostgresStore {
    async fn record_deployment(
        &self,
        tenant: &TenantId,
        deployment: &Deployment,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_durable_for(tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO deployments (id, tenant_id, created_at, environment, project, project_id, \
             pipeline_id, run_id, state, document) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&deployment.id)
        .bind(tenant.as_str())
        .bind(deployment.created_at)
        .bind(&deployment.environment)
        .bind(&deployment.project)
        .bind(&deployment.project_id)
        .bind(as_i64(deployment.pipeline_id, "pipeline id")?)
        .bind(as_i64(deployment.run_id, "run id")?)
        .bind(deployment.state.as_str())
        .bind(document(deployment)?)
        .execute(&mut *transaction)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::InvalidInput(format!(
                "deployment {} exists",
                deployment.id
            )));
        }
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn deployment(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Deployment>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let found = deployment_by_id(&mut transaction, tenant, id, false).await?;
        transaction.commit().await?;
        Ok(found)
    }

    async fn deployments(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
    ) -> Result<Vec<Deployment>, StoreError> {
        let pipeline = filter
            .pipeline_id
            .map(|id| as_i64(id, "pipeline id"))
            .transpose()?;
        let mut transaction = self.begin_for(tenant).await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT document::text FROM deployments WHERE tenant_id = $1 \
             AND ($2::text IS NULL OR environment = $2) \
             AND ($3::text IS NULL OR project = $3 OR project_id = $3) \
             AND ($4::bigint IS NULL OR pipeline_id = $4) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(tenant.as_str())
        .bind(&filter.environment)
        .bind(&filter.project)
        .bind(pipeline)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(|raw| parse(raw, "deployment")).collect()
    }

    async fn update_run_status(
        &self,
        tenant: &TenantId,
        id: &str,
        status: &RunStatus,
    ) -> Result<Option<Deployment>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let Some(mut deployment) = deployment_by_id(&mut transaction, tenant, id, true).await?
        else {
            transaction.commit().await?;
            return Ok(None);
        };
        apply_status(&mut deployment, status);
        sqlx::query(
            "UPDATE deployments SET state = $1, document = $2::jsonb WHERE tenant_id = $3 AND id = $4",
        )
        .bind(deployment.state.as_str())
        .bind(document(&deployment)?)
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(Some(deployment))
    }
}
