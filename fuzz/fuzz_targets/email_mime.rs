//! Raw mail (what IMAP or the SMTP receiver hands over): the MIME structure scan, mail-parser
//! (panics caught), quoting and threading. A fresh channel per input, so no state builds up.
#![no_main]

use cs_channels::email::{EmailChannel, SmtpConfig};
use cs_core::ChannelId;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{block_on, check_error};

fuzz_target!(|raw: &[u8]| {
    let email = EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
        .with_smtp(SmtpConfig::new("127.0.0.1", 1))
        .with_thread_secret("fuzz thread secret 16+")
        .build()
        .unwrap();
    if let Err(e) = block_on(email.parse(raw)) {
        check_error(&e);
    }
});
