//! The WebSocket message decoder: any frame either decodes or is refused with an error, never a
//! panic; whatever decodes re-encodes to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::protocol::{ClientMsg, ServerMsg};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = ClientMsg::decode(data) {
        let again = ClientMsg::decode(msg.encode().as_bytes()).expect("re-encoded client message decodes");
        assert_eq!(format!("{again:?}"), format!("{msg:?}"));
    }
    if let Ok(msg) = ServerMsg::decode(data) {
        let again = ServerMsg::decode(msg.encode().as_bytes()).expect("re-encoded server message decodes");
        assert_eq!(format!("{again:?}"), format!("{msg:?}"));
    }
});
