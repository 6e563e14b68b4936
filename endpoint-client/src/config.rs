//! Typed configuration: a TOML file (`/etc/bangban/endpoint.toml` in production) with every field
//! defaulted, then `BANGBAN_ENDPOINT_*` environment overrides for the few things a deployment or
//! a test changes most often.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::media::VideoCodec;

/// Where the camera and microphone come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VideoSource {
    /// `videotestsrc` (tests, diagnosis).
    Test,
    /// A V4L2 camera (`media.video_device`).
    #[default]
    V4l2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AudioSource {
    /// `audiotestsrc` (a quiet sine).
    Test,
    /// The system's default audio input (`autoaudiosrc`).
    #[default]
    System,
}

/// What happens to the operator's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DisplayMode {
    /// Operator's face on display 1, shared screen on display 2, audio to the speakers.
    #[default]
    Screens,
    /// Decode and count frames only (tests, diagnosis); optionally also write to files.
    Headless,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    pub video_source: VideoSource,
    pub video_device: String,
    pub audio_source: AudioSource,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            video_source: VideoSource::default(),
            video_device: "/dev/video0".into(),
            audio_source: AudioSource::default(),
            width: 640,
            height: 480,
            fps: 30,
            video_bitrate_kbps: 800,
            audio_bitrate_kbps: 32,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    pub mode: DisplayMode,
    /// GStreamer sink for the operator's camera (display 1). During a call it shows the
    /// operator and, beside them, a specialist who joins (`wall`), on one canvas of
    /// `camera_width` × `camera_height` (the monitor's resolution).
    pub camera_sink: String,
    pub camera_width: u32,
    pub camera_height: u32,
    /// GStreamer sink for the operator's shared screen (display 2).
    pub screen_sink: String,
    /// GStreamer sink for the operator's voice.
    pub audio_sink: String,
    /// Also write each received track to files here (tests, diagnosis): VP8 as IVF, H.264 as an
    /// Annex B stream, Opus as Ogg, named `<session>-<kind>-<n>-<part>.ivf|h264|ogg` (kind:
    /// camera, screen, audio).
    pub record_dir: Option<PathBuf>,
    /// A recording part is closed and the next started at this size.
    pub record_max_bytes: u64,
    /// Parts kept per track (older ones are deleted).
    pub record_keep_parts: u32,
    /// All recordings together: when a track starts, the oldest files of `record_dir` are
    /// deleted until the directory is below this (default 1 GiB), so months of calls do not
    /// fill the disk.
    pub record_dir_max_bytes: u64,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        Self {
            mode: DisplayMode::default(),
            camera_sink: "autovideosink".into(),
            camera_width: 1280,
            camera_height: 720,
            screen_sink: "autovideosink".into(),
            audio_sink: "autoaudiosink".into(),
            record_dir: None,
            record_max_bytes: 64 * 1024 * 1024,
            record_keep_parts: 2,
            record_dir_max_bytes: 1 << 30,
        }
    }
}

/// Which ICE candidates the terminal may use (`RTCIceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Only the TURN relay: media always goes through the deployment's coturn (networks that
    /// allow nothing else, or that must not expose the terminal's addresses).
    Relay,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Local UDP addresses to gather host candidates on. A wildcard skips loopback.
    pub udp_addrs: Vec<String>,
    /// Add the server's TURN/STUN servers (the default); off for loopback tests.
    pub use_server_ice: bool,
    /// Restart ICE when the connection stays disconnected or failed this long.
    pub ice_restart_after_secs: u64,
    /// `relay`: use only TURN relay candidates (needs the server's TURN servers).
    pub ice_transport_policy: IceTransportPolicy,
    /// Video codecs the terminal accepts (`vp8`, `h264`), in its own order of preference. The
    /// camera is sent in the one the operator's offer lists first.
    pub video_codecs: Vec<VideoCodec>,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            udp_addrs: vec!["0.0.0.0:0".into()],
            use_server_ice: true,
            ice_restart_after_secs: 3,
            ice_transport_policy: IceTransportPolicy::All,
            video_codecs: vec![VideoCodec::Vp8, VideoCodec::H264],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KioskConfig {
    /// The local kiosk UI and its JSON API (loopback only).
    pub listen: SocketAddr,
    /// Staff signed in at the kiosk are signed out after this many minutes with nobody at it
    /// (no touch, no ticket or call in progress); while someone is, their login is renewed.
    pub staff_idle_minutes: u64,
    /// A screen left untouched this long (item choice, privacy notice, staff form, rating, the
    /// last resident's notices) returns to the welcome screen, clearing what was entered; a
    /// rating not given by then is recorded as not given (5–3600, default 90;
    /// `BANGBAN_ENDPOINT_SCREEN_IDLE_SECS`).
    pub screen_idle_secs: u64,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            staff_idle_minutes: 10,
            screen_idle_secs: 90,
        }
    }
}

/// The document scanner, driven through `scanimage` (SANE) as a subprocess.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    pub enabled: bool,
    /// The `scanimage` program.
    pub program: PathBuf,
    /// SANE device name (`scanimage -L`); the first device when absent.
    pub device: Option<String>,
    pub resolution_dpi: u32,
    /// SANE `--mode` (`Color`, `Gray`).
    pub mode: String,
    /// More `scanimage` arguments (device options; tests inject faults with
    /// `--read-return-value SANE_STATUS_JAMMED`).
    pub extra_args: Vec<String>,
    /// Give up on a scan that takes longer than this.
    pub timeout_secs: u64,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            program: PathBuf::from("scanimage"),
            device: None,
            resolution_dpi: 150,
            mode: "Color".into(),
            extra_args: vec![],
            timeout_secs: 120,
        }
    }
}

/// The service point's printer, driven by IPP (CUPS).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrinterConfig {
    pub enabled: bool,
    /// The IPP printer URI (`http://127.0.0.1:631/printers/<queue>` for a CUPS queue).
    pub uri: String,
    /// How often the job state is polled while a job prints.
    pub poll_ms: u64,
    /// A job stuck behind a printer error (`media-empty`, `media-jam`, …) is cancelled and
    /// reported `failed` with that reason after this long.
    pub fail_after_secs: u64,
}

impl Default for PrinterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            uri: "http://127.0.0.1:631/printers/bangban".into(),
            poll_ms: 300,
            fail_after_secs: 60,
        }
    }
}

/// The heartbeat to the server (`[health]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between heartbeats (1–3600, default 30; `BANGBAN_ENDPOINT_HEALTH_INTERVAL_SECS`).
    pub interval_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval_secs: 30 }
    }
}

/// Disk use of the state directory (`[storage]`, see [`crate::storage`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The bound on what the terminal's own state takes (the state directory: spool, print
    /// records; and `display.record_dir`): 4 GiB. At the bound the oldest finished recordings
    /// and refused pages are deleted; a page not yet acknowledged by the server never is, new
    /// scans are refused instead. At least 1 MiB.
    pub max_bytes: u64,
    /// The free space kept on the state directory's file system (512 MiB; 0: none).
    pub min_free_bytes: u64,
    /// The alarm (heartbeat `disk.level = near_full`) from this percentage of `max_bytes`, or
    /// when the free space is within the same margin of `min_free_bytes` (50–99, default 80).
    pub alarm_percent: u8,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { max_bytes: 4 << 30, min_free_bytes: 512 << 20, alarm_percent: 80 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL of the signaling server (`https://bangban.example.gov.cn`); the WebSocket URL is
    /// derived from it (`wss://…/ws`).
    pub server_url: String,
    /// PEM file with the CA certificate(s) that signed the server's TLS certificate, when it is
    /// not in the system's trust store (a private government CA). Optional.
    pub tls_ca_file: Option<PathBuf>,
    /// The device credential written by `enroll` (mode 0600).
    pub credential_file: PathBuf,
    /// Write a JSON status snapshot here every `status_interval_ms` (optional).
    pub status_file: Option<PathBuf>,
    /// How often the status is refreshed (status file, the `status` line): 1000 ms; the
    /// call-setup benchmark uses 5 ms to time the first decoded frame.
    pub status_interval_ms: u64,
    /// Print the status as a JSON line on stdout every `status_interval_ms` (for tests and
    /// diagnosis); by default only in headless mode, so a production journal stays quiet.
    pub status_lines: Option<bool>,
    /// Durable local state: the scan spool (`spool/`), print job records (`print/`). Defaults
    /// to the credential file's directory.
    pub state_dir: Option<PathBuf>,
    pub scanner: ScannerConfig,
    pub printer: PrinterConfig,
    pub media: MediaConfig,
    pub display: DisplayConfig,
    pub webrtc: WebRtcConfig,
    pub kiosk: KioskConfig,
    pub health: HealthConfig,
    pub storage: StorageConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_url: "http://127.0.0.1:8080".into(),
            tls_ca_file: None,
            credential_file: PathBuf::from("/var/lib/bangban-endpoint/credential"),
            status_file: None,
            status_interval_ms: 1000,
            status_lines: None,
            state_dir: None,
            scanner: ScannerConfig::default(),
            printer: PrinterConfig::default(),
            media: MediaConfig::default(),
            display: DisplayConfig::default(),
            webrtc: WebRtcConfig::default(),
            kiosk: KioskConfig::default(),
            health: HealthConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

impl Config {
    /// Reads `path` (if given), then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.into(), e))?;
                Self::parse(&text).map_err(|e| ConfigError::Parse(p.into(), e))?
            }
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// `BANGBAN_ENDPOINT_SERVER_URL`, `_CREDENTIAL_FILE`, `_STATE_DIR`, `_PRINTER_URI`,
    /// `_SCANNER_DEVICE`, `_STATUS_FILE`, `_HEADLESS` (1/0),
    /// `_TEST_SOURCES` (1: test video and audio), `_KIOSK_LISTEN`, `_UDP_ADDRS` (comma list).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("BANGBAN_ENDPOINT_SERVER_URL") {
            self.server_url = v;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_CREDENTIAL_FILE") {
            self.credential_file = v.into();
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_STATE_DIR") {
            self.state_dir = Some(v.into());
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_PRINTER_URI") {
            self.printer.uri = v;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_SCANNER_DEVICE") {
            self.scanner.device = Some(v).filter(|d| !d.is_empty());
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_TLS_CA_FILE") {
            self.tls_ca_file = Some(v.into()).filter(|p: &PathBuf| !p.as_os_str().is_empty());
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_STATUS_FILE") {
            self.status_file = Some(v.into());
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_HEADLESS")
            && flag(&v)?
        {
            self.display.mode = DisplayMode::Headless;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_TEST_SOURCES")
            && flag(&v)?
        {
            self.media.video_source = VideoSource::Test;
            self.media.audio_source = AudioSource::Test;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_KIOSK_LISTEN") {
            self.kiosk.listen =
                v.parse().map_err(|_| ConfigError::Invalid("BANGBAN_ENDPOINT_KIOSK_LISTEN", v))?;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_HEALTH_INTERVAL_SECS") {
            self.health.interval_secs =
                v.parse().map_err(|_| ConfigError::Invalid("BANGBAN_ENDPOINT_HEALTH_INTERVAL_SECS", v))?;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_SCREEN_IDLE_SECS") {
            self.kiosk.screen_idle_secs =
                v.parse().map_err(|_| ConfigError::Invalid("BANGBAN_ENDPOINT_SCREEN_IDLE_SECS", v))?;
        }
        if let Some(v) = get("BANGBAN_ENDPOINT_UDP_ADDRS") {
            self.webrtc.udp_addrs =
                v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ws_url()?;
        if self.media.fps == 0 || self.media.fps > 60 {
            return Err(ConfigError::Invalid("media.fps", self.media.fps.to_string()));
        }
        if self.printer.enabled
            && !self.printer.uri.starts_with("http://")
            && !self.printer.uri.starts_with("ipp://")
        {
            return Err(ConfigError::Invalid("printer.uri", self.printer.uri.clone()));
        }
        if self.scanner.resolution_dpi == 0 || self.scanner.resolution_dpi > 1200 {
            return Err(ConfigError::Invalid(
                "scanner.resolution_dpi",
                self.scanner.resolution_dpi.to_string(),
            ));
        }
        if !(1..=3600).contains(&self.health.interval_secs) {
            return Err(ConfigError::Invalid("health.interval_secs", self.health.interval_secs.to_string()));
        }
        if !(1..=60_000).contains(&self.status_interval_ms) {
            return Err(ConfigError::Invalid("status_interval_ms", self.status_interval_ms.to_string()));
        }
        if !(1..=480).contains(&self.kiosk.staff_idle_minutes) {
            return Err(ConfigError::Invalid(
                "kiosk.staff_idle_minutes",
                self.kiosk.staff_idle_minutes.to_string(),
            ));
        }
        if !(5..=3600).contains(&self.kiosk.screen_idle_secs) {
            return Err(ConfigError::Invalid(
                "kiosk.screen_idle_secs",
                self.kiosk.screen_idle_secs.to_string(),
            ));
        }
        for (name, v) in [
            ("display.camera_width", self.display.camera_width),
            ("display.camera_height", self.display.camera_height),
        ] {
            if !(16..=7680).contains(&v) {
                return Err(ConfigError::Invalid(name, v.to_string()));
            }
        }
        if self.webrtc.video_codecs.is_empty() {
            return Err(ConfigError::Invalid("webrtc.video_codecs", "empty".into()));
        }
        if self.webrtc.udp_addrs.is_empty() {
            return Err(ConfigError::Invalid("webrtc.udp_addrs", "empty".into()));
        }
        if self.webrtc.ice_transport_policy == IceTransportPolicy::Relay && !self.webrtc.use_server_ice {
            return Err(ConfigError::Invalid(
                "webrtc.ice_transport_policy",
                "relay needs use_server_ice = true (the TURN servers come from the server)".into(),
            ));
        }
        if self.storage.max_bytes < 1 << 20 {
            return Err(ConfigError::Invalid(
                "storage.max_bytes",
                format!("{} (at least 1048576)", self.storage.max_bytes),
            ));
        }
        if !(50..=99).contains(&self.storage.alarm_percent) {
            return Err(ConfigError::Invalid(
                "storage.alarm_percent",
                self.storage.alarm_percent.to_string(),
            ));
        }
        if self.display.record_max_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid(
                "display.record_max_bytes",
                format!("{} (at least 65536)", self.display.record_max_bytes),
            ));
        }
        Ok(())
    }

    /// The durable state directory (`state_dir`, else the credential file's directory).
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| match self.credential_file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        })
    }

    /// `http://h/x` → `http://h/x/api/v1/…` base without a trailing slash.
    pub fn http_base(&self) -> &str {
        self.server_url.trim_end_matches('/')
    }

    /// `http://h` → `ws://h/ws`, `https://h` → `wss://h/ws`.
    pub fn ws_url(&self) -> Result<String, ConfigError> {
        let base = self.http_base();
        if let Some(rest) = base.strip_prefix("https://") {
            Ok(format!("wss://{rest}/ws"))
        } else if let Some(rest) = base.strip_prefix("http://") {
            Ok(format!("ws://{rest}/ws"))
        } else {
            Err(ConfigError::Invalid("server_url", base.to_owned()))
        }
    }
}

fn flag(v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid("flag", v.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_env_overrides_it() {
        let mut cfg = Config::parse(
            r#"
server_url = "https://bangban.example.gov.cn/"
credential_file = "/tmp/cred"
[media]
video_source = "test"
audio_source = "system"
fps = 25
[display]
mode = "screens"
camera_sink = "xvimagesink display=:0.0"
screen_sink = "xvimagesink display=:0.1"
record_dir = "/var/lib/bangban-endpoint/recordings"
record_max_bytes = 1048576
[webrtc]
udp_addrs = ["192.168.1.20:0"]
ice_transport_policy = "relay"
"#,
        )
        .expect("valid");
        assert_eq!(cfg.ws_url().expect("url"), "wss://bangban.example.gov.cn/ws");
        assert_eq!(cfg.media.video_source, VideoSource::Test);
        assert_eq!(cfg.media.fps, 25);
        assert_eq!(cfg.webrtc.ice_transport_policy, IceTransportPolicy::Relay);
        assert_eq!(cfg.display.record_max_bytes, 1_048_576);
        cfg.apply_env(|k| match k {
            "BANGBAN_ENDPOINT_SERVER_URL" => Some("http://127.0.0.1:9000".into()),
            "BANGBAN_ENDPOINT_HEADLESS" => Some("1".into()),
            "BANGBAN_ENDPOINT_TEST_SOURCES" => Some("1".into()),
            "BANGBAN_ENDPOINT_UDP_ADDRS" => Some("127.0.0.1:0".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(cfg.ws_url().expect("url"), "ws://127.0.0.1:9000/ws");
        assert_eq!(cfg.display.mode, DisplayMode::Headless);
        assert_eq!(cfg.media.audio_source, AudioSource::Test);
        assert_eq!(cfg.webrtc.udp_addrs, vec!["127.0.0.1:0".to_owned()]);
        cfg.validate().expect("valid");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_urls() {
        assert!(Config::parse("sever_url = \"http://x\"").is_err());
        let cfg = Config { server_url: "ftp://x".into(), ..Config::default() };
        assert!(cfg.validate().is_err());
        assert!(Config::parse("[webrtc]\nice_transport_policy = \"host\"").is_err());
        let relay_without_servers =
            Config::parse("[webrtc]\nice_transport_policy = \"relay\"\nuse_server_ice = false")
                .expect("parses");
        assert!(relay_without_servers.validate().is_err());
        for bad in ["max_bytes = 0", "max_bytes = 1000", "alarm_percent = 0", "alarm_percent = 100"] {
            let cfg = Config::parse(&format!("[storage]\n{bad}")).expect("parses");
            assert!(cfg.validate().is_err(), "{bad}");
        }
        for bad in ["max_bytes = -1", "alarm_percent = 300", "min_free_bytes = \"lots\"", "quota = 1"] {
            assert!(Config::parse(&format!("[storage]\n{bad}")).is_err(), "{bad}");
        }
        let tiny = Config::parse("[display]\nrecord_max_bytes = 10").expect("parses");
        assert!(tiny.validate().is_err());
        for bad in ["camera_width = 0", "camera_height = 8", "camera_width = 100000"] {
            let cfg = Config::parse(&format!("[display]\n{bad}")).expect("parses");
            assert!(cfg.validate().is_err(), "{bad}");
        }
        assert!(Config::parse("[display]\ncamera_width = -1").is_err());
        for bad in [0, 60_001, u64::MAX] {
            let cfg = Config { status_interval_ms: bad, ..Config::default() };
            assert!(cfg.validate().is_err(), "status_interval_ms {bad}");
        }
        assert!(Config::parse("status_interval_ms = -1").is_err());
        assert!(Config::parse("[webrtc]\nvideo_codecs = [\"vp9\"]").is_err());
        let none = Config::parse("[webrtc]\nvideo_codecs = []").expect("parses");
        assert!(none.validate().is_err());
        let h264 = Config::parse("[webrtc]\nvideo_codecs = [\"h264\", \"vp8\"]").expect("parses");
        assert_eq!(h264.webrtc.video_codecs, vec![VideoCodec::H264, VideoCodec::Vp8]);
    }
}
