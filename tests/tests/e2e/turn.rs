//! A private coturn (`turnserver`) for a test: loopback only, free ports, the TURN REST secret
//! scheme the server mints credentials for (`use-auth-secret`), killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::UdpSocket;

use crate::helpers::WAIT;

pub struct Coturn {
    pub addr: SocketAddr,
    pub secret: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port")
}

fn config(dir: &Path, port: u16, relay: (u16, u16), secret: &str) -> String {
    format!(
        "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\nmin-port={}\nmax-port={}\n\
         use-auth-secret\nstatic-auth-secret={secret}\nrealm=bangban.test\nfingerprint\n\
         no-tls\nno-dtls\nno-cli\nno-multicast-peers\n\
         # The operator peer of the tests is on loopback (never in production: deploy/coturn).\n\
         allow-loopback-peers\n\
         userdb={}\npidfile={}\nno-software-attribute\nsimple-log\n",
        relay.0,
        relay.1,
        dir.join("turndb").display(),
        dir.join("turnserver.pid").display(),
    )
}

impl Coturn {
    pub async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        // A relay range starting at another free port; coturn skips ports in use.
        let relay_lo = free_port()?.clamp(1024, 65_000);
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let conf = dir.path().join("turnserver.conf");
        std::fs::write(&conf, config(dir.path(), port, (relay_lo, relay_lo + 200), &secret))?;
        let log = std::fs::File::create(dir.path().join("turnserver.log"))?;
        let child = tokio::process::Command::new("turnserver")
            .arg("-c")
            .arg(&conf)
            .arg("--log-file")
            .arg("stdout")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("turnserver (coturn) is not installed")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut me = Self { addr, secret, child, _dir: dir };
        me.wait_ready().await?;
        Ok(me)
    }

    /// Ready when it answers a STUN Binding request.
    async fn wait_ready(&mut self) -> Result<()> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        req.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..12]);
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = [0u8; 1500];
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("turnserver exited: {status}");
            }
            sock.send_to(&req, self.addr).await?;
            // Each probe waits for its answer up to 100 ms, then probes again.
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await
                && n >= 20
                && buf[0..2] == [0x01, 0x01]
                && buf[8..20] == req[8..20]
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("turnserver did not answer STUN on {}", self.addr);
            }
        }
    }
}
