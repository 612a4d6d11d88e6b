//! `tollgate gate check`: judge a deployment from the command line, with the same rules,
//! configuration and inventory the server's gate uses (recorded and audited as a dry run).
//! `tollgate gate backtest`: replay the inventory's past deployments against the gate as it is
//! configured now (read-only).

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use tollgate_domain::TenantId;

use crate::cli::DbArgs;
use crate::config::{self, Overrides};
use crate::services::audit_events::Actor;
use crate::services::backtest::{self, BacktestQuery, BacktestReport, Since};
use crate::services::gate::{DeploymentRequest, Outcome, RequestSource};
use crate::services::tenant::TenantContext;
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
    /// Replay past deployments against the current gate rules: what would they have blocked?
    #[command(
        after_help = "Examples:\n  tollgate gate backtest --since 30d\n  tollgate gate backtest --since 2026-10-01 --environment 'prod*' --project Payments --format json\n\n\
Every deployment record of the synced inventory that started in the window is judged as the\n\
gate would have judged it when it started (weekends, holidays, business hours and freezes at\n\
that time; earlier deployments only if they had finished by then; pull requests, work items\n\
and alerts as the inventory holds them now).\n\
Read-only: nothing is recorded, no approval is opened, nothing is audited.\n\
Teams are the deployments' projects (tollgate does not sync team memberships).\n\
Progress goes to stderr."
    )]
    Backtest {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// How far back: days (30d), hours (12h) or a date (2026-10-01, from midnight UTC)
        #[arg(long, default_value = "30d")]
        since: String,
        /// Only environments whose name matches this glob (prod-*)
        #[arg(long, value_name = "GLOB")]
        environment: Option<String>,
        /// Only this project (name or id)
        #[arg(long)]
        project: Option<String>,
        /// Replay at most this many deployments, the newest of the window
        #[arg(long)]
        limit: Option<usize>,
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
}

pub async fn run(config_file: Option<&std::path::Path>, action: GateAction) -> Result<ExitCode> {
    match action {
        GateAction::Check { .. } => check(config_file, action).await,
        GateAction::Backtest {
            db,
            tenant,
            since,
            environment,
            project,
            limit,
            format,
        } => {
            let query = BacktestArgs {
                since,
                environment,
                project,
                limit,
            };
            backtest(config_file, db, &tenant, query, &format).await
        }
    }
}

async fn check(config_file: Option<&std::path::Path>, action: GateAction) -> Result<ExitCode> {
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
    } = action
    else {
        return Err(anyhow!("not a gate check"));
    };
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
    let context = tenant_context(&loaded.config, &tenant).await?;
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

async fn tenant_context(config: &config::Config, tenant: &str) -> Result<TenantContext> {
    let store = startup::configured_store(config).await?;
    let (policies, problems) = startup::policies(config)?;
    let tenant_id = TenantId::parse(tenant)?;
    let contexts = startup::tenant_contexts(config, store, policies, &problems)?;
    contexts
        .into_iter()
        .find(|c| c.id == tenant_id)
        .with_context(|| format!("tenant {tenant} is not configured"))
}

struct BacktestArgs {
    since: String,
    environment: Option<String>,
    project: Option<String>,
    limit: Option<usize>,
}

async fn backtest(
    config_file: Option<&std::path::Path>,
    db: DbArgs,
    tenant: &str,
    args: BacktestArgs,
    format: &str,
) -> Result<ExitCode> {
    if !matches!(format, "table" | "json") {
        return Err(anyhow!("--format {format:?}: use table or json"));
    }
    let since: Since = args.since.parse().map_err(|error| anyhow!("--{error}"))?;
    if args.limit == Some(0) {
        return Err(anyhow!("--limit 0: replay at least one deployment"));
    }
    let loaded = config::load(
        config_file,
        &Overrides {
            db: db.db,
            ..Overrides::default()
        },
    )?;
    let context = tenant_context(&loaded.config, tenant).await?;
    // Now, to the nanosecond: a deployment that started earlier this second is in the window.
    let until = context.gate.now();
    let query = BacktestQuery {
        since: since.start(until),
        until,
        environment: args.environment,
        project: args.project,
        limit: args.limit,
    };
    let report = backtest::backtest(&context.gate, &query, |done, total| {
        if done < total {
            eprintln!("replayed {done} of {total} deployments");
        }
    })
    .await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", backtest_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report for people: totals, then by team and by rule, then the deployments.
fn backtest_table(report: &BacktestReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let totals = &report.totals;
    let counts = &totals.counts;
    let _ = writeln!(
        out,
        "Backtest of tenant {} from {} to {} (gate rules as configured now; nothing recorded)",
        report.tenant, report.since, report.until
    );
    let _ = writeln!(
        out,
        "  replayed {}: would allow {}, would deny {}, would need approval {}, could not judge {}",
        counts.replayed,
        counts.would_allow,
        counts.would_deny,
        counts.would_need_approval,
        counts.could_not_judge
    );
    for (reason, count) in &totals.could_not_judge_because {
        let _ = writeln!(out, "    {count} not judged: {reason}");
    }
    if totals.left_out > 0 {
        let _ = writeln!(
            out,
            "  {} older deployments of the window left out by --limit",
            totals.left_out
        );
    }
    if counts.replayed == 0 {
        let _ = writeln!(
            out,
            "  no deployment records in the window: run `tollgate sync` first, or widen --since"
        );
        return out;
    }
    let _ = writeln!(out, "\nBy team ({}):", report.team_basis);
    let _ = writeln!(
        out,
        "  {:<24} {:>8} {:>6} {:>5} {:>8} {:>10}",
        "team", "replayed", "allow", "deny", "approval", "not judged"
    );
    for team in &report.by_team {
        let c = &team.counts;
        let _ = writeln!(
            out,
            "  {:<24} {:>8} {:>6} {:>5} {:>8} {:>10}",
            team.team,
            c.replayed,
            c.would_allow,
            c.would_deny,
            c.would_need_approval,
            c.could_not_judge
        );
    }
    if !report.by_rule.is_empty() {
        let _ = writeln!(out, "\nBy rule:");
        for rule in &report.by_rule {
            let teams: Vec<String> = rule
                .teams
                .iter()
                .map(|(team, count)| format!("{team} {count}"))
                .collect();
            let _ = writeln!(
                out,
                "  {:<8} {:<8} {:>5} deployments  ({})  e.g. {}",
                rule.rule,
                rule.effect,
                rule.deployments,
                teams.join(", "),
                rule.example
            );
        }
    }
    if !report.blocked.is_empty() {
        let _ = writeln!(out, "\nWould have been stopped:");
        for d in &report.blocked {
            let _ = writeln!(
                out,
                "  {}  {:<8} {} / {} run {} -> {}  by {}  [{}]",
                d.time,
                d.verdict,
                d.project,
                d.pipeline.as_deref().unwrap_or("?"),
                d.run
                    .clone()
                    .or_else(|| d.run_id.map(|id| id.to_string()))
                    .unwrap_or_else(|| "?".to_owned()),
                d.environment,
                d.requester.as_deref().unwrap_or("?"),
                d.rules.join(", ")
            );
        }
    }
    out
}
