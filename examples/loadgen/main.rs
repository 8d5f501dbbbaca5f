//! A load generator for the bundled service: N visitors on the chat widget's WebSocket (and M
//! agents signed in to the console) against a service on loopback, bounded in messages and
//! time, with a progress line on stderr every second and ONE JSON line on stdout at the end.
//!
//! ```text
//! # a release server with the load settings (limits raised, agents with room), fresh database:
//! OMNIDESK_CONFIG=examples/loadgen/server.toml OMNIDESK_DATABASE=/tmp/load.db \
//!   cargo run --release --example server &
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 \
//!   --visitors 100 --messages-per-visitor 200 --server-pid $(pgrep -n -f examples/server)
//! {"visitors":100,..,"msgs_per_sec":..,"p50_ms":..,"p99_ms":..,"bot_replies_per_sec":..,
//!  "agent_delivered":..,"unacked":0,"errors":0,"server_cpu_pct":..,..}
//! ```
//!
//! Flags:
//! - `--url URL` the service (default `http://127.0.0.1:8080`); only loopback targets. Several
//!   nodes of one desk: `--url URL1,URL2,...` spreads the visitors over them (round robin), and
//!   agents sign in at the first or at `--agent-url URL`; the JSON line's `nodes` says how many
//!   took visitors, `agent_p50_ms`/`agent_p99_ms` how long a customer message took to reach an
//!   agent's console (wherever both are)
//! - `--visitors N` (default 10), `--messages-per-visitor K` and/or `--duration SECONDS`
//!   (default 100 messages each when neither is given)
//! - `--rate R` offered messages a second over all visitors (open loop); without it each visitor
//!   sends as soon as its previous message is acknowledged (closed loop)
//! - `--handoff` each visitor's first message asks for a human, so agents receive the rest
//! - `--agents M` console sockets, signed in as `--agent-names alice,bob` with
//!   `--agent-passwords alice,bob` (names cycle, and every console of one agent gets all of that
//!   agent's frames; default: the demo desk's Alice and Bob)
//! - `--server-pid PID` server CPU (from `/proc/PID/stat`) and resident memory
//! - `--idle N` instead of sending: hold N idle visitor sockets, check that a new visitor is
//!   still answered, and measure the server's memory per socket and after the sockets close
//! - `--ack-timeout S` (30), `--drain S` (10), `--max-time S` (600), `--concurrency C` sockets
//!   opened at once (64), `--quiet` (no progress line), `--no-resolve` (agents keep their
//!   conversations at the end)
//!
//! Checks: every message sent is acknowledged (matched by its client id: `unacked`,
//! `duplicates`, `unknown_acks`, `server_duplicates`), and with agents, every acknowledged
//! message of a conversation a console holds reaches that console (`agent_expected`,
//! `agent_delivered`, `agent_missing`). The exit status is 1 when a check fails.
//!
//! Thousands of sockets need as many file descriptors: when the limit is too low loadgen raises
//! its own with `prlimit` (util-linux) if it may, else stops and says to run `ulimit -n 65536`
//! first. The server needs as many (start it from a shell with the same `ulimit -n`).

mod driver;

use std::time::Duration;

use driver::Options;

struct Args {
    options: Options,
    idle: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut url = "http://127.0.0.1:8080".to_owned();
    let mut agent_url: Option<String> = None;
    let mut visitors = 10;
    let mut agents = 0usize;
    let mut names = vec!["alice".to_owned(), "bob".to_owned()];
    let mut passwords: Option<Vec<String>> = None;
    let mut idle = None;
    let mut o = Options::new(driver::loopback_addr(&url)?);
    o.progress = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{a}: {e}"));
        let list = |v: String| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        };
        match a.as_str() {
            "--url" => url = value()?,
            "--agent-url" => agent_url = Some(value()?),
            "--visitors" => visitors = num(value()?)? as usize,
            "--agents" => agents = num(value()?)? as usize,
            "--agent-names" => names = list(value()?),
            "--agent-passwords" => passwords = Some(list(value()?)),
            "--messages-per-visitor" => o.messages_per_visitor = Some(num(value()?)? as u64),
            "--duration" => o.duration = Some(Duration::from_secs_f64(num(value()?)?)),
            "--rate" => o.rate = Some(num(value()?)?),
            "--handoff" => o.handoff = true,
            "--server-pid" => o.server_pid = Some(num(value()?)? as u32),
            "--idle" => idle = Some(num(value()?)? as usize),
            "--ack-timeout" => o.ack_timeout = Duration::from_secs_f64(num(value()?)?),
            "--drain" => o.drain = Duration::from_secs_f64(num(value()?)?),
            "--max-time" => o.max_time = Duration::from_secs_f64(num(value()?)?),
            "--concurrency" => o.connect_concurrency = num(value()?)? as usize,
            "--quiet" => o.progress = false,
            "--no-resolve" => o.resolve_at_end = false,
            "-h" | "--help" => {
                return Err("see the doc comment at the top of examples/loadgen/main.rs".into());
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let nodes = url
        .split(',')
        .map(|u| driver::loopback_addr(u.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    o.addr = match &agent_url {
        Some(u) => driver::loopback_addr(u)?,
        None => nodes[0],
    };
    if nodes.len() > 1 || agent_url.is_some() {
        o.visitor_addrs = nodes;
    }
    o.visitors = visitors;
    let passwords = passwords.unwrap_or_else(|| names.iter().map(|n| n.to_lowercase()).collect());
    if names.is_empty() || names.len() != passwords.len() {
        return Err("--agent-names and --agent-passwords need as many entries".into());
    }
    o.agents = (0..agents)
        .map(|i| {
            (
                names[i % names.len()].clone(),
                passwords[i % names.len()].clone(),
            )
        })
        .collect();
    if o.max_time > Duration::from_secs(3600) {
        return Err("--max-time is at most 3600 seconds".into());
    }
    if o.rate.is_some_and(|r| r <= 0.0) {
        return Err("--rate must be positive".into());
    }
    Ok(Args { options: o, idle })
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let o = args.options;
    let sockets = args.idle.unwrap_or(o.visitors) + o.agents.len() + o.connect_concurrency + 32;
    if open_file_limit().is_some_and(|l| (l as usize) < sockets) {
        // Raise our own soft limit (util-linux `prlimit`; up to the hard limit, or beyond as root).
        let n = sockets.next_power_of_two();
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={n}:{n}"),
            ])
            .status();
    }
    if let Some(limit) = open_file_limit()
        && (limit as usize) < sockets
    {
        eprintln!(
            "loadgen: {sockets} sockets need more than the {limit} open files allowed: run `ulimit -n {}` first (and for the server)",
            sockets.next_power_of_two()
        );
        std::process::exit(2);
    }
    let (json, ok) = match args.idle {
        Some(n) => match driver::idle(&o, n).await {
            Ok(r) => (
                serde_json::to_string(&r),
                r.connected == n && r.probe_reply_ms < 1000.0,
            ),
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        },
        None => match driver::run(&o).await {
            Ok(r) => {
                let ok = r.unacked == 0
                    && r.duplicates == 0
                    && r.unknown_acks == 0
                    && r.server_duplicates == 0
                    && r.agent_missing == 0
                    && r.connected == r.visitors;
                (serde_json::to_string(&r), ok)
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        },
    };
    println!(
        "{}",
        json.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
    if !ok {
        eprintln!("loadgen: a check failed (see unacked, duplicates, agent_missing, connected)");
        std::process::exit(1);
    }
}
