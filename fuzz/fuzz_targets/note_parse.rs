//! Signed notes and checkpoints from anyone: parsing and opening must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::note::{self, NoteSigner, NoteVerifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = NoteVerifier::parse(text);
    let _ = NoteSigner::from_key_string(text);
    let _ = Checkpoint::parse(text);
    if let Ok(signer) = NoteSigner::new("tollgate/default", [7; 32]) {
        let _ = note::open(text, &[signer.verifier()]);
    }
});
