// One call's caller audio, from RTP datagrams to the 16 kHz FIFO the chunk cutter reads. No
// sockets and no clock of its own: the service passes each datagram with its arrival time and
// drains on each tick, so the whole path runs the same in tests.
//
// Stream identity: the call locks onto the first SSRC it hears. Packets of another SSRC are
// dropped (unknown_ssrc) unless the locked one has been quiet for SSRC_TAKEOVER_MS: then the
// sender has restarted its stream (an SFU producer change, a SIP re-INVITE), so the new SSRC
// takes over with a fresh jitter buffer and decoder (counted as an SSRC change).

import {
  createResampler,
  JitterBuffer,
  mulawEncode,
  OPUS_FRAME_SAMPLES,
  OpusEncoder,
  parseRtpPacket,
  type Resampler,
  serializeRtpPacket,
} from '@duet/audio';
import { Codec } from '@duet/protocol';
import { createFrameDecoder, type FrameDecoder } from './frameDecoder.js';
import { InterarrivalJitter } from './jitterStats.js';
import { type ChunkCut, ChunkCutter } from './pcmFifo.js';

export const MODEL_SAMPLE_RATE = 16_000;
/** A new SSRC replaces the locked one only after the locked one was quiet this long. */
export const SSRC_TAKEOVER_MS = 1_000;
/** Most frames concealed for one gap (longer gaps are silence the cutter fills anyway). */
export const MAX_CONCEALED_FRAMES_PER_GAP = 50;

export type PacketResult =
  | 'ok'
  | 'malformed'
  | 'wrong_payload_type'
  | 'unknown_ssrc'
  | 'duplicate'
  | 'late'
  | 'rtcp';

export interface ReceiveOutcome {
  readonly result: PacketResult;
  /** The packet started a new stream (a new SSRC took over). */
  readonly ssrcChanged: boolean;
}

export interface DrainOutcome {
  readonly frames: number;
  /** Packets the jitter buffer gave up as lost during this drain. */
  readonly lostPackets: number;
  readonly concealedFrames: number;
  /** Payloads the codec rejected (each concealed as one frame). */
  readonly decodeErrors: number;
}

export interface CallMediaOptions {
  readonly codec: Codec;
  readonly payloadType: number;
  readonly jitterMs: number;
  /** Samples per chunk at 16 kHz. */
  readonly chunkSamples: number;
  /** Samples the cutter keeps back once audio flows (see pcmFifo.ts). */
  readonly cushionSamples: number;
}

interface Stream {
  readonly ssrc: number;
  readonly jitterBuffer: JitterBuffer<Uint8Array>;
  readonly decoder: FrameDecoder;
  readonly jitter: InterarrivalJitter;
}

export class CallMedia {
  readonly cutter: ChunkCutter;
  readonly #options: CallMediaOptions;
  readonly #resampler: Resampler;
  readonly #clockRate: 8000 | 48000;
  #stream: Stream | undefined;
  #lastPacketAtMs: number | undefined;
  #closed = false;
  readonly counters = { packetsOk: 0, packetsLost: 0, concealedFrames: 0, ssrcChanges: 0 };

  static async create(options: CallMediaOptions): Promise<CallMedia> {
    const probe = createFrameDecoder(options.codec);
    const { sampleRate, clockRate } = probe;
    probe.close();
    const resampler = await createResampler({ inputRate: sampleRate, outputRate: MODEL_SAMPLE_RATE });
    return new CallMedia(options, resampler, clockRate);
  }

  private constructor(options: CallMediaOptions, resampler: Resampler, clockRate: 8000 | 48000) {
    this.#options = options;
    this.#resampler = resampler;
    this.#clockRate = clockRate;
    this.cutter = new ChunkCutter({
      chunkSamples: options.chunkSamples,
      cushionSamples: options.cushionSamples,
    });
  }

  /** Arrival time (caller's clock) of the last accepted packet; undefined before the first. */
  get lastPacketAtMs(): number | undefined {
    return this.#lastPacketAtMs;
  }

  /** RFC 3550 interarrival jitter of the current stream, in ms. */
  get jitterMs(): number {
    return this.#stream?.jitter.ms ?? 0;
  }

  get ssrc(): number | undefined {
    return this.#stream?.ssrc;
  }

  receive(bytes: Uint8Array, nowMs: number): ReceiveOutcome {
    if (this.#closed) return { result: 'late', ssrcChanged: false };
    // RTCP multiplexed on the RTP port (RFC 5761): not ours to read, not malformed either.
    if (bytes.length >= 2 && bytes[0]! >> 6 === 2 && bytes[1]! >= 192 && bytes[1]! <= 223)
      return { result: 'rtcp', ssrcChanged: false };
    let packet: ReturnType<typeof parseRtpPacket>;
    try {
      packet = parseRtpPacket(bytes);
    } catch {
      return { result: 'malformed', ssrcChanged: false };
    }
    if (packet.payloadType !== this.#options.payloadType)
      return { result: 'wrong_payload_type', ssrcChanged: false };
    if (packet.payload.length === 0) return { result: 'malformed', ssrcChanged: false };
    let ssrcChanged = false;
    let stream = this.#stream;
    if (stream === undefined || stream.ssrc !== packet.ssrc) {
      if (stream !== undefined) {
        const quietMs = nowMs - (this.#lastPacketAtMs ?? Number.NEGATIVE_INFINITY);
        if (quietMs < SSRC_TAKEOVER_MS) return { result: 'unknown_ssrc', ssrcChanged: false };
        stream.decoder.close();
        this.counters.ssrcChanges++;
        ssrcChanged = true;
      }
      stream = this.#newStream(packet.ssrc);
    }
    // The payload is a view into the datagram buffer, which node reuses: keep a copy.
    const outcome = stream.jitterBuffer.push(
      { sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, payload: packet.payload.slice() },
      nowMs,
    );
    if (outcome !== 'buffered') return { result: outcome, ssrcChanged };
    stream.jitter.update(nowMs, packet.timestamp);
    this.#lastPacketAtMs = nowMs;
    this.counters.packetsOk++;
    return { result: 'ok', ssrcChanged };
  }

  /** Decodes every frame due by nowMs (concealing gaps) into the 16 kHz FIFO. */
  drain(nowMs: number): DrainOutcome {
    const stream = this.#stream;
    if (stream === undefined || this.#closed)
      return { frames: 0, lostPackets: 0, concealedFrames: 0, decodeErrors: 0 };
    const pieces: Int16Array[] = [];
    let frames = 0;
    let lostPackets = 0;
    let concealedFrames = 0;
    let decodeErrors = 0;
    for (const event of stream.jitterBuffer.pop(nowMs)) {
      if (event.type === 'gap') {
        lostPackets += event.count;
        concealedFrames += event.count;
        pieces.push(stream.decoder.conceal(Math.min(event.count, MAX_CONCEALED_FRAMES_PER_GAP)));
        continue;
      }
      frames++;
      try {
        pieces.push(stream.decoder.decode(event.payload));
      } catch {
        decodeErrors++;
        concealedFrames++;
        pieces.push(stream.decoder.conceal(1));
      }
    }
    this.counters.packetsLost += lostPackets;
    this.counters.concealedFrames += concealedFrames;
    let total = 0;
    for (const p of pieces) total += p.length;
    if (total > 0) {
      const input = new Float32Array(total);
      let pos = 0;
      for (const p of pieces) {
        for (let i = 0; i < p.length; i++) input[pos + i] = p[i]! / 32768;
        pos += p.length;
      }
      this.cutter.push(this.#resampler.process(input));
    }
    return { frames, lostPackets, concealedFrames, decodeErrors };
  }

  cut(): ChunkCut {
    return this.cutter.cut();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream?.decoder.close();
    this.#resampler.close();
  }

  #newStream(ssrc: number): Stream {
    const stream: Stream = {
      ssrc,
      jitterBuffer: new JitterBuffer<Uint8Array>({
        clockRate: this.#clockRate,
        targetDelayMs: this.#options.jitterMs,
      }),
      decoder: createFrameDecoder(this.#options.codec),
      jitter: new InterarrivalJitter(this.#clockRate),
    };
    this.#stream = stream;
    return stream;
  }
}

/**
 * Runs both codec paths once on a few frames of silence, so the JIT and WebAssembly warm-up
 * (tens of ms) happens at start and not on the first packets of the first calls.
 */
export async function warmUpMedia(): Promise<void> {
  const opus = new OpusEncoder();
  for (const [codec, payloadType, rate] of [
    [Codec.CODEC_PCMU, 0, 8000],
    [Codec.CODEC_OPUS, 111, 48000],
  ] as const) {
    const media = await CallMedia.create({
      codec,
      payloadType,
      jitterMs: 0,
      chunkSamples: 2560,
      cushionSamples: 320,
    });
    const frame = rate / 50;
    for (let seq = 0; seq < 16; seq++) {
      const pcm = new Int16Array(codec === Codec.CODEC_OPUS ? OPUS_FRAME_SAMPLES : frame);
      const payload = codec === Codec.CODEC_OPUS ? opus.encode(pcm) : mulawEncode(pcm);
      media.receive(
        serializeRtpPacket({
          payloadType,
          sequenceNumber: seq,
          timestamp: seq * frame,
          ssrc: 1,
          marker: false,
          payload,
        }),
        seq * 20,
      );
      media.drain(seq * 20);
    }
    media.cut();
    media.close();
  }
  opus.close();
}
