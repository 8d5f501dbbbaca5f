//! The full customer-service desk on the embedded SQLite default: a demo shop page with the chat
//! widget at `/`, the agent console at `/agent`, the supervisors' dashboard at `/dashboard` (sign
//! in as a supervisor), the REST API at `/api/v1` (OpenAPI at `/api/v1/openapi.json`),
//! Prometheus at `/metrics`, `/healthz` and `/readyz`.
//!
//! ```text
//! cargo run --example server
//! OMNIDESK_PASSWORD=... cargo run --example server -- add-agent <tenant> <name> \
//!     --role agent|supervisor|admin [--skills orders:7,billing] [--team service] [--languages zh,en]
//! ```
//!
//! Settings come from `omnidesk.toml` (or the file named by `OMNIDESK_CONFIG`) and `OMNIDESK_*`
//! variables; see [`omnidesk::Config`]. Without a config file the demo configuration runs, with
//! the demo accounts Alice (admin, password `alice`) and Bob (agent, `bob`). `add-agent` reads
//! the password from `OMNIDESK_PASSWORD` or the first line of standard input, never from the
//! command line.

use omnidesk::Config;
use omnidesk::server::App;
use omnidesk::server::accounts::{Account, Role};
use omnidesk::server::auth::AgentAuth;

// The service allocates a little for every frame, message and event; with mimalloc's
// thread-local free lists it spends about a sixth less CPU a message than with glibc's malloc
// (BENCHMARKS.md, "Fast path", issue 12). The library itself leaves the choice to its host.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("add-agent") {
        return add_agent(&config, &args[1..]).await;
    }
    tracing::info!(?config, "starting");
    App::from_config(config).await?.serve().await
}

fn usage(reason: &str) -> omnidesk::Error {
    omnidesk::Error::Config {
        reason: format!(
            "{reason}\nusage: add-agent <tenant> <name> --role agent|supervisor|admin \
             [--skills a:7,b] [--team t] [--languages zh,en] [--chat-capacity 4] \
             (password from OMNIDESK_PASSWORD or standard input)"
        ),
    }
}

/// Adds an account to the configured database.
async fn add_agent(config: &Config, args: &[String]) -> Result<(), omnidesk::Error> {
    let [tenant, name, rest @ ..] = args else {
        return Err(usage("add-agent needs a tenant and a name"));
    };
    let tenant = omnidesk::core::TenantId::new(tenant.as_str())
        .map_err(|e| usage(&format!("tenant: {e}")))?;
    let mut account = Account::new(tenant, name.trim(), Role::Agent);
    let mut role = None;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| usage(&format!("{flag} needs a value")))?;
        let list = || value.split(',').map(|s| s.trim().to_owned()).collect();
        match flag.as_str() {
            "--role" => role = Some(value.parse::<Role>().map_err(|e| usage(&e))?),
            "--skills" => account.skills = list(),
            "--languages" => account.languages = list(),
            "--team" => account.team = Some(value.clone()),
            "--chat-capacity" => {
                account.chat_capacity = value
                    .parse()
                    .map_err(|_| usage("--chat-capacity is a number"))?;
            }
            "--password" => {
                return Err(usage(
                    "a password on the command line ends up in shell history and `ps`: use \
                     OMNIDESK_PASSWORD or standard input",
                ));
            }
            other => return Err(usage(&format!("unknown option {other}"))),
        }
    }
    account.role = role.ok_or_else(|| usage("--role is required"))?;
    let password = match std::env::var("OMNIDESK_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!(
                "password for {} (one line on standard input):",
                account.name
            );
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| usage(&format!("cannot read the password: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let store = omnidesk::server::open_accounts(config).await?;
    let auth = AgentAuth::new(store, config.auth.clone())?;
    auth.add(&account, &password).await?;
    println!(
        "added {} ({}) to tenant {} with id {}",
        account.name, account.role, account.tenant, account.id
    );
    Ok(())
}
