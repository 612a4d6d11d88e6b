//! The syslog sink against a real rsyslog (Debian's package; `.ci/run` installs it): CEF
//! records over TCP with RFC 6587 octet counting arrive intact, one message per record.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate::config::SyslogTransport;
use tollgate::services::siem::{Sink, SinkItem};
use tollgate::siem::SyslogSink;

fn rsyslogd() -> Option<&'static str> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
}

#[tokio::test]
async fn rsyslog_receives_our_octet_counted_cef_records() {
    let Some(rsyslogd) = rsyslogd() else {
        // .ci/run installs rsyslog; on a developer machine without it, say so loudly.
        eprintln!("SKIPPED: rsyslogd is not installed (apt-get install rsyslog)");
        assert!(
            std::env::var_os("CI").is_none(),
            "rsyslogd must be installed in CI"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = dir.path().join("received.log");
    let config = dir.path().join("rsyslog.conf");
    std::fs::write(
        &config,
        format!(
            "global(workDirectory=\"{work}\")\n\
             module(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%msgid%|%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
            work = dir.path().display(),
            out = output.display(),
        ),
    )
    .unwrap();
    let mut daemon = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(&config)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    let sink = SyslogSink::new(
        "rsyslog",
        &format!("127.0.0.1:{port}"),
        SyslogTransport::Tcp,
        None,
        None,
        10,
        "tollgate-test",
    )
    .unwrap();
    let items: Vec<SinkItem> = (0..3)
        .map(|seq| {
            let record = json!({
                "schema": "tollgate/v1", "origin": "tollgate/default", "seq": seq,
                "id": format!("id-{seq}"), "time": "2026-11-23T10:00:00.000000Z",
                "event": {"type": "waiver.created", "severity": "medium", "action": "create",
                          "reason": format!("line one\nline two = {seq} | pipe")},
            });
            SinkItem::Record {
                canonical: record.to_string(),
                record,
                leaf_hash: format!("{seq:064x}"),
            }
        })
        .collect();
    // rsyslog needs a moment to listen: the sink's retry is what production relies on too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.send(&items).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslog never accepted a connection"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let text = std::fs::read_to_string(&output).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= 3 {
            break lines;
        }
        assert!(Instant::now() < deadline, "rsyslog wrote {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    daemon.kill().unwrap();
    let _ = daemon.wait();
    assert_eq!(lines.len(), 3, "one message per record: {lines:?}");
    for (seq, line) in lines.iter().enumerate() {
        let (msg_id, message) = line.split_once('|').unwrap();
        assert_eq!(msg_id, "waiver.created");
        assert!(message.contains("CEF:0|tollgate|tollgate|"), "{line}");
        assert!(
            message.contains(&format!("cn1Label=logIndex cn1={seq}")),
            "{line}"
        );
        // The reason's newline and `=` arrive escaped as CEF asks; the pipe as it is.
        assert!(
            message.contains(&format!("msg=line one\\nline two \\= {seq} | pipe")),
            "{line}"
        );
    }
}
