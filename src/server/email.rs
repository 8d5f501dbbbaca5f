//! The email channel of the bundled service: the channel itself, and the SMTP receiver and IMAP
//! poller that feed it while the service runs.

use std::future::Future;
use std::sync::Arc;

use cs_channels::InboundHandler;
use cs_channels::email::{EmailChannel, ImapConfig, ImapPoller, SmtpConfig, SmtpReceiver};
use cs_core::ChannelId;
use tokio::net::TcpListener;

use crate::config::EmailConfig;
use crate::error::{Error, Result};

/// The configured email channel and its inbound listeners.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) channel: Arc<EmailChannel>,
    domain: String,
    listen: Option<String>,
    imap: Option<ImapConfig>,
}

fn host_port(what: &str, s: &str) -> Result<(String, u16)> {
    s.rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| Error::Config {
            reason: format!("email {what} {s:?} should read host:port"),
        })
}

impl Mail {
    /// Builds the channel; threads are keyed under the service's secret.
    pub(crate) fn from_config(c: &EmailConfig, secret: &[u8]) -> Result<Self> {
        let (host, port) = host_port("relay", &c.relay)?;
        let mut smtp = SmtpConfig::new(host, port);
        if let (Some(u), Some(p)) = (&c.relay_user, &c.relay_password) {
            smtp = smtp.with_credentials(u.clone(), p.clone());
        }
        let channel = EmailChannel::builder(ChannelId::new(c.id.clone())?, c.address.clone())
            .with_smtp(smtp)
            .with_thread_secret(secret.to_vec())
            .build()?;
        let imap = c.imap.as_ref().map(|m| {
            ImapConfig::new(m.host.clone(), m.port, m.user.clone(), m.password.clone())
                .with_tls(m.tls)
        });
        let domain = c
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        Ok(Self {
            channel: Arc::new(channel),
            domain,
            listen: c.listen.clone(),
            imap,
        })
    }

    /// Binds the SMTP receiver (so a bad address fails the start-up) and spawns it and the IMAP
    /// poller until `stopped()` completes.
    pub(crate) async fn start<F, Fut>(
        &self,
        handler: Arc<dyn InboundHandler>,
        stopped: F,
    ) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(addr) = &self.listen {
            let listener = TcpListener::bind(addr).await.map_err(|e| Error::Config {
                reason: format!("cannot listen for mail on {addr}: {e}"),
            })?;
            let receiver = SmtpReceiver::builder(self.domain.clone())
                .with_domain(self.domain.clone())
                .build(self.channel.clone(), handler.clone())?;
            tracing::info!("SMTP receiver for {}: {addr}", self.domain);
            let until = stopped();
            tokio::spawn(async move {
                if let Err(e) = receiver.serve(listener, until).await {
                    tracing::error!(error = %e, "SMTP receiver stopped");
                }
            });
        }
        if let Some(imap) = &self.imap {
            let poller = ImapPoller::new(imap.clone(), self.channel.clone(), handler);
            let until = stopped();
            tokio::spawn(async move {
                if let Err(e) = poller.run(until).await {
                    tracing::error!(error = %e, "IMAP poller stopped");
                }
            });
        }
        Ok(())
    }
}
