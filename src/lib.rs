//! tollgate: governance, compliance and deployment gating for Azure DevOps.
//!
//! Layers (see docs/ARCHITECTURE.md): `cli` is the adapter; `services` are the use cases,
//! reaching storage and ADO only through traits; `startup` is the composition root.

/// Principals, roles and permissions; token and API-key authentication.
pub mod auth;
/// The command-line adapter.
pub mod cli;

/// `tollgate ask`: the sentence parser.
pub mod ask;
/// `tollgate audit`.
mod cli_audit;
/// `tollgate validate`, `deploy`, `status`, `rollback` and `ask`.
mod cli_deploy;
mod cli_gate;
/// `tollgate mcp`.
mod cli_mcp;
/// `tollgate policy` and `tollgate waiver`.
mod cli_policy;
/// `tollgate serve`, `worker`, `tenant` and `events`.
mod cli_server;
/// Layered configuration and secrets.
pub mod config;
/// The HTTP adapter: API, webhooks, health and metrics.
pub mod http;
/// Workers and the scheduler of the durable job queue.
pub mod jobs;
/// The MCP adapter: gate, findings and approvals as Model Context Protocol tools.
pub mod mcp;
/// Approval notification adapters (Teams, Slack, Standard Webhooks, e-mail).
pub mod notify;
/// Rendering of tables and JSON for people and scripts.
pub mod output;
/// Scan reports: table, JSON, SARIF, Markdown, HTML.
pub mod report;
/// Use cases.
pub mod services;
/// SIEM sink adapters (syslog, files, Splunk HEC, Azure Logs Ingestion).
pub mod siem;
/// The composition root.
pub mod startup;
/// Prometheus metrics.
pub mod telemetry;
