use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tollgate::cli::main().await
}
