// The caller-facing RTP socket of one SIP call. SIP callers announce no SSRC in their SDP, change
// SSRC on hold/resume, send RFC 4733 events in-band and often sit behind NAT, while a mediasoup
// producer needs its SSRC up front. So the bridge answers with this socket's port and relays:
//   caller -> front: validated (source, payload type), DTMF events parsed out, the audio's SSRC
//                    rewritten to the producer's fixed one, sent on to the call's edge
//                    PlainTransport (mediasoup); RTCP is dropped
//   mediasoup -> front: the agent's RTP (consumer on the edge transport) out to the caller from
//                    the same port (symmetric RTP), unless the call is on hold
// Packet counts and the last inbound time are read by the owner (metrics, inactivity).

import { createSocket, type Socket } from 'node:dgram';

export interface RtpFrontOptions {
  readonly bindIp: string;
  readonly portMin: number;
  readonly portMax: number;
  /** Audio and telephone-event payload types accepted from the caller. */
  readonly audioPt: number;
  readonly telephoneEventPt: number | undefined;
  /** SSRC the mediasoup producer was created with. */
  readonly producerSsrc: number;
  /** Where the caller said it receives (SDP). */
  readonly remote: { ip: string; port: number };
  /** Latch the caller's address on its first packet instead of trusting the SDP. */
  readonly comedia: boolean;
  readonly onDtmf: (digit: string) => void;
  /** Called once, for the first packet dropped for coming from an address other than the caller's. */
  readonly onStranger?: (address: string) => void;
}

export interface RtpCounts {
  in: number;
  out: number;
  dropped: number;
}

const DTMF_DIGITS = '0123456789*#ABCD';
let nextPort = 0;

/** Binds a UDP socket on an even port of [min, max] (tries each once, starting past the last one). */
async function bindInRange(ip: string, min: number, max: number): Promise<Socket> {
  const first = min + (min % 2);
  const slots = Math.floor((max - first) / 2) + 1;
  if (slots <= 0) throw new RangeError(`no even port in ${min}-${max}`);
  for (let i = 0; i < slots; i++) {
    const port = first + 2 * ((nextPort + i) % slots);
    const socket = createSocket({ type: ip.includes(':') ? 'udp6' : 'udp4' });
    const ok = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, ip, () => resolve(true));
    });
    if (ok) {
      nextPort = (nextPort + i + 1) % slots;
      return socket;
    }
    socket.close();
  }
  throw new Error(`no free RTP port in ${min}-${max}`);
}

export class RtpFront {
  readonly counts: RtpCounts = { in: 0, out: 0, dropped: 0 };
  /** performance.now() of the last accepted packet from the caller (or of the start). */
  lastInbound = performance.now();
  private mediasoup: { ip: string; port: number } | undefined;
  private remote: { ip: string; port: number };
  private latched = false;
  private held = false;
  private closed = false;
  private lastEventTs: number | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly options: RtpFrontOptions,
  ) {
    this.remote = { ...options.remote };
    socket.on('message', (data, rinfo) => this.onPacket(data, rinfo.address, rinfo.port));
    socket.on('error', () => undefined);
  }

  static async create(options: RtpFrontOptions): Promise<RtpFront> {
    return new RtpFront(await bindInRange(options.bindIp, options.portMin, options.portMax), options);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** The edge PlainTransport's address (packets from it are the agent's). */
  setMediasoup(address: { ip: string; port: number }): void {
    this.mediasoup = address;
  }

  /** Hold: the agent's audio stops going out and the caller's silence is expected. */
  setHeld(held: boolean): void {
    this.held = held;
    this.lastInbound = performance.now();
  }

  get isHeld(): boolean {
    return this.held;
  }

  private onPacket(data: Buffer, ip: string, port: number): void {
    if (this.closed) return;
    const ms = this.mediasoup;
    if (ms && ip === ms.ip && port === ms.port) {
      // RTCP from mediasoup (PT 200-204 with rtcp-mux) stays here; the agent's RTP goes out.
      if (this.held || data.length < 12 || (data[1]! >= 200 && data[1]! <= 204)) return;
      this.socket.send(data, this.remote.port, this.remote.ip);
      this.counts.out++;
      return;
    }
    if (this.options.comedia && !this.latched) {
      this.remote = { ip, port };
      this.latched = true;
    } else if (ip !== this.remote.ip || port !== this.remote.port) {
      if (this.counts.dropped++ === 0) this.options.onStranger?.(`${ip}:${port}`);
      return;
    }
    if (data.length < 12 || data[0]! >> 6 !== 2) {
      this.counts.dropped++;
      return;
    }
    const pt = data[1]! & 0x7f;
    if (data[1]! >= 200 && data[1]! <= 204) return; // the caller's RTCP (rtcp-mux)
    if (pt === this.options.telephoneEventPt) {
      this.lastInbound = performance.now();
      this.counts.in++;
      this.onEvent(data);
      return;
    }
    if (pt !== this.options.audioPt || !ms) {
      this.counts.dropped++;
      return;
    }
    this.lastInbound = performance.now();
    this.counts.in++;
    data.writeUInt32BE(this.options.producerSsrc >>> 0, 8);
    this.socket.send(data, ms.port, ms.ip);
  }

  /** RFC 4733: one digit per event (timestamp); reported once, on its first packet. */
  private onEvent(data: Buffer): void {
    const cc = data[0]! & 0x0f;
    const offset = 12 + cc * 4;
    if (data.length < offset + 4) return;
    const event = data[offset]!;
    const timestamp = data.readUInt32BE(4);
    if (event >= DTMF_DIGITS.length || timestamp === this.lastEventTs) return;
    this.lastEventTs = timestamp;
    this.options.onDtmf(DTMF_DIGITS[event]!);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}
