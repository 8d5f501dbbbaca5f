//! The full customer-service desk on the embedded SQLite default: a demo shop page with the chat
//! widget at `/`, the agent console at `/agent`, the supervisors' dashboard at `/dashboard` (sign
//! in as an agent), Prometheus at `/metrics`, `/healthz` and `/readyz`.
//!
//! ```text
//! cargo run --example server
//! ```
//!
//! Settings come from `omnidesk.toml` (or the file named by `OMNIDESK_CONFIG`) and `OMNIDESK_*`
//! variables; see [`omnidesk::Config`].

use omnidesk::Config;
use omnidesk::server::App;

#[tokio::main]
async fn main() -> Result<(), omnidesk::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,omnidesk=info".into()),
        )
        // Phone numbers, ID and card numbers, e-mail and postal addresses never reach the log.
        .with_writer(|| omnidesk::compliance::MaskingWriter::new(std::io::stderr()))
        .init();
    let config = Config::load()?;
    tracing::info!(?config, "starting");
    App::from_config(config).await?.serve().await
}
