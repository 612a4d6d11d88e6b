//! What the audit log records: the catalogue of event types, who acted, on what, and the
//! drafts the store appends in the transaction of the change they record.
//!
//! docs/AUDIT.md is generated from [`AuditEvent::ALL`] (`TOLLGATE_WRITE_DOCS=1 cargo test
//! --test audit_docs`), so the list and the code cannot drift apart.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tollgate_domain::CanonicalJson;
use tollgate_domain::json::Member;
use tollgate_store::AuditDraft;

use crate::auth::Principal;

/// Severity of a record, one scale rendered five ways by the SIEM encoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditSeverity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl AuditSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "informational",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

macro_rules! audit_events {
    ($($variant:ident => $name:literal, $category:literal, $action:literal, $severity:ident, $doc:literal;)+) => {
        /// Every type of record tollgate writes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum AuditEvent { $($variant,)+ }

        impl AuditEvent {
            pub const ALL: &'static [AuditEvent] = &[$(AuditEvent::$variant,)+];

            /// `event.type` in the record.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)+ }
            }

            /// `event.category`: authentication, authorization, configuration, policy,
            /// inventory, pipeline, deployment, integrity.
            pub fn category(self) -> &'static str {
                match self { $(Self::$variant => $category,)+ }
            }

            /// `event.action`: create, update, delete, read, execute, deny, …
            pub fn action(self) -> &'static str {
                match self { $(Self::$variant => $action,)+ }
            }

            pub fn severity(self) -> AuditSeverity {
                match self { $(Self::$variant => AuditSeverity::$severity,)+ }
            }

            /// What a record of this type says, for docs/AUDIT.md.
            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => $doc,)+ }
            }
        }
    };
}

audit_events! {
    Genesis => "log.genesis", "integrity", "create", Informational,
        "Leaf 0 of a tenant's log: origin, hash algorithm, schema version and the verifier keys.";
    KeyRotation => "log.key_rotation", "integrity", "update", High,
        "The log's signing key changed: the new verifier key, signed by the old key.";
    Retention => "log.retention", "integrity", "delete", Medium,
        "Retention withheld the payloads of leaves below a cut (their hashes stay).";
    IntegrityAlert => "integrity.alert", "integrity", "alert", Critical,
        "A consistency check failed before signing, or stored leaves are missing.";
    AdoAudit => "ado.audit", "configuration", "ingest", Informational,
        "An entry of ADO's own audit log, recorded once by its ADO id during a sync.";
    AuthenticationFailed => "auth.failed", "authentication", "login", Medium,
        "A request's credential was missing, malformed, expired, revoked or not trusted.";
    AccessDenied => "auth.denied", "authorization", "deny", Medium,
        "An authenticated principal asked for something its role does not permit.";
    WebhookRejected => "webhook.rejected", "authentication", "deny", Medium,
        "A service-hook delivery with a wrong or missing secret, or for an unknown tenant.";
    ApiKeyCreated => "api_key.created", "authorization", "create", Medium,
        "An API key was created (its id, name, role and expiry; never the secret).";
    ApiKeyRevoked => "api_key.revoked", "authorization", "delete", Medium,
        "An API key was revoked.";
    BootstrapKeyIssued => "api_key.bootstrap", "authorization", "create", High,
        "The one-time bootstrap admin key was issued (first start without an identity provider).";
    WaiverCreated => "waiver.created", "policy", "create", Medium,
        "A risk was accepted: control, scope, owner, reason and expiry.";
    WaiverRemoved => "waiver.removed", "policy", "delete", Low,
        "A waiver was withdrawn.";
    SyncRequested => "sync.requested", "inventory", "execute", Informational,
        "Someone asked for a full or incremental sync.";
    SyncCompleted => "sync.completed", "inventory", "update", Informational,
        "A sync run ended: mode, status, what each kind did.";
    ScanRequested => "scan.requested", "policy", "execute", Informational,
        "Someone asked for a full evaluation.";
    EvaluationCompleted => "evaluation.completed", "policy", "execute", Informational,
        "A policy evaluation run: how many resources were judged, findings opened, fixed and reopened.";
    FindingOpened => "finding.opened", "policy", "create", High,
        "A control failed on a resource (or failed again after it was fixed).";
    FindingFixed => "finding.fixed", "policy", "update", Low,
        "A resource that failed a control passes it now.";
    WebhookReceived => "webhook.received", "inventory", "ingest", Informational,
        "Service-hook deliveries committed in one batch: each event's id, type and body digest.";
    WebhookMalformed => "webhook.malformed", "inventory", "ingest", Low,
        "A delivery that was not a service-hook event; kept for inspection.";
    EventsReplayed => "events.replayed", "inventory", "execute", Low,
        "Stored events were queued for processing again (by ids or time range).";
    JobRetried => "job.retried", "inventory", "execute", Low,
        "A dead-lettered job was put back in the queue.";
    JobDeadLettered => "job.dead", "inventory", "fail", High,
        "A job failed every attempt and stopped; its events are marked failed.";
    ConfigurationLoaded => "config.loaded", "configuration", "update", Medium,
        "The effective configuration (its digest, and how many tenants it serves) a server started with, when it changed.";
    PolicySetLoaded => "policy.loaded", "policy", "update", Medium,
        "The policy bundle (digest, controls, settings, load problems) a server started with, when it changed.";
    TenantAdded => "tenant.added", "configuration", "create", Medium,
        "A tenant was added to the configuration, or created through the API or the command line (recorded in its own log and the operator tenant's).";
    TenantRemoved => "tenant.removed", "configuration", "delete", High,
        "A tenant was removed from the configuration or through the API: its memberships were deleted and its API keys revoked (its data stays).";
    MembershipChanged => "membership.changed", "authorization", "update", High,
        "A principal was given a role in a tenant, its role there changed, or its membership was removed (before and after).";
    AuditExported => "audit.exported", "integrity", "read", Low,
        "The audit log was exported as a bundle (range and checkpoint).";
    GateDecided => "gate.decided", "deployment", "execute", Medium,
        "The gate judged a run entering an environment: the verdict, every rule's finding and action, and the facts it saw.";
    GateRefused => "gate.refused", "deployment", "deny", High,
        "A check call the gate would not judge: its PlanUrl is not the tenant's registered organisation, or its headers were incomplete.";
    GateCallback => "gate.callback", "deployment", "update", Informational,
        "The decision was posted back to the check's plan (TaskCompleted), or posting failed for good.";
    ApprovalRequested => "approval.requested", "deployment", "create", Medium,
        "A deployment waits for approval: environment, run, quorum, approver role, reasons and expiry.";
    ApprovalDecided => "approval.decided", "deployment", "update", Medium,
        "Someone approved or rejected a pending deployment (with their role and comment), or it was cancelled; the resulting state.";
    ApprovalExpired => "approval.expired", "deployment", "update", Medium,
        "A pending approval reached its expiry undecided; the run is failed.";
    CapabilityChanged => "capability.changed", "configuration", "update", High,
        "An admin switched a capability on or off or changed its fallback.";
    DeploymentQueued => "deployment.queued", "deployment", "execute", Medium,
        "A deployment (a pipeline run for an environment) was queued through tollgate, or a rollback re-ran an earlier one.";
}

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// user, service, system, ado
    pub kind: &'static str,
    pub id: String,
    pub name: Option<String>,
    /// How they authenticated: oauth, api_key, webhook_secret.
    pub auth: Option<&'static str>,
    pub ip: Option<String>,
}

impl Actor {
    /// tollgate itself (schedulers, workers, startup).
    pub fn system() -> Self {
        Self {
            kind: "system",
            id: "tollgate".to_owned(),
            name: None,
            auth: None,
            ip: None,
        }
    }

    pub fn principal(principal: &Principal) -> Self {
        let (kind, auth) = if principal.subject.starts_with("apikey:") {
            ("service", "api_key")
        } else {
            ("user", "oauth")
        };
        Self {
            kind,
            id: principal.subject.clone(),
            name: Some(principal.display_name.clone()),
            auth: Some(auth),
            ip: None,
        }
    }

    /// An ADO check calling the gate, authenticated with the tenant's gate credential.
    pub fn ado_check(project_id: &str) -> Self {
        Self {
            kind: "ado",
            id: format!("check:{project_id}"),
            name: None,
            auth: Some("basic"),
            ip: None,
        }
    }

    /// Whoever runs the command line on this machine.
    pub fn local() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            kind: "user",
            id: format!("local:{user}"),
            name: Some(user),
            auth: Some("local"),
            ip: None,
        }
    }

    /// Someone not (yet) known: a failed authentication.
    pub fn anonymous(ip: Option<String>) -> Self {
        Self {
            kind: "anonymous",
            id: "anonymous".to_owned(),
            name: None,
            auth: None,
            ip,
        }
    }

    fn to_json(&self) -> Value {
        let mut actor = Map::new();
        actor.insert("kind".to_owned(), json!(self.kind));
        actor.insert("id".to_owned(), json!(self.id));
        if let Some(name) = &self.name {
            actor.insert("name".to_owned(), json!(name));
        }
        if let Some(auth) = self.auth {
            actor.insert("auth".to_owned(), json!(auth));
        }
        if let Some(ip) = &self.ip {
            actor.insert("ip".to_owned(), json!(ip));
        }
        Value::Object(actor)
    }
}

/// What it was done to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
    pub project: Option<String>,
}

impl Target {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            ..Self::default()
        }
    }

    fn to_json(&self) -> Value {
        let mut target = Map::new();
        target.insert("kind".to_owned(), json!(self.kind));
        target.insert("id".to_owned(), json!(self.id));
        if let Some(name) = &self.name {
            target.insert("name".to_owned(), json!(name));
        }
        if let Some(project) = &self.project {
            target.insert("project".to_owned(), json!(project));
        }
        Value::Object(target)
    }
}

/// A record under construction.
#[derive(Clone, Debug)]
pub struct Record {
    event: AuditEvent,
    time: OffsetDateTime,
    outcome: &'static str,
    severity: AuditSeverity,
    reason: Option<String>,
    actor: Actor,
    target: Option<Target>,
    details: Map<String, Value>,
    /// Details already in canonical form (shared by many records: a gate decision's input).
    encoded_details: Vec<(String, CanonicalJson)>,
    dedupe_key: Option<String>,
}

impl Record {
    pub fn new(event: AuditEvent, actor: &Actor, time: OffsetDateTime) -> Self {
        Self {
            event,
            time,
            outcome: "success",
            severity: event.severity(),
            reason: None,
            actor: actor.clone(),
            target: None,
            details: Map::new(),
            encoded_details: Vec::new(),
            dedupe_key: None,
        }
    }

    #[must_use]
    pub fn failure(mut self) -> Self {
        self.outcome = "failure";
        self
    }

    #[must_use]
    pub fn severity(mut self, severity: AuditSeverity) -> Self {
        self.severity = severity;
        self
    }

    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// A field of `change` (`before`/`after`) or of `details`; values must hold no floats
    /// (the encoder refuses them: a float has no single canonical form).
    #[must_use]
    pub fn detail(mut self, name: &str, value: Value) -> Self {
        self.details.insert(name.to_owned(), value);
        self
    }

    /// A field of `details` already in canonical form: its bytes go into the record as they
    /// are (a value many records share is encoded once, not once per record).
    #[must_use]
    pub fn detail_encoded(mut self, name: &str, value: CanonicalJson) -> Self {
        self.encoded_details.push((name.to_owned(), value));
        self
    }

    #[must_use]
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// The draft the store appends.
    pub fn draft(mut self) -> AuditDraft {
        let mut event = Map::new();
        event.insert("type".to_owned(), json!(self.event.as_str()));
        event.insert("category".to_owned(), json!(self.event.category()));
        event.insert("action".to_owned(), json!(self.event.action()));
        event.insert("outcome".to_owned(), json!(self.outcome));
        event.insert("severity".to_owned(), json!(self.severity.as_str()));
        if let Some(reason) = self.reason {
            event.insert("reason".to_owned(), json!(reason));
        }
        let mut fields = Map::new();
        fields.insert("event".to_owned(), Value::Object(event));
        fields.insert("actor".to_owned(), self.actor.to_json());
        if let Some(target) = &self.target {
            fields.insert("target".to_owned(), target.to_json());
        }
        let mut encoded = BTreeMap::new();
        if !self.encoded_details.is_empty() {
            let members = self
                .details
                .iter()
                .map(|(name, value)| (name.as_str(), Member::Value(value)))
                .chain(
                    self.encoded_details
                        .iter()
                        .map(|(name, value)| (name.as_str(), Member::Encoded(value))),
                );
            // Encoded here, on the caller's task, so the log's writer only copies the bytes.
            // A detail the canonical form refuses (a float) goes into the draft as a value,
            // and the encoder refuses the record naming where, as for any other record (so
            // the stand-in for an encoded part that cannot be parsed back is never stored).
            match CanonicalJson::object(members) {
                Ok(details) => {
                    encoded.insert("details".to_owned(), details);
                }
                Err(_) => {
                    for (name, value) in &self.encoded_details {
                        let value = value.to_value().unwrap_or(Value::Null);
                        self.details.insert(name.clone(), value);
                    }
                }
            }
        }
        if !self.details.is_empty() && encoded.is_empty() {
            fields.insert("details".to_owned(), Value::Object(self.details));
        }
        AuditDraft {
            encoded,
            event_type: self.event.as_str().to_owned(),
            time: self.time,
            fields,
            dedupe_key: self.dedupe_key,
        }
    }
}

pub fn waiver_created(
    actor: &Actor,
    waiver: &tollgate_store::NewWaiver,
    now: OffsetDateTime,
) -> AuditDraft {
    Record::new(AuditEvent::WaiverCreated, actor, now)
        .target(Target::new(
            "waiver",
            format!("{}:{}", waiver.control, waiver.scope),
        ))
        .reason(waiver.reason.chars().take(1_000).collect::<String>())
        .detail(
            "after",
            json!({
                "control": waiver.control, "scope": waiver.scope, "owner": waiver.owner,
                "expires_at": crate::services::audit_events::rfc3339(waiver.expires_at),
            }),
        )
        .draft()
}

pub fn waiver_removed(actor: &Actor, id: i64, now: OffsetDateTime) -> AuditDraft {
    Record::new(AuditEvent::WaiverRemoved, actor, now)
        .target(Target::new("waiver", id.to_string()))
        .draft()
}

pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The record of one entry of ADO's own audit log, deduplicated by its ADO id. The entry's
/// exact JSON is not copied (it may hold floats and be large): its SHA-256 binds the record
/// to the entry kept in the inventory.
pub fn ado_audit_draft(raw: &str) -> Option<AuditDraft> {
    let entry: Value = serde_json::from_str(raw).ok()?;
    let id = entry["id"].as_str().filter(|id| !id.is_empty())?;
    let text = |field: &str, limit: usize| {
        entry[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(limit).collect::<String>())
    };
    let time = entry["timestamp"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let actor = Actor {
        kind: "user",
        id: text("actorUserId", 200)
            .or_else(|| text("actorUPN", 200))
            .unwrap_or_else(|| "unknown".to_owned()),
        name: text("actorDisplayName", 200).or_else(|| text("actorUPN", 200)),
        auth: None,
        ip: text("ipAddress", 64),
    };
    let digest = tollgate_audit::sha256_hex(raw.as_bytes());
    let mut source = Map::new();
    source.insert("system".to_owned(), json!("ado-audit"));
    let mut ado = Map::new();
    ado.insert("id".to_owned(), json!(id));
    if let Some(action) = text("actionId", 200) {
        ado.insert("action_id".to_owned(), json!(action));
    }
    if let Some(area) = text("area", 200) {
        ado.insert("area".to_owned(), json!(area));
    }
    ado.insert("raw_sha256".to_owned(), json!(digest));
    source.insert("ado".to_owned(), Value::Object(ado));
    let mut record =
        Record::new(AuditEvent::AdoAudit, &actor, time).dedupe_key(format!("ado:{id}"));
    if let Some(details) = text("details", 2_000) {
        record = record.reason(details);
    }
    if let Some(project) = text("projectId", 200) {
        record = record.target(Target {
            kind: "ado.project".to_owned(),
            id: project.clone(),
            name: text("projectName", 200),
            project: Some(project),
        });
    }
    let mut draft = record.draft();
    draft
        .fields
        .insert("source".to_owned(), Value::Object(source));
    Some(draft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_unique_names_and_at_least_25_types() {
        let mut names: Vec<&str> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert!(names.len() >= 25, "{}", names.len());
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "duplicate event type names");
    }

    #[test]
    fn a_draft_carries_the_event_actor_and_target() {
        let at = time::macros::datetime!(2026-05-04 12:00 UTC);
        let draft = Record::new(AuditEvent::WaiverCreated, &Actor::system(), at)
            .target(Target::new("waiver", "BP-02:*"))
            .reason("accepted for the migration")
            .detail("after", json!({"owner": "alice"}))
            .draft();
        assert_eq!(draft.event_type, "waiver.created");
        assert_eq!(draft.time, at);
        assert_eq!(draft.fields["event"]["category"], "policy");
        assert_eq!(draft.fields["event"]["severity"], "medium");
        assert_eq!(draft.fields["event"]["outcome"], "success");
        assert_eq!(draft.fields["actor"]["kind"], "system");
        assert_eq!(draft.fields["target"]["id"], "BP-02:*");
        assert_eq!(draft.fields["details"]["after"]["owner"], "alice");
        assert!(draft.dedupe_key.is_none());
    }
}
