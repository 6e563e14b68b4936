//! Paced relay load: a few tokio tasks each own many client sockets. Each task sends `signal`
//! candidates from its senders at its share of the target rate (token bucket on a 1 ms tick),
//! stamping the send time into the candidate string, and reads every socket it owns,
//! recording the latency of each stamped candidate it receives.

use std::time::{Duration, Instant};

use futures_util::stream::SelectAll;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::util::Ws;

/// One socket; `session` set means it sends candidates to its peer in that session.
pub struct Conn {
    pub ws: Ws,
    pub session: Option<Uuid>,
}

/// Shared schedule, in `Instant`s of this process (sender and receiver share the clock).
#[derive(Clone, Copy)]
pub struct Plan {
    pub epoch: Instant,
    pub send_from: Instant,
    pub measure_from: Instant,
    pub send_until: Instant,
    pub end: Instant,
    pub rate_per_group: f64,
    /// Send `ping` on every socket every 10 s, spread evenly (the server closes sockets silent
    /// for 45 s).
    pub ping: bool,
}

#[derive(Default)]
pub struct GroupOut {
    pub latencies_ns: Vec<u64>,
    pub sent: u64,
    pub sent_measured: u64,
    pub received_measured: u64,
    pub closed: u64,
    pub errors: Vec<String>,
}

const PING_EVERY: Duration = Duration::from_secs(10);

const MARK: &str = "\"candidate\":\"candidate:";

pub(crate) fn stamp_of(text: &str) -> Option<u64> {
    let at = text.find(MARK)? + MARK.len();
    let digits: &str = &text[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

pub(crate) fn candidate(session: Uuid, stamp: u64) -> String {
    format!(
        "{{\"type\":\"signal\",\"session_id\":\"{session}\",\"signal\":{{\"kind\":\"candidate\",\
         \"candidate\":\"candidate:{stamp} 1 udp 2130706431 127.0.0.1 9 typ host\",\"sdp_mid\":\"0\",\
         \"sdp_m_line_index\":0}}}}"
    )
}

fn ns_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

pub async fn run_group(conns: Vec<Conn>, plan: Plan) -> GroupOut {
    let mut out = GroupOut::default();
    let mut sinks = Vec::with_capacity(conns.len());
    let mut streams = SelectAll::new();
    let mut senders = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let (sink, stream) = c.ws.split();
        sinks.push(Some(sink));
        streams.push(stream.map(move |m| (i, m)));
        if let Some(s) = c.session {
            senders.push((i, s));
        }
    }
    let measure_from = ns_since(plan.epoch, plan.measure_from);
    let send_until = ns_since(plan.epoch, plan.send_until);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Pings are spread evenly: every socket once per `PING_EVERY`, like real clients.
    let mut pinged = 0u64;
    let mut seq = 0u64;
    let mut rr = 0usize;
    loop {
        tokio::select! {
            next = streams.next(), if !streams.is_empty() => {
                let Some((i, frame)) = next else { continue };
                match frame {
                    Ok(Message::Text(t)) => {
                        let now = ns_since(plan.epoch, Instant::now());
                        if let Some(stamp) = stamp_of(t.as_str()) {
                            if stamp >= measure_from && stamp < send_until {
                                out.received_measured += 1;
                                out.latencies_ns.push(now.saturating_sub(stamp));
                            }
                        } else if (t.as_str().contains("\"type\":\"error\"") || t.as_str().contains("\"type\":\"bye\""))
                            && out.errors.len() < 5
                        {
                            out.errors.push(format!("socket {i}: {}", t.as_str()));
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => {
                        out.closed += 1;
                        sinks[i] = None;
                    }
                    Ok(_) => {}
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= plan.end {
                    break;
                }
                if plan.ping && !sinks.is_empty() {
                    let due = (now.duration_since(plan.epoch).as_secs_f64() / PING_EVERY.as_secs_f64()
                        * sinks.len() as f64) as u64;
                    while pinged < due {
                        let i = usize::try_from(pinged).unwrap_or(0) % sinks.len();
                        pinged += 1;
                        seq += 1;
                        if let Some(sink) = sinks[i].as_mut() {
                            let _ = sink.send(Message::Text(format!("{{\"type\":\"ping\",\"seq\":{seq}}}").into())).await;
                        }
                    }
                }
                if now < plan.send_from || now >= plan.send_until || senders.is_empty() {
                    continue;
                }
                let due = (now.duration_since(plan.send_from).as_secs_f64() * plan.rate_per_group) as u64;
                while out.sent < due {
                    let (i, session) = senders[rr % senders.len()];
                    rr += 1;
                    let stamp = ns_since(plan.epoch, Instant::now());
                    out.sent += 1;
                    if stamp >= measure_from && stamp < send_until {
                        out.sent_measured += 1;
                    }
                    let Some(sink) = sinks[i].as_mut() else { continue };
                    if sink.send(Message::Text(candidate(session, stamp).into())).await.is_err() {
                        sinks[i] = None;
                        out.closed += 1;
                    }
                }
            }
        }
    }
    out
}

/// Results of one relay phase over all groups.
pub struct RelayStats {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub achieved_per_sec: f64,
    pub lost: u64,
    pub closed: u64,
    pub errors: Vec<String>,
}

/// Spreads `conns` over `groups` tasks, runs the plan, merges the results.
pub async fn run(
    conns: Vec<Conn>,
    groups: usize,
    rate: f64,
    warmup: Duration,
    measure: Duration,
    ping: bool,
) -> RelayStats {
    let groups = groups.max(1);
    let mut buckets: Vec<Vec<Conn>> = (0..groups).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        buckets[i % groups].push(c);
    }
    let epoch = Instant::now();
    let send_from = epoch + Duration::from_millis(200);
    let plan = Plan {
        epoch,
        send_from,
        measure_from: send_from + warmup,
        send_until: send_from + warmup + measure,
        end: send_from + warmup + measure + Duration::from_secs(2),
        rate_per_group: rate / groups as f64,
        ping,
    };
    let handles: Vec<_> = buckets.into_iter().map(|b| tokio::spawn(run_group(b, plan))).collect();
    let mut all = GroupOut::default();
    for h in handles {
        match h.await {
            Ok(g) => {
                all.latencies_ns.extend(g.latencies_ns);
                all.sent += g.sent;
                all.sent_measured += g.sent_measured;
                all.received_measured += g.received_measured;
                all.closed += g.closed;
                all.errors.extend(g.errors);
            }
            Err(e) => all.errors.push(format!("relay task failed: {e}")),
        }
    }
    all.latencies_ns.sort_unstable();
    let us = |p: f64| crate::util::percentile(&all.latencies_ns, p) as f64 / 1000.0;
    RelayStats {
        p50_us: us(50.0),
        p99_us: us(99.0),
        p999_us: us(99.9),
        achieved_per_sec: all.received_measured as f64 / measure.as_secs_f64(),
        lost: all.sent_measured.saturating_sub(all.received_measured),
        closed: all.closed,
        errors: all.errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let s = Uuid::nil();
        assert_eq!(stamp_of(&candidate(s, 123_456_789)), Some(123_456_789));
        assert!(shared::protocol::ClientMsg::decode(candidate(s, 42).as_bytes()).is_ok());
        assert_eq!(stamp_of("{\"type\":\"pong\",\"seq\":1}"), None);
    }
}
