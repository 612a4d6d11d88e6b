//! The offline verifier must never panic, whatever a bundle holds: the input is split into
//! the four bundle files and verified against a fixed trusted key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_audit::bundle;
use tollgate_audit::note::NoteSigner;

fuzz_target!(|data: &[u8]| {
    // Four parts separated by 0xFF bytes (never valid UTF-8, so never inside a real file).
    let mut parts = data.split(|b| *b == 0xFF);
    let manifest = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let leaves = parts.next().unwrap_or_default();
    let hashes = parts.next().unwrap_or_default();
    let checkpoints = parts.next().unwrap_or_default();
    let Ok(signer) = NoteSigner::new("tollgate/default", [7; 32]) else {
        return;
    };
    let _ = bundle::verify(&manifest, leaves, hashes, checkpoints, &[signer.verifier()]);
});
