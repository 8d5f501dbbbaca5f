//! Outbound mail over SMTP (lettre).

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Mail};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::error::{Error, Result};

/// How the connection to the SMTP server is secured. In configuration files: `"none"`,
/// `"starttls"` or `"implicit"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network).
    #[default]
    None,
    /// `STARTTLS` required (submission port 587). Needs the `email-tls` feature.
    StartTls,
    /// TLS from the first byte (port 465). Needs the `email-tls` feature.
    Implicit,
}

/// Where outbound mail is submitted: an SMTP server, plain (a local relay) or over TLS
/// ([`SmtpTls`], with the `email-tls` feature).
#[derive(Clone)]
pub struct SmtpConfig {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    hello_name: Option<String>,
    timeout: Duration,
    tls: SmtpTls,
    root_pem: Option<Vec<u8>>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .field("hello_name", &self.hello_name)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .field("extra_root", &self.root_pem.is_some())
            .finish()
    }
}

impl SmtpConfig {
    /// An SMTP server at `host:port`, no authentication, 30 s timeout.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            credentials: None,
            hello_name: None,
            timeout: Duration::from_secs(30),
            tls: SmtpTls::None,
            root_pem: None,
        }
    }

    /// Secures the connection (the `email-tls` feature is needed for anything but
    /// [`SmtpTls::None`]). The server's certificate is checked against the system's roots.
    pub fn with_tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// Also trusts this PEM root certificate (a company or test CA).
    pub fn with_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pem = Some(pem.into());
        self
    }

    /// Logs in with `username` and `password` (AUTH PLAIN/LOGIN).
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// The name we greet the server with (EHLO); defaults to the support address's domain.
    pub fn with_hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// How long one SMTP exchange may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn transport(
        &self,
        default_hello: &str,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
        let hello = self.hello_name.as_deref().unwrap_or(default_hello);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .hello_name(ClientId::Domain(hello.to_owned()))
            .timeout(Some(self.timeout));
        if let Some((user, pass)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        if self.tls != SmtpTls::None {
            builder = self.with_tls_settings(builder)?;
        }
        Ok(builder.build())
    }

    #[cfg(feature = "email-tls")]
    fn with_tls_settings(
        &self,
        builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    ) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder> {
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let bad = |e: lettre::transport::smtp::Error| Error::invalid(format!("SMTP TLS: {e}"));
        let mut params = TlsParameters::builder(self.host.clone());
        if let Some(pem) = &self.root_pem {
            params = params.add_root_certificate(Certificate::from_pem(pem).map_err(bad)?);
        }
        let params = params.build_rustls().map_err(bad)?;
        Ok(builder.tls(match self.tls {
            SmtpTls::Implicit => Tls::Wrapper(params),
            _ => Tls::Required(params),
        }))
    }

    #[cfg(not(feature = "email-tls"))]
    fn with_tls_settings(
        &self,
        _builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    ) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder> {
        Err(Error::Unsupported {
            reason: "SMTP over TLS needs the email-tls feature".into(),
        })
    }
}

/// Everything one outbound mail carries.
#[derive(Debug)]
pub(crate) struct OutgoingMail<'a> {
    pub(crate) from: Mailbox,
    pub(crate) reply_to: Mailbox,
    pub(crate) to: Mailbox,
    pub(crate) subject: String,
    /// With angle brackets.
    pub(crate) message_id: String,
    /// Without angle brackets, oldest first; the last is the parent.
    pub(crate) references: &'a [String],
    pub(crate) text: String,
}

pub(crate) fn build_mail(mail: OutgoingMail<'_>) -> Result<Mail> {
    let mut builder = Mail::builder()
        .from(mail.from)
        .reply_to(mail.reply_to)
        .to(mail.to)
        .subject(mail.subject)
        .message_id(Some(mail.message_id))
        .date_now();
    if let Some(parent) = mail.references.last() {
        builder = builder.in_reply_to(format!("<{parent}>"));
        let refs: Vec<String> = mail.references.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(refs.join(" "));
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(mail.text)
        .map_err(|e| Error::invalid(format!("cannot build mail: {e}")))
}

/// Parses an address for a header.
pub(crate) fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox> {
    let addr = address
        .parse()
        .map_err(|e| Error::invalid(format!("bad email address {address:?}: {e}")))?;
    Ok(Mailbox::new(name.map(str::to_owned), addr))
}

/// Maps lettre's SMTP error by meaning: 4xx answers and connection trouble are temporary, 5xx
/// answers permanent.
pub(crate) fn map_smtp_error(e: lettre::transport::smtp::Error) -> Error {
    if e.is_permanent() {
        Error::Rejected {
            reason: format!("SMTP: {e}"),
        }
    } else {
        Error::Unavailable {
            reason: format!("SMTP: {e}"),
        }
    }
}

pub(crate) async fn submit(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    mail: Mail,
) -> Result<()> {
    transport
        .send(mail)
        .await
        .map(|_| ())
        .map_err(map_smtp_error)
}
