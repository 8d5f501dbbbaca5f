//! The bundled service as a child process, for tests that kill it (`kill -9`) or measure its
//! memory apart from the client's.
//!
//! The child is this very test binary started again with [`CHILD_ENV`] set: its
//! `child_server_process` test then does exactly what `examples/server.rs` does
//! (`Config::load()` from `OMNIDESK_CONFIG`, `App::from_config`, `serve` until Ctrl-C), with the
//! features the tests were built with and no second build. `CS_TEST_SERVER_BIN=path` runs that
//! program instead (e.g. `target/release/examples/server` for a release-build crash run).

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Set in the child's environment: serve instead of testing.
pub const CHILD_ENV: &str = "CS_TEST_SERVE_CHILD";

/// In the child (when [`CHILD_ENV`] is set): serves until killed, like `examples/server.rs`.
/// Elsewhere returns at once.
pub fn serve_if_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // As examples/server.rs: personal data never reaches the log.
        .with_writer(|| omnidesk::compliance::MaskingWriter::new(std::io::stderr()))
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(async {
        let config = omnidesk::Config::load()?;
        omnidesk::server::App::from_config(config)
            .await?
            .serve()
            .await
    });
    eprintln!("child server ended: {result:?}");
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

/// A running child server.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its last lines of output, for diagnostics.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// Starts the service with the config file at `config` (which should say `port = 0`) and
    /// waits until it listens (at most 120 s: a debug build trains its bot at start-up).
    pub fn start(config: &Path, test_name: &str) -> Self {
        Self::start_with_env(config, test_name, &[])
    }

    /// [`ServerProcess::start`] with extra environment variables (e.g. `RUST_LOG`).
    pub fn start_with_env(config: &Path, test_name: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = match std::env::var_os("CS_TEST_SERVER_BIN") {
            Some(bin) => Command::new(bin),
            None => {
                let mut c = Command::new(std::env::current_exe().expect("test binary"));
                c.args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
                    .env(CHILD_ENV, "1");
                c
            }
        };
        cmd.envs(env.iter().copied())
            .env("OMNIDESK_CONFIG", config)
            .env("NO_COLOR", "1")
            .env_remove("OMNIDESK_PORT")
            .env_remove("OMNIDESK_DATABASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("server process starts");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, listening) = mpsc::channel::<SocketAddr>();
        let pipes: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for pipe in pipes {
            let log = log.clone();
            let found = found.clone();
            // Drain the pipe for the child's whole life, or it blocks on a full pipe.
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_addr(&line) {
                        let _ = found.send(addr);
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() == 200 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        let addr = match listening.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not start listening; its output:\n{}",
                    log.lock()
                        .unwrap()
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        };
        Self { child, addr, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: the process ends at once, mid-whatever.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ctrl-C (SIGINT), then `kill -9` if it has not ended within 15 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..150 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("server did not stop on SIGINT within 15 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines the server printed.
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the service's `shop with chat widget: http://127.0.0.1:PORT/` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("shop with chat widget: http://").nth(1)?;
    rest.split('/').next()?.trim().parse().ok()
}

/// A config file for the load and crash tests: the given database, a free port, limits raised
/// so one address may send as fast as it can, and agents with room for many chats.
pub fn load_config(database: &str, secret: &str, tenant: &str) -> String {
    format!(
        r#"bind = "127.0.0.1"
port = 0
database = "{database}"
secret = "{secret}"
tenant = "{tenant}"
demo = true

[limits]
messages_per_minute = 100000000
message_burst = 100000000
sessions_per_minute = 100000000
logins_per_minute = 100000
login_failures = 1000

[[agents]]
name = "Alice"
password = "alice"
skills = ["after-sales:8", "complaints:7", "logistics:6", "orders:6", "presales:5"]
chat_capacity = 1000

[[agents]]
name = "Bob"
password = "bob"
skills = ["presales:8", "billing:7", "account:6", "marketing:6", "orders:5"]
chat_capacity = 1000
"#
    )
}
