// A scripted terminal (polite peer) run inside a Chromium page on the server's origin, standing
// in for the Rust endpoint-client: device token, WS protocol, fake camera and microphone, rating.
// Evaluated with page.evaluate(terminal, options); state is kept in window.term. Used by the
// console tests and, as the reference terminal, by the call-setup benchmark (bench/driver.mjs).
//   options: { token, itemId, width?, height?, fps?, show?, priority?, resident?, staffToken?, rating? }
//   resident details are accepted only with a signed-in staff member's access token (staffToken).
//   show: play the remote tracks in <video> elements (as a real terminal screen would).
export async function terminal({ token, itemId, width = 640, height = 360, fps, show = false, priority = 'normal', resident, staffToken, rating = { level: 'satisfied' } }) {
  const T = (window.term = { msgs: [], videoTracks: [], streamIds: [], ticket: null, rated: false, ended: false, errors: [] });
  const video = fps ? { width, height, frameRate: fps } : { width, height };
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
  /** @type {RTCPeerConnection | null} */
  let pc = null;
  let session = null;
  let added = false;
  const pending = [];
  const ws = new WebSocket(`ws://${location.host}/ws`, ['bangban.v1']);
  const send = (m) => ws.send(JSON.stringify(m));
  ws.onopen = () => send({ type: 'hello', v: 1, token });
  let chain = Promise.resolve();
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    chain = chain.then(() => handle(m)).catch((e) => T.errors.push(String(e)));
  };
  async function handle(m) {
    T.msgs.push(m.type);
    if (m.type === 'error') T.errors.push(m.message);
    if (m.type === 'welcome') {
      send({ type: 'take_ticket', item_id: itemId, priority, ...(resident ? { resident } : {}), ...(staffToken ? { staff_token: staffToken } : {}), request_id: crypto.randomUUID() });
    } else if (m.type === 'ticket_issued') {
      T.ticket = m.ticket;
    } else if (m.type === 'session_started') {
      session = m.session;
      pc = new RTCPeerConnection({ iceServers: session.ice_servers || [] });
      pc.ontrack = (e) => {
        if (e.track.kind === 'video') { T.videoTracks.push(e.track.id); T.streamIds.push(e.streams[0]?.id || ''); }
        if (show) {
          const v = document.createElement('video');
          v.autoplay = true;
          v.playsInline = true;
          v.muted = e.track.kind !== 'audio';
          v.srcObject = new MediaStream([e.track]);
          document.body.appendChild(v);
          v.play().catch(() => {});
        }
      };
      pc.onicecandidate = ({ candidate }) => {
        const signal = candidate ? { kind: 'candidate', candidate: candidate.candidate, sdp_mid: candidate.sdpMid, sdp_m_line_index: candidate.sdpMLineIndex } : { kind: 'candidate', candidate: '' };
        send({ type: 'signal', session_id: session.session_id, signal });
      };
    } else if (m.type === 'signal' && pc) {
      const s = m.signal;
      if (s.kind === 'offer') {
        await pc.setRemoteDescription({ type: 'offer', sdp: s.sdp });
        if (!added) { for (const t of stream.getTracks()) pc.addTrack(t, stream); added = true; }
        await pc.setLocalDescription();
        send({ type: 'signal', session_id: session.session_id, signal: { kind: 'answer', sdp: pc.localDescription.sdp } });
        for (const c of pending.splice(0)) await pc.addIceCandidate(c).catch(() => {});
      } else if (s.kind === 'answer') {
        await pc.setRemoteDescription({ type: 'answer', sdp: s.sdp });
      } else if (s.kind === 'candidate') {
        if (!s.candidate) return; // end of candidates
        const c = { candidate: s.candidate, sdpMid: s.sdp_mid ?? null, sdpMLineIndex: s.sdp_m_line_index ?? 0 };
        if (!pc.remoteDescription) pending.push(c);
        else await pc.addIceCandidate(c).catch(() => {});
      }
    } else if (m.type === 'session_ended') {
      T.ended = true;
      pc?.close();
    } else if (m.type === 'rate_request') {
      send({ type: 'rate', session_id: m.session_id, ...rating });
    } else if (m.type === 'rating_recorded') {
      T.rated = true;
    }
  }
}
