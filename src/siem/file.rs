//! JSON lines to a file, rotated by size (`path` → `path.1` → … → `path.{keep}`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::Mutex;

use crate::services::siem::{Sink, SinkItem};

pub struct FileSink {
    name: String,
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    /// One writer at a time, so rotation never interleaves with a write.
    lock: Mutex<()>,
}

impl FileSink {
    pub fn new(name: &str, path: &Path, max_bytes: u64, keep: u32) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            keep,
            lock: Mutex::new(()),
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&self) -> std::io::Result<()> {
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, items: &[SinkItem]) -> Result<()> {
        let mut lines = Vec::new();
        for item in items {
            let line = match item {
                SinkItem::Record {
                    record, leaf_hash, ..
                } => json!({"type": "record", "leaf_sha256": leaf_hash, "record": record}),
                SinkItem::Checkpoint {
                    origin,
                    size,
                    root,
                    note,
                } => {
                    json!({"type": "checkpoint", "origin": origin, "size": size, "root": root, "note": note})
                }
            };
            lines.extend_from_slice(line.to_string().as_bytes());
            lines.push(b'\n');
        }
        let _guard = self.lock.lock().await;
        let current = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if current > 0 && current + lines.len() as u64 > self.max_bytes {
            self.rotate()
                .with_context(|| format!("rotating {}", self.path.display()))?;
        }
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        file.write_all(&lines)?;
        // Delivered means on disk: the cursor moves only after this.
        file.sync_data()?;
        Ok(())
    }
}
