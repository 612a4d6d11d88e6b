//! docs/AUDIT.md lists every audit event type the code writes, generated from the catalogue
//! (`TOLLGATE_WRITE_DOCS=1 cargo test --test audit_docs` rewrites it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use tollgate::services::audit_events::AuditEvent;

const BEGIN: &str =
    "<!-- BEGIN GENERATED: event types (TOLLGATE_WRITE_DOCS=1 cargo test --test audit_docs) -->";
const END: &str = "<!-- END GENERATED -->";

fn table() -> String {
    let mut text = String::from(
        "| type | category | action | severity | what it says |\n|---|---|---|---|---|\n",
    );
    for event in AuditEvent::ALL {
        text.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            event.as_str(),
            event.category(),
            event.action(),
            event.severity().as_str(),
            event.description()
        ));
    }
    text
}

#[test]
fn the_audit_doc_lists_every_event_type() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/AUDIT.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = format!("\n{}", table());
    if std::env::var_os("TOLLGATE_WRITE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        generated,
        "docs/AUDIT.md is out of date: TOLLGATE_WRITE_DOCS=1 cargo test --test audit_docs"
    );
    assert!(AuditEvent::ALL.len() >= 25);
}
