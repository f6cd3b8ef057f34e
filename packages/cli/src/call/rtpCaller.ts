import { createSocket, type Socket } from 'node:dgram';
import {
  createFrameCodec,
  FRAME_MS,
  type FrameCodec,
  type FrameCodecName,
  parseRtpPacket,
  serializeRtpPacket,
} from '@duet/audio';

/** A received RTP packet of the agent's stream. */
export interface AgentPacket {
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly payloadType: number;
  /** performance.now() at arrival. */
  readonly arrivalMs: number;
  readonly payload: Uint8Array;
}

export interface RtpCallerStats {
  readonly framesSent: number;
  /** How late frames left against their schedule (ms): p50, p99, max. */
  readonly sendLatenessMs: readonly [number, number, number];
  readonly packetsReceived: number;
  /** Sequence numbers missing between the first and last received packet. */
  readonly packetsLost: number;
  readonly malformed: number;
  /** RFC 3550 interarrival jitter of the agent stream (ms). */
  readonly jitterMs: number;
}

/**
 * The caller's end of a call over plain RTP: sends PCM as 20 ms frames paced against absolute
 * time, and records the agent's RTP. Used by `duet call`, the end-to-end tests and the
 * pipeline benchmark.
 */
export class RtpCaller {
  readonly codec: FrameCodec;
  readonly packets: AgentPacket[] = [];
  private readonly socket: Socket;
  private readonly ssrc = (Math.random() * 2 ** 32) >>> 0;
  private seq = Math.floor(Math.random() * 65536);
  private ts = (Math.random() * 2 ** 32) >>> 0;
  private framesSent = 0;
  private readonly lateness: number[] = [];
  private malformed = 0;
  private jitter = 0;
  private lastTransit: number | undefined;
  private closed = false;

  private constructor(
    codec: FrameCodecName,
    readonly payloadType: number,
    socket: Socket,
  ) {
    this.codec = createFrameCodec(codec);
    this.socket = socket;
    socket.on('message', (msg) => this.onPacket(msg));
  }

  /** Binds the caller's UDP socket (where the agent's RTP should be sent). */
  static async open(options: {
    codec: FrameCodecName;
    payloadType?: number;
    host?: string;
  }): Promise<RtpCaller> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, options.host ?? '127.0.0.1', () => resolve());
    });
    const codec = createFrameCodec(options.codec);
    codec.close();
    return new RtpCaller(options.codec, options.payloadType ?? codec.defaultPayloadType, socket);
  }

  get localEndpoint(): { host: string; port: number } {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  /**
   * Sends `pcm` (at the codec's sample rate) to `destination` as 20 ms frames, frame i at
   * startMs + 20 i (performance.now() clock); the last frame is padded with silence.
   */
  async play(
    pcm: Int16Array,
    destination: { host: string; port: number },
    options: { startMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    const n = this.codec.frameSamples;
    const frames = Math.ceil(pcm.length / n);
    const start = options.startMs ?? performance.now();
    for (let i = 0; i < frames && !this.closed && !options.signal?.aborted; i++) {
      const due = start + i * FRAME_MS;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const frame = new Int16Array(n);
      frame.set(pcm.subarray(i * n, Math.min(pcm.length, (i + 1) * n)));
      const packet = serializeRtpPacket({
        payloadType: this.payloadType,
        sequenceNumber: this.seq,
        timestamp: this.ts,
        ssrc: this.ssrc,
        marker: this.framesSent === 0,
        payload: this.codec.encode(frame),
      });
      this.seq = (this.seq + 1) & 0xffff;
      this.ts = (this.ts + n) >>> 0;
      this.framesSent++;
      this.lateness.push(performance.now() - due);
      this.socket.send(packet, destination.port, destination.host);
    }
  }

  private onPacket(msg: Buffer): void {
    let p: ReturnType<typeof parseRtpPacket>;
    try {
      p = parseRtpPacket(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
    } catch {
      this.malformed++;
      return;
    }
    const arrivalMs = performance.now();
    // RFC 3550 A.8: transit in RTP units; jitter smoothed by 1/16.
    const transit = (arrivalMs * this.codec.sampleRate) / 1000 - p.timestamp;
    if (this.lastTransit !== undefined) {
      const d = Math.abs(transit - this.lastTransit);
      this.jitter += (d - this.jitter) / 16;
    }
    this.lastTransit = transit;
    this.packets.push({
      sequenceNumber: p.sequenceNumber,
      timestamp: p.timestamp,
      ssrc: p.ssrc,
      payloadType: p.payloadType,
      arrivalMs,
      payload: p.payload.slice(),
    });
  }

  /** The agent's audio at the codec's rate, each packet placed by its RTP timestamp (gaps are silence). */
  agentAudio(): Int16Array {
    if (this.packets.length === 0) return new Int16Array(0);
    const first = this.packets[0]!.timestamp;
    const decoded: { offset: number; pcm: Int16Array }[] = [];
    let end = 0;
    const decoder = createFrameCodec(this.codec.name);
    try {
      for (const p of [...this.packets].sort(
        (a, b) => ((a.timestamp - first) >>> 0) - ((b.timestamp - first) >>> 0),
      )) {
        const offset = (p.timestamp - first) >>> 0;
        if (offset > this.codec.sampleRate * 3600) continue; // a stray packet of another stream
        try {
          const pcm = decoder.decode(p.payload);
          decoded.push({ offset, pcm });
          end = Math.max(end, offset + pcm.length);
        } catch {
          this.malformed++;
        }
      }
    } finally {
      decoder.close();
    }
    const out = new Int16Array(end);
    for (const d of decoded) out.set(d.pcm, d.offset);
    return out;
  }

  stats(): RtpCallerStats {
    let lost = 0;
    if (this.packets.length > 1) {
      const seqs = this.packets.map((p) => p.sequenceNumber);
      let ext = seqs[0]!;
      let min = ext;
      let max = ext;
      for (const s of seqs.slice(1)) {
        // unwrap against the running value
        const delta = ((s - (ext & 0xffff) + 0x8000) & 0xffff) - 0x8000;
        ext += delta;
        min = Math.min(min, ext);
        max = Math.max(max, ext);
      }
      lost = Math.max(0, max - min + 1 - new Set(seqs).size);
    }
    const sorted = [...this.lateness].sort((a, b) => a - b);
    const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? 0;
    return {
      framesSent: this.framesSent,
      sendLatenessMs: [q(0.5), q(0.99), sorted[sorted.length - 1] ?? 0],
      packetsReceived: this.packets.length,
      packetsLost: lost,
      malformed: this.malformed,
      jitterMs: (this.jitter / this.codec.sampleRate) * 1000,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.codec.close();
    this.socket.close();
  }
}
