//! Deployments on SQLite: each row keeps its document as JSON; writes run in a write
//! transaction (the database's one writer lock), so a status update reads and rewrites the
//! document without another writer in between.

use async_trait::async_trait;
use sqlx::SqliteConnection;
use tollgate_domain::TenantId;

use crate::deployments::{Deployment, DeploymentFilter, DeploymentStore, RunStatus, apply_status};
use crate::gate::{document, parse};
use crate::sqlite::SqliteStore;
use crate::sqlite_queue::{BEGIN_WRITE, stamp};
use crate::{AuditDraft, StoreError};

fn as_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::InvalidInput(format!("{what} {value} is too large")))
}

async fn deployment_by_id(
    connection: &mut SqliteConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Deployment>, StoreError> {
    let row: Option<String> =
        sqlx::query_scalar("SELECT document FROM deployments WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
    row.map(|raw| parse(&raw, "deployment")).transpose()
}

#[async_trait]
impl DeploymentStore for SqliteStore {
    async fn record_deployment(
        &self,
        tenant: &TenantId,
        deployment: &Deployment,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.durable_pool().begin_with(BEGIN_WRITE).await?;
        if deployment_by_id(&mut transaction, tenant, &deployment.id)
            .await?
            .is_some()
        {
            return Err(StoreError::InvalidInput(format!(
                "deployment {} exists",
                deployment.id
            )));
        }
        sqlx::query(
            "INSERT INTO deployments (id, tenant_id, created_at, environment, project, project_id, \
             pipeline_id, run_id, state, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&deployment.id)
        .bind(tenant.as_str())
        .bind(stamp(deployment.created_at)?)
        .bind(&deployment.environment)
        .bind(&deployment.project)
        .bind(&deployment.project_id)
        .bind(as_i64(deployment.pipeline_id, "pipeline id")?)
        .bind(as_i64(deployment.run_id, "run id")?)
        .bind(deployment.state.as_str())
        .bind(document(deployment)?)
        .execute(&mut *transaction)
        .await?;
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
        let mut connection = self.pool().acquire().await?;
        deployment_by_id(&mut connection, tenant, id).await
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
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT document FROM deployments WHERE tenant_id = ? \
             AND (? IS NULL OR environment = ?) \
             AND (? IS NULL OR project = ? OR project_id = ?) \
             AND (? IS NULL OR pipeline_id = ?) \
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(&filter.environment)
        .bind(&filter.environment)
        .bind(&filter.project)
        .bind(&filter.project)
        .bind(&filter.project)
        .bind(pipeline)
        .bind(pipeline)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|raw| parse(raw, "deployment")).collect()
    }

    async fn update_run_status(
        &self,
        tenant: &TenantId,
        id: &str,
        status: &RunStatus,
    ) -> Result<Option<Deployment>, StoreError> {
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let Some(mut deployment) = deployment_by_id(&mut transaction, tenant, id).await? else {
            return Ok(None);
        };
        apply_status(&mut deployment, status);
        sqlx::query(
            "UPDATE deployments SET state = ?, document = ? WHERE tenant_id = ? AND id = ?",
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
