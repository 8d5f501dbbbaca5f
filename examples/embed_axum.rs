//! The desk inside an application you already have: a shop's own axum app keeps its routes
//! (`/`, `/api/shop/products`) and serves the whole customer-service desk under `/support` —
//! the demo shop page with the chat widget at `/support`, the agent console at
//! `/support/agent`, the dashboard at `/support/dashboard`, the REST API at
//! `/support/api/v1`, webhooks at `/support/webhooks/{channel}`.
//!
//! ```text
//! cargo run --example embed_axum            # http://127.0.0.1:3000/
//! OMNIDESK_PORT=8080 cargo run --example embed_axum
//! ```
//!
//! Three calls do it: [`App::router`] gives the desk's routes to nest; [`App::start`] runs its
//! background work (routing timers, SLA clocks, the outbox, analytics), which
//! `App::serve` would otherwise run; [`omnidesk::server::Background::stop`] ends it when the
//! host shuts down. The desk's pages work out where they are mounted from each request, so
//! nothing in the desk is configured with `/support`. Settings come from `omnidesk.toml` and
//! `OMNIDESK_*` as for `cargo run --example server`; without a file the demo configuration runs
//! (accounts Alice, password `alice`, and Bob, `bob`).

use std::net::SocketAddr;

use axum::Router;
use axum::response::{Html, Redirect};
use axum::routing::get;
use omnidesk::Config;
use omnidesk::server::App;
use serde_json::json;

/// Where the host mounts the desk.
pub(crate) const DESK_PATH: &str = "/support";

/// The host application: its own routes, and the desk nested at [`DESK_PATH`].
///
/// # Errors
/// As [`App::router`].
pub(crate) fn shop_app(desk: &App) -> Result<Router, omnidesk::Error> {
    Ok(Router::new()
        .route("/", get(home))
        .route("/api/shop/products", get(products))
        .nest(DESK_PATH, desk.router()?)
        // axum's `nest` answers `/support` but not `/support/`.
        .route(
            &format!("{DESK_PATH}/"),
            get(|| async { Redirect::permanent(DESK_PATH) }),
        ))
}

/// The shop's own home page, linking to the desk's pages under `/support`.
async fn home() -> Html<&'static str> {
    Html(
        "<!doctype html><meta charset=utf-8><title>Acme shop</title>\
         <h1>Acme shop</h1>\
         <p><a href=\"/api/shop/products\">Products (JSON)</a></p>\
         <p><a href=\"/support\">Help centre with live chat</a> · \
         <a href=\"/support/agent\">Agent console</a> · \
         <a href=\"/support/dashboard\">Dashboard</a></p>",
    )
}

/// The shop's own API, untouched by the desk.
async fn products() -> axum::Json<serde_json::Value> {
    axum::Json(json!([
        { "sku": "shoe-42", "name": "Running shoes", "price_cents": 39900 },
        { "sku": "jacket-m", "name": "Down jacket", "price_cents": 89900 },
    ]))
}

#[tokio::main]
async fn main() -> Result<(), omnidesk::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,omnidesk=info".into()),
        )
        .init();
    let mut config = Config::load()?;
    // The host's port, unless OMNIDESK_PORT or the file says otherwise.
    if std::env::var_os("OMNIDESK_PORT").is_none() && config.port == Config::default().port {
        config.port = 3000;
    }
    let desk = App::from_config(config).await?;
    let app = shop_app(&desk)?;
    let background = desk.start().await?;

    let listener = desk.bind().await?;
    let addr = listener
        .local_addr()
        .map_err(|e| omnidesk::Error::Other(Box::new(e)))?;
    tracing::info!("the shop:       http://{addr}/");
    tracing::info!("help centre:    http://{addr}{DESK_PATH}");
    tracing::info!("agent console:  http://{addr}{DESK_PATH}/agent");
    // With the peer address, the desk limits sign-ins and chat sessions per address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        // Ends the desk's long-lived streams too, so the graceful shutdown can finish.
        background.stop().await;
    })
    .await
    .map_err(|e| omnidesk::Error::Other(Box::new(e)))
}
