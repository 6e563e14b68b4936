//! The first screen during a call: the operator's camera, and beside it the camera of anyone
//! else the resident sees (a specialist, a supervisor who barged in), in one window.
//!
//! One GStreamer pipeline per call, `compositor force-live=true` into the configured camera
//! sink: it draws a black canvas at a fixed size and rate whether or not any camera is there
//! yet. Each remote camera's decoder ends in an `appsink` whose frames are pushed into an
//! `appsrc` linked to a compositor pad ([`CameraWall::add`]); dropping the returned
//! [`WallInput`] takes the camera off the wall, and the others are laid out again:
//!
//! * one camera: the whole screen;
//! * two: side by side, the operator on the left;
//! * more: the operator on the left half, the others stacked on the right half.
//!
//! Every picture keeps its aspect ratio (`sizing-policy=keep-aspect-ratio`), black around it.
//!
//! A compositor pad is never released while the wall runs: a camera that leaves has its
//! `appsrc` stopped and unlinked, its pad hidden (`alpha` 0) and kept for the next camera; the
//! pads go with the pipeline when the call's wall is dropped. GStreamer 1.22's compositor
//! scales each input on worker threads while it composes a frame; a pad released meanwhile had
//! its frame freed under a worker, which wrote into unmapped memory and killed the terminal
//! with SIGSEGV and no message — seen when the colleague's camera left as a take-over ended
//! the call (`back_to_back_calls_tear_the_old_wall_down_while_the_next_opens`). What the
//! wall's elements report goes to the log ([`Pipeline::log_bus`]).

use std::sync::{Arc, Mutex, PoisonError};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::{MediaError, Pipeline};

/// Frames per second drawn on the canvas.
pub const FPS: i32 = 30;

/// Bytes queued in one input's `appsrc` before older frames wait (a few 720p frames).
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;

/// Where one input sits on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// The places of `n` inputs, the first (the operator, when present) first.
pub fn layout(n: usize, width: i32, height: i32) -> Vec<Rect> {
    match n {
        0 => vec![],
        1 => vec![Rect { x: 0, y: 0, w: width, h: height }],
        _ => {
            let half = width / 2;
            let others = i32::try_from(n - 1).unwrap_or(i32::MAX);
            let mut out = vec![Rect { x: 0, y: 0, w: half, h: height }];
            out.extend((0..others).map(|i| {
                let y = height * i / others;
                let next = height * (i + 1) / others;
                Rect { x: half, y, w: width - half, h: next - y }
            }));
            out
        }
    }
}

struct Slot {
    id: u64,
    /// The operator's camera goes first; guests after, in the order they came.
    guest: bool,
    src: gst_app::AppSrc,
    pad: gst::Pad,
}

struct Inner {
    width: i32,
    height: i32,
    pipeline: Pipeline,
    mix: gst::Element,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// The last input's id.
    last: u64,
    /// The cameras on the wall, in layout order.
    on: Vec<Slot>,
    /// Pads of cameras that left: hidden, unlinked, reused before a new pad is requested.
    idle: Vec<gst::Pad>,
}

/// The call's first screen; cheap to clone.
#[derive(Clone)]
pub struct CameraWall(Arc<Inner>);

/// One camera on the wall: frames pushed here are drawn in its place; dropped, it leaves.
pub struct WallInput {
    wall: CameraWall,
    id: u64,
    src: gst_app::AppSrc,
}

impl CameraWall {
    /// A wall of `width` × `height` pixels drawing into `sink` (a GStreamer sink description,
    /// e.g. the configured `camera_sink`), started at once.
    pub fn start(sink: &str, width: u32, height: u32) -> Result<Self, MediaError> {
        let width = i32::try_from(width.clamp(16, 7680)).unwrap_or(1280);
        let height = i32::try_from(height.clamp(16, 7680)).unwrap_or(720);
        let pipeline = Pipeline::launch(&format!(
            "compositor name=mix force-live=true background=black ! \
             video/x-raw,width={width},height={height},framerate={FPS}/1,pixel-aspect-ratio=1/1 ! \
             videoconvert ! {sink}"
        ))?;
        let mix = pipeline.by_name("mix")?;
        pipeline.log_bus("camera wall");
        pipeline.play()?;
        Ok(Self(Arc::new(Inner { width, height, pipeline, mix, slots: Mutex::default() })))
    }

    /// The pipeline's element called `name` (tests read the sink).
    pub fn by_name(&self, name: &'static str) -> Result<gst::Element, MediaError> {
        self.0.pipeline.by_name(name)
    }

    /// A new place on the wall; `guest`: not the operator's own camera.
    pub fn add(&self, guest: bool) -> Result<WallInput, MediaError> {
        let src = gst_app::AppSrc::builder()
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_bytes(MAX_QUEUED_BYTES)
            .build();
        let bin = self.0.pipeline.bin();
        bin.add(&src)?;
        let mut slots = self.0.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let pad = match slots.idle.pop() {
            Some(p) => p,
            None => {
                let p = self.0.mix.request_pad_simple("sink_%u").ok_or(MediaError::Missing("mix.sink_%u"));
                match p {
                    Ok(p) => {
                        p.set_property_from_str("sizing-policy", "keep-aspect-ratio");
                        p
                    }
                    Err(e) => {
                        let _ = bin.remove(&src);
                        return Err(e);
                    }
                }
            }
        };
        let linked = src
            .static_pad("src")
            .ok_or(MediaError::Missing("appsrc.src"))
            .and_then(|p| p.link(&pad).map_err(|_| MediaError::Missing("appsrc → mix")));
        if let Err(e) = linked {
            slots.idle.push(pad);
            let _ = bin.remove(&src);
            return Err(e);
        }
        pad.set_property("alpha", 1.0f64);
        slots.last += 1;
        let id = slots.last;
        // The operator's camera before every guest's.
        let at = if guest { slots.on.len() } else { slots.on.iter().take_while(|s| !s.guest).count() };
        slots.on.insert(at, Slot { id, guest, src: src.clone(), pad });
        self.relayout(&slots.on);
        drop(slots);
        let input = WallInput { wall: self.clone(), id, src };
        // Dropped on failure: the place is given back.
        input.src.sync_state_with_parent()?;
        Ok(input)
    }

    /// How many cameras are on the wall.
    pub fn inputs(&self) -> usize {
        self.0.slots.lock().unwrap_or_else(PoisonError::into_inner).on.len()
    }

    fn remove(&self, id: u64) {
        let mut slots = self.0.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(i) = slots.on.iter().position(|s| s.id == id) else { return };
        let slot = slots.on.remove(i);
        // Hidden first (its last frame would stay on screen), kept (see the module's notes).
        slot.pad.set_property("alpha", 0.0f64);
        let _ = slot.src.set_state(gst::State::Null);
        if let Some(p) = slot.src.static_pad("src") {
            let _ = p.unlink(&slot.pad);
        }
        let _ = self.0.pipeline.bin().remove(&slot.src);
        slots.idle.push(slot.pad);
        self.relayout(&slots.on);
    }

    fn relayout(&self, slots: &[Slot]) {
        for (slot, r) in slots.iter().zip(layout(slots.len(), self.0.width, self.0.height)) {
            slot.pad.set_property("xpos", r.x);
            slot.pad.set_property("ypos", r.y);
            slot.pad.set_property("width", r.w);
            slot.pad.set_property("height", r.h);
        }
    }
}

impl WallInput {
    /// Draws a decoded frame (the sample's caps say its format and size). Its timestamps are
    /// the decoder pipeline's; the wall stamps it with its own clock on arrival.
    pub fn push(&self, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else { return };
        if let Some(caps) = sample.caps()
            && self.src.caps().as_deref() != Some(caps)
        {
            self.src.set_caps(Some(&caps.to_owned()));
        }
        let mut buffer = buffer.copy();
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
        }
        let _ = self.src.push_buffer(buffer);
    }
}

impl Drop for WallInput {
    fn drop(&mut self) {
        self.wall.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_camera_fills_the_screen_two_are_side_by_side_more_stack_on_the_right() {
        assert!(layout(0, 1280, 720).is_empty());
        assert_eq!(layout(1, 1280, 720), vec![Rect { x: 0, y: 0, w: 1280, h: 720 }]);
        assert_eq!(
            layout(2, 1280, 720),
            vec![Rect { x: 0, y: 0, w: 640, h: 720 }, Rect { x: 640, y: 0, w: 640, h: 720 }]
        );
        let three = layout(3, 1280, 720);
        assert_eq!(three[0], Rect { x: 0, y: 0, w: 640, h: 720 });
        assert_eq!(three[1], Rect { x: 640, y: 0, w: 640, h: 360 });
        assert_eq!(three[2], Rect { x: 640, y: 360, w: 640, h: 360 });
        // Odd sizes leave no gap and no overlap.
        let four = layout(4, 1279, 721);
        assert_eq!(four.iter().skip(1).map(|r| r.h).sum::<i32>(), 721);
        assert_eq!(four[1].x + four[1].w, 1279);
    }

    /// A camera of one solid colour: `videotestsrc pattern=solid-color` into an appsink.
    fn camera(argb: u32) -> (Pipeline, gst_app::AppSink) {
        let p = Pipeline::launch(&format!(
            "videotestsrc is-live=true pattern=solid-color foreground-color={argb} ! \
             video/x-raw,format=I420,width=640,height=480,framerate=30/1 ! appsink name=out sync=false max-buffers=2 drop=true"
        ))
        .expect("camera");
        let sink = p.by_name("out").expect("out").downcast::<gst_app::AppSink>().expect("appsink");
        p.play().expect("play");
        (p, sink)
    }

    /// Feeds `cameras` into `inputs` until the wall's sink has shown a frame in which `check`
    /// holds (or panics after 300 frames), returning that frame as RGB rows.
    fn shown(
        wall_sink: &gst_app::AppSink,
        cameras: &[(&gst_app::AppSink, &WallInput)],
        check: impl Fn(&Frame) -> bool,
    ) -> Frame {
        for _ in 0..300 {
            for (cam, input) in cameras {
                if let Ok(s) = cam.pull_sample() {
                    input.push(&s);
                }
            }
            let Ok(sample) = wall_sink.pull_sample() else { continue };
            let frame = Frame::of(&sample);
            if check(&frame) {
                return frame;
            }
        }
        panic!("the wall never showed the expected picture");
    }

    struct Frame {
        data: Vec<u8>,
        stride: usize,
    }

    impl Frame {
        fn of(sample: &gst::Sample) -> Frame {
            let caps = sample.caps().expect("caps");
            let s = caps.structure(0).expect("structure");
            let width = usize::try_from(s.get::<i32>("width").expect("width")).expect("w");
            let map = sample.buffer().expect("buffer").map_readable().expect("map");
            Frame { data: map.as_slice().to_vec(), stride: width * 3 }
        }
        fn rgb(&self, x: usize, y: usize) -> (u8, u8, u8) {
            let i = y * self.stride + x * 3;
            (self.data[i], self.data[i + 1], self.data[i + 2])
        }
    }

    fn near(a: (u8, u8, u8), b: (u8, u8, u8)) -> bool {
        a.0.abs_diff(b.0) < 40 && a.1.abs_diff(b.1) < 40 && a.2.abs_diff(b.2) < 40
    }

    const RED: (u8, u8, u8) = (255, 0, 0);
    const BLUE: (u8, u8, u8) = (0, 0, 255);
    const BLACK: (u8, u8, u8) = (0, 0, 0);

    /// A private X server with two screens (the kiosk's two monitors), killed on drop.
    struct Xvfb {
        child: std::process::Child,
        display: String,
    }

    impl Xvfb {
        fn start() -> Xvfb {
            use std::io::BufRead;
            // `-displayfd 1`: Xvfb picks a free display and writes its number once it is ready.
            let mut child = std::process::Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-nolisten",
                    "tcp",
                    "-screen",
                    "0",
                    "640x480x24",
                    "-screen",
                    "1",
                    "640x480x24",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("Xvfb (scripts/install-system-deps.sh installs it)");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("Xvfb ready");
            let n: u32 = line.trim().parse().expect("Xvfb display number");
            Xvfb { child, display: format!(":{n}") }
        }
    }

    impl Drop for Xvfb {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// One remote camera as the decoder feeds it: a live test source into an `appsink` whose
    /// callback pushes each frame onto the wall (through a weak reference, as `Decoder` does).
    fn feed(input: &Arc<WallInput>, pattern: &str) -> Pipeline {
        let p = Pipeline::launch(&format!(
            "videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
             appsink name=out sync=false max-buffers=2 drop=true"
        ))
        .expect("camera");
        let to = Arc::downgrade(input);
        p.by_name("out").expect("out").downcast::<gst_app::AppSink>().expect("appsink").set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let input = to.upgrade().ok_or(gst::FlowError::Flushing)?;
                    input.push(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        p.play().expect("play");
        p
    }

    /// Frames the wall's sink has been given.
    fn count_frames(wall: &CameraWall) -> Arc<std::sync::atomic::AtomicU64> {
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = n.clone();
        let pad = wall.by_name("mix").expect("mix").static_pad("src").expect("src");
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        n
    }

    /// Calls back to back on a kiosk with monitors (a take-over: the colleague's call starts
    /// as the operator's ends): each call's wall is an X window on the first monitor, the
    /// shared screen a window on the second; the old call's windows are torn down on one
    /// thread while the next call's open on another. The terminal survives every round and
    /// the new call's wall keeps drawing.
    #[test]
    fn back_to_back_calls_tear_the_old_wall_down_while_the_next_opens() {
        crate::media::init().expect("gst");
        let x = Xvfb::start();
        let camera_sink = format!("ximagesink display={}.0 sync=false", x.display);
        let screen_sink = format!("ximagesink display={}.1 sync=false", x.display);
        let call = |n: u32| {
            let wall = CameraWall::start(&camera_sink, 640, 480).expect("wall");
            let frames = count_frames(&wall);
            let operator = Arc::new(wall.add(false).expect("operator"));
            let guest = Arc::new(wall.add(n % 2 == 1).expect("guest"));
            let cams = vec![feed(&operator, "smpte"), feed(&guest, "ball")];
            let screen = Pipeline::launch(&format!(
                "videotestsrc is-live=true ! video/x-raw,width=320,height=180 ! videoconvert ! {screen_sink}"
            ))
            .expect("screen");
            screen.play().expect("screen plays");
            (wall, frames, vec![operator, guest], cams, screen)
        };
        let mut current = call(0);
        for round in 1..=40 {
            let (wall, _, inputs, cams, screen) = current;
            // The old call ends on another thread, in the order `Call::run` stops things:
            // decoders (each leaving the wall), then the wall itself.
            let old = std::thread::spawn(move || {
                drop(screen);
                for (cam, input) in cams.into_iter().zip(inputs) {
                    drop(input);
                    drop(cam);
                }
                drop(wall);
            });
            current = call(round);
            old.join().expect("the old call ended");
            let frames = current.1.clone();
            let before = frames.load(std::sync::atomic::Ordering::Relaxed);
            let t0 = std::time::Instant::now();
            while frames.load(std::sync::atomic::Ordering::Relaxed) < before + 5 {
                assert!(
                    t0.elapsed() < std::time::Duration::from_secs(20),
                    "round {round}: the new wall stopped drawing"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    /// What the resident sees on the first screen: the operator alone fills it; when a
    /// specialist joins they appear beside the operator (operator left, specialist right);
    /// when the specialist leaves the operator fills the screen again.
    #[test]
    fn the_specialist_appears_beside_the_operator_and_leaves_the_screen_to_them() {
        crate::media::init().expect("gst");
        let (w, h) = (1280, 720);
        let wall = CameraWall::start(
            "video/x-raw,format=RGB ! appsink name=shown sync=false max-buffers=1 drop=true",
            w as u32,
            h as u32,
        )
        .expect("wall");
        let sink = wall.by_name("shown").expect("sink").downcast::<gst_app::AppSink>().expect("appsink");
        let (_op_cam, op) = camera(0xffff_0000);
        let (_sp_cam, sp) = camera(0xff00_00ff);

        // Before any camera: black.
        let f = shown(&sink, &[], |f| near(f.rgb(w / 2, h / 2), BLACK));
        assert!(near(f.rgb(10, 10), BLACK));

        let operator = wall.add(false).expect("operator");
        let f = shown(&sink, &[(&op, &operator)], |f| near(f.rgb(w / 2, h / 2), RED));
        assert!(near(f.rgb(w / 4, h / 2), RED) && near(f.rgb(3 * w / 4, h / 2), RED), "operator fills");

        let specialist = wall.add(true).expect("specialist");
        assert_eq!(wall.inputs(), 2);
        let f = shown(&sink, &[(&op, &operator), (&sp, &specialist)], |f| {
            near(f.rgb(w / 4, h / 2), RED) && near(f.rgb(3 * w / 4, h / 2), BLUE)
        });
        // 4:3 pictures in 640×720 halves: letterboxed, black above and below.
        assert!(near(f.rgb(w / 4, 5), BLACK) && near(f.rgb(3 * w / 4, h - 5), BLACK));

        drop(specialist);
        assert_eq!(wall.inputs(), 1);
        shown(&sink, &[(&op, &operator)], |f| near(f.rgb(3 * w / 4, h / 2), RED));

        // A guest that came first still gives the operator the left half.
        let specialist = wall.add(true).expect("specialist");
        drop(operator);
        let operator = wall.add(false).expect("operator again");
        shown(&sink, &[(&op, &operator), (&sp, &specialist)], |f| {
            near(f.rgb(w / 4, h / 2), RED) && near(f.rgb(3 * w / 4, h / 2), BLUE)
        });
    }
}
