//! Embed every `.rego` file under `bundle/` into the binary, in a stable order, so the
//! built-in policy bundle needs no files at run time.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rego") {
            files.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let bundle = root.join("bundle");
    println!("cargo:rerun-if-changed={}", bundle.display());
    let mut files = Vec::new();
    collect(&bundle, &mut files);
    files.sort();
    let mut generated = String::from(
        "/// The built-in policy bundle: (name, Rego source).\npub const BUNDLE: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file
            .strip_prefix(&bundle)
            .unwrap_or(file)
            .display()
            .to_string();
        generated.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            format!("builtin/{relative}"),
            file.display().to_string()
        ));
    }
    generated.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("bundle.rs");
    if let Err(error) = std::fs::write(&out, generated) {
        panic!("writing {}: {error}", out.display());
    }
}
