//! Media through GStreamer. Senders encode the resident's camera (VP8, or H.264 where the
//! operator's side prefers it: [`VideoCodec`]) and microphone (Opus), or test sources, into an
//! `appsink` whose samples become webrtc-rs track samples. Receivers push the operator's RTP
//! packets into an `appsrc`, depacketise and decode them (VP8, H.264, Opus), and show them (face
//! on display 1, shared screen on display 2, voice to the speakers) or, headless, count the
//! decoded frames, and optionally write what arrives to files (IVF for VP8, Annex B for H.264,
//! Ogg for Opus) for tests and diagnosis. Frame counters are what the status output and the
//! tests report.
//!
//! Keyframes: a sender answers the receiver's PLI/FIR (delivered by the RTCP forwarder in
//! `call.rs`) by forcing a keyframe in its video encoder (`GstForceKeyUnit`, rate limited); a
//! receiver asks for one (PLI) when its decoder starts, when the depayloader asks upstream
//! (`rtpvp8depay`/`rtph264depay request-keyframe=true` on loss) and when a recording file
//! rotates.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use rtc::media::Sample;
use rtc::media::io::Writer as _;
use rtc::media::io::h26x_writer::H26xWriter;
use rtc::media::io::ivf_reader::IVFFileHeader;
use rtc::media::io::ivf_writer::IVFWriter;
use rtc::media::io::ogg_writer::OggWriter;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::PayloadType;
use rtc::shared::marshal::Marshal;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use crate::config::{AudioSource, DisplayConfig, DisplayMode, MediaConfig, VideoSource};
use crate::timeline::{Mark, Timeline};
use crate::wall::{CameraWall, WallInput};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("gstreamer: {0}")]
    Glib(#[from] gst::glib::Error),
    #[error("gstreamer: {0}")]
    Bool(#[from] gst::glib::BoolError),
    #[error("gstreamer state change: {0}")]
    State(#[from] gst::StateChangeError),
    #[error("pipeline has no element {0}")]
    Missing(&'static str),
}

pub fn init() -> Result<(), MediaError> {
    Ok(gst::init()?)
}

/// What the operator sends, told apart by the `a=msid` stream and track ids: a video track
/// whose stream id or track id contains `screen` is the shared screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    Camera,
    Screen,
    Audio,
}

impl RemoteKind {
    /// `camera`, `screen`, `audio` (as in the status output and recording file names).
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteKind::Camera => "camera",
            RemoteKind::Screen => "screen",
            RemoteKind::Audio => "audio",
        }
    }

    pub fn classify(is_audio: bool, stream_id: &str, track_id: &str) -> RemoteKind {
        if is_audio {
            RemoteKind::Audio
        } else if stream_id.to_ascii_lowercase().contains("screen")
            || track_id.to_ascii_lowercase().contains("screen")
        {
            RemoteKind::Screen
        } else {
            RemoteKind::Camera
        }
    }
}

/// A video codec the terminal encodes and decodes. VP8 is what it prefers; H.264 is sent where
/// the other side's offer lists it first. H.264 goes out as constrained baseline (x264,
/// no B-frames, parameter sets before every keyframe) in packetization mode 1, which every
/// H.264 decoder takes, and is accepted in baseline and constrained baseline profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// `video/VP8`, `video/H264`.
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => MIME_TYPE_VP8,
            VideoCodec::H264 => MIME_TYPE_H264,
        }
    }

    /// `vp8`, `h264` (as in the configuration and the status output).
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }

    /// The codec of a MIME type (`video/VP8`, `video/h264`; any case).
    pub fn from_mime(mime: &str) -> Option<Self> {
        [VideoCodec::Vp8, VideoCodec::H264].into_iter().find(|c| c.mime_type().eq_ignore_ascii_case(mime))
    }

    /// The codec of an SDP format (`a=rtpmap` name, `a=fmtp` line) if the terminal can send and
    /// receive it: VP8; H.264 only in packetization mode 1 and a baseline profile
    /// (`profile-level-id` 42xxxx), the ones its media engine registers.
    pub fn from_sdp(name: &str, fmtp: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("VP8") {
            return Some(VideoCodec::Vp8);
        }
        if !name.eq_ignore_ascii_case("H264") {
            return None;
        }
        let param = |key: &str| {
            fmtp.split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .find_map(|(k, v)| k.trim().eq_ignore_ascii_case(key).then(|| v.trim().to_ascii_lowercase()))
        };
        let baseline = param("profile-level-id").is_some_and(|p| p.len() == 6 && p.starts_with("42"));
        (param("packetization-mode").as_deref() == Some("1") && baseline).then_some(VideoCodec::H264)
    }

    /// The encoder, named `enc`, from raw video to what the webrtc track sends.
    fn encoder(self, bitrate_kbps: u32, keyframe_every: u32) -> String {
        match self {
            VideoCodec::Vp8 => format!(
                "vp8enc name=enc deadline=1 cpu-used=8 end-usage=cbr target-bitrate={br} lag-in-frames=0 \
                 threads=1 keyframe-max-dist={keyframe_every} error-resilient=partitions",
                br = bitrate_kbps * 1000,
            ),
            // x264 repeats SPS/PPS before every IDR frame in byte-stream output, so a decoder
            // that starts late (or after loss) needs nothing but a keyframe.
            VideoCodec::H264 => format!(
                "x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} \
                 key-int-max={keyframe_every} bframes=0 threads=1 aud=false ! \
                 video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
            ),
        }
    }

    /// Depayloader and decoder (named `dec`) from RTP to raw video.
    fn depay_decode(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "rtpvp8depay request-keyframe=true wait-for-keyframe=true ! vp8dec name=dec",
            VideoCodec::H264 => {
                "rtph264depay request-keyframe=true wait-for-keyframe=true ! avdec_h264 name=dec"
            }
        }
    }

    fn encoding_name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        }
    }
}

/// Pipeline description of an encoded local source ending in `appsink name=sink`.
pub fn video_source_pipeline(cfg: &MediaConfig, pattern: &str, codec: VideoCodec) -> String {
    let src = match cfg.video_source {
        VideoSource::Test => format!("videotestsrc is-live=true pattern={pattern}"),
        VideoSource::V4l2 => {
            format!("v4l2src device={} ! videoconvert ! videoscale ! videorate", cfg.video_device)
        }
    };
    format!(
        "{src} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! videoconvert ! {enc} ! \
         appsink name=sink sync=false max-buffers=4 drop=true",
        w = cfg.width,
        h = cfg.height,
        fps = cfg.fps,
        // Receivers ask for keyframes (PLI); the periodic one only bounds the damage when a
        // request is lost.
        enc = codec.encoder(cfg.video_bitrate_kbps, cfg.fps * 3),
    )
}

pub fn audio_source_pipeline(cfg: &MediaConfig) -> String {
    let src = match cfg.audio_source {
        AudioSource::Test => "audiotestsrc is-live=true wave=sine freq=440 volume=0.1",
        AudioSource::System => "autoaudiosrc",
    };
    format!(
        "{src} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! \
         opusenc frame-size=20 bitrate={} ! appsink name=sink sync=false max-buffers=8 drop=true",
        cfg.audio_bitrate_kbps * 1000
    )
}

/// A running GStreamer pipeline, stopped on drop.
pub struct Pipeline {
    pipeline: gst::Pipeline,
    _live: crate::live::Live,
}

impl Pipeline {
    pub fn launch(desc: &str) -> Result<Self, MediaError> {
        let el = gst::parse::launch(desc)?;
        let pipeline = el.downcast::<gst::Pipeline>().map_err(|_| MediaError::Missing("pipeline"))?;
        Ok(Self { pipeline, _live: crate::live::Live::new(&crate::live::PIPELINES) })
    }

    pub fn by_name(&self, name: &'static str) -> Result<gst::Element, MediaError> {
        self.pipeline.by_name(name).ok_or(MediaError::Missing(name))
    }

    pub fn play(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Playing)?;
        Ok(())
    }

    pub fn bus(&self) -> Option<gst::Bus> {
        self.pipeline.bus()
    }

    /// The pipeline itself, to add and remove elements while it plays.
    pub fn bin(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Logs the errors and warnings its elements post (`what`: which pipeline), from the thread
    /// that posts them; nothing is queued on the bus (nobody reads it).
    pub fn log_bus(&self, what: &'static str) {
        let Some(bus) = self.pipeline.bus() else { return };
        bus.set_sync_handler(move |_, m| {
            let from = || m.src().map(|s| s.path_string().to_string()).unwrap_or_default();
            match m.view() {
                gst::MessageView::Error(e) => {
                    tracing::error!(pipeline = what, element = %from(), error = %e.error(), debug = ?e.debug(), "GStreamer error");
                }
                gst::MessageView::Warning(w) => {
                    tracing::warn!(pipeline = what, element = %from(), warning = %w.error(), debug = ?w.debug(), "GStreamer warning");
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Turns a duration in nanoseconds into one that `write_sample` converts to exactly the right
/// number of clock ticks (it truncates `secs * clock_rate`).
pub fn tick_exact(nanos: u64, clock_rate: u32) -> Duration {
    let ticks = (u128::from(nanos) * u128::from(clock_rate) + 500_000_000) / 1_000_000_000;
    let exact = (ticks * 1_000_000_000).div_ceil(u128::from(clock_rate));
    Duration::from_nanos(u64::try_from(exact).unwrap_or(u64::MAX))
}

/// Counters of one sending track.
#[derive(Debug, Default)]
pub struct SendStats {
    pub frames: AtomicU64,
    /// Keyframes sent (video; natural and forced).
    pub keyframes: AtomicU64,
    /// PLI/FIR received from the other side.
    pub keyframe_requests: AtomicU64,
    /// Keyframes forced in the encoder in answer to a request (rate limited).
    pub forced_keyframes: AtomicU64,
    /// The resident muted this source (the microphone) from the kiosk: samples are skipped.
    pub muted: AtomicBool,
    /// Where the call's setup steps of this source are marked (our camera's).
    pub timeline: Option<Arc<crate::timeline::Timeline>>,
}

/// Whether an RTCP packet asks for a keyframe (PLI or FIR).
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// At most one action per `min_interval` (sans-IO): forced keyframes and our own PLIs, so a
/// burst of requests does not turn the stream into keyframes only.
#[derive(Debug, Clone)]
pub struct RateLimit {
    min_interval: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    pub fn new(min_interval: Duration) -> Self {
        Self { min_interval, last: None }
    }

    /// True (and remembered) when an action may happen at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Asks the encoder whose source pad this is for a keyframe (`GstForceKeyUnit` upstream event);
/// true if the encoder took the request.
pub fn force_keyframe(encoder_src: &gst::Pad) -> bool {
    encoder_src.send_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build())
}

/// The minimum gap between two forced keyframes, and between two PLIs we send for a track.
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Where encoded samples go: a webrtc track with its negotiated SSRC and payload type.
pub struct SampleTarget {
    pub track: Arc<TrackLocalStaticSample>,
    pub ssrc: u32,
    pub payload_type: PayloadType,
    pub clock_rate: u32,
    /// Frame duration when a buffer has none.
    pub fallback: Duration,
}

/// The recording a [`FanOut`]'s samples also go to, and as which of its inputs.
pub type Tap = (Arc<crate::recording::CallRecording>, crate::recording::Input);

/// One further connection of a [`FanOut`]: its key, track, SSRC and payload type.
type FanTarget = (u64, Arc<TrackLocalStaticSample>, u32, PayloadType);

/// Further peer connections an encoded source also goes to (a supervisor's, in a call with more
/// than two parties): each sample is encoded once and written to every target, each with its own
/// SSRC and payload type. Adding a target, or a keyframe request from one, forces a keyframe.
#[derive(Clone, Default)]
pub struct FanOut {
    targets: Arc<std::sync::Mutex<Vec<FanTarget>>>,
    /// The call's recording, when the resident agreed: every sample goes to it too.
    tap: Arc<std::sync::Mutex<Option<Tap>>>,
    keyframe: Arc<tokio::sync::Notify>,
    next: Arc<AtomicU64>,
}

impl FanOut {
    /// Adds a target; returns its key for [`FanOut::remove`].
    pub fn add(&self, track: Arc<TrackLocalStaticSample>, ssrc: u32, payload_type: PayloadType) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((key, track, ssrc, payload_type));
        self.keyframe.notify_one();
        key
    }

    pub fn remove(&self, key: u64) {
        self.lock().retain(|t| t.0 != key);
    }

    /// Sends every sample to `rec` as `input` too (`None`: stop).
    pub fn set_tap(&self, tap: Option<Tap>) {
        *self.tap.lock().unwrap_or_else(|p| p.into_inner()) = tap;
    }

    fn tapped(&self) -> Option<Tap> {
        self.tap.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A receiver on a further connection lost a picture.
    pub fn request_keyframe(&self) {
        self.keyframe.notify_one();
    }

    /// How many further connections are fed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FanTarget>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Vec<(Arc<TrackLocalStaticSample>, u32, PayloadType)> {
        self.lock().iter().map(|(_, t, s, p)| (t.clone(), *s, *p)).collect()
    }
}

/// Runs an encoded source into a webrtc track (and the further connections of `fan`) until the
/// pipeline ends or the task is dropped. `muted` (hold) skips samples.
pub async fn pump_into_track(
    desc: String,
    target: SampleTarget,
    fan: FanOut,
    muted: Arc<AtomicBool>,
    stats: Arc<SendStats>,
) -> Result<(), MediaError> {
    let SampleTarget { track, ssrc, payload_type, clock_rate, fallback } = target;
    let pipeline = Pipeline::launch(&desc)?;
    let sink = pipeline
        .by_name("sink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| MediaError::Missing("appsink"))?;
    // Playing first: a stream polled earlier ends at once (facts.md).
    // The video encoder, if any: keyframe requests are forced into it.
    let encoder_src = pipeline.by_name("enc").ok().and_then(|e| e.static_pad("src"));
    let mut limit = RateLimit::new(KEYFRAME_MIN_INTERVAL);
    pipeline.play()?;
    let timeline = stats.timeline.clone();
    let mark = |m: Mark| {
        if let Some(t) = &timeline {
            t.mark(m);
        }
    };
    mark(Mark::EncoderStarted);
    let mut samples = sink.stream();
    let mut rtcp_open = true;
    loop {
        tokio::select! {
            sample = samples.next() => {
                let Some(sample) = sample else { break };
                let Some(buffer) = sample.buffer() else { continue };
                mark(Mark::FirstEncodedFrame);
                if muted.load(Ordering::Relaxed) || stats.muted.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(map) = buffer.map_readable() else { continue };
                let nanos = buffer.duration().map_or(fallback.as_nanos() as u64, |d| d.nseconds());
                let s = Sample {
                    data: bytes::Bytes::copy_from_slice(map.as_slice()),
                    duration: tick_exact(nanos, clock_rate),
                    ..Sample::new(Instant::now())
                };
                if let Some((rec, input)) = fan.tapped() {
                    rec.push_sample(input, &sample);
                }
                for (t, ssrc, pt) in fan.snapshot() {
                    if let Err(e) = t.sample_writer(ssrc, pt).write_sample(&s).await {
                        tracing::debug!(error = %e, "write_sample to a further connection failed");
                    }
                }
                if let Err(e) = track.sample_writer(ssrc, payload_type).write_sample(&s).await {
                    tracing::debug!(error = %e, "write_sample failed");
                    continue;
                }
                mark(Mark::FirstFrameSent);
                stats.frames.fetch_add(1, Ordering::Relaxed);
                if encoder_src.is_some() && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    stats.keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = fan.keyframe.notified() => {
                if let Some(pad) = &encoder_src
                    && limit.allow(Instant::now())
                    && force_keyframe(pad)
                {
                    mark(Mark::KeyframeForced);
                    stats.forced_keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
            ev = track.poll(), if rtcp_open => match ev {
                None => rtcp_open = false,
                Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                    if !packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                        continue;
                    }
                    stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    mark(Mark::KeyframeRequested);
                    if let Some(pad) = &encoder_src
                        && limit.allow(Instant::now())
                        && force_keyframe(pad)
                    {
                        mark(Mark::KeyframeForced);
                        stats.forced_keyframes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(_) => {}
            },
        }
    }
    drop(pipeline);
    Ok(())
}

/// A video receiver's jitter buffer starts passing packets on as soon as it holds this many
/// consecutive ones (`rtpjitterbuffer faststart-min-packets`), instead of holding the first
/// packet for its whole `latency` (50 ms): the first frame is decoded as soon as it is complete.
/// Later gaps are still waited for up to `latency`.
pub const VIDEO_FASTSTART_PACKETS: u32 = 2;

/// Decodes one remote track; counts decoded frames (video) or buffers (audio). Keyframe
/// requests of the depayloader (upstream `GstForceKeyUnit`) come out of `keyframe_requests`.
pub struct Decoder {
    /// The playback `volume` element (audio only).
    pub volume: Option<gst::Element>,
    /// Declared before the pipeline: the camera leaves the wall before its decoder stops.
    _wall_input: Option<Arc<WallInput>>,
    _pipeline: Pipeline,
    src: gst_app::AppSrc,
    pub decoded: Arc<AtomicU64>,
    pub packets: Arc<AtomicU64>,
    pub keyframe_requests: mpsc::UnboundedReceiver<()>,
}

impl Decoder {
    /// A decoder for a remote track of `kind`; `codec` is the video codec (unused for audio).
    /// A camera goes onto `wall` when there is one (`guest`: not the operator's own camera),
    /// else to the configured camera sink.
    pub fn new(
        kind: RemoteKind,
        codec: VideoCodec,
        payload_type: u8,
        display: &DisplayConfig,
        wall: Option<(&CameraWall, bool)>,
        timeline: Option<Arc<Timeline>>,
    ) -> Result<Self, MediaError> {
        let headless = display.mode == DisplayMode::Headless;
        let wall = wall.filter(|_| kind == RemoteKind::Camera && !headless);
        let desc = match kind {
            RemoteKind::Camera | RemoteKind::Screen => {
                let sink = match (headless, kind) {
                    (true, _) => "fakesink sync=false",
                    (false, RemoteKind::Screen) => display.screen_sink.as_str(),
                    (false, _) if wall.is_some() => "appsink name=wall sync=false max-buffers=2 drop=true",
                    (false, _) => display.camera_sink.as_str(),
                };
                format!(
                    "appsrc name=src is-live=true format=time do-timestamp=true \
                     caps=application/x-rtp,media=video,clock-rate=90000,encoding-name={name},payload={payload_type} ! \
                     rtpjitterbuffer latency=50 faststart-min-packets={VIDEO_FASTSTART_PACKETS} ! \
                     {depay_decode} ! videoconvert ! {sink}",
                    name = codec.encoding_name(),
                    depay_decode = codec.depay_decode(),
                )
            }
            RemoteKind::Audio => {
                let sink = if headless { "fakesink sync=false" } else { display.audio_sink.as_str() };
                format!(
                    "appsrc name=src is-live=true format=time do-timestamp=true \
                     caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={payload_type} ! \
                     rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec name=dec ! audioconvert ! \
                     volume name=vol ! audioresample ! {sink}"
                )
            }
        };
        let pipeline = Pipeline::launch(&desc)?;
        let src_el = pipeline.by_name("src")?;
        let (kf_tx, keyframe_requests) = mpsc::unbounded_channel();
        let src_pad = src_el.static_pad("src").ok_or(MediaError::Missing("src.src"))?;
        src_pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && ev.structure().is_some_and(|s| s.name() == "GstForceKeyUnit")
            {
                let _ = kf_tx.send(());
            }
            gst::PadProbeReturn::Ok
        });
        let src = src_el.downcast::<gst_app::AppSrc>().map_err(|_| MediaError::Missing("appsrc"))?;
        let decoded = Arc::new(AtomicU64::new(0));
        let counter = decoded.clone();
        let pad = pipeline.by_name("dec")?.static_pad("src").ok_or(MediaError::Missing("dec.src"))?;
        let first = timeline.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if counter.fetch_add(1, Ordering::Relaxed) == 0
                && let Some(t) = &first
            {
                t.mark(Mark::CameraFirstDecoded);
            }
            gst::PadProbeReturn::Ok
        });
        if let (Some(t), Some(bus)) = (timeline, pipeline.bus()) {
            // When the pipeline itself reaches PLAYING (from the thread that posts it; nothing
            // is queued on the bus).
            let top = pipeline.bin().clone().upcast::<gst::Object>().downgrade();
            bus.set_sync_handler(move |_, m| {
                if let gst::MessageView::StateChanged(c) = m.view()
                    && c.current() == gst::State::Playing
                    && m.src().is_some_and(|s| top.upgrade().is_some_and(|top| &top == s))
                {
                    t.mark(Mark::DecoderPlaying);
                }
                gst::BusSyncReply::Drop
            });
        }
        let volume = pipeline.by_name("vol").ok();
        let wall_input = match wall {
            Some((wall, guest)) => {
                let input = Arc::new(wall.add(guest)?);
                let to = Arc::downgrade(&input);
                let sink = pipeline
                    .by_name("wall")?
                    .downcast::<gst_app::AppSink>()
                    .map_err(|_| MediaError::Missing("appsink"))?;
                sink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            match to.upgrade() {
                                Some(input) => {
                                    input.push(&sample);
                                    Ok(gst::FlowSuccess::Ok)
                                }
                                None => Err(gst::FlowError::Flushing),
                            }
                        })
                        .build(),
                );
                Some(input)
            }
            None => None,
        };
        pipeline.play()?;
        Ok(Self {
            volume,
            _wall_input: wall_input,
            _pipeline: pipeline,
            src,
            decoded,
            packets: Arc::new(AtomicU64::new(0)),
            keyframe_requests,
        })
    }

    pub fn push_rtp(&self, packet: &rtc::rtp::Packet) {
        let Ok(bytes) = packet.marshal() else { return };
        self.packets.fetch_add(1, Ordering::Relaxed);
        let _ = self.src.push_buffer(gst::Buffer::from_slice(bytes));
    }
}

/// A file writer that counts what it has written (for rotation).
struct CountingFile {
    file: std::fs::File,
    written: u64,
    shared: Arc<AtomicU64>,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.shared.store(self.written, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for CountingFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

enum FileWriter {
    Ivf(IVFWriter<CountingFile>),
    H264(H26xWriter<CountingFile>),
    Ogg(Box<OggWriter<CountingFile>>),
}

impl FileWriter {
    fn write_rtp(&mut self, p: &rtc::rtp::Packet) -> rtc::shared::error::Result<()> {
        match self {
            FileWriter::Ivf(w) => w.write_rtp(p),
            FileWriter::H264(w) => w.write_rtp(p),
            FileWriter::Ogg(w) => w.write_rtp(p),
        }
    }
    fn close(&mut self) -> rtc::shared::error::Result<()> {
        match self {
            FileWriter::Ivf(w) => w.close(),
            FileWriter::H264(w) => w.close(),
            FileWriter::Ogg(w) => w.close(),
        }
    }
}

/// Writes one received track to `<dir>/<session>-<kind>-<track>-<part>.ivf|h264|ogg` (VP8 in
/// IVF, H.264 as an Annex B byte stream, Opus in Ogg), unbuffered so a reader sees whole frames
/// at once. A part is closed (an IVF header then holds the frame count) and the next one opened
/// when it reaches `max_bytes`; only the last `keep` parts stay on disk. Closed on drop.
pub struct Recorder {
    dir: PathBuf,
    stem: String,
    kind: RemoteKind,
    codec: VideoCodec,
    max_bytes: u64,
    keep: u32,
    part: u32,
    written: Arc<AtomicU64>,
    writer: Option<FileWriter>,
    last_audio_ts: Option<u32>,
}

impl Recorder {
    /// `stem` names the track (`<session>-<kind>-<n>`); it must be a plain file-name part.
    /// `codec` is the video codec (unused for audio).
    pub fn create(
        dir: &Path,
        stem: String,
        kind: RemoteKind,
        codec: VideoCodec,
        max_bytes: u64,
        keep: u32,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut r = Self {
            dir: dir.to_path_buf(),
            stem,
            kind,
            codec,
            max_bytes,
            keep: keep.max(1),
            part: 0,
            written: Arc::new(AtomicU64::new(0)),
            writer: None,
            last_audio_ts: None,
        };
        r.open()?;
        Ok(r)
    }

    /// The path of part `part` of this track.
    pub fn path_of(&self, part: u32) -> PathBuf {
        let ext = match (self.kind, self.codec) {
            (RemoteKind::Audio, _) => "ogg",
            (_, VideoCodec::Vp8) => "ivf",
            (_, VideoCodec::H264) => "h264",
        };
        self.dir.join(format!("{}-{part:03}.{ext}", self.stem))
    }

    fn open(&mut self) -> std::io::Result<()> {
        let path = self.path_of(self.part);
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
        self.written.store(0, Ordering::Relaxed);
        let out = CountingFile { file, written: 0, shared: self.written.clone() };
        let w = if self.kind == RemoteKind::Audio {
            OggWriter::new(out, 48_000, 2).map(|w| FileWriter::Ogg(Box::new(w)))
        } else if self.codec == VideoCodec::H264 {
            Ok(FileWriter::H264(H26xWriter::new(out, false)))
        } else {
            let header = IVFFileHeader {
                signature: *b"DKIF",
                version: 0,
                header_size: 32,
                four_cc: *b"VP80",
                width: 0,
                height: 0,
                // Frame timestamps are frame numbers.
                timebase_denominator: 30,
                timebase_numerator: 1,
                num_frames: 0,
                unused: 0,
            };
            IVFWriter::new(out, &header).map(FileWriter::Ivf)
        };
        self.writer = Some(w.map_err(std::io::Error::other)?);
        self.last_audio_ts = None;
        if self.part >= self.keep {
            let _ = std::fs::remove_file(self.path_of(self.part - self.keep));
        }
        Ok(())
    }

    fn close_part(&mut self) {
        if let Some(mut w) = self.writer.take()
            && let Err(e) = w.close()
        {
            tracing::warn!(error = %e, "closing a recording failed");
        }
    }

    /// Writes one packet. Returns true when a new part was started (it begins at the next
    /// keyframe: ask the sender for one).
    pub fn write(&mut self, packet: &rtc::rtp::Packet) -> bool {
        let mut rotate = self.written.load(Ordering::Relaxed) >= self.max_bytes;
        if self.kind == RemoteKind::Audio {
            // The Ogg writer needs rising timestamps: skip late packets, start a new part when
            // the 32-bit RTP clock wraps.
            let ts = packet.header.timestamp;
            if let Some(last) = self.last_audio_ts {
                let ahead = ts.wrapping_sub(last);
                if ahead == 0 || ahead >= 1 << 31 {
                    return false;
                }
                rotate |= ts < last;
            }
        }
        if rotate {
            self.close_part();
            self.part += 1;
            if let Err(e) = self.open() {
                tracing::warn!(error = %e, "cannot open the next recording part; recording stops");
                return false;
            }
        }
        let Some(w) = self.writer.as_mut() else { return false };
        // The container writers index into payloads they have just depacketized: a malformed
        // packet from the network must not take the terminal down.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.write_rtp(packet)));
        match r {
            Ok(Ok(())) => {
                if self.kind == RemoteKind::Audio {
                    self.last_audio_ts = Some(packet.header.timestamp);
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "packet not recorded"),
            Err(_) => {
                tracing::warn!("malformed packet; recording of this track stops");
                self.writer = None;
            }
        }
        rotate
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.close_part();
    }
}

/// Deletes the oldest files (by modification time) of `dir` until what stays is at most
/// `max_bytes`; returns the bytes deleted. Only plain files directly in `dir` count.
pub fn prune_dir(dir: &Path, max_bytes: u64) -> std::io::Result<u64> {
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut freed = 0;
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            freed += len;
        }
    }
    Ok(freed)
}

/// NAL unit types of an H.264 Annex B byte stream (a recording, an encoded frame), in order:
/// 7 SPS, 8 PPS, 5 IDR slice, 1 other slice, 6 SEI.
pub fn nal_unit_types(data: &[u8]) -> Vec<u8> {
    let mut types = vec![];
    let mut at = 0;
    while let Some(i) = data[at..].windows(3).position(|w| w == [0, 0, 1]) {
        at += i + 3;
        if let Some(b) = data.get(at) {
            types.push(b & 0x1f);
        }
    }
    types
}

/// Frames in an IVF file: (frame count in the header, frames actually present).
pub fn ivf_frames(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 32 || &data[0..4] != b"DKIF" {
        return None;
    }
    let header = u32::from_le_bytes(data[24..28].try_into().ok()?);
    let mut at = usize::from(u16::from_le_bytes(data[6..8].try_into().ok()?));
    let mut present = 0u32;
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes(data[at..at + 4].try_into().ok()?) as usize;
        if at + 12 + size > data.len() {
            break;
        }
        at += 12 + size;
        present += 1;
    }
    Some((header, present))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_map_to_exact_clock_ticks() {
        for (nanos, clock, ticks) in
            [(33_333_333u64, 90_000u32, 3000u32), (20_000_000, 48_000, 960), (100_000_000, 90_000, 9000)]
        {
            let d = tick_exact(nanos, clock);
            assert_eq!((d.as_secs_f64() * f64::from(clock)) as u32, ticks, "{nanos} ns at {clock}");
        }
    }

    #[test]
    fn screen_share_is_told_apart_by_msid() {
        assert_eq!(RemoteKind::classify(false, "operator-screen", "t1"), RemoteKind::Screen);
        assert_eq!(RemoteKind::classify(false, "s", "screen-video"), RemoteKind::Screen);
        assert_eq!(RemoteKind::classify(false, "operator-camera", "camera"), RemoteKind::Camera);
        assert_eq!(RemoteKind::classify(true, "operator-screen", "mic"), RemoteKind::Audio);
    }

    #[test]
    fn rate_limit_spaces_actions() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_millis(500));
        assert!(r.allow(t0));
        assert!(!r.allow(t0 + Duration::from_millis(100)));
        assert!(!r.allow(t0 + Duration::from_millis(499)));
        assert!(r.allow(t0 + Duration::from_millis(500)));
        assert!(!r.allow(t0 + Duration::from_millis(900)));
    }

    fn vp8_packet(seq: u16, key: bool, len: usize) -> rtc::rtp::Packet {
        let mut payload = vec![0x10u8, if key { 0x00 } else { 0x01 }];
        payload.resize(len, 0xAB);
        rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: true,
                payload_type: 96,
                sequence_number: seq,
                timestamp: u32::from(seq) * 6000,
                ssrc: 7,
                ..Default::default()
            },
            payload: bytes::Bytes::from(payload),
        }
    }

    #[test]
    fn recorder_writes_ivf_frames_and_rotates() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut r = Recorder::create(
            dir.path(),
            "s-camera-0".into(),
            RemoteKind::Camera,
            VideoCodec::Vp8,
            64 * 1024,
            2,
        )
        .expect("recorder");
        // Starts at a keyframe: the delta frame before it is skipped.
        assert!(!r.write(&vp8_packet(1, false, 500)));
        let mut rotations = 0;
        for seq in 2..400u16 {
            if r.write(&vp8_packet(seq, seq % 30 == 2, 1000)) {
                rotations += 1;
            }
        }
        drop(r);
        assert!(rotations >= 4, "rotated {rotations} times");
        let mut parts: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        parts.sort();
        assert_eq!(parts.len(), 2, "only the last two parts are kept: {parts:?}");
        for p in &parts {
            let data = std::fs::read(dir.path().join(p)).expect("read");
            let (header, present) = ivf_frames(&data).expect("an IVF file");
            assert_eq!(header, present, "{p}: the header counts the frames");
            assert!(data.len() as u64 <= 64 * 1024 + 1100, "{p}: {} bytes", data.len());
        }
    }

    #[test]
    fn the_oldest_recordings_go_first_when_the_directory_is_full() {
        let dir = tempfile::tempdir().expect("tmp");
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; 1000]).expect("write");
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
            std::fs::File::options().write(true).open(&p).expect("open").set_modified(t).expect("mtime");
        }
        assert_eq!(prune_dir(dir.path(), 5000).expect("prune"), 0, "under the bound: nothing goes");
        assert_eq!(prune_dir(dir.path(), 2500).expect("prune"), 2000);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("e").file_name()).collect();
        left.sort();
        assert_eq!(left, ["c", "d"], "the two newest stay");
    }

    #[test]
    fn recorder_survives_hostile_packets() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut v = Recorder::create(
            dir.path(),
            "s-screen-1".into(),
            RemoteKind::Screen,
            VideoCodec::Vp8,
            1 << 20,
            2,
        )
        .expect("recorder");
        let mut a =
            Recorder::create(dir.path(), "s-audio-2".into(), RemoteKind::Audio, VideoCodec::Vp8, 1 << 20, 2)
                .expect("recorder");
        let mut bad = vp8_packet(1, true, 2);
        for payload in [&[][..], &[0x10][..], &[0x90, 0x80][..], &[0xff; 3][..]] {
            bad.payload = bytes::Bytes::copy_from_slice(payload);
            v.write(&bad);
            a.write(&bad);
        }
        // Timestamps going backwards and wrapping do not panic the Ogg writer.
        for ts in [u32::MAX - 1000, u32::MAX - 40, 500, 5, 5, 965, 500] {
            bad.header.timestamp = ts;
            bad.payload = bytes::Bytes::from_static(&[0xfc, 0x01, 0x02]);
            a.write(&bad);
        }
        assert_eq!(ivf_frames(b"DKIF"), None);
        assert_eq!(ivf_frames(&[0u8; 40]), None);
        let mut truncated = b"DKIF".to_vec();
        truncated.extend_from_slice(&[0, 0, 32, 0]);
        truncated.resize(32, 0);
        truncated.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(ivf_frames(&truncated), Some((0, 0)));
    }

    /// A playing 160×120@30 test source encoded in `codec` (keyframes every 90 frames): the
    /// pipeline, its appsink and the encoder's source pad.
    fn encoded_test_source(codec: VideoCodec) -> (Pipeline, gst_app::AppSink, gst::Pad) {
        init().expect("gstreamer");
        let cfg = MediaConfig {
            video_source: VideoSource::Test,
            fps: 30,
            width: 160,
            height: 120,
            ..MediaConfig::default()
        };
        let p = Pipeline::launch(&video_source_pipeline(&cfg, "ball", codec)).expect("launch");
        let sink = p.by_name("sink").expect("sink").downcast::<gst_app::AppSink>().expect("appsink");
        let enc_src = p.by_name("enc").expect("enc").static_pad("src").expect("enc.src");
        p.play().expect("play");
        (p, sink, enc_src)
    }

    #[test]
    fn a_forced_keyframe_comes_long_before_the_periodic_one() {
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            // Periodic keyframes every 3 s = 90 frames.
            let (_p, sink, enc_src) = encoded_test_source(codec);
            let pull = || {
                let s = sink.try_pull_sample(gst::ClockTime::from_seconds(5)).expect("a sample within 5 s");
                !s.buffer().expect("buffer").flags().contains(gst::BufferFlags::DELTA_UNIT)
            };
            assert!(pull(), "{codec:?}: the stream starts with a keyframe");
            for _ in 0..5 {
                assert!(!pull(), "{codec:?}: then delta frames");
            }
            assert!(force_keyframe(&enc_src), "{codec:?}: the encoder takes the request");
            // Frames already queued in appsink (max-buffers=4) and the encoder come first.
            let within = (0..12).position(|_| pull());
            assert!(within.is_some(), "{codec:?}: a keyframe within 12 frames of the request, not after 90");
        }
    }

    #[test]
    fn h264_keyframes_carry_their_parameter_sets() {
        let (_p, sink, enc_src) = encoded_test_source(VideoCodec::H264);
        let mut keyframes = 0;
        for n in 0..40 {
            if n == 10 {
                assert!(force_keyframe(&enc_src));
            }
            let s = sink.try_pull_sample(gst::ClockTime::from_seconds(5)).expect("a sample within 5 s");
            let b = s.buffer().expect("buffer");
            let types = nal_unit_types(&b.map_readable().expect("map"));
            let key = !b.flags().contains(gst::BufferFlags::DELTA_UNIT);
            assert_eq!(key, types.contains(&5), "frame {n}: keyframe flag and IDR slice agree: {types:?}");
            if key {
                keyframes += 1;
                // A decoder joining here (or after loss) needs nothing older than this frame.
                let idr = types.iter().position(|&t| t == 5);
                let before = &types[..idr.unwrap_or(0)];
                assert!(
                    before.contains(&7) && before.contains(&8),
                    "frame {n}: SPS and PPS before the IDR: {types:?}"
                );
            }
        }
        assert!(keyframes >= 2, "the first frame and the forced one: {keyframes}");
    }

    #[test]
    fn the_offered_h264_formats_the_terminal_takes() {
        let h264 = Some(VideoCodec::H264);
        assert_eq!(VideoCodec::from_sdp("VP8", ""), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_sdp("vp8", "x=1"), Some(VideoCodec::Vp8));
        assert_eq!(
            VideoCodec::from_sdp(
                "H264",
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            ),
            h264
        );
        assert_eq!(VideoCodec::from_sdp("h264", "profile-level-id=42001F; packetization-mode=1"), h264);
        // Single NAL mode, main/high profiles, missing or garbled parameters: not ours.
        for fmtp in [
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
            "packetization-mode=1;profile-level-id=640c1f",
            "packetization-mode=1;profile-level-id=4d001f",
            "packetization-mode=1",
            "profile-level-id=42e01f",
            "packetization-mode=1;profile-level-id=42",
            ";;==;packetization-mode",
            "",
        ] {
            assert_eq!(VideoCodec::from_sdp("H264", fmtp), None, "{fmtp}");
        }
        for name in ["VP9", "AV1", "H265", "", "rtx"] {
            assert_eq!(VideoCodec::from_sdp(name, ""), None, "{name}");
        }
        assert_eq!(VideoCodec::from_mime("video/h264"), h264);
        assert_eq!(VideoCodec::from_mime("video/VP8"), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_mime("video/VP9"), None);
    }

    #[test]
    fn test_sources_encode_vp8_h264_and_opus() {
        init().expect("gstreamer");
        let cfg = MediaConfig {
            video_source: VideoSource::Test,
            audio_source: AudioSource::Test,
            ..MediaConfig::default()
        };
        for desc in [
            video_source_pipeline(&cfg, "ball", VideoCodec::Vp8),
            video_source_pipeline(&cfg, "ball", VideoCodec::H264),
            audio_source_pipeline(&cfg),
        ] {
            let p = Pipeline::launch(&desc).expect("launch");
            let sink = p.by_name("sink").expect("sink").downcast::<gst_app::AppSink>().expect("appsink");
            p.play().expect("play");
            let mut got = 0;
            while got < 5 {
                let s = sink.try_pull_sample(gst::ClockTime::from_seconds(5)).expect("a sample within 5 s");
                assert!(s.buffer().is_some_and(|b| b.size() > 0));
                got += 1;
            }
        }
    }
}
