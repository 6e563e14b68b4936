//! One video call (one session) over webrtc-rs 0.21. The terminal is the POLITE peer of perfect
//! negotiation: the operator offers (audio, camera, and a separate screen-share video track);
//! we apply the offer (rolling back our own offer on glare), attach the resident's camera and
//! microphone to the offered transceivers, answer, and trickle candidates both ways. After
//! `peer_reconnected` the operator restarts ICE and we answer; if our own ICE connection stays
//! disconnected or failed (a network change at the service point) we restart ICE ourselves.
//! mDNS is off; TURN comes from the server's `session_started.ice_servers`
//! (`webrtc.ice_transport_policy = "relay"` uses nothing else).
//!
//! Codecs: the media engine registers only what the terminal can encode and decode (Opus; VP8
//! and H.264 in packetization mode 1, in `webrtc.video_codecs` order). The camera track is
//! created when the first offer arrives, in the offer's most preferred video codec among those
//! ([`preferred_video_codec`]): a console that puts H.264 first gets H.264 both ways, since the
//! answer keeps the offer's order. Received tracks are decoded in the codec they arrive in.
//!
//! The default interceptors consume inbound RTCP; [`KeyframeRequestForwarder`], last in the
//! chain, hands PLI/FIR on to the application so the sending pipeline can force a keyframe
//! (`media::pump_into_track`). For received video we send PLI when the decoder starts, when
//! its depayloader asks (loss) and when a recording part rotates, at most every 500 ms.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet as InterceptedPacket, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_RTX};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::PayloadType;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use serde::Serialize;
use shared::protocol::{ClientMsg, ParticipantRole, ParticipantView, SessionView, Signal};
use tokio::sync::mpsc;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceConnectionState, RTCIceServer, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::{DisplayConfig, DisplayMode, IceTransportPolicy, MediaConfig, WebRtcConfig};
use crate::kiosk::CallInput;
use crate::live::{self, Live};
use crate::media::{self, Decoder, FanOut, RateLimit, Recorder, RemoteKind, SendStats, VideoCodec};
use crate::timeline::{Mark, Timeline};
use crate::wall::CameraWall;

/// Everything a call needs from the configuration.
#[derive(Debug, Clone)]
pub struct CallSettings {
    pub webrtc: WebRtcConfig,
    pub media: MediaConfig,
    pub display: DisplayConfig,
    /// Where a call the resident agreed to record is written (the upload spool) and where the
    /// finished file is handed over for upload: `(session, path)`.
    pub recordings: Option<(crate::spool::Spool, crate::upload::Uploader)>,
}

/// Per-remote-track counters.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteTrackStats {
    pub kind: RemoteKind,
    /// The video codec it arrives in (`None` for audio).
    pub codec: Option<VideoCodec>,
    pub stream_id: String,
    pub track_id: String,
    pub packets: u64,
    pub decoded: u64,
    /// Keyframe requests (PLI) we sent for this track.
    pub pli_sent: u64,
    /// Received from a guest of the call: a supervisor (played only once they barge in) or a
    /// specialist.
    pub from_guest: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallSnapshot {
    pub session_id: Option<uuid::Uuid>,
    pub connection: String,
    pub connected_after_ms: Option<u64>,
    pub ice_restarts: u64,
    /// The codec our camera is sent in (chosen from the operator's offer).
    pub video_codec: Option<VideoCodec>,
    pub sent_video_frames: u64,
    pub sent_audio_frames: u64,
    /// Keyframes our camera track sent (periodic and forced).
    pub sent_keyframes: u64,
    /// PLI/FIR the operator sent about our camera.
    pub keyframe_requests: u64,
    /// Keyframes forced in answer (rate limited).
    pub forced_keyframes: u64,
    /// The resident muted the microphone.
    pub mic_muted: bool,
    /// Playback volume, percent.
    pub volume: u32,
    pub remote: Vec<RemoteTrackStats>,
    /// Further peer connections open (supervisors in the call).
    pub extra_peers: usize,
    /// The call's recording (the resident agreed): `recording`, `stored` (handed over for
    /// upload), `failed`; empty when not recorded.
    pub recording: String,
    /// When each step of the call's setup happened, Unix milliseconds by step
    /// ([`crate::timeline::Mark`]).
    pub setup: BTreeMap<&'static str, f64>,
}

impl CallSnapshot {
    /// Decoded frames summed over the remote tracks of a kind.
    pub fn decoded(&self, kind: RemoteKind) -> u64 {
        self.remote.iter().filter(|r| r.kind == kind).map(|r| r.decoded).sum()
    }
}

struct RemoteCounters {
    kind: RemoteKind,
    codec: Option<VideoCodec>,
    stream_id: String,
    track_id: String,
    packets: Arc<AtomicU64>,
    decoded: Arc<AtomicU64>,
    pli_sent: Arc<AtomicU64>,
    from_guest: bool,
}

/// Live counters of the current call, shared with the status output; also the resident's
/// in-call controls (microphone mute, playback volume), which the kiosk sets directly.
pub struct CallStats {
    inner: Mutex<StatsInner>,
    video: Arc<SendStats>,
    audio: Arc<SendStats>,
    ice_restarts: AtomicU64,
    /// Playback volume in percent (0–150) and the audio decoders' `volume` elements.
    volume: Mutex<(u32, Vec<gst::glib::WeakRef<gst::Element>>)>,
    /// The current call's setup steps.
    timeline: Arc<Timeline>,
}

impl Default for CallStats {
    fn default() -> Self {
        let timeline = Arc::new(Timeline::default());
        Self {
            inner: Mutex::default(),
            video: Arc::new(SendStats { timeline: Some(timeline.clone()), ..Default::default() }),
            audio: Arc::default(),
            ice_restarts: AtomicU64::default(),
            volume: Mutex::new((100, Vec::new())),
            timeline,
        }
    }
}

/// Highest playback volume the kiosk offers (percent).
pub const MAX_VOLUME: u32 = 150;

#[derive(Default)]
struct StatsInner {
    session_id: Option<uuid::Uuid>,
    connection: String,
    connected_after_ms: Option<u64>,
    video_codec: Option<VideoCodec>,
    remote: BTreeMap<String, RemoteCounters>,
    extra_peers: usize,
    recording: String,
}

impl CallStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resident mutes or unmutes the microphone (the operator hears nothing while muted).
    pub fn set_mic_muted(&self, muted: bool) {
        self.audio.muted.store(muted, Ordering::Relaxed);
    }

    pub fn mic_muted(&self) -> bool {
        self.audio.muted.load(Ordering::Relaxed)
    }

    /// Sets the playback volume of the operator's voice (percent, clamped to 0–`MAX_VOLUME`).
    pub fn set_volume(&self, percent: u32) -> u32 {
        let percent = percent.min(MAX_VOLUME);
        let mut g = self.volume.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = percent;
        g.1.retain(|w| match w.upgrade() {
            Some(el) => {
                el.set_property("volume", f64::from(percent) / 100.0);
                true
            }
            None => false,
        });
        percent
    }

    /// The current call's setup steps.
    pub fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }

    fn mark(&self, m: Mark) {
        self.timeline.mark(m);
    }

    pub fn volume(&self) -> u32 {
        self.volume.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// A new audio decoder plays at the current volume.
    fn add_volume_element(&self, el: &gst::Element) {
        let mut g = self.volume.lock().unwrap_or_else(|p| p.into_inner());
        el.set_property("volume", f64::from(g.0) / 100.0);
        // The elements of past calls are gone: keep only the live ones.
        g.1.retain(|w| w.upgrade().is_some());
        g.1.push(el.downgrade());
    }

    pub fn snapshot(&self) -> CallSnapshot {
        let g = self.lock();
        CallSnapshot {
            session_id: g.session_id,
            connection: g.connection.clone(),
            connected_after_ms: g.connected_after_ms,
            ice_restarts: self.ice_restarts.load(Ordering::Relaxed),
            video_codec: g.video_codec,
            sent_video_frames: self.video.frames.load(Ordering::Relaxed),
            sent_audio_frames: self.audio.frames.load(Ordering::Relaxed),
            sent_keyframes: self.video.keyframes.load(Ordering::Relaxed),
            keyframe_requests: self.video.keyframe_requests.load(Ordering::Relaxed),
            forced_keyframes: self.video.forced_keyframes.load(Ordering::Relaxed),
            mic_muted: self.mic_muted(),
            extra_peers: g.extra_peers,
            recording: g.recording.clone(),
            volume: self.volume(),
            setup: self.timeline.snapshot(),
            remote: g
                .remote
                .values()
                .map(|r| RemoteTrackStats {
                    kind: r.kind,
                    codec: r.codec,
                    stream_id: r.stream_id.clone(),
                    track_id: r.track_id.clone(),
                    packets: r.packets.load(Ordering::Relaxed),
                    decoded: r.decoded.load(Ordering::Relaxed),
                    pli_sent: r.pli_sent.load(Ordering::Relaxed),
                    from_guest: r.from_guest,
                })
                .collect(),
        }
    }
}

/// Perfect negotiation, polite side (sans-IO): what to do with an incoming offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferAction {
    Apply,
    /// Glare: our own offer is pending; roll it back first.
    RollbackThenApply,
    /// Impolite side only: ignore the colliding offer.
    Ignore,
}

pub fn on_remote_offer(polite: bool, have_local_offer: bool) -> OfferAction {
    match (have_local_offer, polite) {
        (false, _) => OfferAction::Apply,
        (true, true) => OfferAction::RollbackThenApply,
        (true, false) => OfferAction::Ignore,
    }
}

enum PcEvent {
    Candidate(RTCIceCandidateInit),
    Ice(RTCIceConnectionState),
    Conn(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    tx: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.tx.send(PcEvent::Candidate(init));
        }
    }
    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.tx.send(PcEvent::Ice(state));
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(PcEvent::Conn(state));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Never block here: it runs in the driver loop.
        let _ = self.tx.send(PcEvent::Track(track));
    }
}

/// Events of a further peer connection (a supervisor's), tagged with the participant.
struct ExtraHandler {
    peer: uuid::Uuid,
    tx: mpsc::UnboundedSender<(uuid::Uuid, PcEvent)>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ExtraHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.tx.send((self.peer, PcEvent::Candidate(init)));
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send((self.peer, PcEvent::Conn(state)));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tx.send((self.peer, PcEvent::Track(track)));
    }
}

/// The H.264 formats the media engine registers (payload type, its RTX payload type, fmtp):
/// constrained baseline first, then baseline, both in packetization mode 1.
const H264_FORMATS: [(PayloadType, PayloadType, &str); 2] = [
    (125, 105, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
    (102, 103, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
];

/// The video formats of `video_codecs`, in that order, each followed by its RTX format: what
/// [`media_engine`] registers, and a transceiver's codec preferences for an offer in that order.
pub fn video_formats(video_codecs: &[VideoCodec]) -> Vec<RTCRtpCodecParameters> {
    let feedback: Vec<RTCPFeedback> = [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() })
        .collect();
    let format =
        |mime: &str, fmtp: String, rtcp_feedback: Vec<RTCPFeedback>, payload_type| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: fmtp,
                rtcp_feedback,
            },
            payload_type,
        };
    let mut seen = vec![];
    let mut out = vec![];
    for &codec in video_codecs {
        if seen.contains(&codec) {
            continue;
        }
        seen.push(codec);
        let formats: &[(PayloadType, PayloadType, &str)] = match codec {
            VideoCodec::Vp8 => &[(96, 97, "")],
            VideoCodec::H264 => &H264_FORMATS,
        };
        for &(pt, rtx, fmtp) in formats {
            out.push(format(codec.mime_type(), fmtp.to_owned(), feedback.clone(), pt));
            out.push(format(MIME_TYPE_RTX, format!("apt={pt}"), vec![], rtx));
        }
    }
    out
}

/// A media engine with only what the terminal can encode and decode: Opus, and the video
/// codecs in `video_codecs` order ([`video_formats`]).
pub fn media_engine(video_codecs: &[VideoCodec]) -> anyhow::Result<MediaEngine> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    for format in video_formats(video_codecs) {
        engine.register_codec(format, RtpCodecKind::Video)?;
    }
    Ok(engine)
}

/// An SDP parsed by rtc's parser (`None` if it is not SDP).
fn parse_sdp(sdp: &str) -> Option<rtc::sdp::SessionDescription> {
    RTCSessionDescription::offer(sdp.to_owned()).ok()?.unmarshal().ok()
}

/// The video codec an offer prefers among `accepted`: the formats of its first video section,
/// in the offer's order (the offerer's preference), read by [`VideoCodec::from_sdp`].
pub fn preferred_video_codec(offer_sdp: &str, accepted: &[VideoCodec]) -> Option<VideoCodec> {
    let sdp = parse_sdp(offer_sdp)?;
    let video = sdp.media_descriptions.iter().find(|m| m.media_name.media == "video")?;
    let codecs = video.codecs();
    video
        .media_name
        .formats
        .iter()
        .filter_map(|f| codecs.get(&f.parse::<u8>().ok()?))
        .filter_map(|c| VideoCodec::from_sdp(&c.name, &c.fmtp))
        .find(|c| accepted.contains(c))
}

/// The DTLS certificate fingerprints an SDP names (session and media level), sorted: a change
/// means the other side is a new peer connection.
pub fn dtls_fingerprints(sdp: &str) -> Vec<String> {
    let Some(desc) = parse_sdp(sdp) else { return vec![] };
    let media = desc.media_descriptions.iter().flat_map(|m| m.attributes.iter());
    let mut out: Vec<String> = desc
        .attributes
        .iter()
        .chain(media)
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| a.value.as_deref().map(|v| v.trim().to_ascii_lowercase()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The payload type a sender uses for `mime` among its negotiated `codecs` (for H.264, a format
/// the terminal can send), if any.
pub fn payload_type_for(codecs: &[RTCRtpCodecParameters], mime: &str) -> Option<PayloadType> {
    codecs
        .iter()
        .find(|c| {
            c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)
                && match VideoCodec::from_mime(mime) {
                    Some(VideoCodec::H264) => {
                        VideoCodec::from_sdp("H264", &c.rtp_codec.sdp_fmtp_line).is_some()
                    }
                    _ => true,
                }
        })
        .map(|c| c.payload_type)
}

/// A local sample track: Opus for audio, `codec` for video.
pub fn sample_track(
    kind: RtpCodecKind,
    codec: VideoCodec,
    stream: &str,
    id: &str,
) -> anyhow::Result<Arc<TrackLocalStaticSample>> {
    let (mime, clock_rate, channels, fmtp) = match (kind, codec) {
        (RtpCodecKind::Audio, _) => (MIME_TYPE_OPUS, 48_000, 2, ""),
        (_, VideoCodec::Vp8) => (codec.mime_type(), 90_000, 0, ""),
        (_, VideoCodec::H264) => (codec.mime_type(), 90_000, 0, H264_FORMATS[0].2),
    };
    let track = MediaStreamTrack::new(
        stream.to_owned(),
        id.to_owned(),
        id.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand::random::<u32>()),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    );
    Ok(Arc::new(TrackLocalStaticSample::new(Instant::now(), track)?))
}

/// Last in the interceptor chain: marks inbound keyframe requests (PLI, FIR) for delivery to
/// the application and drops the other inbound RTCP, which the interceptors before it have
/// already used (reports, NACK, bandwidth feedback). Only the application can answer a
/// keyframe request: it owns the encoder.
#[derive(Default)]
pub struct KeyframeRequestForwarder {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptedPacket::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> =
                packets.iter().filter(|p| media::is_keyframe_request(p.as_ref())).cloned().collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = InterceptedPacket::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Builds a peer connection with mDNS off, the given ICE servers and UDP binds, and the video
/// codecs in `video_codecs` order ([`media_engine`]).
pub async fn build_peer(
    ice_servers: Vec<RTCIceServer>,
    udp_addrs: Vec<String>,
    video_codecs: &[VideoCodec],
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    build_peer_with_policy(ice_servers, IceTransportPolicy::All, udp_addrs, video_codecs, handler).await
}

/// [`build_peer`] with an ICE transport policy (`Relay`: TURN relay candidates only).
pub async fn build_peer_with_policy(
    ice_servers: Vec<RTCIceServer>,
    policy: IceTransportPolicy,
    udp_addrs: Vec<String>,
    video_codecs: &[VideoCodec],
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let mut media = media_engine(video_codecs)?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?
        .with(Slot::from(14_000), KeyframeRequestForwarder::default());
    let policy = match policy {
        IceTransportPolicy::All => rtc::peer_connection::configuration::RTCIceTransportPolicy::All,
        IceTransportPolicy::Relay => rtc::peer_connection::configuration::RTCIceTransportPolicy::Relay,
    };
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(Duration::from_millis(20)), Some(140))
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(ice_servers)
                .with_ice_transport_policy(policy)
                .build(),
        )
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(udp_addrs)
        .build()
        .await?;
    Ok(Arc::new(pc))
}

fn ice_servers(session: &SessionView, settings: &CallSettings) -> Vec<RTCIceServer> {
    if !settings.webrtc.use_server_ice {
        return vec![];
    }
    session
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect()
}

/// A candidate from the wire, for `add_ice_candidate`.
pub fn candidate_init(candidate: &str, sdp_mid: Option<&str>, index: Option<u16>) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: candidate.to_owned(),
        sdp_mid: sdp_mid.map(str::to_owned),
        sdp_mline_index: index,
        ..Default::default()
    }
}

/// Applies a trickled remote candidate, or keeps it until the remote description is set; an
/// empty candidate (the end of candidates) is ignored.
async fn trickle(
    pc: &Arc<dyn PeerConnection>,
    remote_set: bool,
    pending: &mut Vec<RTCIceCandidateInit>,
    candidate: &shared::validate::IceCandidate,
    sdp_mid: Option<&shared::validate::SdpMid>,
    sdp_m_line_index: Option<u16>,
) -> anyhow::Result<()> {
    if candidate.as_str().is_empty() {
        return Ok(());
    }
    let init = candidate_init(candidate.as_str(), sdp_mid.map(|m| m.as_str()), sdp_m_line_index);
    if remote_set {
        pc.add_ice_candidate(init).await?;
    } else {
        pending.push(init);
    }
    Ok(())
}

/// A local candidate for the wire (`sdp_mid` must be 1–64 characters or absent).
pub fn candidate_signal(init: &RTCIceCandidateInit) -> Option<Signal> {
    Some(Signal::Candidate {
        candidate: init.candidate.clone().try_into().ok()?,
        sdp_mid: init.sdp_mid.clone().filter(|m| !m.is_empty()).and_then(|m| m.try_into().ok()),
        sdp_m_line_index: init.sdp_mline_index,
    })
}

pub enum CallCmd {
    Input(CallInput),
    Close,
}

/// Handle of a running call task.
pub struct CallHandle {
    pub session_id: uuid::Uuid,
    pub tx: mpsc::UnboundedSender<CallCmd>,
}

/// Starts the call task of `session`; signaling goes out through `ws_out`.
pub fn start(
    session: SessionView,
    settings: CallSettings,
    ws_out: mpsc::Sender<ClientMsg>,
    stats: Arc<CallStats>,
) -> CallHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let session_id = session.session_id;
    {
        let mut g = stats.lock();
        *g = StatsInner { session_id: Some(session_id), connection: "new".into(), ..Default::default() };
    }
    stats.timeline.reset();
    stats.mark(Mark::SessionStarted);
    stats.video.frames.store(0, Ordering::Relaxed);
    stats.audio.frames.store(0, Ordering::Relaxed);
    // Every call starts with the microphone on.
    stats.set_mic_muted(false);
    let task = Live::new(&live::CALL_TASKS);
    tokio::spawn(async move {
        let _task = task;
        if let Err(e) = Call::run(session, settings, ws_out, rx, stats.clone()).await {
            tracing::error!(error = %e, "call failed");
        }
        stats.lock().connection = "closed".into();
    });
    CallHandle { session_id, tx }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    /// The camera track, created in the codec of the first offer ([`preferred_video_codec`]).
    video: Option<(VideoCodec, Arc<TrackLocalStaticSample>)>,
    audio: Arc<TrackLocalStaticSample>,
    senders: Vec<(RtpCodecKind, Arc<dyn RtpSender>)>,
    remote_set: bool,
    pending: Vec<RTCIceCandidateInit>,
    _live: Live,
}

/// A further peer connection of the call: a supervisor's (docs/protocol.md §5.8). It answers
/// the supervisor's offers with our camera and microphone, fed from the call's own encoders
/// ([`FanOut`]); what it receives plays only while the supervisor may be heard by the resident.
struct Extra {
    pc: Arc<dyn PeerConnection>,
    video: Option<Arc<TrackLocalStaticSample>>,
    audio: Arc<TrackLocalStaticSample>,
    senders: Vec<(RtpCodecKind, Arc<dyn RtpSender>)>,
    remote_set: bool,
    pending: Vec<RTCIceCandidateInit>,
    /// Its targets in the fan-outs, once connected.
    fed: Vec<(RtpCodecKind, u64)>,
    /// Whether the resident hears this participant (a supervisor who barged in).
    audible: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _live: Live,
}

struct Call {
    session: SessionView,
    settings: CallSettings,
    ws_out: mpsc::Sender<ClientMsg>,
    stats: Arc<CallStats>,
    ev_tx: mpsc::UnboundedSender<PcEvent>,
    muted: Arc<AtomicBool>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    receivers: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
    /// When our last ICE-restart offer went out.
    offer_sent: Option<Instant>,
    /// Our encoded microphone and camera also go to these (the supervisors' connections).
    fan_audio: FanOut,
    fan_video: FanOut,
    extras: std::collections::HashMap<uuid::Uuid, Extra>,
    xev_tx: mpsc::UnboundedSender<(uuid::Uuid, PcEvent)>,
    /// The call's participants as last told (`participants`).
    participants: Vec<ParticipantView>,
    /// The recording of this call, when the resident agreed (`session.recording`).
    recording: Arc<Mutex<Option<Arc<crate::recording::CallRecording>>>>,
    /// The first screen (operator, and a specialist beside), opened with the first camera.
    wall: Arc<Mutex<Option<CameraWall>>>,
}

/// The call's first screen, opened with its first camera on a kiosk with screens (not
/// headless). Without one (it failed to start: logged) each camera gets its own window.
fn camera_wall(slot: &Mutex<Option<CameraWall>>, display: &DisplayConfig) -> Option<CameraWall> {
    if display.mode != DisplayMode::Screens {
        return None;
    }
    let mut slot = lock(slot);
    if slot.is_none() {
        match CameraWall::start(&display.camera_sink, display.camera_width, display.camera_height) {
            Ok(w) => *slot = Some(w),
            Err(e) => tracing::warn!(error = %e, "cannot open the camera wall; one window per camera"),
        }
    }
    slot.clone()
}

impl Call {
    async fn run(
        session: SessionView,
        settings: CallSettings,
        ws_out: mpsc::Sender<ClientMsg>,
        mut cmds: mpsc::UnboundedReceiver<CallCmd>,
        stats: Arc<CallStats>,
    ) -> anyhow::Result<()> {
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let (xev_tx, mut xev_rx) = mpsc::unbounded_channel();
        let mut call = Call {
            session,
            settings,
            ws_out,
            stats,
            ev_tx,
            muted: Arc::new(AtomicBool::new(false)),
            pumps: vec![],
            receivers: vec![],
            started: Instant::now(),
            offer_sent: None,
            fan_audio: FanOut::default(),
            fan_video: FanOut::default(),
            extras: std::collections::HashMap::new(),
            xev_tx,
            participants: Vec::new(),
            recording: Arc::default(),
            wall: Arc::default(),
        };
        let mut peer = call.new_peer().await?;
        let mut restart_at: Option<tokio::time::Instant> = None;
        let restart_after = Duration::from_secs(call.settings.webrtc.ice_restart_after_secs.max(1));
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None | Some(CallCmd::Close) => break,
                    Some(CallCmd::Input(CallInput::Signal(sig))) => {
                        if let Err(e) = call.on_signal(&mut peer, sig).await {
                            tracing::warn!(error = %e, "applying remote signal failed");
                        }
                    }
                    Some(CallCmd::Input(CallInput::PeerReconnected)) => {
                        tracing::info!("operator reconnected; expecting an ICE-restart offer");
                    }
                    Some(CallCmd::Input(CallInput::Hold(h))) => call.muted.store(h, Ordering::Relaxed),
                    Some(CallCmd::Input(CallInput::Participants(list))) => call.on_participants(list).await,
                    Some(CallCmd::Input(CallInput::PeerSignal(from, sig))) => {
                        if let Err(e) = call.on_extra_signal(&peer, from, sig).await {
                            tracing::warn!(error = %e, "applying a supervisor's signal failed");
                        }
                    }
                },
                Some((from, ev)) = xev_rx.recv() => call.on_extra_event(from, ev).await,
                ev = ev_rx.recv() => match ev {
                    None => break,
                    Some(PcEvent::Candidate(init)) => {
                        if let Some(signal) = candidate_signal(&init) {
                            call.send(signal).await;
                            call.stats.mark(Mark::FirstLocalCandidate);
                        }
                    }
                    Some(PcEvent::Ice(state)) => {
                        tracing::debug!(%state, "ice connection state");
                        if state == RTCIceConnectionState::Connected {
                            call.stats.mark(Mark::IceConnected);
                        }
                        match state {
                            RTCIceConnectionState::Disconnected | RTCIceConnectionState::Failed => {
                                restart_at.get_or_insert(tokio::time::Instant::now() + restart_after);
                            }
                            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed => restart_at = None,
                            _ => {}
                        }
                    }
                    Some(PcEvent::Conn(state)) => {
                        tracing::info!(%state, "peer connection state");
                        call.stats.lock().connection = state.to_string();
                        if state == RTCPeerConnectionState::Connected {
                            call.stats.mark(Mark::Connected);
                            call.on_connected(&peer).await;
                        }
                    }
                    Some(PcEvent::Track(track)) => call.on_track(track),
                },
                _ = async { if let Some(t) = restart_at { tokio::time::sleep_until(t).await } }, if restart_at.is_some() => {
                    restart_at = Some(tokio::time::Instant::now() + restart_after * 2);
                    if let Err(e) = call.restart_ice(&peer, restart_after * 5).await {
                        tracing::warn!(error = %e, "ICE restart failed");
                    }
                }
            }
        }
        // Stop the media first (their pipelines go to NULL as the tasks drop them), then the
        // peer connection, and wait for each so nothing of this call outlives it.
        let extras: Vec<uuid::Uuid> = call.extras.keys().copied().collect();
        for x in extras {
            call.close_extra(x).await;
        }
        call.stop_tasks(true).await;
        let _ = peer.pc.close().await;
        drop(peer);
        call.finish_recording().await;
        Ok(())
    }

    /// Aborts the media pumps (and, with `receivers`, the remote tracks' tasks) and waits until
    /// they are gone. A replaced peer connection's receivers end by themselves when it closes.
    async fn stop_tasks(&mut self, receivers: bool) {
        let mut tasks: Vec<_> = self.pumps.drain(..).collect();
        if receivers {
            tasks.append(&mut self.receivers);
        } else {
            self.receivers.retain(|t| !t.is_finished());
        }
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn new_peer(&self) -> anyhow::Result<Peer> {
        let handler = Arc::new(Handler { tx: self.ev_tx.clone() });
        let pc = build_peer_with_policy(
            ice_servers(&self.session, &self.settings),
            self.settings.webrtc.ice_transport_policy,
            self.settings.webrtc.udp_addrs.clone(),
            &self.settings.webrtc.video_codecs,
            handler,
        )
        .await?;
        Ok(Peer {
            pc,
            video: None,
            audio: sample_track(RtpCodecKind::Audio, VideoCodec::Vp8, "terminal", "terminal-mic")?,
            senders: vec![],
            remote_set: false,
            pending: vec![],
            _live: Live::new(&live::PEER_CONNECTIONS),
        })
        .inspect(|_| self.stats.mark(Mark::PeerBuilt))
    }

    async fn send(&self, signal: Signal) {
        let _ = self.ws_out.send(ClientMsg::Signal { session_id: self.session.session_id, signal }).await;
    }

    async fn on_signal(&mut self, peer: &mut Peer, sig: Signal) -> anyhow::Result<()> {
        match sig {
            Signal::Offer { sdp, ice_restart } => {
                self.stats.mark(Mark::OfferReceived);
                let sdp = sdp.into_inner();
                let have_local_offer = peer.pc.pending_local_description().await.is_some();
                match on_remote_offer(true, have_local_offer) {
                    OfferAction::Ignore => return Ok(()),
                    OfferAction::RollbackThenApply => {
                        tracing::info!("offer glare: rolling back our own offer");
                        peer.pc.set_local_description(RTCSessionDescription::rollback(None)?).await?;
                    }
                    OfferAction::Apply => {}
                }
                tracing::info!(ice_restart, "applying operator's offer");
                // A new DTLS certificate means a new peer on the other side (the console was
                // reloaded or restarted): webrtc-rs would apply the offer to the old DTLS session
                // and decrypt nothing, so start afresh.
                let new_peer = match peer.pc.remote_description().await {
                    Some(current) => dtls_fingerprints(&current.sdp) != dtls_fingerprints(&sdp),
                    None => false,
                };
                let applied = if new_peer {
                    Err(anyhow::anyhow!("the offer comes with a new DTLS certificate"))
                } else {
                    peer.pc
                        .set_remote_description(RTCSessionDescription::offer(sdp.clone())?)
                        .await
                        .map_err(anyhow::Error::from)
                };
                if let Err(e) = applied {
                    // E.g. the operator's console restarted (new DTLS fingerprint): start afresh.
                    tracing::warn!(error = %e, "offer does not apply to this connection; rebuilding it");
                    let _ = peer.pc.close().await;
                    self.stop_tasks(false).await;
                    *peer = self.new_peer().await?;
                    peer.pc.set_remote_description(RTCSessionDescription::offer(sdp.clone())?).await?;
                }
                peer.remote_set = true;
                self.stats.mark(Mark::RemoteDescriptionSet);
                if peer.senders.is_empty() {
                    // The camera goes out in the codec the operator's side prefers.
                    let accepted = &self.settings.webrtc.video_codecs;
                    let codec = preferred_video_codec(&sdp, accepted).unwrap_or_else(|| {
                        tracing::warn!("the offer has no video codec we accept; offering our camera in our own first choice");
                        accepted.first().copied().unwrap_or(VideoCodec::Vp8)
                    });
                    tracing::info!(codec = codec.as_str(), "camera codec");
                    self.stats.lock().video_codec = Some(codec);
                    let video = sample_track(RtpCodecKind::Video, codec, "terminal", "terminal-camera")?;
                    peer.video = Some((codec, video.clone()));
                    // Attach to the offered audio and (first) video transceivers.
                    let v = peer.pc.add_track(video as Arc<dyn TrackLocal>).await?;
                    let a = peer.pc.add_track(peer.audio.clone() as Arc<dyn TrackLocal>).await?;
                    peer.senders = vec![(RtpCodecKind::Video, v), (RtpCodecKind::Audio, a)];
                }
                let answer = peer.pc.create_answer(None).await?;
                peer.pc.set_local_description(answer).await?;
                let local = peer
                    .pc
                    .local_description()
                    .await
                    .ok_or_else(|| anyhow::anyhow!("no local description"))?;
                self.send(Signal::Answer { sdp: local.sdp.try_into()? }).await;
                self.stats.mark(Mark::AnswerSent);
                for c in std::mem::take(&mut peer.pending) {
                    peer.pc.add_ice_candidate(c).await?;
                }
            }
            Signal::Answer { sdp } => {
                if peer.pc.pending_local_description().await.is_none() {
                    // An answer to an offer we have since rolled back.
                    tracing::info!("ignoring an answer to no pending offer");
                    return Ok(());
                }
                self.offer_sent = None;
                peer.pc.set_remote_description(RTCSessionDescription::answer(sdp.into_inner())?).await?;
                peer.remote_set = true;
                for c in std::mem::take(&mut peer.pending) {
                    peer.pc.add_ice_candidate(c).await?;
                }
            }
            Signal::Candidate { candidate, sdp_mid, sdp_m_line_index } => {
                self.stats.mark(Mark::FirstRemoteCandidate);
                trickle(
                    &peer.pc,
                    peer.remote_set,
                    &mut peer.pending,
                    &candidate,
                    sdp_mid.as_ref(),
                    sdp_m_line_index,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn restart_ice(&mut self, peer: &Peer, stale_after: Duration) -> anyhow::Result<()> {
        if !peer.remote_set {
            return Ok(());
        }
        if peer.pc.pending_local_description().await.is_some() {
            // Our last restart offer is unanswered: wait for it a while, then assume it was
            // lost (e.g. with the connection that carried it) and offer again.
            if self.offer_sent.is_some_and(|t| t.elapsed() < stale_after) {
                return Ok(());
            }
            tracing::info!("restart offer unanswered; rolling it back");
            peer.pc.set_local_description(RTCSessionDescription::rollback(None)?).await?;
        }
        tracing::info!("restarting ICE (network change?)");
        self.stats.ice_restarts.fetch_add(1, Ordering::Relaxed);
        let offer = peer
            .pc
            .create_offer(Some(rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true }))
            .await?;
        peer.pc.set_local_description(offer).await?;
        let local =
            peer.pc.local_description().await.ok_or_else(|| anyhow::anyhow!("no local description"))?;
        self.send(Signal::Offer { sdp: local.sdp.try_into()?, ice_restart: true }).await;
        self.offer_sent = Some(Instant::now());
        Ok(())
    }

    /// The resident agreed: record the call into the spool, fed by our encoders and the
    /// operator's tracks (not the screen share).
    fn start_recording(&mut self, codec: VideoCodec) {
        let Some((spool, _)) = &self.settings.recordings else { return };
        if !self.session.recording || lock(&self.recording).is_some() {
            return;
        }
        let ext = if codec == VideoCodec::Vp8 { "webm" } else { "mkv" };
        let paths = [spool.scratch_path(ext), spool.scratch_path(ext)];
        match crate::recording::CallRecording::start([&paths[0], &paths[1]], codec) {
            Ok(rec) => {
                let rec = Arc::new(rec);
                self.fan_video.set_tap(Some((rec.clone(), crate::recording::Input::LocalVideo)));
                self.fan_audio.set_tap(Some((rec.clone(), crate::recording::Input::LocalAudio)));
                *lock(&self.recording) = Some(rec);
                self.stats.lock().recording = "recording".into();
                tracing::info!(part1 = %paths[0].display(), part2 = %paths[1].display(), "recording the call (the resident agreed)");
            }
            Err(e) => {
                for p in &paths {
                    let _ = std::fs::remove_file(p);
                }
                self.stats.lock().recording = "failed".into();
                tracing::error!(error = %e, "cannot record the call");
            }
        }
    }

    /// Closes the recording and hands both complete parts over for upload.
    async fn finish_recording(&mut self) {
        self.fan_video.set_tap(None);
        self.fan_audio.set_tap(None);
        let Some(rec) = lock(&self.recording).take() else { return };
        let Ok(rec) = Arc::try_unwrap(rec) else {
            tracing::error!("the recording is still in use; not uploaded");
            return;
        };
        let paths = rec.paths().clone();
        match rec.finish(Duration::from_secs(10)).await {
            Ok(finished) => {
                self.stats.lock().recording = "stored".into();
                // Straight into the spool and to the uploader (hashing a long call's file is
                // blocking work), not through the app loop. Part 1 (the terminal's side) is
                // spooled, and so sent, before part 2.
                if let Some((spool, uploader)) = self.settings.recordings.clone() {
                    let session = self.session.session_id;
                    tokio::task::spawn_blocking(move || {
                        let duration_ms = u64::try_from(finished.duration.as_millis()).unwrap_or(u64::MAX);
                        for (i, path) in finished.parts.iter().enumerate() {
                            let part = crate::spool::RecordingPart { part: i as u8 + 1, duration_ms };
                            let name = if part.part == 1 {
                                "通话录像-本机.webm"
                            } else {
                                "通话录像-受理员.webm"
                            };
                            let added =
                                spool.add_part(path, session, None, name, "video/webm", "webm", Some(part));
                            if let Err(e) = added {
                                tracing::error!(error = %e, part = part.part, "cannot spool the call's recording");
                                let _ = std::fs::remove_file(path);
                            }
                        }
                        uploader.kick();
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the recording could not be closed; not kept");
                self.stats.lock().recording = "failed".into();
                for p in &paths {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    async fn on_connected(&mut self, peer: &Peer) {
        {
            let mut g = self.stats.lock();
            if g.connected_after_ms.is_none() {
                g.connected_after_ms = Some(self.started.elapsed().as_millis() as u64);
            }
        }
        if let Some((codec, _)) = &peer.video {
            self.start_recording(*codec);
        }
        if !self.pumps.is_empty() {
            return;
        }
        for (kind, sender) in &peer.senders {
            let (track, mime, desc, clock, fallback, stats) = match (kind, &peer.video) {
                (RtpCodecKind::Audio, _) => (
                    peer.audio.clone(),
                    MIME_TYPE_OPUS,
                    media::audio_source_pipeline(&self.settings.media),
                    48_000,
                    Duration::from_millis(20),
                    self.stats.audio.clone(),
                ),
                (_, Some((codec, video))) => (
                    video.clone(),
                    codec.mime_type(),
                    media::video_source_pipeline(&self.settings.media, "ball", *codec),
                    90_000,
                    Duration::from_secs(1) / self.settings.media.fps.max(1),
                    self.stats.video.clone(),
                ),
                (_, None) => continue,
            };
            let pt = match sender.get_parameters().await {
                Ok(p) => match payload_type_for(&p.rtp_parameters.codecs, mime) {
                    Some(pt) => pt,
                    None => {
                        tracing::warn!(mime, "the answer left out our codec; not sending it");
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "no sender parameters");
                    continue;
                }
            };
            let Some(ssrc) = track.ssrcs().await.first().copied() else { continue };
            let muted = self.muted.clone();
            let fan =
                if *kind == RtpCodecKind::Audio { self.fan_audio.clone() } else { self.fan_video.clone() };
            let task = Live::new(&live::CALL_TASKS);
            self.pumps.push(tokio::spawn(async move {
                let _task = task;
                if let Err(e) = media::pump_into_track(
                    desc,
                    media::SampleTarget { track, ssrc, payload_type: pt, clock_rate: clock, fallback },
                    fan,
                    muted,
                    stats,
                )
                .await
                {
                    tracing::error!(error = %e, "media source failed");
                }
            }));
        }
    }

    // ---- further peer connections (supervisors) ------------------------------------------

    /// Who takes part now: connections of supervisors who left close; a supervisor's voice
    /// plays only while the resident may hear them (`barge`).
    async fn on_participants(&mut self, list: Vec<ParticipantView>) {
        self.participants = list;
        let gone: Vec<uuid::Uuid> =
            self.extras.keys().filter(|p| self.supervisor(**p).is_none()).copied().collect();
        for p in gone {
            self.close_extra(p).await;
        }
        for (p, x) in &self.extras {
            x.audible.store(self.audible(*p), Ordering::Relaxed);
        }
    }

    /// A guest of the call: a supervisor or a specialist.
    fn supervisor(&self, peer: uuid::Uuid) -> Option<&ParticipantView> {
        self.participants.iter().find(|p| {
            p.participant_id == peer
                && matches!(p.role, ParticipantRole::Supervisor | ParticipantRole::Specialist)
        })
    }

    /// Whether the resident hears `peer`: a specialist always, a supervisor once they barge in.
    fn audible(&self, peer: uuid::Uuid) -> bool {
        self.supervisor(peer).is_some_and(|v| {
            v.role == ParticipantRole::Specialist || v.mode.is_some_and(|m| m.resident_hears())
        })
    }

    async fn send_to(&self, peer: uuid::Uuid, signal: Signal) {
        let _ = self
            .ws_out
            .send(ClientMsg::PeerSignal { session_id: self.session.session_id, peer, signal })
            .await;
    }

    async fn new_extra(&self, peer: uuid::Uuid) -> anyhow::Result<Extra> {
        let handler = Arc::new(ExtraHandler { peer, tx: self.xev_tx.clone() });
        let pc = build_peer_with_policy(
            ice_servers(&self.session, &self.settings),
            self.settings.webrtc.ice_transport_policy,
            self.settings.webrtc.udp_addrs.clone(),
            &self.settings.webrtc.video_codecs,
            handler,
        )
        .await?;
        let audible = self.audible(peer);
        Ok(Extra {
            pc,
            video: None,
            audio: sample_track(RtpCodecKind::Audio, VideoCodec::Vp8, "terminal", "terminal-mic")?,
            senders: vec![],
            remote_set: false,
            pending: vec![],
            fed: vec![],
            audible: Arc::new(AtomicBool::new(audible)),
            tasks: vec![],
            _live: Live::new(&live::PEER_CONNECTIONS),
        })
    }

    /// Signaling from a supervisor: we answer their offers (they are the impolite side and
    /// never answer ours; we make none).
    async fn on_extra_signal(&mut self, main: &Peer, from: uuid::Uuid, sig: Signal) -> anyhow::Result<()> {
        if self.supervisor(from).is_none() {
            tracing::warn!("signal from someone not in the call; ignored");
            return Ok(());
        }
        match sig {
            Signal::Offer { sdp, .. } => {
                let sdp = sdp.into_inner();
                // A reloaded supervisor page is a new peer (new DTLS certificate): start afresh.
                if let Some(x) = self.extras.get(&from)
                    && let Some(current) = x.pc.remote_description().await
                    && dtls_fingerprints(&current.sdp) != dtls_fingerprints(&sdp)
                {
                    self.close_extra(from).await;
                }
                if !self.extras.contains_key(&from) {
                    let x = self.new_extra(from).await?;
                    self.extras.insert(from, x);
                    self.stats.lock().extra_peers = self.extras.len();
                }
                let Some(x) = self.extras.get_mut(&from) else { return Ok(()) };
                x.pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
                x.remote_set = true;
                if x.senders.is_empty() {
                    // The camera goes out as encoded for the call, so in the call's codec.
                    let mut senders = vec![];
                    if let Some((codec, _)) = &main.video {
                        let video = sample_track(RtpCodecKind::Video, *codec, "terminal", "terminal-camera")?;
                        x.video = Some(video.clone());
                        senders
                            .push((RtpCodecKind::Video, x.pc.add_track(video as Arc<dyn TrackLocal>).await?));
                    }
                    let a = x.pc.add_track(x.audio.clone() as Arc<dyn TrackLocal>).await?;
                    senders.push((RtpCodecKind::Audio, a));
                    x.senders = senders;
                }
                let answer = x.pc.create_answer(None).await?;
                x.pc.set_local_description(answer).await?;
                let local =
                    x.pc.local_description().await.ok_or_else(|| anyhow::anyhow!("no local description"))?;
                for c in std::mem::take(&mut x.pending) {
                    x.pc.add_ice_candidate(c).await?;
                }
                self.send_to(from, Signal::Answer { sdp: local.sdp.try_into()? }).await;
            }
            Signal::Answer { .. } => {
                tracing::debug!("an answer from a supervisor to no offer of ours; ignored")
            }
            Signal::Candidate { candidate, sdp_mid, sdp_m_line_index } => {
                let Some(x) = self.extras.get_mut(&from) else { return Ok(()) };
                trickle(&x.pc, x.remote_set, &mut x.pending, &candidate, sdp_mid.as_ref(), sdp_m_line_index)
                    .await?;
            }
        }
        Ok(())
    }

    async fn on_extra_event(&mut self, from: uuid::Uuid, ev: PcEvent) {
        match ev {
            PcEvent::Candidate(init) => {
                if self.extras.contains_key(&from)
                    && let Some(signal) = candidate_signal(&init)
                {
                    self.send_to(from, signal).await;
                }
            }
            PcEvent::Conn(state) => {
                tracing::info!(%state, "supervisor connection state");
                if state == RTCPeerConnectionState::Connected {
                    self.feed_extra(from).await;
                }
            }
            PcEvent::Track(track) => {
                let Some(gate) = self.extras.get(&from).map(|x| x.audible.clone()) else { return };
                let task = self.track_task(track, Some(gate));
                if let Some(x) = self.extras.get_mut(&from) {
                    x.tasks.push(task);
                }
            }
            PcEvent::Ice(_) => {}
        }
    }

    /// A supervisor's connection is up: our encoded camera and microphone go to it too, and
    /// its keyframe requests reach our encoder.
    async fn feed_extra(&mut self, from: uuid::Uuid) {
        let Some(x) = self.extras.get_mut(&from) else { return };
        if !x.fed.is_empty() {
            return;
        }
        for (kind, sender) in &x.senders {
            let (track, fan, mime) = match kind {
                RtpCodecKind::Audio => (x.audio.clone(), self.fan_audio.clone(), MIME_TYPE_OPUS),
                _ => match (&x.video, self.stats.lock().video_codec) {
                    (Some(v), Some(codec)) => (v.clone(), self.fan_video.clone(), codec.mime_type()),
                    _ => continue,
                },
            };
            let Ok(params) = sender.get_parameters().await else { continue };
            let Some(pt) = payload_type_for(&params.rtp_parameters.codecs, mime) else {
                tracing::warn!(mime, "the supervisor's answer left out our codec; not sending it");
                continue;
            };
            let Some(ssrc) = track.ssrcs().await.first().copied() else { continue };
            x.fed.push((*kind, fan.add(track.clone(), ssrc, pt)));
            // RTCP about what we send: keyframe requests go to the encoder.
            let task = Live::new(&live::CALL_TASKS);
            x.tasks.push(tokio::spawn(async move {
                let _task = task;
                while let Some(ev) = track.poll().await {
                    if let TrackLocalEvent::OnRtcpPacket(packets) = ev
                        && packets.iter().any(|p| media::is_keyframe_request(p.as_ref()))
                    {
                        fan.request_keyframe();
                    }
                }
            }));
        }
    }

    async fn close_extra(&mut self, peer: uuid::Uuid) {
        let Some(x) = self.extras.remove(&peer) else { return };
        for (kind, key) in &x.fed {
            if *kind == RtpCodecKind::Audio {
                self.fan_audio.remove(*key)
            } else {
                self.fan_video.remove(*key)
            }
        }
        for t in &x.tasks {
            t.abort();
        }
        let _ = x.pc.close().await;
        for t in x.tasks {
            let _ = t.await;
        }
        self.stats.lock().extra_peers = self.extras.len();
    }

    fn on_track(&mut self, track: Arc<dyn TrackRemote>) {
        let task = self.track_task(track, None);
        self.receivers.push(task);
    }

    /// The recording a remote track of kind `kind` goes into, if the call is recorded (the
    /// operator's camera and voice; not the screen share, not a guest's).
    fn recording_input(kind: RemoteKind, guest: bool) -> Option<crate::recording::Input> {
        match (kind, guest) {
            (RemoteKind::Camera, false) => Some(crate::recording::Input::RemoteVideo),
            (RemoteKind::Audio, false) => Some(crate::recording::Input::RemoteAudio),
            _ => None,
        }
    }

    /// Decodes a remote track; `gate` (a supervisor's track) lets packets through to the
    /// decoder only while set.
    fn track_task(
        &self,
        track: Arc<dyn TrackRemote>,
        gate: Option<Arc<AtomicBool>>,
    ) -> tokio::task::JoinHandle<()> {
        let stats = self.stats.clone();
        let recording = self.recording.clone();
        let display = self.settings.display.clone();
        let wall = self.wall.clone();
        let session_id = self.session.session_id;
        let track_no = self.receivers.len();
        let task = Live::new(&live::CALL_TASKS);
        tokio::spawn(async move {
            let _task = task;
            let from_guest = gate.is_some();
            let is_audio = track.kind().await == RtpCodecKind::Audio;
            let stream_id = track.stream_id().await.to_string();
            let track_id = track.track_id().await.to_string();
            let kind = RemoteKind::classify(is_audio, &stream_id, &track_id);
            tracing::info!(?kind, %stream_id, %track_id, "remote track");
            // The operator's camera is the one whose first frame the call's setup waits for.
            let timeline = (kind == RemoteKind::Camera && !from_guest).then(|| stats.timeline.clone());
            let mark = |m: Mark| {
                if let Some(t) = &timeline {
                    t.mark(m);
                }
            };
            mark(Mark::CameraTrackOpened);
            let mut decoder: Option<Decoder> = None;
            let mut recorder: Option<Recorder> = None;
            let pli_sent = Arc::new(AtomicU64::new(0));
            let mut pli_limit = RateLimit::new(media::KEYFRAME_MIN_INTERVAL);
            let mut media_ssrc: Option<u32> = None;
            let mut decoder_codec: Option<VideoCodec> = None;
            loop {
                // A keyframe is wanted: the decoder just started, its depayloader asked (loss),
                // or a recording part rotated.
                let mut want_keyframe = false;
                let ev: Polled = match decoder.as_mut() {
                    Some(d) => tokio::select! {
                        ev = track.poll() => ev.into(),
                        Some(()) = d.keyframe_requests.recv() => {
                            want_keyframe = true;
                            Polled::Nothing
                        }
                    },
                    None => track.poll().await.into(),
                };
                match ev {
                    Polled::Ended => break,
                    Polled::Nothing => {}
                    Polled::Event(TrackRemoteEvent::OnRtpPacket(p)) => {
                        mark(Mark::CameraFirstRtp);
                        if decoder.is_none() {
                            let codec = if kind == RemoteKind::Audio {
                                None
                            } else {
                                let mime = track.codec(p.header.ssrc).await.map(|c| c.mime_type);
                                match mime.as_deref().and_then(VideoCodec::from_mime) {
                                    Some(c) => Some(c),
                                    None => {
                                        tracing::error!(?mime, "remote video in a codec we cannot decode");
                                        return;
                                    }
                                }
                            };
                            let video_codec = codec.unwrap_or(VideoCodec::Vp8);
                            decoder_codec = codec;
                            let wall =
                                (kind == RemoteKind::Camera).then(|| camera_wall(&wall, &display)).flatten();
                            let on_wall = wall.as_ref().map(|w| (w, from_guest));
                            match Decoder::new(
                                kind,
                                video_codec,
                                p.header.payload_type,
                                &display,
                                on_wall,
                                timeline.clone(),
                            ) {
                                Ok(d) => {
                                    mark(Mark::DecoderBuilt);
                                    if let Some(v) = &d.volume {
                                        stats.add_volume_element(v);
                                    }
                                    let prefix = if from_guest { "guest:" } else { "" };
                                    stats.lock().remote.insert(
                                        format!("{prefix}{stream_id}/{track_id}"),
                                        RemoteCounters {
                                            kind,
                                            codec,
                                            stream_id: stream_id.clone(),
                                            track_id: track_id.clone(),
                                            packets: d.packets.clone(),
                                            decoded: d.decoded.clone(),
                                            pli_sent: pli_sent.clone(),
                                            from_guest,
                                        },
                                    );
                                    decoder = Some(d);
                                    want_keyframe = true;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot decode remote track");
                                    return;
                                }
                            }
                            if let Some(dir) = &display.record_dir {
                                match media::prune_dir(dir, display.record_dir_max_bytes) {
                                    Ok(0) => {}
                                    Ok(n) => tracing::info!(
                                        bytes = n,
                                        "oldest recordings deleted (record_dir_max_bytes)"
                                    ),
                                    Err(e) => tracing::debug!(error = %e, "cannot prune the recordings"),
                                }
                                let stem = format!("{session_id}-{}-{track_no}", kind.as_str());
                                match Recorder::create(
                                    dir,
                                    stem,
                                    kind,
                                    video_codec,
                                    display.record_max_bytes,
                                    display.record_keep_parts,
                                ) {
                                    Ok(r) => recorder = Some(r),
                                    Err(e) => tracing::warn!(error = %e, "cannot record the remote track"),
                                }
                            }
                        }
                        media_ssrc = Some(p.header.ssrc);
                        if let Some(t) = &timeline
                            && t.get(Mark::CameraFirstKeyframeRtp).is_none()
                            && decoder_codec.is_some_and(|c| crate::timeline::starts_keyframe(c, &p.payload))
                        {
                            t.mark(Mark::CameraFirstKeyframeRtp);
                        }
                        if let Some(input) = Self::recording_input(kind, from_guest)
                            && let Some(rec) = lock(&recording).clone()
                            && let Ok(bytes) = rtc::shared::marshal::Marshal::marshal(&p)
                        {
                            rec.push_rtp(input, &bytes);
                        }
                        let open = gate.as_ref().is_none_or(|g| g.load(Ordering::Relaxed));
                        if let Some(d) = decoder.as_ref().filter(|_| open) {
                            d.push_rtp(&p);
                        }
                        if let Some(r) = recorder.as_mut() {
                            want_keyframe |= r.write(&p);
                        }
                    }
                    Polled::Event(TrackRemoteEvent::OnEnded) => break,
                    Polled::Event(_) => {}
                }
                if want_keyframe
                    && kind != RemoteKind::Audio
                    && let Some(ssrc) = media_ssrc
                    && pli_limit.allow(Instant::now())
                {
                    let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
                    match track.write_rtcp(vec![Box::new(pli)]).await {
                        Ok(()) => {
                            mark(Mark::PliSent);
                            pli_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::debug!(error = %e, "cannot send PLI"),
                    }
                }
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One step of a remote track's loop.
enum Polled {
    Event(TrackRemoteEvent),
    /// Woken for something else (a keyframe request).
    Nothing,
    Ended,
}

impl From<Option<TrackRemoteEvent>> for Polled {
    fn from(ev: Option<TrackRemoteEvent>) -> Self {
        match ev {
            Some(e) => Polled::Event(e),
            None => Polled::Ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtcp(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: rtc::shared::TransportContext::default(),
            message: rtc::interceptor::AttributedPacket::new(InterceptedPacket::Rtcp(packets)),
        }
    }

    #[test]
    fn only_keyframe_requests_reach_the_application() {
        use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
        use rtc::rtcp::receiver_report::ReceiverReport;
        use rtc::sansio::Protocol;

        let mut f = KeyframeRequestForwarder::default();
        f.handle_read(rtcp(vec![Box::new(ReceiverReport::default())])).expect("read");
        assert!(f.poll_read().is_none(), "a receiver report alone stops at the chain's end");

        let pli = PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 };
        f.handle_read(rtcp(vec![Box::new(ReceiverReport::default()), Box::new(pli)])).expect("read");
        let out = f.poll_read().expect("the PLI goes on");
        assert!(out.message.has(&Attribute::DeliverToApplication));
        let InterceptedPacket::Rtcp(kept) = &out.message.packet else { panic!("not RTCP") };
        assert_eq!(kept.len(), 1, "only the PLI is kept");
        assert!(kept[0].as_any().is::<PictureLossIndication>());

        f.handle_read(rtcp(vec![Box::new(FullIntraRequest::default())])).expect("read");
        assert!(f.poll_read().is_some_and(|p| p.message.has(&Attribute::DeliverToApplication)));
        assert!(f.poll_read().is_none());
    }

    #[test]
    fn polite_side_rolls_back_on_glare() {
        assert_eq!(on_remote_offer(true, false), OfferAction::Apply);
        assert_eq!(on_remote_offer(true, true), OfferAction::RollbackThenApply);
        assert_eq!(on_remote_offer(false, true), OfferAction::Ignore);
    }

    #[test]
    fn local_candidates_fit_the_protocol() {
        let init = RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some(String::new()),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        let Some(Signal::Candidate { candidate, sdp_mid, sdp_m_line_index }) = candidate_signal(&init) else {
            panic!("not a candidate")
        };
        assert_eq!(candidate.as_str(), init.candidate);
        assert_eq!(sdp_mid, None, "empty mid is omitted (protocol: 1-64 characters)");
        assert_eq!(sdp_m_line_index, Some(0));
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    struct Quiet;
    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Quiet {}

    /// An offer from a peer registering `codecs` in that order (video section first).
    async fn offer(codecs: &[VideoCodec]) -> String {
        let pc = build_peer(vec![], vec!["127.0.0.1:0".into()], codecs, Arc::new(Quiet)).await.expect("peer");
        let track = sample_track(RtpCodecKind::Video, codecs[0], "s", "t").expect("track");
        let tr =
            pc.add_transceiver_from_track(track as Arc<dyn TrackLocal>, None).await.expect("track added");
        // As a browser's setCodecPreferences: every codec, ours first.
        tr.set_codec_preferences(video_formats(codecs)).await.expect("preferences");
        let offer = pc.create_offer(None).await.expect("offer");
        let _ = pc.close().await;
        offer.sdp
    }

    #[tokio::test]
    async fn the_offers_first_video_codec_we_accept_wins() {
        let h264_first = offer(&[VideoCodec::H264, VideoCodec::Vp8]).await;
        let both = [VideoCodec::Vp8, VideoCodec::H264];
        assert_eq!(preferred_video_codec(&h264_first, &both), Some(VideoCodec::H264));
        assert_eq!(preferred_video_codec(&h264_first, &[VideoCodec::Vp8]), Some(VideoCodec::Vp8));
        let vp8_first = offer(&both).await;
        assert_eq!(preferred_video_codec(&vp8_first, &both), Some(VideoCodec::Vp8));
        assert_eq!(preferred_video_codec(&vp8_first, &[VideoCodec::H264]), Some(VideoCodec::H264));
        let vp8_only = offer(&[VideoCodec::Vp8]).await;
        assert_eq!(preferred_video_codec(&vp8_only, &[VideoCodec::H264]), None);
        for hostile in ["", "v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "\u{0}\u{ffff}"] {
            assert_eq!(preferred_video_codec(hostile, &both), None, "{hostile:?}");
            assert!(dtls_fingerprints(hostile).is_empty(), "{hostile:?}");
        }
    }

    #[tokio::test]
    async fn a_new_peer_is_told_by_its_dtls_fingerprint() {
        let (a, b) = (offer(&[VideoCodec::Vp8]).await, offer(&[VideoCodec::Vp8]).await);
        let fa = dtls_fingerprints(&a);
        assert_eq!(fa.len(), 1, "one certificate: {fa:?}");
        assert!(fa[0].starts_with("sha-256 "), "{fa:?}");
        assert_ne!(fa, dtls_fingerprints(&b), "two peer connections, two certificates");
        // The same peer's next offer (an ICE restart) keeps it, whatever else changes.
        let restarted = a.replace("a=ice-ufrag:", "a=ice-ufrag:x");
        assert_eq!(dtls_fingerprints(&restarted), fa);
    }
}
