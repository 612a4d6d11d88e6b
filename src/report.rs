//! Scan reports: a terminal table, stable JSON, SARIF 2.1.0, Markdown and self-contained HTML.

use std::fmt::Write as _;

use comfy_table::{Cell, Table, presets};
use serde_json::{Value, json};
use tollgate_policy::Severity;

use crate::services::scan::{ReportFinding, ScanReport};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanFormat {
    #[default]
    Table,
    Json,
    Sarif,
    Markdown,
    Html,
}

pub fn render(report: &ScanReport, format: ScanFormat) -> String {
    match format {
        ScanFormat::Table => table(report),
        ScanFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        ScanFormat::Sarif => serde_json::to_string_pretty(&sarif(report)).unwrap_or_default(),
        ScanFormat::Markdown => markdown(report),
        ScanFormat::Html => html(report),
    }
}

fn resource_label(finding: &ReportFinding) -> String {
    match &finding.resource_name {
        Some(name) if !name.is_empty() => format!("{} {name}", finding.resource_kind),
        _ => format!("{} {}", finding.resource_kind, finding.resource_key),
    }
}

pub fn summary_line(report: &ScanReport) -> String {
    let counts: Vec<String> = Severity::ALL
        .iter()
        .map(|s| format!("{} {}", report.by_severity.get(s).copied().unwrap_or(0), s))
        .collect();
    format!(
        "{} findings ({}) from {} controls over {} resources; {} waived, {} new, {} fixed since the last scan, {} not evaluated",
        report.findings.len(),
        counts.join(", "),
        report.controls_evaluated,
        report.resources_evaluated,
        report.waived.len(),
        report.lifecycle.opened + report.lifecycle.reopened,
        report.lifecycle.fixed,
        report.not_evaluated.len()
    )
}

fn table(report: &ScanReport) -> String {
    let mut text = String::new();
    for severity in Severity::ALL {
        let group: Vec<&ReportFinding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(
            text,
            "\n{} ({})",
            severity.as_str().to_uppercase(),
            group.len()
        );
        let mut table = Table::new();
        table.load_style(presets::UTF8_FULL_CONDENSED);
        table.set_header(vec!["control", "resource", "finding", "action", "status"]);
        for finding in group {
            table.add_row(vec![
                Cell::new(&finding.control),
                Cell::new(resource_label(finding)),
                Cell::new(&finding.message),
                Cell::new(&finding.action),
                Cell::new(finding.status.as_str()),
            ]);
        }
        let _ = writeln!(text, "{table}");
    }
    if !report.dry_run.is_empty() {
        let _ = writeln!(
            text,
            "\nDry run ({} findings of controls being tried out, not counted):",
            report.dry_run.len()
        );
        for finding in report.dry_run.iter().take(20) {
            let _ = writeln!(
                text,
                "  {} {}: {}",
                finding.control,
                resource_label(finding),
                finding.message
            );
        }
    }
    if !report.not_evaluated.is_empty() {
        let _ = writeln!(text, "\nNot evaluated:");
        for item in &report.not_evaluated {
            let _ = writeln!(text, "  {} {}: {}", item.control, item.title, item.reason);
        }
    }
    if !report.load_problems.is_empty() {
        let _ = writeln!(text, "\nPolicies that could not be loaded (the rest ran):");
        for problem in &report.load_problems {
            let _ = writeln!(text, "  {problem}");
        }
    }
    let _ = writeln!(text, "\n{}", summary_line(report));
    text
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub's and ADO's code-scanning views rank by this CVSS-like number.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn uri_segment(raw: &str) -> String {
    tollgate_domain::ado_api::encode_segment(raw)
}

/// SARIF 2.1.0: one run, a rule per control, a result per active finding. Resources are not
/// files, so each result carries a logical location (the ADO object) and an artifact URI of
/// the form `ado/{kind}/{key}` that stays stable across scans.
pub fn sarif(report: &ScanReport) -> Value {
    let rules: Vec<Value> = report
        .controls
        .iter()
        .map(|control| {
            json!({
                "id": control.id,
                "name": control.title,
                "shortDescription": {"text": control.title},
                "fullDescription": {"text": if control.description.is_empty() { &control.title } else { &control.description }},
                "help": {"text": control.remediation, "markdown": control.remediation},
                "defaultConfiguration": {"level": sarif_level(control.severity)},
                "properties": {"tags": control.frameworks, "security-severity": security_severity(control.severity), "resource-kind": control.kind},
            })
        })
        .collect();
    let index: std::collections::BTreeMap<&str, usize> = report
        .controls
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| {
            let mut result = json!({
                "ruleId": finding.control,
                "level": sarif_level(finding.severity),
                "message": {"text": format!("{}: {}", resource_label(finding), finding.message)},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": format!("ado/{}/{}", finding.resource_kind, uri_segment(&finding.resource_key))}},
                    "logicalLocations": [{"name": finding.resource_name.clone().unwrap_or_else(|| finding.resource_key.clone()),
                                          "fullyQualifiedName": format!("{}/{}", finding.resource_kind, finding.resource_key),
                                          "kind": finding.resource_kind}],
                }],
                "partialFingerprints": {"tollgate/v1": format!("{}|{}|{}", finding.control, finding.resource_kind, finding.resource_key)},
                "properties": {"status": finding.status, "evidence": finding.evidence, "firstSeen": finding.first_seen, "project": finding.project},
            });
            if let Some(position) = index.get(finding.control.as_str()) {
                result["ruleIndex"] = json!(position);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION"), "informationUri": "https://example.invalid/tollgate", "rules": rules}},
            "invocations": [{"executionSuccessful": true, "endTimeUtc": report.scanned_at}],
            "results": results,
        }],
    })
}

fn markdown_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Markdown for pull-request comments: a summary and the most severe findings.
fn markdown(report: &ScanReport) -> String {
    const SHOWN: usize = 50;
    let mut text = String::from("## tollgate scan\n\n| severity | findings |\n|---|---|\n");
    for severity in Severity::ALL {
        let _ = writeln!(
            text,
            "| {severity} | {} |",
            report.by_severity.get(&severity).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(text, "\n{}\n", summary_line(report));
    if !report.findings.is_empty() {
        text.push_str("| severity | control | resource | finding |\n|---|---|---|---|\n");
        for finding in report.findings.iter().take(SHOWN) {
            let _ = writeln!(
                text,
                "| {} | {} {} | {} | {} |",
                finding.severity,
                finding.control,
                markdown_escape(&finding.title),
                markdown_escape(&resource_label(finding)),
                markdown_escape(&finding.message)
            );
        }
        if report.findings.len() > SHOWN {
            let _ = writeln!(
                text,
                "\n…and {} more (see the JSON or HTML report).",
                report.findings.len() - SHOWN
            );
        }
    }
    if !report.not_evaluated.is_empty() {
        text.push_str("\n### Not evaluated\n\n");
        for item in &report.not_evaluated {
            let _ = writeln!(
                text,
                "- **{}** {}: {}",
                item.control,
                markdown_escape(&item.title),
                markdown_escape(&item.reason)
            );
        }
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A self-contained HTML report (no external assets) a person can send to a manager.
fn html(report: &ScanReport) -> String {
    let mut body = String::new();
    let _ = write!(body, "<section class=\"cards\">");
    for severity in Severity::ALL {
        let _ = write!(
            body,
            "<div class=\"card {s}\"><div class=\"n\">{n}</div><div>{s}</div></div>",
            s = severity,
            n = report.by_severity.get(&severity).copied().unwrap_or(0)
        );
    }
    let _ = write!(
        body,
        "</section><p class=\"summary\">{}</p>",
        escape(&summary_line(report))
    );
    for severity in Severity::ALL {
        let group: Vec<&ReportFinding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>{} <small>({})</small></h2><table><tr><th>control</th><th>resource</th><th>finding</th><th>remediation</th><th>first seen</th></tr>",
            escape(&severity.as_str().to_uppercase()),
            group.len()
        );
        for finding in group {
            let _ = write!(
                body,
                "<tr><td><b>{}</b><br>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&finding.control),
                escape(&finding.title),
                escape(&resource_label(finding)),
                escape(&finding.message),
                escape(&finding.remediation),
                escape(finding.first_seen.get(..10).unwrap_or(&finding.first_seen))
            );
        }
        body.push_str("</table>");
    }
    if !report.not_evaluated.is_empty() {
        body.push_str("<h2>Not evaluated</h2><ul>");
        for item in &report.not_evaluated {
            let _ = write!(
                body,
                "<li><b>{}</b> {}: {}</li>",
                escape(&item.control),
                escape(&item.title),
                escape(&item.reason)
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("<h2>Controls</h2><table><tr><th>control</th><th>severity</th><th>kind</th><th>findings</th><th>frameworks</th></tr>");
    for control in &report.controls {
        let _ = write!(
            body,
            "<tr><td><b>{}</b> {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&control.id),
            escape(&control.title),
            control.severity,
            control.kind,
            control.findings,
            escape(&control.frameworks.join(", "))
        );
    }
    body.push_str("</table>");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tollgate scan {date}</title><style>{css}</style></head>\
<body><h1>Azure DevOps governance report</h1><p class=\"meta\">Scanned {date} · tenant {tenant}</p>{body}</body></html>\n",
        date = escape(&report.scanned_at),
        tenant = escape(&report.tenant),
        css = CSS,
    )
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}\
h1{margin-bottom:.2rem}.meta{color:#59636e;margin-top:0}.cards{display:flex;gap:1rem;margin:1.5rem 0}\
.card{flex:1;border-radius:8px;padding:1rem;color:#fff;text-transform:capitalize}.card .n{font-size:2rem;font-weight:700}\
.critical{background:#8b0000}.high{background:#cf222e}.medium{background:#bf8700}.low{background:#57606a}\
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}th,td{border-bottom:1px solid #d1d9e0;padding:.4rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}.summary{font-weight:600}small{color:#59636e}";
