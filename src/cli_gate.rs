//! `tollgate gate check`: judge a deployment from the command line, with the same rules,
//! configuration and inventory the server's gate uses (recorded and audited as a dry run).

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use tollgate_domain::TenantId;

use crate::cli::DbArgs;
use crate::config::{self, Overrides};
use crate::services::audit_events::Actor;
use crate::services::gate::{DeploymentRequest, Outcome, RequestSource};
use crate::startup;

#[derive(Debug, Subcommand)]
pub enum GateAction {
    /// Judge a run entering an environment now, as the gate would (nothing is deployed).
    #[command(
        after_help = "Examples:\n  tollgate gate check --project Payments --environment production --run 4711\n  tollgate gate check --project Payments --environment staging --run 4711 --format json\n\n\
The run's requester, branch, commit and repository come from the synced inventory unless given.\n\
Exit codes: 0 allowed, 1 error, 4 denied, 5 needs approval."
    )]
    Check {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The project's name or id
        #[arg(long)]
        project: String,
        #[arg(long)]
        environment: String,
        /// The run (build) id
        #[arg(long)]
        run: Option<u64>,
        /// Who requested the run (uniqueName or e-mail), when the inventory does not know
        #[arg(long)]
        requested_for: Option<String>,
        /// The commit being deployed, when the inventory does not know
        #[arg(long)]
        source_version: Option<String>,
        /// Work items linked to the change
        #[arg(long = "work-item", value_name = "ID")]
        work_items: Vec<u64>,
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
}

pub async fn run(config_file: Option<&std::path::Path>, action: GateAction) -> Result<ExitCode> {
    let GateAction::Check {
        db,
        tenant,
        project,
        environment,
        run,
        requested_for,
        source_version,
        work_items,
        format,
    } = action;
    if !matches!(format.as_str(), "table" | "json") {
        return Err(anyhow!("--format {format:?}: use table or json"));
    }
    let loaded = config::load(
        config_file,
        &Overrides {
            db: db.db,
            ..Overrides::default()
        },
    )?;
    let config = &loaded.config;
    let store = startup::configured_store(config).await?;
    let (policies, problems) = startup::policies(config)?;
    let tenant_id = TenantId::parse(&tenant)?;
    let contexts = startup::tenant_contexts(config, store, policies, &problems)?;
    let context = contexts
        .into_iter()
        .find(|c| c.id == tenant_id)
        .with_context(|| format!("tenant {tenant} is not configured"))?;
    let request = DeploymentRequest {
        project,
        environment,
        run_id: run,
        requested_for,
        source_version,
        work_items,
        ..DeploymentRequest::default()
    };
    let answer = context
        .gate
        .validate(request, RequestSource::Cli, &Actor::local())
        .await?;
    let outcome = answer.outcome();
    if format == "json" {
        let mut body = serde_json::to_value(&answer)?;
        body["outcome"] = serde_json::json!(outcome);
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        let verdict = match outcome {
            Outcome::Allowed => "ALLOWED",
            Outcome::Denied => "DENIED",
            Outcome::Pending => "NEEDS APPROVAL",
        };
        println!("{verdict}  (decision {})", answer.decision_id);
        for finding in &answer.findings {
            let enforced = finding
                .enforced
                .map_or("dry-run".to_owned(), |e| e.as_str().to_owned());
            println!(
                "  {:<8} {:<8} {}: {}",
                enforced, finding.action, finding.rule, finding.message
            );
        }
        if answer.findings.is_empty() {
            println!("  no gate rule objected");
        }
    }
    Ok(match outcome {
        Outcome::Allowed => ExitCode::SUCCESS,
        Outcome::Denied => ExitCode::from(4),
        Outcome::Pending => ExitCode::from(5),
    })
}
