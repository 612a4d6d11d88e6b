//! A service-hook subscription as the Subscriptions API stores and shows it, and the Web Hooks
//! target it delivers to.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::events::HookEvent;

/// `status`, as the Subscriptions API names the states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubscriptionStatus {
    Enabled,
    /// An enduring delivery failure: ADO retries the failed notification on a slow schedule
    /// and loses new events meanwhile.
    OnProbation,
    DisabledByUser,
    /// 410 Gone, or every probation retry failed.
    DisabledBySystem,
    DisabledByInactiveIdentity,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::OnProbation => "onProbation",
            Self::DisabledByUser => "disabledByUser",
            Self::DisabledBySystem => "disabledBySystem",
            Self::DisabledByInactiveIdentity => "disabledByInactiveIdentity",
        }
    }
}

/// The only consumer and action the simulator delivers to.
pub const WEB_HOOKS: &str = "webHooks";
pub const HTTP_REQUEST: &str = "httpRequest";
/// How the API shows a confidential input.
const MASK: &str = "********";

/// Where and how a Web Hooks subscription POSTs.
#[derive(Clone, Debug)]
pub struct WebHookTarget {
    pub url: reqwest::Url,
    pub basic_auth: Option<(String, String)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: String,
    pub publisher_id: String,
    pub event_type: String,
    pub resource_version: Option<String>,
    pub consumer_id: String,
    pub consumer_action_id: String,
    pub publisher_inputs: BTreeMap<String, String>,
    pub consumer_inputs: BTreeMap<String, String>,
    pub status: SubscriptionStatus,
    pub probation_retries: u32,
    pub last_probation_retry_date: Option<String>,
    pub created_by: String,
    pub created_date: String,
    pub modified_date: String,
    /// Set for `webHooks`/`httpRequest` subscriptions: the only ones the simulator delivers to.
    pub target: Option<WebHookTarget>,
}

/// A subscription as a client sends it (POST, PUT). Unknown fields are ignored, as ADO ignores
/// them: clients send back what GET returned (`id`, `url`, `createdBy` …).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionBody {
    publisher_id: Option<String>,
    event_type: Option<String>,
    resource_version: Option<String>,
    consumer_id: Option<String>,
    consumer_action_id: Option<String>,
    #[serde(default)]
    publisher_inputs: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    consumer_inputs: Option<BTreeMap<String, Option<String>>>,
    status: Option<SubscriptionStatus>,
}

/// A subscription body that ADO would refuse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSubscription(pub String);

fn required(value: Option<String>, name: &str) -> Result<String, InvalidSubscription> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| InvalidSubscription(format!("The subscription must name its {name}.")))
}

fn inputs(map: Option<BTreeMap<String, Option<String>>>) -> BTreeMap<String, String> {
    map.unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
}

/// The fields of a subscription a body decides, validated.
pub struct Accepted {
    pub publisher_id: String,
    pub event_type: String,
    pub resource_version: Option<String>,
    pub consumer_id: String,
    pub consumer_action_id: String,
    pub publisher_inputs: BTreeMap<String, String>,
    pub consumer_inputs: BTreeMap<String, String>,
    pub status: Option<SubscriptionStatus>,
    pub target: Option<WebHookTarget>,
}

impl SubscriptionBody {
    /// Validate a body. `previous` is the subscription a PUT replaces: a masked password sent
    /// back keeps the stored one, as ADO does with confidential inputs.
    pub fn accept(self, previous: Option<&Subscription>) -> Result<Accepted, InvalidSubscription> {
        let publisher_id = required(self.publisher_id, "publisherId")?;
        let event_type = required(self.event_type, "eventType")?;
        let consumer_id = required(self.consumer_id, "consumerId")?;
        let consumer_action_id = required(self.consumer_action_id, "consumerActionId")?;
        let mut consumer_inputs = inputs(self.consumer_inputs);
        if consumer_inputs.get("basicAuthPassword").map(String::as_str) == Some(MASK) {
            match previous.and_then(|p| p.consumer_inputs.get("basicAuthPassword")) {
                Some(stored) => {
                    consumer_inputs.insert("basicAuthPassword".into(), stored.clone());
                }
                None => {
                    return Err(InvalidSubscription(
                        "basicAuthPassword: the masked value can only keep a stored password."
                            .into(),
                    ));
                }
            }
        }
        let target = if consumer_id == WEB_HOOKS {
            if consumer_action_id != HTTP_REQUEST {
                return Err(InvalidSubscription(format!(
                    "The consumer {WEB_HOOKS} has no action {consumer_action_id}; it has {HTTP_REQUEST}."
                )));
            }
            Some(web_hook_target(&consumer_inputs)?)
        } else {
            None
        };
        // Only enabled and disabledByUser are a user's to set; the states the service sets
        // (probation, disabled by the system) are kept when a body echoes them back.
        let status = self.status.filter(|status| {
            matches!(
                status,
                SubscriptionStatus::Enabled | SubscriptionStatus::DisabledByUser
            )
        });
        Ok(Accepted {
            publisher_id,
            event_type,
            resource_version: self.resource_version,
            consumer_id,
            consumer_action_id,
            publisher_inputs: inputs(self.publisher_inputs),
            consumer_inputs,
            status,
            target,
        })
    }
}

/// The Web Hooks consumer's inputs, checked as its input descriptors say (`url` a required
/// URI; user name and password without spaces, 1–256 characters; `httpHeaders` one
/// `Name:Value` per line). `resourceDetailsToSend`, `messagesToSend` and
/// `detailedMessagesToSend` are accepted and ignored: the simulator always sends everything.
fn web_hook_target(
    inputs: &BTreeMap<String, String>,
) -> Result<WebHookTarget, InvalidSubscription> {
    let raw_url = inputs
        .get("url")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| InvalidSubscription("url: a Web Hooks subscription needs a URL.".into()))?;
    let url = reqwest::Url::parse(raw_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| InvalidSubscription(format!("url: {raw_url} is not an http(s) URL.")))?;
    let credential = |name: &str| -> Result<Option<String>, InvalidSubscription> {
        match inputs.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(value)
                if value.chars().count() <= 256 && !value.chars().any(char::is_whitespace) =>
            {
                Ok(Some(value.to_owned()))
            }
            Some(_) => Err(InvalidSubscription(format!(
                "{name}: 1 to 256 characters without spaces."
            ))),
        }
    };
    let basic_auth = match (
        credential("basicAuthUsername")?,
        credential("basicAuthPassword")?,
    ) {
        (Some(user), password) => Some((user, password.unwrap_or_default())),
        (None, Some(_)) => {
            return Err(InvalidSubscription(
                "basicAuthPassword: set basicAuthUsername too.".into(),
            ));
        }
        (None, None) => None,
    };
    let headers = match inputs.get("httpHeaders") {
        None => Vec::new(),
        Some(text) => http_headers(text)?,
    };
    Ok(WebHookTarget {
        url,
        basic_auth,
        headers,
    })
}

/// ADO's `httpHeaders` format: "HTTP header keys and values separated by a colon, each
/// key-value pair on its own line".
fn http_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, InvalidSubscription> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let invalid = || {
                InvalidSubscription(format!(
                    "httpHeaders: {line:?} is not a Name:Value header line."
                ))
            };
            let (name, value) = line.split_once(':').ok_or_else(invalid)?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid())?;
            let value = value.trim();
            if value.is_empty() {
                return Err(invalid());
            }
            let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            Ok((name, value))
        })
        .collect()
}

impl Subscription {
    /// Whether this subscription asks for an event (status aside).
    pub fn wants(&self, event: &HookEvent) -> bool {
        self.target.is_some()
            && self.publisher_id.eq_ignore_ascii_case(event.publisher_id)
            && self.event_type.eq_ignore_ascii_case(event.event_type)
            && event.passes(&self.publisher_inputs)
    }

    pub fn apply(&mut self, accepted: Accepted) {
        self.publisher_id = accepted.publisher_id;
        self.event_type = accepted.event_type;
        self.resource_version = accepted.resource_version;
        self.consumer_id = accepted.consumer_id;
        self.consumer_action_id = accepted.consumer_action_id;
        // The service's own inputs survive a replace, as in the published PUT example.
        let mut publisher_inputs = accepted.publisher_inputs;
        for kept in ["hostId", "tfsSubscriptionId"] {
            if let Some(value) = self.publisher_inputs.get(kept) {
                publisher_inputs.insert(kept.to_owned(), value.clone());
            }
        }
        self.publisher_inputs = publisher_inputs;
        self.consumer_inputs = accepted.consumer_inputs;
        self.target = accepted.target;
        if let Some(status) = accepted.status
            && status != self.status
        {
            self.status = status;
            self.probation_retries = 0;
        }
    }

    fn event_description(&self) -> String {
        let filters: Vec<String> = self
            .publisher_inputs
            .iter()
            .filter(|(name, value)| {
                !value.is_empty()
                    && !["hostId", "tfsSubscriptionId", "projectId"].contains(&name.as_str())
            })
            .map(|(name, value)| format!("{name} {value}"))
            .collect();
        if filters.is_empty() {
            String::new()
        } else {
            filters.join(", ")
        }
    }

    fn action_description(&self) -> String {
        match &self.target {
            Some(target) => format!("To host {}", target.url.host_str().unwrap_or_default()),
            None => String::new(),
        }
    }

    /// The subscription as the API returns it; confidential inputs masked.
    pub fn to_json(&self, organization_url: &str) -> Value {
        let consumer_inputs: BTreeMap<&str, &str> = self
            .consumer_inputs
            .iter()
            .map(|(name, value)| {
                let shown = if name == "basicAuthPassword" {
                    MASK
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        let mut body = json!({
            "id": self.id,
            "url": format!("{organization_url}/_apis/hooks/subscriptions/{}", self.id),
            "status": self.status.as_str(),
            "publisherId": self.publisher_id,
            "eventType": self.event_type,
            "resourceVersion": self.resource_version,
            "eventDescription": self.event_description(),
            "consumerId": self.consumer_id,
            "consumerActionId": self.consumer_action_id,
            "actionDescription": self.action_description(),
            "createdBy": {"id": self.created_by},
            "createdDate": self.created_date,
            "modifiedBy": {"id": self.created_by},
            "modifiedDate": self.modified_date,
            "publisherInputs": self.publisher_inputs,
            "consumerInputs": consumer_inputs,
        });
        if self.status == SubscriptionStatus::OnProbation {
            body["probationRetries"] = json!(self.probation_retries);
        }
        if let Some(date) = &self.last_probation_retry_date {
            body["lastProbationRetryDate"] = json!(date);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> SubscriptionBody {
        serde_json::from_value(value).unwrap()
    }

    fn web_hook(consumer_inputs: Value) -> Value {
        json!({"publisherId": "tfs", "eventType": "git.push", "consumerId": "webHooks",
               "consumerActionId": "httpRequest", "consumerInputs": consumer_inputs})
    }

    #[test]
    fn web_hook_inputs_are_parsed_as_ado_documents_them() {
        let accepted = body(web_hook(json!({
            "url": "https://receiver.example/hooks", "basicAuthUsername": "ado",
            "basicAuthPassword": "s3cret", "httpHeaders": "X-Tenant: t1\r\nX-Secret:abc\n",
            "resourceDetailsToSend": "all",
        })))
        .accept(None)
        .unwrap();
        let target = accepted.target.unwrap();
        assert_eq!(target.url.as_str(), "https://receiver.example/hooks");
        assert_eq!(target.basic_auth, Some(("ado".into(), "s3cret".into())));
        let headers: Vec<(String, String)> = target
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("x-tenant".to_owned(), "t1".to_owned()),
                ("x-secret".to_owned(), "abc".to_owned())
            ]
        );
    }

    #[test]
    fn bad_web_hook_inputs_are_refused_with_the_input_named() {
        for (inputs, named) in [
            (json!({}), "url"),
            (json!({"url": "ftp://x/"}), "url"),
            (json!({"url": "not a url"}), "url"),
            (
                json!({"url": "http://x/", "httpHeaders": "no colon"}),
                "httpHeaders",
            ),
            (
                json!({"url": "http://x/", "basicAuthPassword": "p"}),
                "basicAuthPassword",
            ),
            (
                json!({"url": "http://x/", "basicAuthUsername": "a b"}),
                "basicAuthUsername",
            ),
        ] {
            let error = body(web_hook(inputs.clone())).accept(None).err();
            assert!(
                error.as_ref().is_some_and(|e| e.0.contains(named)),
                "{inputs}: {error:?}"
            );
        }
        let wrong_action = json!({"publisherId": "tfs", "eventType": "git.push", "consumerId": "webHooks",
                                  "consumerActionId": "post", "consumerInputs": {"url": "http://x/"}});
        assert!(body(wrong_action).accept(None).is_err());
        assert!(body(json!({"publisherId": "tfs"})).accept(None).is_err());
    }

    #[test]
    fn other_consumers_are_stored_but_never_delivered_to() {
        let accepted = body(json!({"publisherId": "tfs", "eventType": "build.complete", "consumerId": "jenkins",
                                   "consumerActionId": "triggerGenericBuild", "consumerInputs": {"buildName": "b"}}))
        .accept(None)
        .unwrap();
        assert!(accepted.target.is_none());
    }
}
