//! The SDP checks (`shared::validate::Sdp`): any string is accepted or refused without a panic,
//! and what is accepted fits a relayed `signal` frame once JSON-escaped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::validate::Sdp;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    if let Ok(sdp) = Sdp::try_from(text.clone()) {
        assert!(sdp.as_str().starts_with("v=0"));
        let json = serde_json::to_string(&sdp).expect("serialises");
        assert!(json.len() <= Sdp::MAX_ESCAPED_BYTES + 2, "escaped SDP {} bytes", json.len());
        let back: Sdp = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back.as_str(), text);
    }
    // The same text inside a JSON `signal` frame goes through the decoder's own checks.
    let frame = serde_json::json!({ "type": "signal", "session_id": "00000000-0000-4000-8000-000000000000",
        "signal": { "kind": "offer", "sdp": text } });
    let _ = shared::protocol::ClientMsg::decode(frame.to_string().as_bytes());
});
