//! The terminal under systemd (`Type=notify`, `WatchdogSec=`): systemd does not run here, so
//! the test stands in for it with the notify protocol itself — a unix datagram socket named by
//! `NOTIFY_SOCKET` and a watchdog timeout in `WATCHDOG_USEC`. The terminal says `READY=1` once
//! its kiosk page is served, pings `WATCHDOG=1` at half the timeout from its main loop, stops
//! pinging when that loop is frozen (SIGSTOP: what systemd would then kill and restart), and
//! says `STOPPING=1` on SIGTERM.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::UnixDatagram;

use crate::helpers::{Endpoint, EndpointOpts, Server, WAIT, init_tracing};

async fn next(sock: &UnixDatagram, within: Duration) -> Result<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, sock.recv(&mut buf)).await.context("no notify datagram")??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = std::process::Command::new("kill").args([sig, &pid.to_string()]).status()?;
    anyhow::ensure!(st.success(), "kill {sig} {pid}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_speaks_the_systemd_notify_protocol() -> Result<()> {
    init_tracing();
    let server = Server::start().await?;
    let (_point, code) = server.enrollment.first().context("demo terminal")?.clone();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path)?;
    // A 2 s watchdog: a ping each second.
    let env = vec![
        ("NOTIFY_SOCKET".to_owned(), path.display().to_string()),
        ("WATCHDOG_USEC".to_owned(), "2000000".to_owned()),
    ];
    let mut ep =
        Endpoint::enroll_and_run_with(&server, &code, EndpointOpts { env, ..Default::default() }).await?;
    let pid = ep.pid().context("pid")?;

    let first = next(&sock, WAIT).await?;
    assert!(first.lines().any(|l| l == "READY=1"), "ready first: {first:?}");
    assert!(first.contains("STATUS=kiosk page on http://127.0.0.1:"), "{first:?}");
    ep.wait_status("connected", |s| s["connected"] == true).await?;
    // Pings keep coming, about one a second, with the phase in the status line (those sent
    // before signaling connected say so; skip them).
    loop {
        let m = next(&sock, Duration::from_secs(5)).await?;
        assert!(m.contains("WATCHDOG=1") && m.contains("STATUS=idle, "), "{m:?}");
        if m.contains("STATUS=idle, connected") {
            break;
        }
    }
    let t0 = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let m = next(&sock, Duration::from_secs(5)).await?;
        if m.lines().any(|l| l == "WATCHDOG=1") {
            pings += 1;
            assert!(m.contains("STATUS=idle, connected"), "{m:?}");
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(1500), "not faster than half the timeout");

    // A frozen process pings no more (systemd would restart it after the 2 s timeout).
    signal(pid, "-STOP")?;
    // Drain what was sent before the stop.
    while next(&sock, Duration::from_millis(300)).await.is_ok() {}
    assert!(next(&sock, Duration::from_secs(3)).await.is_err(), "no ping from a frozen process");
    signal(pid, "-CONT")?;
    let m = next(&sock, Duration::from_secs(5)).await?;
    assert!(m.contains("WATCHDOG=1"), "pings again once running: {m:?}");

    // SIGTERM: a clean stop is announced.
    signal(pid, "-TERM")?;
    let deadline = Instant::now() + WAIT;
    loop {
        let m = next(&sock, Duration::from_secs(10)).await?;
        if m.lines().any(|l| l == "STOPPING=1") {
            break;
        }
        assert!(Instant::now() < deadline, "no STOPPING=1");
    }
    drop(ep);
    Ok(())
}
