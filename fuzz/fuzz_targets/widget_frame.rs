//! Frames from the chat widget, as the socket transport hands them over for an authenticated
//! visitor.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::webchat::{VISITOR_HEADER, WebChat};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{block_on, check, raw};

static CHANNEL: LazyLock<WebChat> = LazyLock::new(|| {
    WebChat::builder(ChannelId::new("web").unwrap())
        .with_secret(*b"fuzz widget secret 16+")
        .build()
        .unwrap()
});

fuzz_target!(|frame: &[u8]| {
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        "/chat/ws",
        &[(VISITOR_HEADER, "v-fuzz")],
        frame,
    ))));
});
