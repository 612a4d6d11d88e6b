//! The service-hook events a change raises, shaped like the samples Microsoft publishes for
//! each event type (`docs/service-hooks/events.md`; copies under `fixtures/servicehooks/events`),
//! with the resource taken from the simulated objects.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Which optional top-level fields ADO's published sample of an event type carries. The
/// samples differ by age, and a receiver written against one of them meets exactly that set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// The 2016–2023 samples of `tfs` events: `"scope": "all"`.
    Scoped,
    /// `subscriptionId` and `notificationId` (the 2022 `build.complete` sample).
    Notified,
    /// Neither (the `pipelines` samples and the 2025 ones).
    Plain,
}

/// A message in the three forms ADO sends (`message`, `detailedMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub html: String,
    pub markdown: String,
}

impl Message {
    fn new(text: String, html: String, markdown: String) -> Self {
        Self {
            text,
            html,
            markdown,
        }
    }

    fn same(text: String) -> Self {
        Self::new(text.clone(), text.clone(), text)
    }

    fn to_json(&self) -> Value {
        json!({"text": self.text, "html": self.html, "markdown": self.markdown})
    }
}

/// One event as a change raised it, before it is addressed to a subscription.
#[derive(Clone, Debug)]
pub struct HookEvent {
    pub event_type: &'static str,
    pub publisher_id: &'static str,
    pub resource_version: &'static str,
    pub envelope: Envelope,
    pub message: Message,
    pub detailed_message: Message,
    pub resource: Value,
    /// The project the event belongs to (`resourceContainers.project.id`).
    pub project_id: String,
    /// The publisher inputs (subscription filters) this event can be told apart by, with
    /// its value for each: `projectId`, `repository`, `branch`, `workItemType` …
    pub inputs: Vec<(&'static str, String)>,
}

/// Inputs a subscription carries that are bookkeeping, not filters.
const NOT_FILTERS: &[&str] = &["hostId", "tfsSubscriptionId"];

impl HookEvent {
    /// Whether a subscription's publisher inputs let this event through. An empty value means
    /// "[Any]", as in ADO; inputs this event has no value for (such as `pushedBy`, which needs
    /// group membership) do not filter it out.
    pub fn passes(&self, publisher_inputs: &BTreeMap<String, String>) -> bool {
        publisher_inputs.iter().all(|(name, wanted)| {
            let wanted = wanted.trim();
            if wanted.is_empty() || NOT_FILTERS.contains(&name.as_str()) {
                return true;
            }
            match self
                .inputs
                .iter()
                .find(|(input, _)| input.eq_ignore_ascii_case(name))
            {
                None => true,
                Some((input, actual)) => input_matches(input, wanted, actual),
            }
        })
    }

    /// The JSON POSTed for this event: the envelope of its published sample around the resource.
    pub fn envelope(
        &self,
        event_id: &str,
        created_date: &str,
        resource_containers: &Value,
        subscription_id: &str,
        notification_id: u64,
    ) -> Value {
        let mut body = Map::new();
        if self.envelope == Envelope::Notified {
            body.insert("subscriptionId".into(), json!(subscription_id));
            body.insert("notificationId".into(), json!(notification_id));
        }
        body.insert("id".into(), json!(event_id));
        body.insert("eventType".into(), json!(self.event_type));
        body.insert("publisherId".into(), json!(self.publisher_id));
        if self.envelope == Envelope::Scoped {
            body.insert("scope".into(), json!("all"));
        }
        body.insert("message".into(), self.message.to_json());
        body.insert("detailedMessage".into(), self.detailed_message.to_json());
        body.insert("resource".into(), self.resource.clone());
        body.insert("resourceVersion".into(), json!(self.resource_version));
        body.insert("resourceContainers".into(), resource_containers.clone());
        body.insert("createdDate".into(), json!(created_date));
        Value::Object(body)
    }
}

fn input_matches(input: &str, wanted: &str, actual: &str) -> bool {
    match input {
        // Branch filters name the branch ("master" in the published subscription); accept
        // the full ref name too.
        "branch" => {
            let short = |b: &str| b.trim_start_matches("refs/heads/").to_ascii_lowercase();
            short(wanted) == short(actual)
        }
        // An area path filter takes the area and everything under it.
        "areaPath" => {
            let (wanted, actual) = (wanted.to_ascii_lowercase(), actual.to_ascii_lowercase());
            actual == wanted || actual.starts_with(&format!("{wanted}\\"))
        }
        _ => wanted.eq_ignore_ascii_case(actual),
    }
}

fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A person's display name, whether the field holds an identity or a plain name.
fn display_name(value: &Value) -> String {
    match value {
        Value::String(name) => name.clone(),
        other => text(other, "/displayName"),
    }
}

/// An identity as service-hook resources show it (`initiatedBy`, `pushedBy`).
fn short_identity(identity: &Value) -> Value {
    json!({"displayName": identity["displayName"], "id": identity["id"], "uniqueName": identity["uniqueName"]})
}

fn project_of_repository(repository: &Value) -> String {
    text(repository, "/project/id")
}

/// `git.repo.created`, from the repository as the simulator lists it.
pub fn repository_created(repository: &Value, initiated_by: &Value, at: &str) -> HookEvent {
    let (id, name) = (text(repository, "/id"), text(repository, "/name"));
    let web = format!("{}/", text(repository, "/remoteUrl"));
    let message = Message::new(
        format!("A new Git repository was created with name {name} and ID {id}."),
        format!(
            "A new Git repository was created with name <a href=\"{web}\">{name}</a> and ID {id}."
        ),
        format!("A new Git repository was created with name [{name}]({web}) and ID `{id}`."),
    );
    HookEvent {
        event_type: "git.repo.created",
        publisher_id: "tfs",
        resource_version: "1.0-preview.1",
        envelope: Envelope::Plain,
        detailed_message: message.clone(),
        message,
        resource: json!({"repository": repository, "initiatedBy": short_identity(initiated_by), "utcTimestamp": at}),
        project_id: project_of_repository(repository),
        inputs: vec![
            ("projectId", project_of_repository(repository)),
            ("repository", id),
        ],
    }
}

/// `git.repo.deleted`, from the repository as it was listed before the deletion.
pub fn repository_deleted(repository: &Value, initiated_by: &Value, at: &str) -> HookEvent {
    let (id, name) = (text(repository, "/id"), text(repository, "/name"));
    let project = repository["project"].clone();
    let project_name = text(&project, "/name");
    let headline = format!("Git repository {id} was deleted.");
    HookEvent {
        event_type: "git.repo.deleted",
        publisher_id: "tfs",
        resource_version: "1.0-preview.1",
        envelope: Envelope::Plain,
        message: Message::same(headline.clone()),
        detailed_message: Message::new(
            format!(
                "{headline}\r\nProject name: {project_name}\r\n\r\nRepository name: {name}\r\n\r\nRepository can be restored: true\r\n"
            ),
            format!(
                "{headline}<p>Project name: {project_name}</p><p>Repository name: {name}</p><p>Repository can be restored: true</p>"
            ),
            format!(
                "{headline}\r\nProject name: {project_name}\r\n\r\nRepository name: {name}\r\n\r\nRepository can be restored: true\r\n"
            ),
        ),
        resource: json!({"project": project, "repositoryId": id, "repositoryName": name, "isHardDelete": false,
                         "initiatedBy": short_identity(initiated_by), "utcTimestamp": at}),
        project_id: project_of_repository(repository),
        inputs: vec![
            ("projectId", project_of_repository(repository)),
            ("repository", id),
        ],
    }
}

/// One pushed commit and the ref it moved.
pub struct Push<'a> {
    pub repository: &'a Value,
    pub ref_name: &'a str,
    pub old_object_id: &'a str,
    pub new_object_id: &'a str,
    pub comment: &'a str,
    pub pusher: &'a Value,
    pub push_id: u64,
    pub at: &'a str,
}

/// `git.push`.
pub fn push(push: &Push<'_>) -> HookEvent {
    let repository = push.repository;
    let (repository_id, name) = (text(repository, "/id"), text(repository, "/name"));
    let remote = text(repository, "/remoteUrl");
    let branch = push.ref_name.trim_start_matches("refs/heads/");
    let who = display_name(push.pusher);
    let commit_url = format!("{remote}/commit/{}", push.new_object_id);
    let short = push.new_object_id.get(..8).unwrap_or(push.new_object_id);
    let person = json!({"name": who, "email": push.pusher["uniqueName"], "date": push.at});
    HookEvent {
        event_type: "git.push",
        publisher_id: "tfs",
        resource_version: "1.0",
        envelope: Envelope::Scoped,
        message: Message::new(
            format!("{who} pushed updates to branch {branch} of repository {name}."),
            format!("{who} pushed updates to branch {branch} of repository {name}."),
            format!("{who} pushed updates to branch `{branch}` of repository `{name}`."),
        ),
        detailed_message: Message::new(
            format!(
                "{who} pushed 1 commit to branch {branch} of repository {name}.\n - {} {short}",
                push.comment
            ),
            format!(
                "{who} pushed 1 commit to branch <a href=\"{remote}/#version=GB{branch}\">{branch}</a> of repository <a href=\"{remote}/\">{name}</a>.\n<ul>\n<li>{} <a href=\"{commit_url}\">{short}</a>\n</ul>",
                push.comment
            ),
            format!(
                "{who} pushed 1 commit to branch [{branch}]({remote}/#version=GB{branch}) of repository [{name}]({remote}/).\n* {} [{short}]({commit_url})",
                push.comment
            ),
        ),
        resource: json!({
            "commits": [{"commitId": push.new_object_id, "author": person, "committer": person,
                         "comment": push.comment, "url": commit_url}],
            "refUpdates": [{"name": push.ref_name, "oldObjectId": push.old_object_id, "newObjectId": push.new_object_id}],
            "repository": repository,
            "pushedBy": short_identity(push.pusher),
            "pushId": push.push_id,
            "date": push.at,
            "url": format!("{}/pushes/{}", text(repository, "/url"), push.push_id),
        }),
        project_id: project_of_repository(repository),
        inputs: vec![
            ("projectId", project_of_repository(repository)),
            ("repository", repository_id),
            ("branch", push.ref_name.to_owned()),
        ],
    }
}

fn vote_text(vote: i64) -> &'static str {
    match vote {
        10 => "Approved",
        5 => "Approved with suggestions",
        -5 => "Waiting for the author",
        -10 => "Rejected",
        _ => "No vote",
    }
}

/// `git.pullrequest.updated` for a changed vote (notification type `ReviewerVoteNotification`).
pub fn pull_request_voted(pull_request: &Value, voter: &Value, vote: i64) -> HookEvent {
    let id = text(pull_request, "/pullRequestId");
    let title = text(pull_request, "/title");
    let who = display_name(voter);
    let url = text(pull_request, "/url");
    let verdict = vote_text(vote);
    let project_id = text(pull_request, "/repository/project/id");
    HookEvent {
        event_type: "git.pullrequest.updated",
        publisher_id: "tfs",
        resource_version: "1.0",
        envelope: Envelope::Scoped,
        message: Message::new(
            format!("{who} voted {verdict} on pull request {id} ({title})"),
            format!("{who} voted {verdict} on <a href=\"{url}\">pull request {id}</a> ({title})"),
            format!("{who} voted {verdict} on [pull request {id}]({url}) ({title})"),
        ),
        detailed_message: Message::new(
            format!("{who} voted {verdict} on pull request {id} ({title})\r\n"),
            format!("{who} voted {verdict} on <a href=\"{url}\">pull request {id}</a> ({title})"),
            format!("{who} voted {verdict} on [pull request {id}]({url}) ({title})\r\n"),
        ),
        resource: pull_request.clone(),
        project_id: project_id.clone(),
        inputs: vec![
            ("projectId", project_id),
            ("repository", text(pull_request, "/repository/id")),
            ("branch", text(pull_request, "/targetRefName")),
            ("notificationType", "ReviewerVoteNotification".to_owned()),
        ],
    }
}

fn work_item_inputs(item: &Value, project_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("projectId", project_id.to_owned()),
        ("workItemType", text(item, "/fields/System.WorkItemType")),
        ("areaPath", text(item, "/fields/System.AreaPath")),
    ]
}

/// "Epic #12 (Epic 12)" and its link, as the work-item messages start.
fn work_item_headline(item: &Value, organization_url: &str) -> (String, String) {
    let id = text(item, "/id");
    let label = format!(
        "{} #{id} ({})",
        text(item, "/fields/System.WorkItemType"),
        text(item, "/fields/System.Title")
    );
    (label, format!("{organization_url}/_workitems/edit/{id}"))
}

fn work_item_message(
    label: &str,
    link: &str,
    verb: &str,
    who: &str,
    details: &[String],
) -> [Message; 2] {
    let (kind_and_id, title) = label.split_once(" (").unwrap_or((label, ""));
    let title = format!("({title}");
    let message = Message::new(
        format!("{label} {verb} by {who}.\r\n({link})"),
        format!("<a href=\"{link}\">{kind_and_id}</a> {title} {verb} by {who}."),
        format!("[{kind_and_id}]({link}) {title} {verb} by {who}."),
    );
    let text_list: String = details.iter().map(|d| format!("- {d}\r\n")).collect();
    let html_list: Vec<String> = details.iter().map(|d| format!("<li>{d}</li>")).collect();
    let markdown_list: String = details.iter().map(|d| format!("* {d}\r\n")).collect();
    let detailed = Message::new(
        format!("{}\r\n\r\n{text_list}", message.text),
        format!("{}<ul>\r\n{}</ul>", message.html, html_list.join("\r\n")),
        format!("{}\r\n\r\n{markdown_list}", message.markdown),
    );
    [message, detailed]
}

fn work_item_summary(item: &Value) -> Vec<String> {
    vec![
        format!("Area: {}", text(item, "/fields/System.AreaPath")),
        format!("Iteration: {}", text(item, "/fields/System.IterationPath")),
        format!("State: {}", text(item, "/fields/System.State")),
    ]
}

/// `workitem.created`, from the new work item.
pub fn work_item_created(item: &Value, project_id: &str, organization_url: &str) -> HookEvent {
    let (label, link) = work_item_headline(item, organization_url);
    let who = display_name(&item["fields"]["System.CreatedBy"]);
    let [message, detailed_message] =
        work_item_message(&label, &link, "created", &who, &work_item_summary(item));
    let id = text(item, "/id");
    let mut resource = item.clone();
    let api = format!("{organization_url}/_apis/wit/workItems/{id}");
    resource["_links"] = json!({
        "self": {"href": api}, "workItemUpdates": {"href": format!("{api}/updates")},
        "workItemRevisions": {"href": format!("{api}/revisions")},
        "fields": {"href": format!("{organization_url}/_apis/wit/fields")},
    });
    HookEvent {
        event_type: "workitem.created",
        publisher_id: "tfs",
        resource_version: "1.0",
        envelope: Envelope::Scoped,
        message,
        detailed_message,
        resource,
        project_id: project_id.to_owned(),
        inputs: work_item_inputs(item, project_id),
    }
}

/// `workitem.updated` in the update shape (`fields.{name}.oldValue/newValue`, `revision`).
pub fn work_item_updated(
    before: &Value,
    after: &Value,
    project_id: &str,
    organization_url: &str,
) -> HookEvent {
    let (label, link) = work_item_headline(after, organization_url);
    let who = display_name(&after["fields"]["System.ChangedBy"]);
    let empty = Map::new();
    let old_fields = before["fields"].as_object().unwrap_or(&empty);
    let new_fields = after["fields"].as_object().unwrap_or(&empty);
    let mut deltas = Map::new();
    deltas.insert(
        "System.Rev".into(),
        json!({"oldValue": before["rev"], "newValue": after["rev"]}),
    );
    for (name, value) in new_fields {
        match old_fields.get(name) {
            Some(old) if old == value => {}
            Some(old) => {
                deltas.insert(name.clone(), json!({"oldValue": old, "newValue": value}));
            }
            None => {
                deltas.insert(name.clone(), json!({"newValue": value}));
            }
        }
    }
    let changed: Vec<String> = deltas
        .iter()
        .filter(|(name, _)| name.as_str() == "System.State")
        .map(|(_, delta)| format!("New State: {}", text(delta, "/newValue")))
        .collect();
    let [message, detailed_message] = work_item_message(&label, &link, "updated", &who, &changed);
    let id = text(after, "/id");
    let rev = text(after, "/rev");
    let api = format!("{organization_url}/_apis/wit/workItems/{id}");
    let resource = json!({
        "id": after["rev"], "workItemId": after["id"], "rev": after["rev"],
        "revisedBy": after["fields"]["System.ChangedBy"], "revisedDate": "9999-01-01T00:00:00Z",
        "fields": deltas,
        "_links": {"self": {"href": format!("{api}/updates/{rev}")}, "parent": {"href": api},
                   "workItemUpdates": {"href": format!("{api}/updates")}},
        "url": format!("{api}/updates/{rev}"),
        "revision": {"id": after["id"], "rev": after["rev"], "fields": after["fields"],
                     "url": format!("{api}/revisions/{rev}")},
    });
    HookEvent {
        event_type: "workitem.updated",
        publisher_id: "tfs",
        resource_version: "1.0",
        envelope: Envelope::Scoped,
        message,
        detailed_message,
        resource,
        project_id: project_id.to_owned(),
        inputs: work_item_inputs(after, project_id),
    }
}

/// `workitem.deleted`: the item as it was, now in the recycle bin.
pub fn work_item_deleted(item: &Value, project_id: &str, organization_url: &str) -> HookEvent {
    let (label, _) = work_item_headline(item, organization_url);
    let who = display_name(&item["fields"]["System.ChangedBy"]);
    let summary = work_item_summary(item);
    let headline = format!("{label} deleted by {who}.");
    let bin = format!(
        "{organization_url}/_apis/wit/recyclebin/{}",
        text(item, "/id")
    );
    let mut resource = item.clone();
    resource["_links"] = json!({"self": {"href": bin}, "fields": {"href": format!("{organization_url}/_apis/wit/fields")}});
    resource["url"] = json!(bin);
    let text_list: String = summary.iter().map(|d| format!("- {d}\r\n")).collect();
    let html_list: Vec<String> = summary.iter().map(|d| format!("<li>{d}</li>")).collect();
    let markdown_list: String = summary.iter().map(|d| format!("* {d}\r\n")).collect();
    HookEvent {
        event_type: "workitem.deleted",
        publisher_id: "tfs",
        resource_version: "1.0",
        envelope: Envelope::Scoped,
        message: Message::same(headline.clone()),
        detailed_message: Message::new(
            format!("{headline}\r\n\r\n{text_list}"),
            format!("{headline}<ul>\r\n{}</ul>", html_list.join("\r\n")),
            format!("{headline}\r\n\r\n{markdown_list}"),
        ),
        resource,
        project_id: project_id.to_owned(),
        inputs: work_item_inputs(item, project_id),
    }
}

/// "Succeeded" for "succeeded": the casing of ADO's status filters.
fn capitalised(word: &str) -> String {
    let mut characters = word.chars();
    characters
        .next()
        .map(|first| first.to_uppercase().chain(characters).collect())
        .unwrap_or_default()
}

fn build_web_url(build: &Value, organization_url: &str) -> String {
    format!(
        "{organization_url}/{}/_build/results?buildId={}",
        text(build, "/project/id"),
        text(build, "/id")
    )
}

/// `build.complete`, from the finished build.
pub fn build_complete(build: &Value, organization_url: &str) -> HookEvent {
    let number = text(build, "/buildNumber");
    let result = text(build, "/result");
    let web = build_web_url(build, organization_url);
    let message = Message::new(
        format!("Build {number} {result}"),
        format!("Build <a href=\"{web}\">{number}</a> {result}"),
        format!("Build [{number}]({web}) {result}"),
    );
    let project_id = text(build, "/project/id");
    HookEvent {
        event_type: "build.complete",
        publisher_id: "tfs",
        resource_version: "2.0",
        envelope: Envelope::Notified,
        detailed_message: message.clone(),
        message,
        resource: build.clone(),
        project_id: project_id.clone(),
        inputs: vec![
            ("projectId", project_id),
            ("definitionName", text(build, "/definition/name")),
            ("buildStatus", capitalised(&result)),
        ],
    }
}

/// The `repositories` of the pipelines events: the commit the run built, as a change.
fn run_repositories(build: &Value, repository: Option<&Value>) -> Vec<Value> {
    let requester = &build["requestedFor"];
    let person = json!({"name": requester["displayName"], "email": requester["uniqueName"], "date": build["queueTime"]});
    repository
        .map(|repository| {
            json!({"type": "Git", "change": {"author": person, "committer": person,
                   "message": format!("Build {}", text(build, "/sourceVersion"))},
                   "url": repository["remoteUrl"]})
        })
        .into_iter()
        .collect()
}

/// `ms.vss-pipelines.run-state-changed-event`, from the run, its build (for the commit) and
/// the repository it ran on.
pub fn run_state_changed(
    run: &Value,
    build: &Value,
    repository: Option<&Value>,
    organization_url: &str,
) -> HookEvent {
    let name = text(run, "/name");
    let result = text(run, "/result");
    let web = build_web_url(build, organization_url);
    let message = Message::new(
        format!("Run {name} {result}."),
        format!("Run <a href=\"{web}\">{name}</a> {result}."),
        format!("Run [{name}]({web}) {result}."),
    );
    let project_id = text(build, "/project/id");
    HookEvent {
        event_type: "ms.vss-pipelines.run-state-changed-event",
        publisher_id: "pipelines",
        resource_version: "5.1-preview.1",
        envelope: Envelope::Plain,
        detailed_message: message.clone(),
        message,
        resource: json!({"run": run, "pipeline": run["pipeline"], "repositories": run_repositories(build, repository)}),
        project_id: project_id.clone(),
        inputs: vec![
            ("projectId", project_id),
            ("PipelineId", text(run, "/pipeline/id")),
            ("runStateId", capitalised(&text(run, "/state"))),
            ("runResultId", capitalised(&result)),
        ],
    }
}

/// One stage of a run as the stage event shows it.
pub struct StageChange<'a> {
    /// The stage's timeline record id.
    pub id: &'a str,
    pub name: &'a str,
    /// `notStarted`, `waiting`, `running` or `completed`.
    pub state: &'a str,
    /// Set once the stage is completed: `succeeded`, `failed`, `skipped` …
    pub result: Option<&'a str>,
}

/// `ms.vss-pipelines.stage-state-changed-event`, from the stage, the run as it is now, its
/// build and the repository it ran on. The run appears as in the published sample: without
/// its links, url and resources.
pub fn stage_state_changed(
    stage: &StageChange<'_>,
    run: &Value,
    build: &Value,
    repository: Option<&Value>,
    organization_url: &str,
) -> HookEvent {
    let run_name = text(run, "/name");
    let web = build_web_url(build, organization_url);
    let pipeline_web = format!(
        "{organization_url}/{}/_build/definition?definitionId={}",
        text(build, "/project/id"),
        text(run, "/pipeline/id")
    );
    let outcome = stage.result.unwrap_or(stage.state);
    let stage_name = stage.name;
    let message = Message::new(
        format!("Run {run_name} stage {stage_name} {outcome}."),
        format!("Run {run_name} stage <a href=\"{web}\">{stage_name}</a> {outcome}."),
        format!("Run {run_name} stage [{stage_name}]({web}) {outcome}."),
    );
    let mut run_summary = run.clone();
    if let Some(fields) = run_summary.as_object_mut() {
        for hidden in ["_links", "url", "resources", "templateParameters"] {
            fields.remove(hidden);
        }
    }
    let project_id = text(build, "/project/id");
    HookEvent {
        event_type: "ms.vss-pipelines.stage-state-changed-event",
        publisher_id: "pipelines",
        resource_version: "5.1-preview.1",
        envelope: Envelope::Plain,
        detailed_message: message.clone(),
        message,
        resource: json!({
            "stage": {"_links": {"web": {"href": web}, "pipeline.web": {"href": pipeline_web}},
                      "id": stage.id, "name": stage_name, "displayName": null,
                      "state": stage.state, "result": stage.result},
            "run": run_summary, "pipeline": run["pipeline"],
            "repositories": run_repositories(build, repository),
        }),
        project_id: project_id.clone(),
        inputs: vec![
            ("projectId", project_id),
            ("PipelineId", text(run, "/pipeline/id")),
            ("stageNameId", stage_name.to_owned()),
            ("stageStateId", capitalised(stage.state)),
            (
                "stageResultId",
                capitalised(stage.result.unwrap_or_default()),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_match_as_ado_matches_them() {
        let repository = json!({"id": "r1", "name": "web", "remoteUrl": "https://x/_git/web",
                                "url": "https://x/_apis/git/repositories/r1", "project": {"id": "P1", "name": "Payments"}});
        let pusher = json!({"displayName": "Ana", "id": "a", "uniqueName": "ana@x"});
        let event = push(&Push {
            repository: &repository,
            ref_name: "refs/heads/main",
            old_object_id: "0",
            new_object_id: "1234567890",
            comment: "change",
            pusher: &pusher,
            push_id: 7,
            at: "2026-01-01T00:00:00Z",
        });
        assert!(event.passes(&inputs(&[])));
        assert!(event.passes(&inputs(&[("projectId", "p1"), ("branch", "main")])));
        assert!(event.passes(&inputs(&[
            ("branch", "refs/heads/main"),
            ("repository", "")
        ])));
        assert!(event.passes(&inputs(&[("hostId", "h"), ("pushedBy", "group")])));
        assert!(!event.passes(&inputs(&[("projectId", "P2")])));
        assert!(!event.passes(&inputs(&[("repository", "r2")])));
        assert!(!event.passes(&inputs(&[("branch", "develop")])));
    }

    #[test]
    fn area_paths_match_their_subtree_only() {
        assert!(input_matches("areaPath", "Payments", "Payments"));
        assert!(input_matches("areaPath", "payments", "Payments\\Team A"));
        assert!(!input_matches("areaPath", "Pay", "Payments"));
    }

    #[test]
    fn a_work_item_update_lists_old_and_new_values() {
        let before = json!({"id": 5, "rev": 1, "fields": {"System.State": "New", "System.Title": "t",
                            "System.WorkItemType": "Task", "System.AreaPath": "P", "System.ChangedBy": {"displayName": "Bo"}}});
        let mut after = before.clone();
        after["rev"] = json!(2);
        after["fields"]["System.State"] = json!("Active");
        let event = work_item_updated(&before, &after, "p", "https://dev.azure.com/o");
        assert_eq!(
            event.resource["fields"]["System.State"],
            json!({"oldValue": "New", "newValue": "Active"})
        );
        assert_eq!(
            event.resource["fields"]["System.Rev"],
            json!({"oldValue": 1, "newValue": 2})
        );
        assert!(event.resource["fields"].get("System.Title").is_none());
        assert_eq!(event.resource["workItemId"], 5);
        assert!(event.detailed_message.text.contains("New State: Active"));
    }
}
