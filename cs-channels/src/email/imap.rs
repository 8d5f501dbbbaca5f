//! Inbound mail from an IMAP mailbox: each unseen mail is ingested, then flagged `\Seen`, so a
//! restart picks up exactly what was not yet taken. Polls, or waits with IDLE where the server
//! offers it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_imap::{Client, Session};
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::EmailChannel;
use crate::channel::InboundHandler;
use crate::error::{Error, Result};

/// Where to fetch inbound mail from: plain IMAP (a server on the same host or network) or IMAP
/// over TLS ([`ImapConfig::with_tls`], with the `email-tls` feature).
#[derive(Clone)]
pub struct ImapConfig {
    host: String,
    port: u16,
    username: String,
    password: String,
    mailbox: String,
    poll_every: Duration,
    idle: bool,
    tls: bool,
    root_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("mailbox", &self.mailbox)
            .field("poll_every", &self.poll_every)
            .field("idle", &self.idle)
            .field("tls", &self.tls)
            .field("extra_root", &self.root_pem.is_some())
            .finish()
    }
}

impl ImapConfig {
    /// The mailbox `INBOX` of `username` at `host:port`, checked every 60 s, with IDLE when the
    /// server offers it.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            username: username.into(),
            password: password.into(),
            mailbox: "INBOX".into(),
            poll_every: Duration::from_secs(60),
            idle: true,
            tls: false,
            root_pem: None,
        }
    }

    /// Speaks IMAP over TLS from the first byte (IMAPS, port 993); needs the `email-tls`
    /// feature. The server's certificate is checked against the system's roots.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Also trusts this PEM root certificate (a company or test CA).
    pub fn with_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pem = Some(pem.into());
        self
    }

    /// Another mailbox than `INBOX`.
    pub fn with_mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.mailbox = mailbox.into();
        self
    }

    /// How often to look for new mail (also the longest IDLE wait).
    pub fn with_poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every;
        self
    }

    /// Whether to use IDLE when the server offers it (on by default).
    pub fn with_idle(mut self, idle: bool) -> Self {
        self.idle = idle;
        self
    }
}

/// What one pass over the mailbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Unseen mails fetched.
    pub fetched: usize,
    /// Mails handed to the engine.
    pub stored: usize,
    /// Mails recognised as already ingested.
    pub duplicates: usize,
    /// Mails refused for good (malformed, too large, refused by the engine): flagged seen and
    /// left in the mailbox for a person to look at.
    pub refused: usize,
    /// Mails left unseen after a temporary failure, for the next pass.
    pub deferred: usize,
}

/// Fetches mail from IMAP into an [`EmailChannel`].
#[derive(Debug, Clone)]
pub struct ImapPoller {
    config: ImapConfig,
    channel: Arc<EmailChannel>,
    handler: Arc<dyn InboundHandler>,
}

/// A connection to the server, plain or TLS.
trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> ImapIo for T {}

type ImapSession = Session<Box<dyn ImapIo>>;

#[cfg(feature = "email-tls")]
async fn tls_wrap(config: &ImapConfig, tcp: TcpStream) -> Result<Box<dyn ImapIo>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls_platform_verifier::BuilderVerifierExt;

    let bad = |what: &str, e: &dyn fmt::Display| Error::invalid(format!("IMAP TLS {what}: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocols", &e))?;
    let client = match &config.root_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| bad("root certificate", &e))?;
                roots.add(cert).map_err(|e| bad("root certificate", &e))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .with_platform_verifier()
            .map_err(|e| bad("verifier", &e))?
            .with_no_client_auth(),
    };
    let name = ServerName::try_from(config.host.clone()).map_err(|e| bad("server name", &e))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Unavailable {
            reason: format!("IMAP TLS handshake with {}: {e}", config.host),
        })?;
    Ok(Box::new(stream))
}

#[cfg(not(feature = "email-tls"))]
async fn tls_wrap(_config: &ImapConfig, _tcp: TcpStream) -> Result<Box<dyn ImapIo>> {
    Err(Error::Unsupported {
        reason: "IMAP over TLS needs the email-tls feature".into(),
    })
}

fn imap_error(what: &str, e: async_imap::error::Error) -> Error {
    Error::Unavailable {
        reason: format!("IMAP {what}: {e}"),
    }
}

impl ImapPoller {
    /// A poller feeding `channel`'s ingestion into `handler`.
    pub fn new(
        config: ImapConfig,
        channel: Arc<EmailChannel>,
        handler: Arc<dyn InboundHandler>,
    ) -> Self {
        Self {
            config,
            channel,
            handler,
        }
    }

    async fn connect(&self) -> Result<ImapSession> {
        let stream = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|e| Error::Unavailable {
                reason: format!(
                    "IMAP connect {}:{}: {e}",
                    self.config.host, self.config.port
                ),
            })?;
        let stream: Box<dyn ImapIo> = if self.config.tls {
            tls_wrap(&self.config, stream).await?
        } else {
            Box::new(stream)
        };
        let mut client = Client::new(stream);
        client
            .read_response()
            .await
            .map_err(|e| Error::Unavailable {
                reason: format!("IMAP greeting: {e}"),
            })?
            .ok_or_else(|| Error::Unavailable {
                reason: "IMAP server closed before its greeting".into(),
            })?;
        let mut session = client
            .login(&self.config.username, &self.config.password)
            .await
            .map_err(|(e, _)| match e {
                async_imap::error::Error::No(reason) => Error::unauthenticated(format!(
                    "IMAP login refused for {}: {reason}",
                    self.config.username
                )),
                other => imap_error("login", other),
            })?;
        session
            .select(&self.config.mailbox)
            .await
            .map_err(|e| imap_error("select", e))?;
        Ok(session)
    }

    /// Connects, ingests every unseen mail, and logs out.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server is out of reach or fails mid-way,
    /// [`Error::Unauthenticated`] when it refuses the login, [`Error::InvalidInput`] for a bad
    /// TLS setting, [`Error::Unsupported`] for TLS without the `email-tls` feature.
    pub async fn poll_once(&self) -> Result<PollReport> {
        let mut session = self.connect().await?;
        let report = self.take_unseen(&mut session).await?;
        session
            .logout()
            .await
            .map_err(|e| imap_error("logout", e))?;
        Ok(report)
    }

    async fn take_unseen(&self, session: &mut ImapSession) -> Result<PollReport> {
        let mut uids: Vec<u32> = session
            .uid_search("UNSEEN")
            .await
            .map_err(|e| imap_error("search", e))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        let mut report = PollReport::default();
        for uid in uids {
            let fetches: Vec<_> = session
                .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                .await
                .map_err(|e| imap_error("fetch", e))?
                .try_collect()
                .await
                .map_err(|e| imap_error("fetch", e))?;
            let Some(body) = fetches.iter().find_map(|f| f.body()) else {
                continue;
            };
            report.fetched += 1;
            match self.channel.ingest(body, self.handler.as_ref()).await {
                Ok(done) if done.duplicate => report.duplicates += 1,
                Ok(_) => report.stored += 1,
                Err(e) if e.is_temporary() => {
                    tracing::warn!(uid, error = %e, "IMAP mail deferred");
                    report.deferred += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(uid, error = %e, "IMAP mail refused");
                    report.refused += 1;
                }
            }
            let _: Vec<_> = session
                .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
                .await
                .map_err(|e| imap_error("store", e))?
                .try_collect()
                .await
                .map_err(|e| imap_error("store", e))?;
        }
        Ok(report)
    }

    /// Keeps taking new mail until `shutdown` completes: one pass, then an IDLE wait (or a
    /// pause of the poll interval where the server has no IDLE), and again; reconnects after
    /// temporary failures.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the server refuses the login (retrying will not help).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let outcome = tokio::select! {
                r = self.session_loop() => r,
                () = &mut shutdown => return Ok(()),
            };
            match outcome {
                Err(e) if !e.is_temporary() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "IMAP session ended; reconnecting"),
                Ok(()) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_every.min(Duration::from_secs(30))) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    async fn session_loop(&self) -> Result<()> {
        let mut session = self.connect().await?;
        let idle = self.config.idle
            && session
                .capabilities()
                .await
                .map_err(|e| imap_error("capabilities", e))?
                .has_str("IDLE");
        loop {
            let report = self.take_unseen(&mut session).await?;
            if report.fetched > 0 {
                tracing::debug!(?report, "IMAP pass");
            }
            if idle {
                let mut handle = session.idle();
                handle.init().await.map_err(|e| imap_error("idle", e))?;
                let (wait, _stop) = handle.wait_with_timeout(self.config.poll_every);
                wait.await.map_err(|e| imap_error("idle", e))?;
                session = handle
                    .done()
                    .await
                    .map_err(|e| imap_error("idle done", e))?;
            } else {
                tokio::time::sleep(self.config.poll_every).await;
            }
        }
    }
}
