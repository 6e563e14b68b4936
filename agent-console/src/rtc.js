// One call's RTCPeerConnection with perfect negotiation (docs/protocol.md §5.4). The operator is
// the impolite peer and makes the first offer; candidates trickle; the screen share is a
// separate video track whose stream id (as sent) starts with `screen-`, which is how the
// terminal tells it from the camera and shows it on its second screen.
//
// Video codec: this workstation's preference (`videoCodec()`, kept in localStorage): VP8 (the
// browser's own order) or H.264 first (e.g. where the PC decodes H.264 in hardware). The
// preference orders every video transceiver's codecs before an offer; the terminal answers in
// the offer's first codec it supports, and both directions use it.

const CODEC_KEY = 'bangban.videoCodec';
/** This workstation's video codec preference. @returns {'vp8' | 'h264'} */
export function videoCodec() {
  return (typeof localStorage !== 'undefined' && localStorage.getItem(CODEC_KEY)) === 'h264' ? 'h264' : 'vp8';
}
/** @param {'vp8' | 'h264'} codec */
export function setVideoCodec(codec) { localStorage.setItem(CODEC_KEY, codec); }

/**
 * The browser's video codecs with the preferred one first: for H.264, packetization mode 1 in
 * the baseline profiles (what the terminal takes) ahead of everything else.
 * @param {'vp8' | 'h264'} pref
 */
function orderedCodecs(pref) {
  const codecs = RTCRtpReceiver.getCapabilities?.('video')?.codecs || [];
  /** @param {RTCRtpCodec} c */
  const rank = (c) => {
    const mime = c.mimeType.toLowerCase();
    const fmtp = (c.sdpFmtpLine || '').toLowerCase();
    if (pref === 'h264' && mime === 'video/h264' && fmtp.includes('packetization-mode=1') && /profile-level-id=42/.test(fmtp)) return 0;
    if (pref === 'vp8' && mime === 'video/vp8') return 0;
    return 1;
  };
  return codecs.map((c, i) => ({ c, i })).sort((a, b) => rank(a.c) - rank(b.c) || a.i - b.i).map((x) => x.c);
}

/** A local ICE candidate (or `null`: the end of candidates) as a `signal` payload. @param {RTCIceCandidate | null} candidate */
function candidateSignal(candidate) {
  /** @type {any} */
  const c = { kind: 'candidate', candidate: candidate?.candidate ?? '' };
  if (candidate?.sdpMid != null) c.sdp_mid = candidate.sdpMid;
  if (candidate?.sdpMLineIndex != null) c.sdp_m_line_index = candidate.sdpMLineIndex;
  return c;
}

/** A received `candidate` signal for `addIceCandidate`. @param {any} signal @returns {RTCIceCandidateInit} */
function candidateInit(signal) {
  /** @type {RTCIceCandidateInit} */
  const c = { candidate: signal.candidate, sdpMid: signal.sdp_mid ?? null, sdpMLineIndex: signal.sdp_m_line_index ?? null };
  if (c.sdpMid == null && c.sdpMLineIndex == null) c.sdpMLineIndex = 0;
  return c;
}

export class Call extends EventTarget {
  /**
   * @param {{ sessionId: string, iceServers: RTCIceServer[], polite: boolean, send: (signal: any) => boolean, videoCodec?: 'vp8' | 'h264' }} o
   */
  constructor(o) {
    super();
    this.sessionId = o.sessionId;
    this.polite = o.polite;
    this.sendSignal = o.send;
    this.videoCodec = o.videoCodec || 'vp8';
    this.pc = new RTCPeerConnection({ iceServers: o.iceServers || [] });
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.iceRestart = false;
    /** @type {RTCIceCandidateInit[]} */ this.pending = [];
    /** @type {MediaStream | null} */ this.local = null;
    /** @type {MediaStream | null} */ this.screen = null;
    /** @type {RTCRtpSender | null} */ this.screenSender = null;
    this.remote = new MediaStream();
    this.held = false;
    this.micOn = true;
    this.camOn = true;

    this.pc.onnegotiationneeded = () => this.offer();
    this.pc.onicecandidate = ({ candidate }) => {
      this.sendSignal(candidateSignal(candidate));
    };
    this.pc.ontrack = ({ track }) => {
      if (!this.remote.getTracks().includes(track)) this.remote.addTrack(track);
      track.onended = () => this.remote.removeTrack(track);
      this.emit('remote');
    };
    this.pc.onconnectionstatechange = () => this.emit('state');
    this.pc.oniceconnectionstatechange = () => this.emit('state');
  }

  /** @param {string} name */
  emit(name) { this.dispatchEvent(new Event(name)); }

  /** Adds the operator's microphone and camera (or receive-only transceivers without them). @param {MediaStream | null} stream */
  start(stream) {
    this.local = stream;
    const audio = stream?.getAudioTracks()[0];
    const video = stream?.getVideoTracks()[0];
    if (audio && stream) this.pc.addTrack(audio, stream);
    else this.pc.addTransceiver('audio', { direction: 'sendrecv' });
    if (video && stream) this.pc.addTrack(video, stream);
    else this.pc.addTransceiver('video', { direction: 'sendrecv' });
    this.preferCodecs();
  }

  /** Orders the codecs of every video transceiver by this call's preference. */
  preferCodecs() {
    const codecs = orderedCodecs(this.videoCodec);
    if (!codecs.length) return;
    for (const tr of this.pc.getTransceivers()) {
      if (tr.receiver.track?.kind !== 'video' || tr.currentDirection === 'stopped') continue;
      try { tr.setCodecPreferences(codecs); } catch (e) { console.warn('setCodecPreferences', e); }
    }
  }

  /** Rewrites the screen stream's id in SDP we send so that it reads `screen-…`. @param {string} sdp */
  outgoing(sdp) {
    if (!this.screen) return sdp;
    return sdp.split(this.screen.id).join(`screen-${this.screen.id}`);
  }

  async offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const desc = this.pc.localDescription;
      if (!desc || desc.type !== 'offer') return;
      this.sendSignal({ kind: 'offer', sdp: this.outgoing(desc.sdp), ice_restart: this.iceRestart });
      this.iceRestart = false;
    } catch (e) {
      console.warn('offer failed', e);
    } finally {
      this.makingOffer = false;
    }
  }

  /** @param {any} signal from the other party */
  async handle(signal) {
    try {
      if (signal.kind === 'offer' || signal.kind === 'answer') {
        const description = { type: signal.kind, sdp: signal.sdp };
        const collision = signal.kind === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        await this.pc.setRemoteDescription(description);
        for (const c of this.pending.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
        if (signal.kind === 'offer') {
          await this.pc.setLocalDescription();
          const desc = this.pc.localDescription;
          if (desc) this.sendSignal({ kind: 'answer', sdp: this.outgoing(desc.sdp) });
        }
      } else if (signal.kind === 'candidate') {
        const c = candidateInit(signal);
        if (!this.pc.remoteDescription) this.pending.push(c);
        else await this.pc.addIceCandidate(c).catch((e) => { if (!this.ignoreOffer) console.warn('candidate', e); });
      }
    } catch (e) {
      console.warn('signal failed', e);
    }
  }

  /** After `peer_reconnected` (or our own resume): restart ICE with a fresh offer. */
  restartIce() {
    this.iceRestart = true;
    this.pc.restartIce();
  }

  /** @param {boolean} on */
  setMic(on) {
    this.micOn = on;
    this.applyEnabled();
  }
  /** @param {boolean} on */
  setCam(on) {
    this.camOn = on;
    this.applyEnabled();
  }
  /** While held both sides mute their outgoing tracks. @param {boolean} held */
  setHeld(held) {
    this.held = held;
    this.applyEnabled();
    for (const t of this.remote.getTracks()) t.enabled = !held;
  }
  applyEnabled() {
    for (const t of this.local?.getAudioTracks() || []) t.enabled = this.micOn && !this.held;
    for (const t of this.local?.getVideoTracks() || []) t.enabled = this.camOn && !this.held;
    for (const t of this.screen?.getTracks() || []) t.enabled = !this.held;
  }

  /** Switches the camera without renegotiating. @param {string} deviceId */
  async switchCamera(deviceId) {
    const s = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: deviceId } } });
    const track = s.getVideoTracks()[0];
    const sender = this.pc.getSenders().find((x) => x.track?.kind === 'video' && x !== this.screenSender);
    await sender?.replaceTrack(track);
    if (this.local) {
      for (const old of this.local.getVideoTracks()) { this.local.removeTrack(old); old.stop(); }
      this.local.addTrack(track);
    }
    this.applyEnabled();
  }

  /** Shares a screen or window as a second video track (document detail). */
  async shareScreen() {
    const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10, max: 15 } }, audio: false });
    const track = s.getVideoTracks()[0];
    track.contentHint = 'detail';
    this.screen = s;
    this.screenSender = this.pc.addTrack(track, s);
    this.preferCodecs();
    track.onended = () => this.stopScreen();
    this.applyEnabled();
    this.emit('screen');
  }

  stopScreen() {
    if (!this.screen) return;
    for (const t of this.screen.getTracks()) t.stop();
    if (this.screenSender && this.pc.signalingState !== 'closed') {
      try { this.pc.removeTrack(this.screenSender); } catch { /* closed */ }
    }
    this.screenSender = null;
    this.screen = null;
    this.emit('screen');
  }

  close() {
    for (const t of this.screen?.getTracks() || []) t.stop();
    for (const t of this.local?.getTracks() || []) t.stop();
    this.screen = null;
    this.pc.close();
  }

  /** The codecs in use, by direction (for support and tests): e.g. `{ inbound: ['video/H264'], outbound: ['video/H264'] }`. */
  async videoCodecs() {
    const stats = await this.pc.getStats();
    /** @type {{ inbound: string[], outbound: string[] }} */
    const out = { inbound: [], outbound: [] };
    stats.forEach((r) => {
      if (r.kind !== 'video' || (r.type !== 'inbound-rtp' && r.type !== 'outbound-rtp') || !r.codecId) return;
      const mime = stats.get(r.codecId)?.mimeType;
      const list = r.type === 'inbound-rtp' ? out.inbound : out.outbound;
      if (mime && !list.includes(mime)) list.push(mime);
    });
    return out;
  }

  /** Decoded inbound video frames so far (for the connection indicator and tests). */
  async framesDecoded() {
    let n = 0;
    const stats = await this.pc.getStats();
    stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.framesDecoded || 0; });
    return n;
  }
}

/**
 * One extra pair of a call: a supervisor and one of the two parties (docs/protocol.md §5.8),
 * signaled with `peer_signal`. The supervisor's side offers (`offerer`): receive-only video and
 * an audio transceiver that carries no track, so sends nothing, until `setSpeaking(mic)` puts
 * the microphone on it (no renegotiation: the terminal's webrtc-rs does not start receiving on a
 * transceiver a later offer turns to sendrecv). The other side answers and sends `local`, the
 * call's own camera and microphone tracks (the same tracks, encoded per connection by the
 * browser); what it receives plays only while `audible`.
 */
export class PeerLink extends EventTarget {
  /**
   * @param {{ peer: string, iceServers: RTCIceServer[], send: (signal: any) => boolean, offerer: boolean, local?: MediaStream | null }} o
   */
  constructor(o) {
    super();
    this.peer = o.peer;
    this.offerer = o.offerer;
    this.sendSignal = o.send;
    this.local = o.local || null;
    this.pc = new RTCPeerConnection({ iceServers: o.iceServers || [] });
    this.remote = new MediaStream();
    this.makingOffer = false;
    this.added = false;
    /** @type {RTCIceCandidateInit[]} */ this.pending = [];
    /** @type {RTCRtpTransceiver | null} */ this.audio = null;
    this.pc.onicecandidate = ({ candidate }) => {
      this.sendSignal(candidateSignal(candidate));
    };
    this.pc.ontrack = ({ track }) => {
      if (!this.remote.getTracks().includes(track)) this.remote.addTrack(track);
      track.onended = () => this.remote.removeTrack(track);
      this.dispatchEvent(new Event('remote'));
    };
    this.pc.onconnectionstatechange = () => this.dispatchEvent(new Event('state'));
    if (this.offerer) {
      this.pc.onnegotiationneeded = () => this.offer();
      // A specialist (`local` given) sends camera and microphone from the start; a supervisor
      // sends nothing until `setSpeaking`.
      const mic = this.local?.getAudioTracks()[0];
      const cam = this.local?.getVideoTracks()[0];
      const streams = this.local ? [this.local] : [];
      this.audio = this.pc.addTransceiver(mic || 'audio', { direction: 'sendrecv', streams });
      this.pc.addTransceiver(cam || 'video', { direction: cam ? 'sendrecv' : 'recvonly', streams });
    }
  }

  async offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const desc = this.pc.localDescription;
      if (desc?.type === 'offer') this.sendSignal({ kind: 'offer', sdp: desc.sdp, ice_restart: false });
    } catch (e) {
      console.warn('offer failed', e);
    } finally {
      this.makingOffer = false;
    }
  }

  /** The supervisor's microphone towards this peer, or `null`: nothing is sent. @param {MediaStreamTrack | null} mic */
  async setSpeaking(mic) {
    if (!this.audio || this.audio.sender.track === mic) return;
    await this.audio.sender.replaceTrack(mic);
  }

  /** @param {any} signal from the peer */
  async handle(signal) {
    try {
      if (signal.kind === 'offer' || signal.kind === 'answer') {
        // The supervisor is the impolite side and ignores a colliding offer; the parties never
        // offer on these links.
        if (signal.kind === 'offer' && this.offerer) return;
        await this.pc.setRemoteDescription({ type: signal.kind, sdp: signal.sdp });
        for (const c of this.pending.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
        if (signal.kind === 'offer') {
          if (!this.added && this.local) {
            // Reuses the offered transceivers: the answer sends our camera and microphone.
            for (const t of this.local.getTracks()) this.pc.addTrack(t, this.local);
            this.added = true;
          }
          await this.pc.setLocalDescription();
          const desc = this.pc.localDescription;
          if (desc) this.sendSignal({ kind: 'answer', sdp: desc.sdp });
        }
      } else if (signal.kind === 'candidate') {
        if (!signal.candidate) return;
        const c = candidateInit(signal);
        if (!this.pc.remoteDescription) this.pending.push(c);
        else await this.pc.addIceCandidate(c).catch((e) => console.warn('candidate', e));
      }
    } catch (e) {
      console.warn('peer signal failed', e);
    }
  }

  /** After the peer reconnected: a fresh ICE negotiation (offerer only). */
  restartIce() { if (this.offerer) this.pc.restartIce(); }

  close() { this.pc.close(); }

  /** Inbound media so far: decoded video frames and received audio samples (support and tests). */
  async inbound() {
    let frames = 0, audioSamples = 0, audioBytes = 0;
    const stats = await this.pc.getStats();
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'video') frames += r.framesDecoded || 0;
      if (r.kind === 'audio') { audioSamples += r.totalSamplesReceived || 0; audioBytes += r.bytesReceived || 0; }
    });
    return { frames, audioSamples, audioBytes };
  }
}
