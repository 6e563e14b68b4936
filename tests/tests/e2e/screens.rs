//! The dual-screen terminal (`display.mode = "screens"`): the operator's face appears on the
//! first display and the shared screen on the second. Two X screens of a private Xvfb stand in
//! for the two monitors; what they show is read back from the screens themselves (`ximagesrc`)
//! and told apart by the test patterns the operator sends (SMPTE colour bars from the camera, a
//! white bar on black from the screen share).

use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::call::decoded;
use crate::helpers::{Endpoint, EndpointOpts, OperatorPeer, Server, WAIT, init_tracing, live_session};

const W: usize = 640;
const H: usize = 480;

/// A private X server with two screens, killed on drop.
struct Xvfb {
    _child: tokio::process::Child,
    display: String,
}

impl Xvfb {
    async fn start() -> Result<Self> {
        let screen = format!("{W}x{H}x24");
        // `-displayfd 1`: Xvfb picks a free display and writes its number once it is ready.
        let mut child = tokio::process::Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0", &screen, "-screen", "1", &screen])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("Xvfb (scripts/install-system-deps.sh installs it)")?;
        let out = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        tokio::time::timeout(WAIT, BufReader::new(out).read_line(&mut line))
            .await
            .context("Xvfb never became ready")??;
        let n: u32 = line.trim().parse().with_context(|| format!("Xvfb display number {line:?}"))?;
        Ok(Self { _child: child, display: format!(":{n}") })
    }

    /// What X screen `screen` shows, as RGB pixels.
    async fn grab(&self, screen: u32) -> Result<Vec<u8>> {
        let file = tempfile::NamedTempFile::new()?;
        let out = tokio::process::Command::new("gst-launch-1.0")
            .args([
                "-q",
                "ximagesrc",
                &format!("display-name={}.{screen}", self.display),
                "num-buffers=1",
                "show-pointer=false",
                "!",
                "videoconvert",
                "!",
                "video/x-raw,format=RGB",
                "!",
                "filesink",
                &format!("location={}", file.path().display()),
            ])
            .output()
            .await?;
        if !out.status.success() {
            bail!("ximagesrc: {}", String::from_utf8_lossy(&out.stderr));
        }
        let rgb = std::fs::read(file.path())?;
        // Rows may be padded to 4 bytes; 640 × 3 is already a multiple.
        anyhow::ensure!(rgb.len() == W * H * 3, "{} bytes of RGB", rgb.len());
        Ok(rgb)
    }
}

/// Pixels of each kind that matter here: SMPTE's yellow, cyan and magenta bars, and white.
#[derive(Debug, Default)]
struct Colours {
    yellow: usize,
    cyan: usize,
    magenta: usize,
    white: usize,
}

fn colours(rgb: &[u8]) -> Colours {
    let mut c = Colours::default();
    for p in rgb.chunks_exact(3) {
        let (r, g, b) = (p[0], p[1], p[2]);
        let hi = |v: u8| v >= 150;
        let lo = |v: u8| v <= 80;
        match (hi(r), hi(g), hi(b)) {
            (true, true, true) if r >= 220 && g >= 220 && b >= 220 => c.white += 1,
            (true, true, false) if lo(b) => c.yellow += 1,
            (false, true, true) if lo(r) => c.cyan += 1,
            (true, false, true) if lo(g) => c.magenta += 1,
            _ => {}
        }
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_appears_on_display_one_and_the_shared_screen_on_display_two() -> Result<()> {
    init_tracing();
    let x = Xvfb::start().await?;
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let op_token = server.login("operator1").await?;
    // The two monitors' sinks, as an installation configures them; no speakers here.
    let display = format!(
        "mode = \"screens\"\ncamera_sink = \"ximagesink display={d}.0 sync=false\"\n\
         camera_width = {W}\ncamera_height = {H}\n\
         screen_sink = \"ximagesink display={d}.1 sync=false\"\naudio_sink = \"fakesink sync=false\"\n",
        d = x.display
    );
    let opts = EndpointOpts { display: Some(display), ..Default::default() };
    let mut ep = Endpoint::enroll_and_run_with(&server, &code, opts).await?;
    let (op, session, _item) = live_session(&server, &mut ep, &op_token).await?;
    let (peer, _op_tx, _op_rest) = OperatorPeer::call(&session, op).await?;
    ep.wait_status("camera and screen share decoded", |s| {
        decoded(s, "camera") >= 30 && decoded(s, "screen") >= 10
    })
    .await?;

    let one = colours(&x.grab(0).await?);
    let two = colours(&x.grab(1).await?);
    // The operator's camera (320×240 SMPTE bars) alone on the call's first screen: scaled to
    // the whole 640×480 monitor (same aspect), each bar covers ~1/7 of its width and 2/3 of its
    // height (~29,000 pixels), which leaves no room for anything else.
    for (name, n) in [("yellow", one.yellow), ("cyan", one.cyan), ("magenta", one.magenta)] {
        assert!(n >= 20_000, "display 1 is filled by the operator's camera: {name} {n} pixels ({one:?})");
    }
    // The shared screen (640×360, a white bar on black), and no colour bars.
    assert!(two.white >= 5_000, "display 2 shows the shared screen: {two:?}");
    assert!(two.yellow + two.cyan + two.magenta < 100, "display 2 shows no camera: {two:?}");
    drop(peer);
    Ok(())
}
