//! A userspace TCP proxy that impairs a link (this kernel has no netem): every byte is delivered
//! `one_way` after it was read, in order, in both directions; and each forwarded segment
//! (`mss` bytes) is "lost" with probability `loss`. A TCP proxy cannot drop packets (the kernel
//! retransmits before it sees them), so a loss is modelled by what it costs TCP: a
//! retransmission stall of `rto` during which nothing behind the lost segment is delivered
//! (head-of-line blocking). The proxy holds at most `window` bytes per direction, so a fast
//! sender is slowed down by TCP's own flow control and no more. Bandwidth is not limited and
//! there is no congestion window: only delay and stalls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub one_way: Duration,
    pub loss: f64,
    pub rto: Duration,
    pub mss: usize,
    pub window: usize,
    /// The loss pattern: the same seed gives the same stalls at the same byte counts.
    pub seed: u64,
}

impl Impairment {
    /// 20 ms round trip, 1 % segment loss, 200 ms RTO (Linux's minimum), 1448-byte segments.
    pub fn wan(seed: u64) -> Self {
        Self {
            one_way: Duration::from_millis(10),
            loss: 0.01,
            rto: Duration::from_millis(200),
            mss: 1448,
            window: 1024 * 1024,
            seed,
        }
    }
}

/// A listening proxy; stops (with its connections) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    stalls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Loss stalls so far, both directions, all connections.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on a free loopback port and forwards every connection to `target`.
pub async fn start(target: SocketAddr, imp: Impairment) -> Result<Proxy> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stalls = Arc::new(AtomicU64::new(0));
    let counter = stalls.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        let mut n: u64 = 0;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = TcpStream::connect(target).await else { continue };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            let seed = imp.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03);
            n += 1;
            conns.spawn(pump(cr, uw, Impairment { seed, ..imp }, counter.clone()));
            conns.spawn(pump(ur, cw, Impairment { seed: seed ^ 0xA5A5_A5A5, ..imp }, counter.clone()));
        }
    });
    Ok(Proxy { addr, stalls, task })
}

/// xorshift64*: a small deterministic generator for the loss pattern.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const READ: usize = 64 * 1024;

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, imp: Impairment, stalls: Arc<AtomicU64>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>((imp.window / READ).max(1));
    let writer = async move {
        while let Some((at, data)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut rng = Rng(imp.seed);
        let mut release = Instant::now();
        let mut buf = vec![0u8; READ];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            release = release.max(Instant::now() + imp.one_way);
            for _ in 0..n.div_ceil(imp.mss) {
                if rng.next_f64() < imp.loss {
                    release += imp.rto;
                    stalls.fetch_add(1, Ordering::Relaxed);
                }
            }
            if tx.send((release, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_rate_is_about_what_was_asked() {
        let mut rng = Rng(7);
        let lost = (0..100_000).filter(|_| rng.next_f64() < 0.01).count();
        assert!((800..1200).contains(&lost), "{lost}");
    }

    #[tokio::test]
    async fn bytes_arrive_in_order_and_late() {
        use tokio::io::AsyncReadExt;
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.expect("accept");
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.expect("read");
            s.write_all(&all).await.expect("write");
        });
        let p = start(target, Impairment::wan(3)).await.expect("proxy");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let t = Instant::now();
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        s.write_all(&data).await.expect("send");
        s.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.expect("receive");
        assert_eq!(back, data);
        let stalls = p.stalls();
        assert!(stalls > 0, "about 4 losses expected in 2 × 208 segments");
        assert!(t.elapsed() >= Duration::from_millis(20) + imp_rto() * u32::try_from(stalls).unwrap_or(0));
    }

    fn imp_rto() -> Duration {
        Impairment::wan(0).rto
    }
}
