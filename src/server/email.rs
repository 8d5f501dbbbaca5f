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
        let mut smtp = SmtpConfig::new(host, port).with_tls(c.relay_tls);
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
        Ok(Self {
            channel: Arc::new(channel),
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
            let domain = self.channel.domain();
            let receiver = SmtpReceiver::builder(domain)
                .with_domain(domain)
                .build(self.channel.clone(), handler.clone())?;
            tracing::info!("SMTP receiver for {domain}: {addr}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(relay_tls: &str) -> EmailConfig {
        toml::from_str(&format!(
            "address = \"support@shop.example\"\nrelay = \"smtp.shop.example:587\"\nrelay_tls = \"{relay_tls}\"\n"
        ))
        .unwrap()
    }

    /// The configured mode reaches the relay transport: TLS is set up with the `tls` feature and
    /// refused with a reason without it; plain needs nothing.
    #[test]
    fn the_relay_tls_mode_reaches_the_transport() {
        let plain = Mail::from_config(&config("none"), &[7; 32]);
        assert!(plain.is_ok(), "{:?}", plain.err());
        let tls = Mail::from_config(&config("starttls"), &[7; 32]);
        if cfg!(feature = "tls") {
            assert!(tls.is_ok(), "{:?}", tls.err());
        } else {
            let e = tls.expect_err("TLS without the tls feature");
            assert!(e.to_string().contains("TLS"), "{e}");
        }
    }
}
