//! `tollgate validate`, `deploy`, `status`, `rollback` and `ask`: deployments from the command
//! line, in-process against the configuration and database like `tollgate gate check`. The
//! actor is whoever runs the command on this machine (local access to the database is
//! already full access, so no API role applies); the audit log records them by name.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use serde_json::{Value, json};
use tollgate_domain::TenantId;
use tollgate_store::deployments::{Deployment, DeploymentKind, RunResult, RunState};
use tollgate_store::gate::Verdict;

use crate::ask::{self, Intent};
use crate::cli::DbArgs;
use crate::config::{self, Overrides};
use crate::output::Format;
use crate::services::audit_events::Actor;
use crate::services::deployments::{
    DeployPlan, DeployRequest, DeploymentError, DeploymentStatus, Queued, RollbackRequest,
};
use crate::services::gate::{DeploymentRequest, GateAnswer, Outcome, RequestSource};
use crate::services::tenant::TenantContext;
use crate::startup;

const EXIT_DENIED: u8 = 4;
const EXIT_NEEDS_APPROVAL: u8 = 5;
/// `tollgate ask` did not understand the sentence.
const EXIT_NOT_UNDERSTOOD: u8 = 2;

#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, default_value = "default")]
    pub tenant: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate validate --project Payments --environment production --run 4711\n  tollgate validate --pipeline payments-api --environment staging --format json\n\n\
The run's requester, branch, commit and repository come from the synced inventory unless given.\n\
The verdict is recorded (and audited) as a dry run; nothing is queued.\n\
Exit codes: 0 allowed, 1 error, 4 denied, 5 needs approval."
)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub target: Target,
    /// The project's name or id (optional with --pipeline)
    #[arg(long)]
    pub project: Option<String>,
    /// The pipeline's name or id
    #[arg(long, value_name = "NAME|ID")]
    pub pipeline: Option<String>,
    #[arg(long)]
    pub environment: String,
    /// The run (build) id
    #[arg(long)]
    pub run: Option<u64>,
    /// Who requested the run (uniqueName or e-mail), when the inventory does not know
    #[arg(long)]
    pub requested_for: Option<String>,
    /// The commit being deployed, when the inventory does not know
    #[arg(long)]
    pub source_version: Option<String>,
    /// Work items linked to the change
    #[arg(long = "work-item", value_name = "ID")]
    pub work_items: Vec<u64>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate deploy --pipeline payments-api --environment staging --version 1.4.2\n  tollgate deploy --project Payments --pipeline 12 --environment production --branch main\n  tollgate deploy --pipeline payments-api --environment test --param region=westeurope --format json\n\n\
The gate judges the deployment first (a recorded dry run): denied, nothing is queued. Otherwise the\n\
pipeline run is queued through the Pipelines Runs API with the template parameters `environment`\n\
and `version`; an environment that needs approval holds the run at its stage (the environment's\n\
check is tollgate's gate) until people approve. `tollgate status ID --wait` follows it.\n\
Exit codes: 0 queued, 1 error, 4 denied (nothing queued), 5 queued, needs approval."
)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: Target,
    /// The pipeline's name (case-insensitive) or id
    #[arg(long, value_name = "NAME|ID")]
    pub pipeline: String,
    /// The project's name or id (needed only when the pipeline's name is not unique)
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub environment: String,
    /// The branch to build (main or refs/heads/main); the pipeline's default otherwise
    #[arg(long)]
    pub branch: Option<String>,
    /// The release version (template parameter `version`)
    #[arg(long)]
    pub version: Option<String>,
    /// Another template parameter (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_parameter)]
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate status dp_0192c3…\n  tollgate status dp_0192c3… --wait\n  tollgate status dp_0192c3… --format json\n\n\
Reads the run from ADO (and stores its state), with the gate's decisions and approvals for it.\n\
--wait prints each change until the run completes (with --format json: one JSON line each).\n\
Exit codes: 0 succeeded or still running, 1 error, failed, canceled or --wait timed out,\n\
5 waiting for approval (without --wait)."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// The deployment's id (dp_…), as `tollgate deploy` printed it
    pub id: String,
    /// Follow the run until it completes
    #[arg(long)]
    pub wait: bool,
    /// Seconds between checks with --wait
    #[arg(long, default_value_t = 2)]
    pub interval_secs: u64,
    /// Give up waiting after this many seconds
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate rollback --pipeline payments-api --environment production\n  tollgate rollback --project Payments --environment staging --format json\n\n\
Finds the newest successful deployment to the environment that is not the current one (nor of the\n\
current commit), from tollgate's own deployments and the synced deployment records, and queues a\n\
new run of the same pipeline for the same branch and commit, through the gate like a deployment.\n\
Exit codes: 0 queued, 1 error (or nothing to roll back to), 4 denied, 5 queued, needs approval."
)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub environment: String,
    /// The pipeline's name or id (the one that deployed last when left out)
    #[arg(long, value_name = "NAME|ID")]
    pub pipeline: Option<String>,
    /// The project's name or id (needed without --pipeline)
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tollgate ask \"deploy payments-api 1.4.2 to staging\"\n  tollgate ask \"deploy payments-api to production from main\" --yes\n  tollgate ask \"roll back payments-api in production\"\n  tollgate ask \"what is the status of deployment dp_0192c3…\"\n  tollgate ask \"validate run 4711 of payments-api for production\"\n\n\
A fixed grammar, no network and no language model: verbs deploy/ship/release/promote, validate/check,\n\
status, rollback/roll back/revert (docs/DEPLOYMENTS.md lists the forms). The sentence is shown as a\n\
structured request with its plan and the gate's verdict now; a deployment or rollback then asks\n\
\"Proceed? [y/N]\" on a terminal, or needs --yes (without a terminal and --yes it refuses).\n\
Validation and status run at once: they queue nothing.\n\
Exit codes: 0 ok, 1 error or not confirmed, 2 not understood (with example sentences), 4 denied,\n\
5 needs approval."
)]
pub struct AskArgs {
    #[command(flatten)]
    pub target: Target,
    /// The sentence (quoted, or as separate words)
    #[arg(required = true, num_args = 1.., value_name = "SENTENCE")]
    pub sentence: Vec<String>,
    /// Proceed without asking
    #[arg(long, short)]
    pub yes: bool,
    /// The project, when the pipeline's name is not unique across projects
    #[arg(long)]
    pub project: Option<String>,
}

fn parse_parameter(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{raw:?}: use NAME=VALUE")),
    }
}

/// A pipeline argument: all digits is an id, anything else a name.
fn pipeline_ref(raw: &str) -> (Option<String>, Option<u64>) {
    match raw.trim().parse::<u64>() {
        Ok(id) => (None, Some(id)),
        Err(_) => (Some(raw.trim().to_owned()), None),
    }
}

async fn tenant(
    config_file: Option<&std::path::Path>,
    target: &Target,
) -> Result<Arc<TenantContext>> {
    let loaded = config::load(
        config_file,
        &Overrides {
            db: target.db.db.clone(),
            ..Overrides::default()
        },
    )?;
    let config = &loaded.config;
    let store = startup::configured_store(config).await?;
    let (policies, problems) = startup::policies(config)?;
    let tenant_id = TenantId::parse(&target.tenant)?;
    let contexts = startup::tenant_contexts(config, store, policies, &problems)?;
    contexts
        .into_iter()
        .find(|c| c.id == tenant_id)
        .map(Arc::new)
        .with_context(|| format!("tenant {} is not configured", target.tenant))
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allowed => "ALLOWED",
        Outcome::Denied => "DENIED",
        Outcome::Pending => "NEEDS APPROVAL",
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "ALLOWED",
        Verdict::Deny => "DENIED",
        Verdict::Approval => "NEEDS APPROVAL",
    }
}

fn exit_for(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Allowed => ExitCode::SUCCESS,
        Outcome::Denied => ExitCode::from(EXIT_DENIED),
        Outcome::Pending => ExitCode::from(EXIT_NEEDS_APPROVAL),
    }
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn answer_json(answer: &GateAnswer) -> Result<Value> {
    let mut body = serde_json::to_value(answer)?;
    body["outcome"] = json!(answer.outcome());
    body["reasons"] = json!(answer.reasons());
    Ok(body)
}

fn print_answer(answer: &GateAnswer) {
    println!(
        "{}  (decision {})",
        outcome_word(answer.outcome()),
        answer.decision_id
    );
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

fn queued_json(queued: &Queued) -> Result<Value> {
    Ok(json!({
        "deployment": queued.deployment,
        "run_id": queued.deployment.run_id,
        "gate": answer_json(&queued.gate)?,
        "note": queued.note,
    }))
}

fn describe(deployment: &Deployment) -> String {
    let pipeline = deployment
        .pipeline
        .clone()
        .unwrap_or_else(|| deployment.pipeline_id.to_string());
    let mut text = format!(
        "{pipeline} (pipeline {}) of {} → {}",
        deployment.pipeline_id, deployment.project, deployment.environment
    );
    if let Some(branch) = &deployment.ref_name {
        text.push_str(&format!(", branch {branch}"));
    }
    if let Some(version) = &deployment.version {
        text.push_str(&format!(", version {version}"));
    }
    if let Some(commit) = &deployment.source_version {
        text.push_str(&format!(", commit {}", short(commit)));
    }
    text
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn print_queued(queued: &Queued) {
    let deployment = &queued.deployment;
    let what = match deployment.kind {
        DeploymentKind::Deploy => "QUEUED",
        DeploymentKind::Rollback => "ROLLBACK QUEUED",
    };
    println!("{what}  deployment {}", deployment.id);
    println!("  {}", describe(deployment));
    if let Some(of) = deployment.rollback_of {
        println!("  re-deploys run {of}");
    }
    println!(
        "  run {}{}{}",
        deployment.run_id,
        deployment
            .run_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        deployment
            .run_url
            .as_deref()
            .map(|u| format!("  {u}"))
            .unwrap_or_default()
    );
    println!(
        "  gate: {} (decision {})",
        outcome_word(queued.gate.outcome()),
        queued.gate.decision_id
    );
    for reason in queued.gate.reasons() {
        println!("    {reason}");
    }
    println!("  {}", queued.note);
    println!("  follow it: tollgate status {} --wait", deployment.id);
}

/// Print a queued deployment (or the refusal), and the exit code it means.
fn finish_queue(result: Result<Queued, DeploymentError>, format: Format) -> Result<ExitCode> {
    match result {
        Ok(queued) => {
            match format {
                Format::Json => print_json(&queued_json(&queued)?)?,
                Format::Table => print_queued(&queued),
            }
            Ok(match queued.gate.outcome() {
                Outcome::Pending => ExitCode::from(EXIT_NEEDS_APPROVAL),
                _ => ExitCode::SUCCESS,
            })
        }
        Err(DeploymentError::Denied(answer)) => {
            match format {
                Format::Json => {
                    let mut body = answer_json(&answer)?;
                    body["queued"] = json!(false);
                    print_json(&body)?;
                }
                Format::Table => {
                    println!("nothing was queued: the gate denies it");
                    print_answer(&answer);
                }
            }
            Ok(ExitCode::from(EXIT_DENIED))
        }
        Err(error) => Err(anyhow!(error)),
    }
}

pub async fn validate(
    config_file: Option<&std::path::Path>,
    args: ValidateArgs,
) -> Result<ExitCode> {
    let context = tenant(config_file, &args.target).await?;
    let mut request = DeploymentRequest {
        project: args.project.clone().unwrap_or_default(),
        environment: args.environment,
        run_id: args.run,
        requested_for: args.requested_for,
        source_version: args.source_version,
        work_items: args.work_items,
        ..DeploymentRequest::default()
    };
    if let Some(pipeline) = &args.pipeline {
        let (name, id) = pipeline_ref(pipeline);
        let resolved = context
            .deployments
            .resolve_pipeline(args.project.as_deref(), name.as_deref(), id)
            .await?;
        request.project = resolved.project_id.unwrap_or(resolved.project);
        request.pipeline_id = Some(resolved.pipeline_id);
        request.pipeline = resolved.pipeline;
    }
    run_validate(&context, request, args.target.format).await
}

async fn run_validate(
    context: &TenantContext,
    request: DeploymentRequest,
    format: Format,
) -> Result<ExitCode> {
    let answer = context
        .deployments
        .validate(request, RequestSource::Cli, &Actor::local())
        .await?;
    match format {
        Format::Json => print_json(&answer_json(&answer)?)?,
        Format::Table => print_answer(&answer),
    }
    Ok(exit_for(answer.outcome()))
}

fn deploy_request(args: &DeployArgs) -> DeployRequest {
    let (pipeline, pipeline_id) = pipeline_ref(&args.pipeline);
    DeployRequest {
        project: args.project.clone(),
        pipeline,
        pipeline_id,
        environment: args.environment.clone(),
        branch: args.branch.clone(),
        version: args.version.clone(),
        parameters: args.parameters.iter().cloned().collect(),
    }
}

pub async fn deploy(config_file: Option<&std::path::Path>, args: DeployArgs) -> Result<ExitCode> {
    let context = tenant(config_file, &args.target).await?;
    let result = context
        .deployments
        .deploy(&deploy_request(&args), RequestSource::Cli, &Actor::local())
        .await;
    finish_queue(result, args.target.format)
}

pub async fn rollback(
    config_file: Option<&std::path::Path>,
    args: RollbackArgs,
) -> Result<ExitCode> {
    let context = tenant(config_file, &args.target).await?;
    let (pipeline, pipeline_id) = match &args.pipeline {
        Some(raw) => pipeline_ref(raw),
        None => (None, None),
    };
    let request = RollbackRequest {
        project: args.project,
        environment: args.environment,
        pipeline,
        pipeline_id,
    };
    let result = context
        .deployments
        .rollback(&request, RequestSource::Cli, &Actor::local())
        .await;
    finish_queue(result, args.target.format)
}

fn state_line(status: &DeploymentStatus) -> String {
    let deployment = &status.deployment;
    let mut line = deployment.state.as_str().to_owned();
    if let Some(result) = deployment.result {
        line.push_str(&format!(" ({})", result.as_str()));
    }
    if status.waiting_for_approval {
        line.push_str(", waiting for approval");
    }
    line
}

fn print_status(status: &DeploymentStatus) {
    let deployment = &status.deployment;
    println!(
        "{}  deployment {}",
        state_line(status).to_uppercase(),
        deployment.id
    );
    println!("  {}", describe(deployment));
    println!(
        "  run {} ({}), queued by {} at {}",
        deployment.run_id,
        deployment.kind.as_str(),
        deployment.requested_by,
        deployment
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    if status.decisions.is_empty() {
        println!("  no gate decision about the run yet");
    }
    for decision in &status.decisions {
        let approval = decision
            .approval
            .as_ref()
            .map(|a| {
                format!(
                    "; approval {} {} ({}/{})",
                    a.id,
                    a.state.as_str(),
                    a.approvals,
                    a.quorum
                )
            })
            .unwrap_or_default();
        println!(
            "  gate {} {} {}: {}{approval}",
            decision.mode,
            decision.environment,
            verdict_word(decision.verdict),
            decision.id
        );
        for reason in &decision.reasons {
            println!("    {reason}");
        }
    }
}

fn status_exit(status: &DeploymentStatus) -> ExitCode {
    let deployment = &status.deployment;
    match (deployment.state, deployment.result) {
        (RunState::Completed, Some(RunResult::Succeeded)) => ExitCode::SUCCESS,
        (RunState::Completed, _) => ExitCode::FAILURE,
        _ if status.waiting_for_approval => ExitCode::from(EXIT_NEEDS_APPROVAL),
        _ => ExitCode::SUCCESS,
    }
}

async fn run_status(
    context: &TenantContext,
    id: &str,
    format: Format,
    wait: Option<(Duration, Duration)>,
) -> Result<ExitCode> {
    let Some((interval, timeout)) = wait else {
        let status = context.deployments.status(id).await?;
        match format {
            Format::Json => print_json(&serde_json::to_value(&status)?)?,
            Format::Table => print_status(&status),
        }
        return Ok(status_exit(&status));
    };
    let started = Instant::now();
    let mut last: Option<String> = None;
    loop {
        let status = context.deployments.status(id).await?;
        let line = state_line(&status);
        if last.as_deref() != Some(line.as_str()) {
            match format {
                Format::Json => println!("{}", serde_json::to_string(&status)?),
                Format::Table if last.is_none() => print_status(&status),
                Format::Table => println!(
                    "{}  {line}",
                    time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                ),
            }
            last = Some(line);
        }
        if status.deployment.is_final() {
            if matches!(format, Format::Table) {
                println!(
                    "run {} {}",
                    status.deployment.run_id,
                    status
                        .deployment
                        .result
                        .map_or("completed", RunResult::as_str)
                );
            }
            return Ok(status_exit(&status));
        }
        if started.elapsed() >= timeout {
            eprintln!(
                "error: run {} has not completed after {} s; still {}",
                status.deployment.run_id,
                timeout.as_secs(),
                state_line(&status)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(interval).await;
    }
}

pub async fn status(config_file: Option<&std::path::Path>, args: StatusArgs) -> Result<ExitCode> {
    let context = tenant(config_file, &args.target).await?;
    let wait = args.wait.then(|| {
        (
            Duration::from_secs(args.interval_secs.max(1)),
            Duration::from_secs(args.timeout_secs),
        )
    });
    run_status(&context, &args.id, args.target.format, wait).await
}

fn print_plan(plan: &DeployPlan) {
    let pipeline = plan
        .pipeline
        .pipeline
        .clone()
        .unwrap_or_else(|| plan.pipeline.pipeline_id.to_string());
    let action = match plan.kind {
        DeploymentKind::Deploy => "queue a run of",
        DeploymentKind::Rollback => "roll back: queue a new run of",
    };
    println!(
        "Plan:     {action} {pipeline} (pipeline {}) in project {} for {}",
        plan.pipeline.pipeline_id, plan.pipeline.project, plan.environment
    );
    if let Some(of) = plan.rollback_of {
        println!("          re-deploying what run {of} deployed");
    }
    println!(
        "          branch {}, commit {}",
        plan.ref_name
            .as_deref()
            .unwrap_or("(the pipeline's default)"),
        plan.commit.as_deref().map_or("(the branch's head)", short)
    );
    let parameters: Vec<String> = plan
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("          template parameters {}", parameters.join(", "));
    println!("Gate now: {}", verdict_word(plan.verdict));
    for reason in &plan.reasons {
        println!("          {reason}");
    }
    if plan.verdict == Verdict::Approval {
        println!(
            "          the run waits at the {} stage until people approve",
            plan.environment
        );
    }
}

/// Yes from --yes, or from a person at a terminal. Without either, no.
fn confirmed(yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "refusing: no terminal to ask on and no --yes; nothing was queued (add --yes to proceed)"
        );
        return Ok(false);
    }
    eprint!("Proceed? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let yes = matches!(answer.trim().to_lowercase().as_str(), "y" | "yes");
    if !yes {
        eprintln!("not confirmed; nothing was queued");
    }
    Ok(yes)
}

pub async fn ask(config_file: Option<&std::path::Path>, args: AskArgs) -> Result<ExitCode> {
    let sentence = args.sentence.join(" ");
    let intent = match ask::parse(&sentence) {
        Ok(intent) => intent,
        Err(not_understood) => {
            eprintln!("tollgate did not understand {sentence:?}: {not_understood}");
            return Ok(ExitCode::from(EXIT_NOT_UNDERSTOOD));
        }
    };
    let format = args.target.format;
    if matches!(format, Format::Table) {
        println!("Request:  {}", serde_json::to_string(&intent)?);
    }
    let context = tenant(config_file, &args.target).await?;
    let service = &context.deployments;
    let plan = match intent.clone() {
        Intent::Status { deployment } => {
            return run_status(&context, &deployment, format, None).await;
        }
        Intent::Validate {
            pipeline,
            environment,
            run,
        } => {
            let mut request = DeploymentRequest {
                project: args.project.clone().unwrap_or_default(),
                environment,
                run_id: run,
                ..DeploymentRequest::default()
            };
            if let Some(pipeline) = pipeline {
                let resolved = service
                    .resolve_pipeline(args.project.as_deref(), Some(&pipeline), None)
                    .await?;
                request.project = resolved.project_id.unwrap_or(resolved.project);
                request.pipeline_id = Some(resolved.pipeline_id);
                request.pipeline = resolved.pipeline;
            } else if request.project.is_empty() {
                return Err(anyhow!(
                    "which project? name the pipeline in the sentence or pass --project"
                ));
            }
            if matches!(format, Format::Table) {
                println!(
                    "Plan:     judge {} as the gate would, recorded as a dry run (nothing is queued)",
                    run.map_or("the deployment".to_owned(), |r| format!("run {r}"))
                );
            }
            return run_validate(&context, request, format).await;
        }
        Intent::Deploy {
            pipeline,
            environment,
            version,
            branch,
        } => {
            let request = DeployRequest {
                project: args.project.clone(),
                pipeline: Some(pipeline),
                environment,
                branch,
                version,
                ..DeployRequest::default()
            };
            service.plan_deploy(&request).await
        }
        Intent::Rollback {
            pipeline,
            environment,
        } => {
            let request = RollbackRequest {
                project: args.project.clone(),
                environment,
                pipeline,
                pipeline_id: None,
            };
            service.plan_rollback(&request).await
        }
    };
    let plan = plan.map_err(|error| anyhow!(error))?;
    match format {
        Format::Table => print_plan(&plan),
        Format::Json => eprintln!(
            "{}",
            serde_json::to_string(&json!({"request": intent, "plan": plan}))?
        ),
    }
    if plan.verdict == Verdict::Deny {
        if matches!(format, Format::Json) {
            print_json(&json!({"request": intent, "plan": plan, "queued": false}))?;
        } else {
            println!("Nothing to confirm: the gate denies it now, so nothing would be queued.");
        }
        return Ok(ExitCode::from(EXIT_DENIED));
    }
    if !confirmed(args.yes)? {
        return Ok(ExitCode::FAILURE);
    }
    let result = service
        .execute(plan, RequestSource::Cli, &Actor::local())
        .await;
    finish_queue(result, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_ids_when_all_digits() {
        assert_eq!(pipeline_ref("12"), (None, Some(12)));
        assert_eq!(
            pipeline_ref("payments-api"),
            (Some("payments-api".to_owned()), None)
        );
        assert_eq!(
            parse_parameter("region=west=eu"),
            Ok(("region".to_owned(), "west=eu".to_owned()))
        );
        assert!(parse_parameter("=x").is_err());
        assert!(parse_parameter("novalue").is_err());
    }
}
