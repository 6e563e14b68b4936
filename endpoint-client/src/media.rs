//! Media through GStreamer. Senders encode the resident's camera (VP8) and microphone (Opus), or
//! test sources, into an `appsink` whose samples become webrtc-rs track samples. Receivers push
//! the operator's RTP packets into an `appsrc`, depacketise and decode them, and show them (face
//! on display 1, shared screen on display 2, voice to the speakers) or, headless, count the
//! decoded frames. Frame counters are what the status output and the tests report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::media::Sample;
use rtc::rtp_transceiver::PayloadType;
use rtc::shared::marshal::Marshal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::config::{AudioSource, DisplayConfig, DisplayMode, MediaConfig, VideoSource};

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

/// Pipeline description of an encoded local source ending in `appsink name=sink`.
pub fn video_source_pipeline(cfg: &MediaConfig, pattern: &str) -> String {
    let src = match cfg.video_source {
        VideoSource::Test => format!("videotestsrc is-live=true pattern={pattern}"),
        VideoSource::V4l2 => {
            format!("v4l2src device={} ! videoconvert ! videoscale ! videorate", cfg.video_device)
        }
    };
    format!(
        "{src} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! videoconvert ! \
         vp8enc deadline=1 cpu-used=8 end-usage=cbr target-bitrate={br} lag-in-frames=0 threads=1 \
         keyframe-max-dist={kf} error-resilient=partitions ! appsink name=sink sync=false max-buffers=4 drop=true",
        w = cfg.width,
        h = cfg.height,
        fps = cfg.fps,
        br = cfg.video_bitrate_kbps * 1000,
        // A late-starting decoder recovers within a second (inbound PLI does not reach us yet).
        kf = cfg.fps,
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
}

impl Pipeline {
    pub fn launch(desc: &str) -> Result<Self, MediaError> {
        let el = gst::parse::launch(desc)?;
        let pipeline = el.downcast::<gst::Pipeline>().map_err(|_| MediaError::Missing("pipeline"))?;
        Ok(Self { pipeline })
    }

    pub fn by_name(&self, name: &'static str) -> Result<gst::Element, MediaError> {
        self.pipeline.by_name(name).ok_or(MediaError::Missing(name))
    }

    pub fn play(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Playing)?;
        Ok(())
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
}

/// Where encoded samples go: a webrtc track with its negotiated SSRC and payload type.
pub struct SampleTarget {
    pub track: Arc<TrackLocalStaticSample>,
    pub ssrc: u32,
    pub payload_type: PayloadType,
    pub clock_rate: u32,
    /// Frame duration when a buffer has none.
    pub fallback: Duration,
}

/// Runs an encoded source into a webrtc track until the pipeline ends or the task is dropped.
/// `muted` (hold) skips samples.
pub async fn pump_into_track(
    desc: String,
    target: SampleTarget,
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
    pipeline.play()?;
    let mut samples = sink.stream();
    while let Some(sample) = samples.next().await {
        let Some(buffer) = sample.buffer() else { continue };
        if muted.load(Ordering::Relaxed) {
            continue;
        }
        let Ok(map) = buffer.map_readable() else { continue };
        let nanos = buffer.duration().map_or(fallback.as_nanos() as u64, |d| d.nseconds());
        let s = Sample {
            data: bytes::Bytes::copy_from_slice(map.as_slice()),
            duration: tick_exact(nanos, clock_rate),
            ..Sample::new(Instant::now())
        };
        if let Err(e) = track.sample_writer(ssrc, payload_type).write_sample(&s).await {
            tracing::debug!(error = %e, "write_sample failed");
            continue;
        }
        stats.frames.fetch_add(1, Ordering::Relaxed);
    }
    drop(pipeline);
    Ok(())
}

/// Decodes one remote track; counts decoded frames (video) or buffers (audio).
pub struct Decoder {
    _pipeline: Pipeline,
    src: gst_app::AppSrc,
    pub decoded: Arc<AtomicU64>,
    pub packets: Arc<AtomicU64>,
}

impl Decoder {
    pub fn new(kind: RemoteKind, payload_type: u8, display: &DisplayConfig) -> Result<Self, MediaError> {
        let headless = display.mode == DisplayMode::Headless;
        let desc = match kind {
            RemoteKind::Camera | RemoteKind::Screen => {
                let sink = match (headless, kind) {
                    (true, _) => "fakesink sync=false",
                    (false, RemoteKind::Screen) => display.screen_sink.as_str(),
                    (false, _) => display.camera_sink.as_str(),
                };
                format!(
                    "appsrc name=src is-live=true format=time do-timestamp=true \
                     caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload={payload_type} ! \
                     rtpjitterbuffer latency=50 ! rtpvp8depay request-keyframe=true wait-for-keyframe=true ! \
                     vp8dec name=dec ! videoconvert ! {sink}"
                )
            }
            RemoteKind::Audio => {
                let sink = if headless { "fakesink sync=false" } else { display.audio_sink.as_str() };
                format!(
                    "appsrc name=src is-live=true format=time do-timestamp=true \
                     caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={payload_type} ! \
                     rtpjitterbuffer latency=50 ! rtpopusdepay ! opusdec name=dec ! audioconvert ! audioresample ! {sink}"
                )
            }
        };
        let pipeline = Pipeline::launch(&desc)?;
        let src = pipeline
            .by_name("src")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| MediaError::Missing("appsrc"))?;
        let decoded = Arc::new(AtomicU64::new(0));
        let counter = decoded.clone();
        let pad = pipeline.by_name("dec")?.static_pad("src").ok_or(MediaError::Missing("dec.src"))?;
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        pipeline.play()?;
        Ok(Self { _pipeline: pipeline, src, decoded, packets: Arc::new(AtomicU64::new(0)) })
    }

    pub fn push_rtp(&self, packet: &rtc::rtp::Packet) {
        let Ok(bytes) = packet.marshal() else { return };
        self.packets.fetch_add(1, Ordering::Relaxed);
        let _ = self.src.push_buffer(gst::Buffer::from_slice(bytes));
    }
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
    fn test_sources_encode_vp8_and_opus() {
        init().expect("gstreamer");
        let cfg = MediaConfig {
            video_source: VideoSource::Test,
            audio_source: AudioSource::Test,
            ..MediaConfig::default()
        };
        for desc in [video_source_pipeline(&cfg, "ball"), audio_source_pipeline(&cfg)] {
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
