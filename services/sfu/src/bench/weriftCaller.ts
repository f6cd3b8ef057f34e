// A non-browser WebRTC caller for the benchmark: werift (pure TypeScript WebRTC) speaking the
// SFU's signalling protocol. mediasoup-client needs a browser, so the SDP for each mediasoup
// transport is written here from the transport's ICE/DTLS parameters (mediasoup is ICE-lite).

import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RtpPacket } from 'werift';
import WebSocket from 'ws';

// biome-ignore lint/suspicious/noExplicitAny: mediasoup's JSON objects, read field by field
type Json = Record<string, any>;

class Signalling {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  closeCode: number | undefined;

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as Json;
      if (m.notification) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.data);
      else p.reject(new Error(`${m.error.code}: ${m.error.message}`));
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      for (const p of this.pending.values()) p.reject(new Error(`socket closed ${code}`));
      this.pending.clear();
    });
  }

  static open(url: string): Promise<Signalling> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('open', () => resolve(new Signalling(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  request(method: string, data: Json = {}): Promise<Json> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, data }));
    });
  }

  close(): void {
    this.ws.close(1000);
  }
}

function fingerprintOf(sdp: string): { algorithm: string; value: string } {
  const m = /a=fingerprint:(\S+) (\S+)/.exec(sdp);
  if (!m) throw new Error('no DTLS fingerprint in the local SDP');
  return { algorithm: m[1]!.toLowerCase(), value: m[2]! };
}

/** The SDP of a mediasoup WebRTC transport carrying one Opus m-line. */
function transportSdp(
  t: Json,
  o: { type: 'offer' | 'answer'; direction: 'recvonly' | 'sendonly'; pt: number; mid: string; ssrc?: number },
): string {
  const fp = (t.dtlsParameters.fingerprints as Json[]).find((f) => f.algorithm === 'sha-256')!;
  const cands = (t.iceCandidates as Json[]).map(
    (c) =>
      `a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.ip ?? c.address} ${c.port} typ host`,
  );
  const lines = [
    'v=0',
    `o=mediasoup 1 1 IN IP4 0.0.0.0`,
    's=-',
    't=0 0',
    'a=ice-lite',
    `a=group:BUNDLE ${o.mid}`,
    'a=msid-semantic: WMS *',
    `a=fingerprint:sha-256 ${fp.value}`,
    `m=audio ${t.iceCandidates[0].port} UDP/TLS/RTP/SAVPF ${o.pt}`,
    `c=IN IP4 ${t.iceCandidates[0].ip ?? t.iceCandidates[0].address}`,
    `a=mid:${o.mid}`,
    `a=${o.direction}`,
    `a=ice-ufrag:${t.iceParameters.usernameFragment}`,
    `a=ice-pwd:${t.iceParameters.password}`,
    ...cands,
    'a=end-of-candidates',
    `a=setup:${o.type === 'answer' ? 'passive' : 'actpass'}`,
    'a=rtcp-mux',
    `a=rtpmap:${o.pt} opus/48000/2`,
    ...(o.ssrc !== undefined ? [`a=ssrc:${o.ssrc} cname:duet-sfu`, `a=msid:agent agent-audio`] : []),
  ];
  return `${lines.join('\r\n')}\r\n`;
}

const peerConfig = () => ({
  codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2 })] },
  headerExtensions: { audio: [] },
  iceServers: [],
  iceUseIpv6: false,
  iceAdditionalHostAddresses: ['127.0.0.1'],
});

export interface WeriftCallerHooks {
  /** Each RTP packet of the agent's audio as the caller receives it (decrypted). */
  onAgentRtp(rtp: RtpPacket): void;
}

/** One WebRTC call: sends RTP through the SFU (write) and receives the agent's RTP. */
export class WeriftCaller {
  private constructor(
    private readonly signalling: Signalling,
    private readonly sendPc: RTCPeerConnection,
    private readonly recvPc: RTCPeerConnection,
    private readonly track: MediaStreamTrack,
    readonly callId: string,
    readonly connectMs: number,
    /** The SFU's ports of this call's WebRTC transports (its ICE candidates). */
    readonly sfuPorts: number[],
  ) {}

  static async connect(url: string, token: string, hooks: WeriftCallerHooks): Promise<WeriftCaller> {
    const t0 = performance.now();
    const sig = await Signalling.open(url);
    const joined = await sig.request('join', { token });
    const pt: number = (joined.routerRtpCapabilities.codecs as Json[]).find(
      (c) => c.mimeType === 'audio/opus',
    )!.preferredPayloadType;

    // Both directions at once: werift spends most of a connect gathering candidates.
    const setUpSend = async () => {
      // Send: we offer, the SFU answers (ICE-lite, DTLS passive).
      const sendPc = new RTCPeerConnection(peerConfig());
      const track = new MediaStreamTrack({ kind: 'audio' });
      sendPc.addTransceiver(track, { direction: 'sendonly' });
      const offer = await sendPc.createOffer();
      await sendPc.setLocalDescription(offer);
      const local = sendPc.localDescription!.sdp;
      const ssrc = Number(/a=ssrc:(\d+)/.exec(local)?.[1]);
      const offeredPt = Number(/a=rtpmap:(\d+) opus\/48000/i.exec(local)?.[1]);
      const mid = /a=mid:(\S+)/.exec(local)?.[1] ?? '0';
      await sig.request('connectTransport', {
        transportId: joined.sendTransport.id,
        dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(local)] },
      });
      await sig.request('produce', {
        transportId: joined.sendTransport.id,
        kind: 'audio',
        rtpParameters: {
          mid,
          codecs: [
            {
              mimeType: 'audio/opus',
              payloadType: offeredPt,
              clockRate: 48_000,
              channels: 2,
              parameters: {},
              rtcpFeedback: [],
            },
          ],
          headerExtensions: [],
          encodings: [{ ssrc }],
          rtcp: { cname: `bench-${ssrc}`, reducedSize: true },
        },
      });
      await sendPc.setRemoteDescription({
        type: 'answer',
        sdp: transportSdp(joined.sendTransport, {
          type: 'answer',
          direction: 'recvonly',
          pt: offeredPt,
          mid,
        }),
      });
      return { sendPc, track };
    };
    const setUpRecv = async () => {
      // Receive: the SFU offers the agent's stream, we answer (DTLS active).
      const consumer = await sig.request('consume', {
        rtpCapabilities: {
          codecs: [
            {
              kind: 'audio',
              mimeType: 'audio/opus',
              clockRate: 48_000,
              channels: 2,
              preferredPayloadType: pt,
              parameters: {},
              rtcpFeedback: [],
            },
          ],
          headerExtensions: [],
        },
      });
      const recvPc = new RTCPeerConnection(peerConfig());
      recvPc.onTrack.subscribe((t) => t.onReceiveRtp.subscribe((rtp) => hooks.onAgentRtp(rtp)));
      const cPt = consumer.rtpParameters.codecs[0].payloadType as number;
      await recvPc.setRemoteDescription({
        type: 'offer',
        sdp: transportSdp(joined.recvTransport, {
          type: 'offer',
          direction: 'sendonly',
          pt: cPt,
          mid: String(consumer.rtpParameters.mid ?? '0'),
          ssrc: consumer.rtpParameters.encodings[0].ssrc,
        }),
      });
      const answer = await recvPc.createAnswer();
      await recvPc.setLocalDescription(answer);
      await sig.request('connectTransport', {
        transportId: joined.recvTransport.id,
        dtlsParameters: { role: 'client', fingerprints: [fingerprintOf(recvPc.localDescription!.sdp)] },
      });
      await sig.request('resumeConsumer', { consumerId: consumer.id });
      return recvPc;
    };
    const [{ sendPc, track }, recvPc] = await Promise.all([setUpSend(), setUpRecv()]);
    await Promise.all([connected(sendPc), connected(recvPc)]);
    const sfuPorts = [joined.sendTransport, joined.recvTransport].flatMap((t: Json) =>
      (t.iceCandidates as Json[]).map((c) => Number(c.port)),
    );
    return new WeriftCaller(sig, sendPc, recvPc, track, joined.callId, performance.now() - t0, sfuPorts);
  }

  /**
   * Sends one RTP packet (werift sets SSRC, payload type and sequence, on the packet's header, as
   * it sends it) and returns `ssrc:seq` as on the wire (the SRTP header is in the clear).
   */
  send(rtp: RtpPacket): string {
    this.track.writeRtp(rtp);
    return `${rtp.header.ssrc}:${rtp.header.sequenceNumber}`;
  }

  /** The SFU's stats of this call (its getStats request). */
  stats(): Promise<Json> {
    return this.signalling.request('getStats');
  }

  async hangup(): Promise<void> {
    await this.signalling.request('hangup').catch(() => undefined);
    this.signalling.close();
    this.track.stop();
    await Promise.all([this.sendPc.close(), this.recvPc.close()]);
  }
}

function connected(pc: RTCPeerConnection, timeoutMs = 20_000): Promise<void> {
  if (pc.connectionState === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`peer connection still ${pc.connectionState}`)),
      timeoutMs,
    );
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        clearTimeout(timer);
        resolve();
      }
      if (s === 'failed' || s === 'closed') {
        clearTimeout(timer);
        reject(new Error(`peer connection ${s}`));
      }
    });
  });
}
