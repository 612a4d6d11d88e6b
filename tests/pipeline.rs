//! End to end through the event pipeline: the simulator delivers a service-hook event to
//! `tollgate serve`, which stores it, re-syncs what changed (ADO sends no event for policy
//! edits, so the re-sync reads the audit log too) and re-evaluates — a weakened branch
//! policy becomes an open finding without anyone starting a full sync.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use server::{Server, WEBHOOK_SECRET};
use tollgate_sim::{Profile, SimConfig, Simulator};

const MINIMUM_REVIEWERS: &str = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd";

async fn get(client: &Client, server: &Server, path: &str) -> Value {
    client
        .get(server.url(path))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weakened_branch_policy_opens_a_finding_through_the_webhook() {
    let sim = Simulator::new(SimConfig {
        seed: 7,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let server = Server::start(&format!(
        "[ado]\norg_url = \"{}\"\npat = \"test-pat\"\n\n[worker]\ndebounce_ms = 50\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n",
        sim.org_url()
    ))
    .await;
    let client = Client::new();

    // The first full sync and evaluation, as the scheduler would start them.
    let queued: Value = client
        .post(server.url("/api/v1/syncs"))
        .bearer_auth(server.admin_key())
        .json(&json!({"mode": "full"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server
        .wait_for_job(&client, queued["job"].as_i64().unwrap())
        .await;
    let syncs_before = get(&client, &server, "/api/v1/syncs").await["items"]
        .as_array()
        .unwrap()
        .len();

    // ADO's side: a Web Hooks subscription for pushes, with the secret as basic auth.
    let subscription = client
        .post(format!(
            "{}/_apis/hooks/subscriptions?api-version=7.1",
            sim.org_url()
        ))
        .basic_auth("ado", Some("test-pat"))
        .json(&json!({
            "publisherId": "tfs",
            "eventType": "git.push",
            "resourceVersion": "1.0",
            "consumerId": "webHooks",
            "consumerActionId": "httpRequest",
            "publisherInputs": {},
            "consumerInputs": {
                "url": server.url("/hooks/ado/default"),
                "basicAuthUsername": "ado",
                "basicAuthPassword": WEBHOOK_SECRET
            }
        }))
        .send()
        .await
        .unwrap();
    assert!(
        subscription.status().is_success(),
        "{}",
        subscription.text().await.unwrap()
    );

    // A repository whose branch policy still requires two approvers.
    let policies = get(
        &client,
        &server,
        "/api/v1/inventory/policy_configurations?limit=1000",
    )
    .await;
    let policy = policies["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["resource"]["type"]["id"] == MINIMUM_REVIEWERS
                && p["resource"]["settings"]["minimumApproverCount"] == 2
                && p["resource"]["settings"]["scope"][0]["repositoryId"].is_string()
        })
        .expect("a policy requiring two approvers");
    let key = policy["key"].as_str().unwrap().to_owned();
    let repository = policy["resource"]["settings"]["scope"][0]["repositoryId"]
        .as_str()
        .unwrap()
        .to_owned();
    let open_on_policy = |findings: &Value| {
        findings["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["control"] == "BP-02" && f["resource_key"] == key)
    };
    assert!(!open_on_policy(
        &get(
            &client,
            &server,
            "/api/v1/findings?control=BP-02&limit=1000"
        )
        .await
    ));

    // Someone lowers the approvers to one, then pushes to the repository.
    let started = Instant::now();
    let mutated = client
        .post(format!("{}/_sim/mutate", sim.base_url))
        .json(&json!({"ops": ["weaken_policy", "push_to_repository"], "repository": repository}))
        .send()
        .await
        .unwrap();
    assert!(
        mutated.status().is_success(),
        "{}",
        mutated.text().await.unwrap()
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if open_on_policy(
            &get(
                &client,
                &server,
                "/api/v1/findings?control=BP-02&limit=1000",
            )
            .await,
        ) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the weakened policy never became a finding"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("finding open {:?} after the change", started.elapsed());

    // It came through the webhook and an incremental re-sync, not a full sync.
    let events = get(&client, &server, "/api/v1/events?event_type=git.push").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let syncs = get(&client, &server, "/api/v1/syncs").await;
    let new_syncs: Vec<&Value> = syncs["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(syncs["items"].as_array().unwrap().len() - syncs_before)
        .collect();
    assert!(!new_syncs.is_empty());
    assert!(
        new_syncs.iter().all(|s| s["mode"] == "incremental"),
        "{new_syncs:?}"
    );

    // The push left no audit entry; the event alone made the sync re-read that repository's
    // refs, so the inventory holds the pushed commit.
    let push_id = events["items"][0]["id"].as_i64().unwrap();
    let push = get(&client, &server, &format!("/api/v1/events/{push_id}")).await;
    let update = &push["body"]["resource"]["refUpdates"][0];
    let pushed_commit = update["newObjectId"].as_str().unwrap();
    let refs = get(&client, &server, "/api/v1/inventory/refs?limit=1000").await;
    let stored_ref = refs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scope"] == repository.as_str() && r["resource"]["name"] == update["name"])
        .expect("the pushed branch is in the inventory");
    assert_eq!(stored_ref["resource"]["objectId"], pushed_commit);
    server.stop().await;
}
