//! IVR menu files (TOML): the size and depth checks, the parser and the tree validation; a tree
//! that loads is also rendered as TwiML for a call that times out, presses keys and speaks.
#![no_main]

use cs_channels::voice::{IvrInput, IvrTree, Voice};
use cs_core::ChannelId;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{check_error, clock};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match IvrTree::from_toml(text) {
        Err(e) => check_error(&e),
        Ok(tree) => {
            let voice = Voice::builder(ChannelId::new("voice").unwrap())
                .with_tree(tree)
                .with_auth_token("t")
                .with_webhook_url("https://shop.example/webhooks/voice")
                .with_clock(clock())
                .build();
            if let Ok(voice) = voice {
                let ivr = voice.ivr();
                let inputs = [
                    IvrInput::Timeout,
                    IvrInput::Digits("1".into()),
                    IvrInput::Digits("2#".into()),
                    IvrInput::Speech("agent".into()),
                    IvrInput::Speech("退款".into()),
                    IvrInput::Digits("0".into()),
                ];
                for input in inputs {
                    let step = ivr.respond("CAfuzz", None, input);
                    let _ = voice.twiml(&step);
                }
                ivr.end("CAfuzz");
            }
        }
    }
});
