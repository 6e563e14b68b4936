//! Feeds arbitrary bytes to both frame decoders. Neither may panic, and whatever decodes must
//! re-encode to a frame that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::protocol::{ClientMsg, MAX_FRAME_BYTES, ServerMsg};

fuzz_target!(|data: &[u8]| {
    match ClientMsg::decode(data) {
        Ok(msg) => {
            let _ = msg.kind();
            let text = msg.encode();
            if text.len() <= MAX_FRAME_BYTES {
                assert_eq!(ClientMsg::decode(text.as_bytes()).ok().as_ref(), Some(&msg), "{text}");
            }
        }
        Err(e) => {
            // Errors must render and turn into an `error` reply.
            let _ = ServerMsg::from_decode_error(&e).encode();
        }
    }
    match ServerMsg::decode(data) {
        Ok(msg) => {
            let _ = msg.kind();
            let text = msg.encode();
            if text.len() <= MAX_FRAME_BYTES {
                assert_eq!(ServerMsg::decode(text.as_bytes()).ok().as_ref(), Some(&msg), "{text}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
