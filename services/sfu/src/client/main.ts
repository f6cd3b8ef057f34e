// The Duet browser client: signalling over WebSocket (protocol: services/sfu/README.md),
// mediasoup-client for the WebRTC transports, WebAudio level meters, getStats() numbers.

import { Device, type types } from 'mediasoup-client';
import { sameCapabilities } from '../rtpCapabilities.js';
import { Timeline } from '../timeline.js';

type Json = Record<string, unknown>;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page exposes for monitoring and tests (window.duet). */
interface DuetState {
  state: 'idle' | 'connecting' | 'live' | 'ended' | 'error';
  callId?: string;
  connectMs?: number;
  /** The last call's setup steps, in ms since the click on Call (the connect-time breakdown). */
  connectPhases?: Record<string, number>;
  /** When the click on Call came, in ms since the page started loading (page load to media = this + connectMs). */
  clickAt?: number;
  /** What the page did before the click, in ms since it started loading (deviceLoaded). */
  pagePhases?: Record<string, number>;
  firstAudioMs?: number;
  micLevelDb: number;
  agentLevelDb: number;
  agentPeakDb: number;
  inbound?: { packetsReceived: number; packetsLost: number; jitterMs: number; bytesReceived: number };
  outbound?: { packetsSent: number };
  rttMs?: number;
  mouthToEarMs?: number;
  error?: { code?: number; reason?: string; message: string };
  closedReason?: string;
}
const duet: DuetState = {
  state: 'idle',
  micLevelDb: -Infinity,
  agentLevelDb: -Infinity,
  agentPeakDb: -Infinity,
};
(window as unknown as { duet: DuetState }).duet = duet;

const MESSAGES: Record<string, string> = {
  token_missing: 'An access token is needed to call. Paste yours below.',
  token_invalid: 'This access token is not valid.',
  token_expired: 'This access token has expired: ask for a new one.',
  call_in_use: 'This call is already in progress elsewhere.',
  no_capacity: 'All agents are busy right now. Try again in a moment.',
  call_setup_failed: 'The agent could not be reached. Try again in a moment.',
  media_worker_died: 'The media server restarted and the call ended.',
  idle_timeout: 'The connection was idle for too long.',
  server_shutting_down: 'The server is restarting. Try again in a moment.',
  malformed_message: 'The client and server disagree (protocol error).',
};

class Signalling {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  onNotification: (name: string, data: Json) => void = () => undefined;
  onClose: (code: number, reason: string) => void = () => undefined;

  private constructor(private readonly ws: WebSocket) {
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data)) as Json;
      if (typeof msg.notification === 'string')
        return this.onNotification(msg.notification, (msg.data ?? {}) as Json);
      const p = this.pending.get(msg.id as number);
      if (!p) return;
      this.pending.delete(msg.id as number);
      if (msg.ok) p.resolve((msg.data ?? {}) as Json);
      else {
        const err = msg.error as { code: string; message: string };
        p.reject(Object.assign(new Error(err.message), { code: err.code }));
      }
    };
    ws.onclose = (ev) => {
      for (const p of this.pending.values())
        p.reject(new Error(`signalling closed (${ev.code} ${ev.reason})`));
      this.pending.clear();
      this.onClose(ev.code, ev.reason);
    };
  }

  static open(url: string): Promise<Signalling> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Signalling(ws));
      ws.onerror = () => reject(new Error('cannot reach the server'));
    });
  }

  request<T = Json>(method: string, data: Json = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: Json) => void, reject });
      this.ws.send(JSON.stringify({ id, method, data }));
    });
  }

  close(): void {
    this.ws.close(1000);
  }
}

// --- UI ---------------------------------------------------------------------------------------

const ui = {
  status: $('status'),
  call: $<HTMLButtonElement>('call'),
  hangup: $<HTMLButtonElement>('hangup'),
  mute: $<HTMLButtonElement>('mute'),
  error: $('error'),
  token: $<HTMLTextAreaElement>('token'),
  tokenBox: $<HTMLDetailsElement>('token-box'),
  timer: $('timer'),
  audio: $<HTMLAudioElement>('agent-audio'),
};

function setStatus(state: DuetState['state'], text: string): void {
  duet.state = state;
  ui.status.textContent = text;
  ui.status.className = `pill ${state === 'live' ? 'live' : state === 'connecting' ? 'connecting' : state === 'error' ? 'error' : 'idle'}`;
  const busy = state === 'connecting' || state === 'live';
  ui.call.disabled = busy;
  ui.hangup.disabled = !busy;
  ui.mute.disabled = state !== 'live';
}

function showError(message: string | undefined): void {
  ui.error.hidden = !message;
  ui.error.textContent = message ?? '';
}

const fmtMs = (v: number | undefined) =>
  v === undefined || !Number.isFinite(v) ? '—' : `${Math.round(v)} ms`;

const params = new URLSearchParams(location.search);
ui.token.value = params.get('token') ?? localStorage.getItem('duet.token') ?? '';
if (!ui.token.value) ui.tokenBox.open = true;

// --- ahead of the click ----------------------------------------------------------------------

// A mediasoup-client Device needs the router's RTP capabilities (the same for every call: the
// SFU serves them at /rtp-capabilities) and the browser's own, which it reads from a throwaway
// RTCPeerConnection (130-200 ms on a first call). Loaded when the page loads, so that a call
// does not wait for it; a call whose router differs (the SFU's codec changed) loads its own.
// Nothing else happens before the click: no microphone, no signalling socket, no call.
const pageTimeline = new Timeline(0); // ms since the page started loading
const preloaded: Promise<{ device: Device; capabilities: types.RtpCapabilities } | undefined> = (async () => {
  const res = await fetch('/rtp-capabilities', { cache: 'no-store' });
  if (!res.ok) return undefined;
  const { routerRtpCapabilities } = (await res.json()) as { routerRtpCapabilities: types.RtpCapabilities };
  const device = new Device();
  await device.load({ routerRtpCapabilities });
  pageTimeline.mark('deviceLoaded');
  duet.pagePhases = pageTimeline.toJSON();
  return { device, capabilities: routerRtpCapabilities };
})().catch(() => undefined);

/** The Device for a call's router: the page's, if its router has the same capabilities. */
async function deviceFor(
  routerRtpCapabilities: types.RtpCapabilities,
): Promise<{ device: Device; preloaded: boolean }> {
  const pre = await preloaded;
  if (pre && sameCapabilities(pre.capabilities, routerRtpCapabilities))
    return { device: pre.device, preloaded: true };
  const device = new Device();
  await device.load({ routerRtpCapabilities });
  return { device, preloaded: false };
}

// --- the call ---------------------------------------------------------------------------------

interface Live {
  signalling: Signalling;
  mic: MediaStream;
  send: types.Transport;
  recv: types.Transport;
  producer: types.Producer;
  consumer?: types.Consumer;
  /** The level meters' (made once the call is live). */
  audioCtx?: AudioContext;
  timers: number[];
  startedAt: number;
  pipelineDelayMs: number;
}
let live: Live | undefined;

function analyser(ctx: AudioContext, stream: MediaStream): () => number {
  const node = ctx.createAnalyser();
  node.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(node);
  const buf = new Float32Array(node.fftSize);
  return () => {
    node.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const s of buf) sum += s * s;
    const rms = Math.sqrt(sum / buf.length);
    return rms > 0 ? 20 * Math.log10(rms) : -Infinity;
  };
}

function drawLevel(who: 'you' | 'agent', db: number): void {
  const frac = Number.isFinite(db) ? Math.max(0, Math.min(1, (db + 60) / 60)) : 0;
  $(`${who}-meter`).style.width = `${(frac * 100).toFixed(1)}%`;
  $(`${who}-ring`).style.transform = `scale(${1 + frac * 0.18})`;
  $(`${who}-db`).textContent = Number.isFinite(db) ? `${db.toFixed(0)} dB` : '–∞ dB';
}

async function startCall(): Promise<void> {
  const token = ui.token.value.trim();
  showError(undefined);
  setStatus('connecting', 'Connecting…');
  duet.closedReason = undefined;
  delete duet.error;
  delete duet.connectMs;
  delete duet.firstAudioMs;
  const t0 = performance.now();
  const tl = new Timeline(t0);
  duet.clickAt = Math.round(t0);
  duet.connectPhases = tl.toJSON();
  const mark = (name: string) => {
    tl.mark(name);
    duet.connectPhases = tl.toJSON();
  };
  let signalling: Signalling | undefined;
  let mic: MediaStream | undefined;
  let failed = false;
  const transports: types.Transport[] = [];
  // The microphone is asked for on the click (the page records nothing before), but nothing
  // waits for it except sending: signalling, the join (and the call opening on the services) and
  // the receiving side go ahead meanwhile.
  const micReady = navigator.mediaDevices
    .getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    })
    .then((m) => {
      mark('micReady');
      mic = m;
      if (failed) for (const t of m.getTracks()) t.stop();
      return m;
    });
  micReady.catch(() => undefined); // a refusal is reported where sending awaits it
  try {
    if (token) localStorage.setItem('duet.token', token);
    const sig = await Signalling.open(
      `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    );
    signalling = sig;
    mark('wsOpen');
    sig.onClose = (code, reason) => endCall(reason || `closed (${code})`, code);
    sig.onNotification = (name, data) => {
      if (name === 'error')
        duet.error = {
          code: data.code as number,
          reason: data.reason as string,
          message: data.message as string,
        };
      if (name === 'closed') duet.closedReason = String(data.reason);
    };
    const joined = await sig.request<Json>('join', token ? { token } : {});
    mark('joined');
    duet.callId = joined.callId as string;
    $('call-id').textContent = `call ${duet.callId} · agent ${joined.agent as string}`;
    const { device, preloaded: ahead } = await deviceFor(
      joined.routerRtpCapabilities as types.RtpCapabilities,
    );
    mark(ahead ? 'deviceReady' : 'deviceLoaded');
    const send = device.createSendTransport(joined.sendTransport as types.TransportOptions);
    const recv = device.createRecvTransport(joined.recvTransport as types.TransportOptions);
    transports.push(send, recv);
    mark('transportsCreated');
    for (const [name, t] of [
      ['send', send],
      ['recv', recv],
    ] as const) {
      t.on('connect', ({ dtlsParameters }, ok, fail) => {
        mark(`${name}Connect`);
        sig
          .request('connectTransport', {
            transportId: t.id,
            dtlsParameters: dtlsParameters as unknown as Json,
          })
          .then(() => {
            mark(`${name}ConnectAnswered`);
            ok();
          }, fail);
      });
      t.on('connectionstatechange', (s) => {
        if (s === 'connecting') mark(`${name}Connecting`);
        if (s === 'connected') mark(`${name}Connected`);
      });
    }
    send.on('produce', ({ kind, rtpParameters }, ok, fail) => {
      sig
        .request<{ id: string }>('produce', {
          transportId: send.id,
          kind,
          rtpParameters: rtpParameters as unknown as Json,
        })
        .then(ok, fail);
    });
    // Sending: the microphone's track, once granted.
    const sending = micReady.then(async (m) => {
      const track = m.getAudioTracks()[0];
      if (!track) throw new Error('no microphone');
      const producer = await send.produce({
        track,
        codecOptions: { opusStereo: false, opusDtx: false, opusFec: true },
      });
      mark('produced');
      return { m, producer };
    });
    // Receiving: the SFU answers consume at once and resumeConsumer once the call is open on
    // every service, so the receiving transport connects while the services open the call.
    const receiving = (async () => {
      const info = await sig.request<Json>('consume', {
        rtpCapabilities: device.rtpCapabilities as unknown as Json,
      });
      mark('consumeAnswered');
      const consumer = await recv.consume({
        id: info.id as string,
        producerId: info.producerId as string,
        kind: 'audio',
        rtpParameters: info.rtpParameters as types.RtpParameters,
      });
      mark('consumed');
      // A remote track starts muted and unmutes on its first RTP packet.
      if (consumer.track.muted)
        consumer.track.addEventListener('unmute', () => mark('firstPacket'), { once: true });
      else mark('firstPacket');
      const agentStream = new MediaStream([consumer.track]);
      // Chrome feeds WebAudio from a remote track only while a media element plays it.
      ui.audio.srcObject = agentStream;
      void ui.audio.play().catch(() => undefined);
      await sig.request('resumeConsumer', { consumerId: consumer.id });
      mark('resumed');
      return { consumer, agentStream };
    })();
    const [{ m: micStream, producer }, { consumer, agentStream }] = await Promise.all([sending, receiving]);
    const l: Live = {
      signalling: sig,
      mic: micStream,
      send,
      recv,
      producer,
      consumer,
      timers: [],
      startedAt: Date.now(),
      pipelineDelayMs: Number(joined.pipelineDelayMs ?? 0),
    };
    live = l;
    await waitConnected(recv);
    if (live !== l) return; // ended while connecting
    duet.connectMs = performance.now() - t0;
    mark('live');
    $('connect').textContent = fmtMs(duet.connectMs);
    setStatus('live', 'Live');
    // For the level meters only (the agent plays through the audio element): made once the call
    // is live, as its constructor blocks the page (~0.4 s when it is the first audio the
    // browser opens, ~10-40 ms once the microphone is open). The user's click allows it to play.
    const ctx = new AudioContext({ latencyHint: 'interactive' });
    l.audioCtx = ctx;
    mark('audioContext');
    const micLevel = analyser(ctx, micStream);
    const agentLevel = analyser(ctx, agentStream);
    void ctx.resume();
    l.timers.push(
      window.setInterval(() => {
        duet.micLevelDb = l.producer.paused ? -Infinity : micLevel();
        duet.agentLevelDb = agentLevel();
        if (duet.agentLevelDb > duet.agentPeakDb) duet.agentPeakDb = duet.agentLevelDb;
        if (duet.firstAudioMs === undefined && duet.agentLevelDb > -70) {
          duet.firstAudioMs = performance.now() - t0;
          mark('firstAudio');
        }
        drawLevel('you', duet.micLevelDb);
        drawLevel('agent', duet.agentLevelDb);
      }, 50),
      window.setInterval(() => void updateStats(l), 1000),
      window.setInterval(
        () => void l.signalling.request('ping', { t: Date.now() }).catch(() => undefined),
        10_000,
      ),
      window.setInterval(() => {
        const s = Math.floor((Date.now() - l.startedAt) / 1000);
        ui.timer.textContent = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
      }, 500),
    );
    void updateStats(l);
  } catch (error) {
    failed = true;
    const code = (error as { code?: string }).code;
    for (const t of mic?.getTracks() ?? []) t.stop();
    if (!live) for (const t of transports) t.close();
    signalling?.close();
    cleanup();
    duet.error ??= { message: (error as Error).message, ...(code ? { reason: code } : {}) };
    setStatus('error', 'Call failed');
    showError((code && MESSAGES[code]) ?? (error as Error).message);
  }
}

function waitConnected(t: types.Transport): Promise<void> {
  if (t.connectionState === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    t.on('connectionstatechange', (s) => {
      if (s === 'connected') resolve();
      if (s === 'failed' || s === 'closed') reject(new Error(`media connection ${s}`));
    });
  });
}

async function updateStats(l: Live): Promise<void> {
  const [recvStats, sendStats] = await Promise.all([l.recv.getStats(), l.send.getStats()]);
  let rtt: number | undefined;
  let codec = '';
  for (const s of recvStats.values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      duet.inbound = {
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0,
        jitterMs: (s.jitter ?? 0) * 1000,
        bytesReceived: s.bytesReceived ?? 0,
      };
      const jb = s.jitterBufferEmittedCount ? (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 : 0;
      const out = ((l.audioCtx?.outputLatency || 0) + (l.audioCtx?.baseLatency || 0)) * 1000;
      (duet as { jitterBufferMs?: number }).jitterBufferMs = jb;
      if (s.codecId) {
        const c = recvStats.get(s.codecId);
        if (c) codec = `${String(c.mimeType).replace('audio/', '')} ${c.clockRate / 1000} kHz`;
      }
      duet.mouthToEarMs = jb + out + l.pipelineDelayMs + 20; // + one 20 ms capture frame
    }
    if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined)
      rtt = s.currentRoundTripTime * 1000;
  }
  for (const s of sendStats.values()) {
    if (s.type === 'outbound-rtp') duet.outbound = { packetsSent: s.packetsSent ?? 0 };
    if (s.type === 'remote-inbound-rtp' && s.roundTripTime !== undefined) rtt ??= s.roundTripTime * 1000;
  }
  if (rtt !== undefined) duet.rttMs = rtt;
  if (duet.mouthToEarMs !== undefined && duet.rttMs !== undefined) duet.mouthToEarMs += duet.rttMs;
  const inb = duet.inbound;
  $('rtt').textContent = fmtMs(duet.rttMs);
  $('jitter').textContent = inb ? `${inb.jitterMs.toFixed(1)} ms` : '—';
  $('loss').textContent = inb
    ? `${((100 * inb.packetsLost) / Math.max(1, inb.packetsLost + inb.packetsReceived)).toFixed(1)} %`
    : '—';
  $('m2e').textContent = fmtMs(duet.mouthToEarMs);
  $('codec').textContent = codec || '—';
  $('sent').textContent = duet.outbound ? `${duet.outbound.packetsSent} pkts` : '—';
  $('received').textContent = inb ? `${inb.packetsReceived} pkts` : '—';
}

function cleanup(): void {
  if (!live) return;
  for (const t of live.timers) clearInterval(t);
  for (const t of live.mic.getTracks()) t.stop();
  live.send.close();
  live.recv.close();
  void live.audioCtx?.close();
  ui.audio.srcObject = null;
  live = undefined;
  drawLevel('you', -Infinity);
  drawLevel('agent', -Infinity);
}

function endCall(reason: string, code?: number): void {
  const wasLive = live !== undefined;
  cleanup();
  if (duet.state === 'error') return;
  const known = MESSAGES[reason];
  if (code !== undefined && code !== 4000 && code !== 1000 && code !== 1005) {
    setStatus('error', 'Call ended');
    showError(known ?? `The call ended: ${reason}`);
    duet.error ??= { code, reason, message: reason };
  } else {
    setStatus('ended', wasLive ? 'Call ended' : 'Ready');
  }
}

async function hangUp(): Promise<void> {
  const l = live;
  if (!l) return;
  await l.signalling.request('hangup').catch(() => undefined);
  l.signalling.close();
  endCall('hangup', 4000);
}

ui.call.addEventListener('click', () => void startCall());
ui.hangup.addEventListener('click', () => void hangUp());
ui.mute.addEventListener('click', () => {
  if (!live) return;
  const muted = !live.producer.paused;
  if (muted) live.producer.pause();
  else live.producer.resume();
  ui.mute.setAttribute('aria-pressed', String(muted));
  ui.mute.textContent = muted ? 'Unmute' : 'Mute';
});
window.addEventListener('beforeunload', () => live?.signalling.close());
setStatus('idle', 'Ready');
