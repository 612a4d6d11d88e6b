//! `tollgate policy …` and `tollgate waiver …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets};
use tollgate_domain::TenantId;
use tollgate_policy::cases;

use crate::cli::{PolicyAction, WaiverAction};
use crate::config::{self, Overrides};
use crate::output::Format;
use crate::startup;

fn load_with(
    config_file: Option<&Path>,
    dirs: &[PathBuf],
) -> Result<(std::sync::Arc<tollgate_policy::PolicySet>, Vec<String>)> {
    let mut loaded = config::load(config_file, &Overrides::default())?;
    loaded.config.policy.dirs.extend(dirs.iter().cloned());
    startup::policies(&loaded.config)
}

fn report_problems(problems: &[String]) {
    for problem in problems {
        eprintln!("warning: policy not loaded: {problem}");
    }
}

pub async fn run(config_file: Option<&Path>, action: PolicyAction) -> Result<ExitCode> {
    match action {
        PolicyAction::List { policies, format } => {
            let (set, problems) = load_with(config_file, &policies)?;
            report_problems(&problems);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(set.controls())?),
                Format::Table => {
                    let mut table = Table::new();
                    table.load_style(presets::UTF8_FULL_CONDENSED);
                    table.set_header(vec!["id", "severity", "kind", "title"]);
                    for control in set.controls() {
                        table.add_row(vec![
                            control.id.clone(),
                            control.severity.to_string(),
                            control.kind.to_string(),
                            control.title.clone(),
                        ]);
                    }
                    println!("{table}\n{} controls", set.controls().len());
                }
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyAction::Explain { id, policies } => {
            let (set, problems) = load_with(config_file, &policies)?;
            report_problems(&problems);
            let Some(control) = set.control(&id) else {
                bail!("no control {id:?}; `tollgate policy list` shows them all");
            };
            println!("{} — {}\n", control.id, control.title);
            println!(
                "severity:     {}\nresource:     {}\npermission:   {}",
                control.severity, control.kind, control.permission
            );
            println!(
                "frameworks:   {}\nsource:       {}:{}",
                control.frameworks.join(", "),
                control.source,
                control.line
            );
            println!(
                "\n{}\n\nWhy: {}\n\nFix: {}",
                control.description, control.rationale, control.remediation
            );
            if !control.parameters.is_empty() {
                println!(
                    "\nParameters (override in tollgate.toml under [policy.params.{}]):",
                    control.id
                );
                for (name, value) in &control.parameters {
                    println!("  {name} = {value}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyAction::Test { dir } => {
            let (set, problems) = load_with(config_file, std::slice::from_ref(&dir))?;
            report_problems(&problems);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!(
                    "no case files (*.yaml) in {}; see docs/POLICY-INPUT.md",
                    dir.display()
                );
            }
            let (mut passed, mut failed) = (0, 0);
            for file in files {
                let name = file.display().to_string();
                let text =
                    std::fs::read_to_string(&file).with_context(|| format!("reading {name}"))?;
                let outcomes = cases::parse(&name, &text).and_then(|c| cases::run(&set, &name, &c));
                match outcomes {
                    Err(error) => {
                        failed += 1;
                        println!("FAIL {error}");
                    }
                    Ok(outcomes) => {
                        for outcome in outcomes {
                            match outcome.failure {
                                None => passed += 1,
                                Some(why) => {
                                    failed += 1;
                                    println!(
                                        "FAIL {name}: {} ({}): {why}",
                                        outcome.note, outcome.control
                                    );
                                }
                            }
                        }
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 && problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyAction::Eval {
            input,
            control,
            policies,
        } => {
            let (set, problems) = load_with(config_file, &policies)?;
            report_problems(&problems);
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&input)
                    .with_context(|| format!("reading {}", input.display()))?
            };
            let document: serde_json::Value =
                serde_json::from_str(&text).context("the input is not JSON")?;
            let violations = match control {
                Some(id) => set.evaluate_control(&id, &document)?,
                None => set.evaluate(&document)?,
            };
            println!("{}", serde_json::to_string_pretty(&violations)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn waiver(config_file: Option<&Path>, action: WaiverAction) -> Result<ExitCode> {
    let db = match &action {
        WaiverAction::Add { db, .. }
        | WaiverAction::List { db }
        | WaiverAction::Remove { db, .. } => db.db.clone(),
    };
    let loaded = config::load(
        config_file,
        &Overrides {
            db,
            ..Overrides::default()
        },
    )?;
    let store = startup::finding_store(&loaded.config).await?;
    let tenant = TenantId::default_tenant();
    match action {
        WaiverAction::Add {
            control,
            scope,
            owner,
            reason,
            expires,
            ..
        } => {
            let (set, _) = startup::policies(&loaded.config)?;
            if set.control(&control).is_none() {
                bail!("no control {control:?}; `tollgate policy list` shows them all");
            }
            if expires <= time::OffsetDateTime::now_utc() {
                bail!("the expiry must be in the future");
            }
            let id = set
                .control(&control)
                .map(|c| c.id.clone())
                .unwrap_or(control);
            let waiver = tollgate_store::NewWaiver {
                control: id,
                scope,
                owner,
                reason,
                expires_at: expires,
            };
            let record = crate::services::audit_events::waiver_created(
                &crate::services::audit_events::Actor::local(),
                &waiver,
                time::OffsetDateTime::now_utc(),
            );
            let waiver = store.add_waiver(&tenant, &waiver, &[record]).await?;
            println!("waiver {} added; it applies from the next scan", waiver.id);
        }
        WaiverAction::List { .. } => {
            let mut table = Table::new();
            table.load_style(presets::UTF8_FULL_CONDENSED);
            table.set_header(vec!["id", "control", "scope", "owner", "expires", "reason"]);
            for waiver in store.waivers(&tenant).await? {
                table.add_row(vec![
                    waiver.id.to_string(),
                    waiver.control,
                    waiver.scope,
                    waiver.owner,
                    waiver.expires_at.date().to_string(),
                    waiver.reason,
                ]);
            }
            println!("{table}");
        }
        WaiverAction::Remove { id, .. } => {
            let record = crate::services::audit_events::waiver_removed(
                &crate::services::audit_events::Actor::local(),
                id,
                time::OffsetDateTime::now_utc(),
            );
            if !store.remove_waiver(&tenant, id, &[record]).await? {
                bail!("no waiver {id}");
            }
            println!("waiver {id} removed; its findings reopen at the next scan");
        }
    }
    Ok(ExitCode::SUCCESS)
}
