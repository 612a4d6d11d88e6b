use std::process::ExitCode;

/// mimalloc instead of the system allocator: the gate and the webhook receiver build and drop
/// many small JSON values per request, and glibc's malloc spent a quarter of the server's CPU
/// under load (docs/PERFORMANCE.md, ADR 0014).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tollgate::cli::main().await
}
