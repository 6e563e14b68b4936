//! A userspace network in front of a service, for impairment tests (this kernel has no netem):
//! one TCP and one UDP forwarder on loopback, with a switch that cuts the network (UDP
//! datagrams are dropped, TCP stalls: nothing is read or written, connections stay open, as
//! when a cable is pulled) and restores it, plus optional one-way delay and random loss. A cut
//! can also drop the open TCP connections (as a NAT or firewall that forgets them does).
//! Byte and drop counters tell what went through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Delay and loss applied to forwarded traffic (loss to UDP only: TCP would retransmit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    pub delay: Duration,
    /// Fraction of UDP datagrams dropped, 0.0–1.0.
    pub loss: f64,
}

#[derive(Default)]
pub struct Counters {
    /// UDP payload bytes forwarded client → target and target → client.
    pub udp_up: AtomicU64,
    pub udp_down: AtomicU64,
    /// UDP datagrams dropped (cut or loss).
    pub udp_dropped: AtomicU64,
    /// TCP bytes forwarded both ways.
    pub tcp_bytes: AtomicU64,
    pub tcp_connections: AtomicU64,
}

struct Shared {
    cut: watch::Sender<bool>,
    impairment: Mutex<Impairment>,
    counters: Counters,
    rng: Mutex<u64>,
}

impl Shared {
    fn impairment(&self) -> Impairment {
        *self.impairment.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// xorshift64*: reproducible loss without a dependency.
    fn lose(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        let x = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (x as f64) / ((1u64 << 53) as f64) < p
    }
}

/// The proxy; its tasks stop on drop.
pub struct NetProxy {
    /// Connect here instead of the TCP target.
    pub tcp_addr: SocketAddr,
    /// Send here instead of the UDP target.
    pub udp_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Open TCP connections (their forwarding tasks).
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    sockets: Option<(TcpListener, Arc<UdpSocket>)>,
}

impl NetProxy {
    /// Binds the two loopback ports (known before the targets are: a server may need to be
    /// told the proxy's address first); [`NetProxy::run`] starts forwarding.
    pub async fn bind() -> Result<Self> {
        let (cut, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            cut,
            impairment: Mutex::new(Impairment::default()),
            counters: Counters::default(),
            rng: Mutex::new(0x9E37_79B9_7F4A_7C15),
        });
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let tcp_addr = listener.local_addr()?;
        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let udp_addr = udp.local_addr()?;
        Ok(Self {
            tcp_addr,
            udp_addr,
            shared,
            tasks,
            conns: Arc::new(Mutex::new(Vec::new())),
            sockets: Some((listener, udp)),
        })
    }

    /// Forwards the TCP port to `tcp_target` and the UDP port to `udp_target`.
    pub fn run(&mut self, tcp_target: SocketAddr, udp_target: SocketAddr) -> Result<()> {
        let (listener, udp) = self.sockets.take().ok_or_else(|| anyhow::anyhow!("already running"))?;
        let t1 = tokio::spawn(accept_loop(listener, tcp_target, self.shared.clone(), self.conns.clone()));
        let t2 = tokio::spawn(udp_loop(udp, udp_target, self.shared.clone(), self.tasks.clone()));
        let mut g = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        g.push(t1);
        g.push(t2);
        Ok(())
    }

    /// Cuts the network: UDP is dropped, TCP stalls.
    pub fn cut(&self) {
        self.shared.cut.send_replace(true);
    }

    /// Cuts the network and closes every open TCP connection (both ends see it closed); new
    /// connections stall until the network is back.
    pub fn cut_dropping_connections(&self) {
        self.cut();
        for t in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
    }

    pub fn restore(&self) {
        self.shared.cut.send_replace(false);
    }

    pub fn set_impairment(&self, i: Impairment) {
        *self.shared.impairment.lock().unwrap_or_else(|p| p.into_inner()) = i;
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// UDP bytes forwarded so far, both directions.
    pub fn udp_bytes(&self) -> (u64, u64) {
        let c = &self.shared.counters;
        (c.udp_up.load(Ordering::Relaxed), c.udp_down.load(Ordering::Relaxed))
    }
}

impl Drop for NetProxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
        for t in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
    }
}

/// Waits while the network is cut.
async fn until_restored(shared: &Shared) {
    let mut rx = shared.cut.subscribe();
    let _ = rx.wait_for(|cut| !*cut).await;
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        shared.counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let shared2 = shared.clone();
        let t = tokio::spawn(async move {
            // A connection opened during a cut gets nowhere until the network is back.
            until_restored(&shared2).await;
            let Ok(upstream) = TcpStream::connect(target).await else { return };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            let a = pipe(cr, uw, shared2.clone());
            let b = pipe(ur, cw, shared2);
            tokio::join!(a, b);
        });
        let mut g = tasks.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|t| !t.is_finished());
        g.push(t);
    }
}

/// Copies one direction; while cut it neither reads nor writes, so the kernel buffers fill
/// and the peers see a stalled connection, not a closed one.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        until_restored(&shared).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read just before a cut: held until the network is back.
        until_restored(&shared).await;
        let delay = shared.impairment().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        shared.counters.tcp_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

async fn udp_loop(
    listen: Arc<UdpSocket>,
    target: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    // One upstream socket per client address, so the target sees distinct 5-tuples.
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = listen.recv_from(&mut buf).await else { break };
        if shared.is_cut() || shared.lose(shared.impairment().loss) {
            shared.counters.udp_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let up = match upstreams.get(&client) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                if u.connect(target).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                upstreams.insert(client, u.clone());
                let t = tokio::spawn(udp_return(u.clone(), listen.clone(), client, shared.clone()));
                tasks.lock().unwrap_or_else(|p| p.into_inner()).push(t);
                u
            }
        };
        shared.counters.udp_up.fetch_add(n as u64, Ordering::Relaxed);
        let delay = shared.impairment().delay;
        if delay.is_zero() {
            let _ = up.send(&buf[..n]).await;
        } else {
            let data = buf[..n].to_vec();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = up.send(&data).await;
            });
        }
    }
}

async fn udp_return(up: Arc<UdpSocket>, listen: Arc<UdpSocket>, client: SocketAddr, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = up.recv(&mut buf).await else { break };
        if shared.is_cut() || shared.lose(shared.impairment().loss) {
            shared.counters.udp_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.counters.udp_down.fetch_add(n as u64, Ordering::Relaxed);
        let delay = shared.impairment().delay;
        if delay.is_zero() {
            let _ = listen.send_to(&buf[..n], client).await;
        } else {
            let (data, listen) = (buf[..n].to_vec(), listen.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = listen.send_to(&data, client).await;
            });
        }
    }
}
