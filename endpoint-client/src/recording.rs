//! One call recorded with the resident's consent (docs/protocol.md §5.10) into two files written
//! by one pipeline (one clock, same start): part 1 holds the terminal's own camera and
//! microphone, as encoded for the call, part 2 the operator's camera and voice as received, each
//! in Matroska (WebM when the video is VP8, so a browser plays it; a browser's `<video>` plays
//! only a file's first video track, hence one camera per file, played side by side). Nothing is
//! encoded twice: local samples come from the call's encoders ([`crate::media::FanOut`] taps),
//! remote RTP is only depayloaded. Each input is bounded (a stalled muxer drops, never grows), and
//! [`CallRecording::finish`] ends every stream, waits for both files to be closed and reports the
//! recording's duration (the pipeline's position: nothing is decoded).
//!
//! [`probe`] decodes a recording to the end and reports its duration and streams (tests, support).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::{MediaError, Pipeline, VideoCodec};

/// The recording's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// The terminal's camera, encoded samples.
    LocalVideo,
    /// The terminal's microphone, Opus samples.
    LocalAudio,
    /// The operator's camera, RTP.
    RemoteVideo,
    /// The operator's voice, RTP.
    RemoteAudio,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::LocalVideo => "lv",
            Input::LocalAudio => "la",
            Input::RemoteVideo => "rv",
            Input::RemoteAudio => "ra",
        }
    }
}

/// A closed recording: its two parts, in order, and how long it lasted.
#[derive(Debug, Clone)]
pub struct Finished {
    pub parts: [PathBuf; 2],
    pub duration: Duration,
}

/// Each input holds at most this much before the muxer takes it (a stalled input drops).
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;

/// A call being recorded.
pub struct CallRecording {
    pipeline: Pipeline,
    srcs: Vec<(Input, gst_app::AppSrc)>,
    /// Part 1 (the terminal's camera and microphone) and part 2 (the operator's).
    paths: [PathBuf; 2],
    started: std::time::Instant,
    /// Buffers pushed, per input (`Input as usize`).
    pushed: [Arc<AtomicU64>; 4],
    /// The RTP inputs' caps, completed with the payload type of their first packet.
    rtp_caps: [(Input, String); 2],
}

impl CallRecording {
    /// Starts writing `paths` (part 1: the terminal's side, part 2: the operator's; `.webm` for
    /// VP8, `.mkv` for H.264): the call's video codec is `codec` both ways.
    pub fn start(paths: [&Path; 2], codec: VideoCodec) -> Result<Self, MediaError> {
        let (mux, local, remote) = match codec {
            VideoCodec::Vp8 => ("webmmux", "", "rtpvp8depay wait-for-keyframe=true"),
            VideoCodec::H264 => {
                ("matroskamux", "! h264parse ", "rtph264depay wait-for-keyframe=true ! h264parse")
            }
        };
        let enc = match codec {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        };
        let src = |name: &str, caps: &str| {
            format!(
                "appsrc name={name} format=time is-live=true do-timestamp=true max-bytes={MAX_QUEUED_BYTES} \
                 leaky-type=downstream {caps}"
            )
        };
        let location = |p: &Path| p.to_string_lossy().replace('"', "");
        let desc = format!(
            "{mux} name=mux1 ! filesink location=\"{l1}\" \
             {mux} name=mux2 ! filesink location=\"{l2}\" \
             {lv} {local}! queue ! mux1.video_%u \
             {la} ! queue ! mux1.audio_%u \
             {rv} ! rtpjitterbuffer latency=100 ! {remote} ! queue ! mux2.video_%u \
             {ra} ! rtpjitterbuffer latency=100 ! rtpopusdepay ! capssetter caps=audio/x-opus,rate=48000 ! queue ! mux2.audio_%u",
            l1 = location(paths[0]),
            l2 = location(paths[1]),
            lv = src("lv", ""),
            la = src("la", ""),
            rv = src("rv", ""),
            ra = src("ra", ""),
        );
        let pipeline = Pipeline::launch(&desc)?;
        let rtp_caps = [
            (
                Input::RemoteVideo,
                format!("application/x-rtp,media=video,clock-rate=90000,encoding-name={enc}"),
            ),
            (
                Input::RemoteAudio,
                "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS".to_owned(),
            ),
        ];
        let mut srcs = Vec::new();
        for input in [Input::LocalVideo, Input::LocalAudio, Input::RemoteVideo, Input::RemoteAudio] {
            let el = pipeline.by_name(input.name())?;
            let src = el.downcast::<gst_app::AppSrc>().map_err(|_| MediaError::Missing("appsrc"))?;
            srcs.push((input, src));
        }
        pipeline.play()?;
        Ok(Self {
            pipeline,
            srcs,
            paths: paths.map(Path::to_path_buf),
            started: std::time::Instant::now(),
            pushed: Default::default(),
            rtp_caps,
        })
    }

    /// Part 1 and part 2.
    pub fn paths(&self) -> &[PathBuf; 2] {
        &self.paths
    }

    fn src(&self, input: Input) -> Option<&gst_app::AppSrc> {
        self.srcs.iter().find(|(i, _)| *i == input).map(|(_, s)| s)
    }

    /// An encoded local sample (from the call's encoder): its caps go to the input first.
    pub fn push_sample(&self, input: Input, sample: &gst::Sample) {
        let (Some(src), Some(buffer)) = (self.src(input), sample.buffer()) else { return };
        if src.caps().is_none()
            && let Some(caps) = sample.caps()
        {
            src.set_caps(Some(&caps.to_owned()));
        }
        // Timestamps are the arrival's on this pipeline's clock (`do-timestamp`).
        let mut b = buffer.copy();
        {
            let b = b.make_mut();
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
        }
        if src.push_buffer(b).is_ok() {
            self.pushed[input as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A received RTP packet, as bytes.
    pub fn push_rtp(&self, input: Input, packet: &[u8]) {
        let Some(src) = self.src(input) else { return };
        if src.caps().is_none() {
            let (Some((_, caps)), Some(b)) = (self.rtp_caps.iter().find(|(i, _)| *i == input), packet.get(1))
            else {
                return;
            };
            match format!("{caps},payload={}", b & 0x7f).parse::<gst::Caps>() {
                Ok(c) => src.set_caps(Some(&c)),
                Err(_) => return,
            }
        }
        if src.push_buffer(gst::Buffer::from_slice(packet.to_vec())).is_ok() {
            self.pushed[input as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Buffers taken per input so far.
    pub fn pushed(&self, input: Input) -> u64 {
        self.pushed[input as usize].load(Ordering::Relaxed)
    }

    /// Ends every input and waits (at most `timeout`) until both files are complete. Returns
    /// them with the recording's duration, or an error (the files are then incomplete and should
    /// not be kept).
    pub async fn finish(self, timeout: Duration) -> Result<Finished, String> {
        let Some(bus) = self.pipeline.bus() else { return Err("no bus".into()) };
        // The running time the inputs were stamped with (`do-timestamp`) is the files' timeline:
        // the position before the end is the recording's length (the wall clock if unknown).
        let duration = self
            .pipeline
            .bin()
            .query_position::<gst::ClockTime>()
            .map(|d| Duration::from_nanos(d.nseconds()))
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| self.started.elapsed());
        for (_, src) in &self.srcs {
            let _ = src.end_of_stream();
        }
        let wait = tokio::task::spawn_blocking(move || {
            let deadline =
                gst::ClockTime::from_nseconds(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
            match bus.timed_pop_filtered(deadline, &[gst::MessageType::Eos, gst::MessageType::Error]) {
                Some(m) => match m.view() {
                    gst::MessageView::Eos(_) => Ok(()),
                    gst::MessageView::Error(e) => Err(format!("{} ({:?})", e.error(), e.debug())),
                    _ => Err("unexpected message".into()),
                },
                None => Err("timed out closing the recording".into()),
            }
        });
        let r = wait.await.map_err(|e| e.to_string()).and_then(|r| r);
        let parts = self.paths.clone();
        drop(self.pipeline);
        r.map(|()| Finished { parts, duration })
    }
}

/// A decoded stream's caps name and its buffer count.
type Counted = (String, Arc<AtomicU64>);

/// What a recording holds, decoded to the end.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub duration: Option<Duration>,
    /// Each stream's caps name (e.g. `video/x-raw`, `audio/x-raw`) and its decoded buffers.
    pub streams: Vec<(String, u64)>,
}

/// Decodes `path` to the end (no display, no sound) and reports its streams and duration.
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    let location = path.to_string_lossy().replace('"', "");
    let pipeline = gst::parse::launch(&format!("filesrc location=\"{location}\" ! decodebin name=d"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| MediaError::Missing("pipeline"))?;
    let d = pipeline.by_name("d").ok_or(MediaError::Missing("decodebin"))?;
    let streams: Arc<std::sync::Mutex<Vec<Counted>>> = Arc::default();
    let s2 = streams.clone();
    let p2 = pipeline.downgrade();
    d.connect_pad_added(move |_, pad| {
        let Some(pipeline) = p2.upgrade() else { return };
        let name =
            pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().to_string())).unwrap_or_default();
        let Ok(sink) = gst::ElementFactory::make("fakesink").property("sync", false).build() else { return };
        let count = Arc::new(AtomicU64::new(0));
        let c2 = count.clone();
        if let Some(sp) = sink.static_pad("sink") {
            sp.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c2.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        if pipeline.add(&sink).is_err() {
            return;
        }
        let _ = sink.sync_state_with_parent();
        if let Some(sp) = sink.static_pad("sink") {
            let _ = pad.link(&sp);
        }
        s2.lock().unwrap_or_else(|p| p.into_inner()).push((name, count));
    });
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or(MediaError::Missing("bus"))?;
    let mut error = None;
    match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) => {
            if let gst::MessageView::Error(e) = m.view() {
                error = Some(e.error());
            }
        }
        None => error = Some(gst::glib::Error::new(gst::CoreError::Failed, "timed out decoding")),
    }
    let duration = pipeline.query_duration::<gst::ClockTime>().map(|d| Duration::from_nanos(d.nseconds()));
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = error {
        return Err(MediaError::Glib(e));
    }
    let streams = streams
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(n, c)| (n.clone(), c.load(Ordering::Relaxed)))
        .collect();
    Ok(Probe { duration, streams })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples from a real encoder pipeline ending in `appsink name=sink`.
    fn source(desc: &str) -> (gst::Pipeline, gst_app::AppSink) {
        let p = gst::parse::launch(desc).expect("pipeline").downcast::<gst::Pipeline>().expect("pipeline");
        let sink = p.by_name("sink").expect("sink").downcast::<gst_app::AppSink>().expect("appsink");
        p.set_state(gst::State::Playing).expect("play");
        (p, sink)
    }

    /// Records a call of `secs` seconds; returns what the terminal reports and each part probed.
    async fn record(codec: VideoCodec, secs: u64) -> (Finished, [Probe; 2]) {
        crate::media::init().expect("gst");
        let dir = tempfile::tempdir().expect("dir");
        let ext = if codec == VideoCodec::Vp8 { "webm" } else { "mkv" };
        let (part1, part2) =
            (dir.path().join(format!("call-1.{ext}")), dir.path().join(format!("call-2.{ext}")));
        let rec = CallRecording::start([&part1, &part2], codec).expect("start");
        let (venc, vpay) = match codec {
            VideoCodec::Vp8 => ("vp8enc deadline=1 keyframe-max-dist=15", "rtpvp8pay"),
            VideoCodec::H264 => (
                "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au",
                "rtph264pay config-interval=-1",
            ),
        };
        let video =
            format!("videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1 ! {venc}");
        let audio = "audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20";
        let (p1, lv) = source(&format!("{video} ! appsink name=sink sync=false"));
        let (p2, la) = source(&format!("{audio} ! appsink name=sink sync=false"));
        let (p3, rv) = source(&format!("{video} ! {vpay} ! appsink name=sink sync=false"));
        let (p4, ra) = source(&format!("{audio} ! rtpopuspay ! appsink name=sink sync=false"));
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        let rec = tokio::task::spawn_blocking(move || {
            while std::time::Instant::now() < end {
                for (sink, input) in [
                    (&lv, Input::LocalVideo),
                    (&la, Input::LocalAudio),
                    (&rv, Input::RemoteVideo),
                    (&ra, Input::RemoteAudio),
                ] {
                    while let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(1)) {
                        match input {
                            Input::LocalVideo | Input::LocalAudio => rec.push_sample(input, &s),
                            _ => {
                                let b = s.buffer().expect("buffer").map_readable().expect("map");
                                rec.push_rtp(input, b.as_slice());
                            }
                        }
                    }
                }
            }
            rec
        })
        .await
        .expect("feeding");
        for p in [p1, p2, p3, p4] {
            let _ = p.set_state(gst::State::Null);
        }
        for i in [Input::LocalVideo, Input::LocalAudio, Input::RemoteVideo, Input::RemoteAudio] {
            assert!(rec.pushed(i) > 10, "{i:?} fed");
        }
        let done = rec.finish(Duration::from_secs(10)).await.expect("finished");
        assert_eq!(done.parts, [part1, part2]);
        let probes = done.parts.clone().map(|p| probe(&p).expect("the part decodes"));
        (done, probes)
    }

    /// Each part holds one camera and one voice, decoded to the end; both last as long as the
    /// terminal reports (they start together on one clock).
    fn check_parts(done: &Finished, parts: &[Probe; 2], secs: u64) {
        let d = done.duration;
        assert!(d >= Duration::from_millis(secs * 1000 - 500) && d <= Duration::from_secs(secs + 2), "{d:?}");
        for (i, p) in parts.iter().enumerate() {
            let video = p.streams.iter().filter(|(n, c)| n == "video/x-raw" && *c > 10).count();
            let audio = p.streams.iter().filter(|(n, c)| n == "audio/x-raw" && *c > 10).count();
            assert_eq!(
                (video, audio, p.streams.len()),
                (1, 1, 2),
                "part {}: one camera and one voice: {p:?}",
                i + 1
            );
            let pd = p.duration.expect("duration");
            assert!(pd.abs_diff(d) <= Duration::from_millis(700), "part {}: {pd:?} vs reported {d:?}", i + 1);
        }
    }

    #[tokio::test]
    async fn a_vp8_call_is_two_webm_parts_one_per_side() {
        let (done, parts) = record(VideoCodec::Vp8, 3).await;
        check_parts(&done, &parts, 3);
    }

    /// H.264 needs `h264parse` (gstreamer1.0-plugins-bad, in the terminal's packages since
    /// `scripts/install-system-deps.sh` installs it): the call is two Matroska parts.
    #[tokio::test]
    async fn an_h264_call_is_two_matroska_parts_one_per_side() {
        crate::media::init().expect("gst");
        assert!(
            gst::ElementFactory::find("h264parse").is_some(),
            "h264parse missing: run scripts/install-system-deps.sh (gstreamer1.0-plugins-bad)"
        );
        let (done, parts) = record(VideoCodec::H264, 3).await;
        check_parts(&done, &parts, 3);
    }
}
