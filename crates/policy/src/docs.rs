//! Markdown pages for the control catalog, generated from METADATA (docs/controls/).

use std::fmt::Write as _;

use crate::ControlMeta;

/// One control's page.
pub fn control_page(control: &ControlMeta) -> String {
    let mut page = format!("# {} — {}\n\n", control.id, control.title);
    let _ = writeln!(page, "| | |\n|---|---|");
    let _ = writeln!(page, "| severity | {} |", control.severity);
    let _ = writeln!(page, "| resource | `{}` |", control.kind);
    let _ = writeln!(page, "| permission | {} |", control.permission);
    let frameworks: Vec<String> = control
        .frameworks
        .iter()
        .map(|f| format!("`{f}`"))
        .collect();
    let _ = writeln!(page, "| frameworks | {} |", frameworks.join(", "));
    let _ = writeln!(page, "| policy | `{}` |\n", control.package);
    let _ = writeln!(
        page,
        "{}\n\n## Why\n\n{}\n\n## Fix\n\n{}\n",
        control.description, control.rationale, control.remediation
    );
    if !control.parameters.is_empty() {
        let _ = writeln!(
            page,
            "## Parameters\n\nOverride in `tollgate.toml` under `[policy.params.{}]`.\n\n| name | default |\n|---|---|",
            control.id
        );
        for (name, value) in &control.parameters {
            let _ = writeln!(page, "| `{name}` | `{value}` |");
        }
        page.push('\n');
    }
    page
}

/// The catalog index: every control with its severity and resource.
pub fn index(controls: &[ControlMeta]) -> String {
    let mut page = String::from(
        "# Control catalog\n\nGenerated from the controls' METADATA by `cargo test -p tollgate-policy --test docs` \
(set `TOLLGATE_WRITE_DOCS=1` to rewrite). `tollgate policy explain ID` shows the same.\n\n| id | severity | resource | title |\n|---|---|---|---|\n",
    );
    for control in controls {
        let _ = writeln!(
            page,
            "| [{id}]({id}.md) | {} | `{}` | {} |",
            control.severity,
            control.kind,
            control.title,
            id = control.id
        );
    }
    let _ = writeln!(page, "\n{} controls.", controls.len());
    page
}
