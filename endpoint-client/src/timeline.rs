//! When each step of a call's setup happened (issue #18 item 6): from the operator's offer to
//! the first decoded frame of their camera at the terminal, and the other way from our encoder's
//! start to our first frame sent. Each mark is the wall-clock time (Unix microseconds, so a
//! bench on the same machine can line it up with the operator's click) of the *first* time the
//! step happened in the current call; later occurrences are ignored. Marks are atomics: the
//! GStreamer streaming threads (first decoded buffer, pipeline state) set them without a lock.
//!
//! The status shows them as milliseconds since the Unix epoch (`call.setup`), and the
//! `call-setup` bench turns them into its `call-setup-breakdown` rows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One step of a call's setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// The call task started (`session_started`).
    SessionStarted,
    /// The peer connection was built.
    PeerBuilt,
    /// The operator's first offer reached the call task.
    OfferReceived,
    /// The offer was applied (`set_remote_description`).
    RemoteDescriptionSet,
    /// Our answer went out to the signaling connection.
    AnswerSent,
    /// The first local ICE candidate was gathered (and sent).
    FirstLocalCandidate,
    /// The first of the operator's candidates arrived.
    FirstRemoteCandidate,
    /// ICE connected (a candidate pair works).
    IceConnected,
    /// The peer connection is connected (ICE and DTLS).
    Connected,
    /// Our sending pipelines were launched and set to PLAYING.
    EncoderStarted,
    /// The first encoded frame of our camera came out of the encoder.
    FirstEncodedFrame,
    /// The first frame of our camera was written to the track while connected (it leaves as
    /// RTP at once).
    FirstFrameSent,
    /// The operator asked for a keyframe of our camera (PLI/FIR).
    KeyframeRequested,
    /// A keyframe was forced into our encoder.
    KeyframeForced,
    /// webrtc-rs opened the operator's camera track (its first RTP packet).
    CameraTrackOpened,
    /// The first RTP packet of the operator's camera reached its task.
    CameraFirstRtp,
    /// The first RTP packet carrying the start of a keyframe of the operator's camera.
    CameraFirstKeyframeRtp,
    /// The camera's decoder pipeline was built (and asked to play).
    DecoderBuilt,
    /// The camera's decoder pipeline reached PLAYING.
    DecoderPlaying,
    /// Our first keyframe request (PLI) for the operator's camera went out.
    PliSent,
    /// The first buffer came out of the camera's decoder.
    CameraFirstDecoded,
}

impl Mark {
    pub const ALL: [Mark; 21] = [
        Mark::SessionStarted,
        Mark::PeerBuilt,
        Mark::OfferReceived,
        Mark::RemoteDescriptionSet,
        Mark::AnswerSent,
        Mark::FirstLocalCandidate,
        Mark::FirstRemoteCandidate,
        Mark::IceConnected,
        Mark::Connected,
        Mark::EncoderStarted,
        Mark::FirstEncodedFrame,
        Mark::FirstFrameSent,
        Mark::KeyframeRequested,
        Mark::KeyframeForced,
        Mark::CameraTrackOpened,
        Mark::CameraFirstRtp,
        Mark::CameraFirstKeyframeRtp,
        Mark::DecoderBuilt,
        Mark::DecoderPlaying,
        Mark::PliSent,
        Mark::CameraFirstDecoded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mark::SessionStarted => "session_started",
            Mark::PeerBuilt => "peer_built",
            Mark::OfferReceived => "offer_received",
            Mark::RemoteDescriptionSet => "remote_description_set",
            Mark::AnswerSent => "answer_sent",
            Mark::FirstLocalCandidate => "first_local_candidate",
            Mark::FirstRemoteCandidate => "first_remote_candidate",
            Mark::IceConnected => "ice_connected",
            Mark::Connected => "connected",
            Mark::EncoderStarted => "encoder_started",
            Mark::FirstEncodedFrame => "first_encoded_frame",
            Mark::FirstFrameSent => "first_frame_sent",
            Mark::KeyframeRequested => "keyframe_requested",
            Mark::KeyframeForced => "keyframe_forced",
            Mark::CameraTrackOpened => "camera_track_opened",
            Mark::CameraFirstRtp => "camera_first_rtp",
            Mark::CameraFirstKeyframeRtp => "camera_first_keyframe_rtp",
            Mark::DecoderBuilt => "decoder_built",
            Mark::DecoderPlaying => "decoder_playing",
            Mark::PliSent => "pli_sent",
            Mark::CameraFirstDecoded => "camera_first_decoded",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Wall-clock now in Unix microseconds.
pub fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
}

/// The marks of the current call (0 = not yet).
#[derive(Debug, Default)]
pub struct Timeline {
    marks: [AtomicU64; Mark::ALL.len()],
}

impl Timeline {
    /// Forgets every mark (a new call starts).
    pub fn reset(&self) {
        for m in &self.marks {
            m.store(0, Ordering::Relaxed);
        }
    }

    /// Records `mark` at `at` (Unix microseconds, > 0) unless it already happened in this call.
    /// Returns whether this was its first time.
    pub fn mark_at(&self, mark: Mark, at: u64) -> bool {
        self.marks[mark.index()].compare_exchange(0, at.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Records `mark` now (wall clock) unless it already happened in this call.
    pub fn mark(&self, mark: Mark) -> bool {
        // Cheap check first: most calls of this are repeats (every packet, every buffer).
        if self.get(mark).is_some() {
            return false;
        }
        self.mark_at(mark, unix_micros())
    }

    /// When `mark` happened (Unix microseconds).
    pub fn get(&self, mark: Mark) -> Option<u64> {
        match self.marks[mark.index()].load(Ordering::Relaxed) {
            0 => None,
            v => Some(v),
        }
    }

    /// The marks that happened, as Unix milliseconds (fractional), by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, f64> {
        Mark::ALL.iter().filter_map(|m| Some((m.as_str(), self.get(*m)? as f64 / 1000.0))).collect()
    }
}

/// Whether an RTP payload starts a keyframe: VP8 (RFC 7741: the payload descriptor's S bit and
/// partition 0, then the frame tag's P bit clear) or H.264 (RFC 6184: an IDR slice or SPS, alone,
/// in a STAP-A, or at the start of an FU-A). Hostile or short payloads are simply not keyframes.
pub fn starts_keyframe(codec: crate::media::VideoCodec, payload: &[u8]) -> bool {
    use crate::media::VideoCodec;
    match codec {
        VideoCodec::Vp8 => {
            let Some(&first) = payload.first() else { return false };
            // S bit set, partition index 0.
            if first & 0x10 == 0 || first & 0x0f != 0 {
                return false;
            }
            let mut at = 1;
            if first & 0x80 != 0 {
                // X: extension byte I L T K.
                let Some(&ext) = payload.get(at) else { return false };
                at += 1;
                if ext & 0x80 != 0 {
                    // I: PictureID, 7 or 15 bits.
                    let Some(&pid) = payload.get(at) else { return false };
                    at += if pid & 0x80 != 0 { 2 } else { 1 };
                }
                if ext & 0x40 != 0 {
                    at += 1; // L: TL0PICIDX
                }
                if ext & 0x30 != 0 {
                    at += 1; // T or K: TID/Y/KEYIDX
                }
            }
            // The VP8 frame tag: P (bit 0) clear is a keyframe.
            payload.get(at).is_some_and(|b| b & 0x01 == 0)
        }
        VideoCodec::H264 => {
            let Some(&first) = payload.first() else { return false };
            let key = |t: u8| t == 5 || t == 7;
            match first & 0x1f {
                // STAP-A: 2-byte sizes then NAL units.
                24 => {
                    let mut at = 1;
                    while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                        let size = usize::from(u16::from_be_bytes([hi, lo]));
                        match payload.get(at + 2) {
                            Some(&nal) if key(nal & 0x1f) => return true,
                            Some(_) => {}
                            None => return false,
                        }
                        at = at.saturating_add(2 + size);
                    }
                    false
                }
                // FU-A: the start bit and the fragmented NAL's type.
                28 => payload.get(1).is_some_and(|&h| h & 0x80 != 0 && key(h & 0x1f)),
                t => key(t),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::VideoCodec;

    #[test]
    fn only_the_first_time_counts() {
        let t = Timeline::default();
        assert_eq!(t.get(Mark::Connected), None);
        assert!(t.mark_at(Mark::Connected, 1_000_000));
        assert!(!t.mark_at(Mark::Connected, 2_000_000));
        assert_eq!(t.get(Mark::Connected), Some(1_000_000));
        assert!(t.mark_at(Mark::CameraFirstDecoded, 1_250_500));
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s["connected"], 1000.0);
        assert_eq!(s["camera_first_decoded"], 1250.5);
        t.reset();
        assert!(t.snapshot().is_empty());
        assert!(t.mark_at(Mark::Connected, 3_000_000));
        assert_eq!(t.get(Mark::Connected), Some(3_000_000));
    }

    #[test]
    fn every_mark_has_its_own_slot_and_name() {
        let t = Timeline::default();
        for (i, m) in Mark::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert!(t.mark_at(*m, i as u64 + 1));
        }
        let names: std::collections::BTreeSet<_> = Mark::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(names.len(), Mark::ALL.len());
        assert_eq!(t.snapshot().len(), Mark::ALL.len());
    }

    #[test]
    fn keyframe_starts_are_told_apart() {
        // VP8: S=1 PID=0, no extension; frame tag P=0 (key) / P=1 (delta).
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x10, 0x01]));
        // Not the start of the frame.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
        // With X, I (15-bit picture id), T and K: Chrome's usual descriptor.
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x90, 0xa0, 0x80, 0x01, 0x00, 0x50, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x90, 0xa0, 0x80, 0x01, 0x00, 0x51]));
        // H.264: IDR alone, SPS in a STAP-A, an FU-A start of an IDR, a plain slice.
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
    }

    #[test]
    fn hostile_payloads_are_not_keyframes() {
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            assert!(!starts_keyframe(codec, &[]));
            for b in 0..=255u8 {
                let _ = starts_keyframe(codec, &[b]);
                let _ = starts_keyframe(codec, &[b, 0xff]);
                let _ = starts_keyframe(codec, &[b, 0xff, 0xff, 0xff]);
            }
        }
        // A STAP-A whose sizes run past the end.
        assert!(!starts_keyframe(VideoCodec::H264, &[0x18, 0xff, 0xff]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x18, 0x00, 0x05, 0x41]));
    }
}
