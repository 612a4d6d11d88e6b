//! Spawn the real `tollgate serve` binary on a loopback port, with its own configuration
//! and database in a temporary directory.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const WEBHOOK_SECRET: &str = "hook-secret-for-tests";

pub struct Server {
    pub child: Child,
    pub base: String,
    pub bootstrap_key: Option<String>,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Start with `extra` TOML appended to a configuration that sets the database and the
    /// default tenant's webhook secret (and nothing else).
    pub async fn start(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra).await
    }

    /// Like [`Server::start`], with extra environment variables for the server process.
    pub async fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config_path = Self::write_config(&dir, extra);
        Self::spawn_with_env(dir, config_path, &[], env).await
    }

    fn write_config(dir: &tempfile::TempDir, extra: &str) -> PathBuf {
        let secret_file = dir.path().join("webhook-secret");
        std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
        let config = format!(
            "[database]\nurl = \"{}\"\n\n[webhook]\nsecret_file = \"{}\"\n\n{extra}\n",
            dir.path().join("tollgate.db").display(),
            secret_file.display(),
        );
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, config).unwrap();
        config_path
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> Server {
        let secret_file = dir.path().join("webhook-secret");
        std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
        let config = format!(
            "[database]\nurl = \"{}\"\n\n[webhook]\nsecret_file = \"{}\"\n\n{extra}\n",
            dir.path().join("tollgate.db").display(),
            secret_file.display(),
        );
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, config).unwrap();
        Self::spawn(dir, config_path, &[]).await
    }

    pub async fn spawn(dir: tempfile::TempDir, config: PathBuf, args: &[&str]) -> Server {
        Self::spawn_with_env(dir, config, args, &[]).await
    }

    pub async fn spawn_with_env(
        dir: tempfile::TempDir,
        config: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env_remove("TOLLGATE_DB")
            .env_remove("TOLLGATE_ADO_PAT")
            .env("TOLLGATE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut bootstrap_key = None;
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the server exited before listening");
                if let Some(key) = line.strip_prefix("bootstrap admin API key: ") {
                    bootstrap_key = Some(key.trim().to_owned());
                }
                if let Some(address) = line.strip_prefix("listening on ") {
                    return address.trim().to_owned();
                }
            }
        })
        .await
        .expect("the server did not start listening");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            child,
            base,
            bootstrap_key,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin_key_or_none(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    pub fn admin_key(&self) -> &str {
        self.bootstrap_key
            .as_deref()
            .expect("this server printed no bootstrap key")
    }

    /// An API key with `role`, created with the bootstrap admin key.
    pub async fn key_for(&self, client: &reqwest::Client, role: &str) -> String {
        let response = client
            .post(self.url("/api/v1/api-keys"))
            .bearer_auth(self.admin_key())
            .json(&serde_json::json!({"name": format!("test-{role}"), "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating a {role} key");
        let body: serde_json::Value = response.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// Wait (up to 2 minutes) until the queued job `job` is done; a job that died fails the
    /// test, with its state.
    pub async fn wait_for_job(&self, client: &reqwest::Client, job: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let state: serde_json::Value = client
                .get(self.url(&format!("/api/v1/jobs/{job}")))
                .bearer_auth(self.admin_key())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match state["status"].as_str() {
                Some("done") => return,
                Some("dead") => panic!("job {job} died: {state}"),
                _ => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {job} did not finish: {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Stop the server and keep its directory (database, keys, configuration) to start again.
    #[allow(dead_code, reason = "not every test binary restarts a server")]
    pub async fn stop_keeping_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        self.dir
    }
}
