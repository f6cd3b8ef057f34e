// Opus for the media plane: 48 kHz mono, 20 ms frames (960 samples), as WebRTC and SIP peers
// send it. Bound to libopus through @evan/opus, whose npm package ships prebuilt native addons
// (linux/darwin x64+arm64, win32 x64) and falls back to its bundled wasm build elsewhere.
//
// Packet-loss concealment is not offered: @evan/opus's decode() has no "missing packet" form
// (an empty packet is rejected with OPUS_BAD_ARG, and its wasm build would conceal a fixed
// 120 ms), so the caller conceals gaps reported by the jitter buffer itself.

import { Decoder, Encoder } from '@evan/opus';
import { CodecError, InvalidArgumentError, InvalidStateError } from './errors.js';

export const OPUS_SAMPLE_RATE = 48_000;
export const OPUS_FRAME_MS = 20;
/** Samples in one 20 ms mono frame at 48 kHz. */
export const OPUS_FRAME_SAMPLES = (OPUS_SAMPLE_RATE * OPUS_FRAME_MS) / 1000;
/** RFC 6716: a packet is at most 1275 bytes per frame; 3 frames (60 ms) at most in practice here. */
const MAX_PACKET_BYTES = 1275 * 3;

export interface OpusEncoderOptions {
  /** Target bitrate in bit/s (500..512000). Default 32000, WebRTC's usual mono speech rate. */
  readonly bitrate?: number;
  /** 'voip' (default) favours speech; 'audio' favours fidelity. */
  readonly application?: 'voip' | 'audio';
}

function codecError(what: string, error: unknown): CodecError {
  const detail = error instanceof Error && error.message !== '' ? error.message : 'unknown libopus error';
  return new CodecError(`${what}: ${detail}`, { cause: error });
}

/** Encodes 20 ms mono PCM16 frames at 48 kHz into Opus packets. */
export class OpusEncoder {
  #encoder: Encoder | undefined;

  constructor(options: OpusEncoderOptions = {}) {
    const { bitrate = 32_000, application = 'voip' } = options;
    if (!Number.isInteger(bitrate) || bitrate < 500 || bitrate > 512_000) {
      throw new InvalidArgumentError(`Opus bitrate must be an integer in 500..512000, got ${bitrate}`);
    }
    const encoder = new Encoder({ channels: 1, sample_rate: OPUS_SAMPLE_RATE, application });
    encoder.bitrate = bitrate;
    this.#encoder = encoder;
  }

  /** Encodes exactly one frame of OPUS_FRAME_SAMPLES samples; returns a new packet. */
  encode(frame: Int16Array): Uint8Array {
    const encoder = this.#encoder;
    if (encoder === undefined) throw new InvalidStateError('OpusEncoder is closed');
    if (frame.length !== OPUS_FRAME_SAMPLES) {
      throw new InvalidArgumentError(`Opus frame must be ${OPUS_FRAME_SAMPLES} samples, got ${frame.length}`);
    }
    try {
      return encoder.encode(frame).slice();
    } catch (error) {
      throw codecError('Opus encode failed', error);
    }
  }

  /** Idempotent. The native state is freed by the garbage collector. */
  close(): void {
    this.#encoder = undefined;
  }
}

/** Output rates libopus decodes to natively (no resampler needed). */
export type OpusDecodeRate = 8000 | 12000 | 16000 | 24000 | 48000;

/**
 * Decodes Opus packets (any frame size the packet announces) to mono PCM16, at 48 kHz or at a
 * lower rate libopus renders directly (16 kHz for the speech-units model saves a resampler).
 */
export class OpusDecoder {
  readonly sampleRate: OpusDecodeRate;
  #decoder: Decoder | undefined;

  constructor(options: { sampleRate?: OpusDecodeRate } = {}) {
    const rate = options.sampleRate ?? OPUS_SAMPLE_RATE;
    if (![8000, 12000, 16000, 24000, 48000].includes(rate)) {
      throw new InvalidArgumentError(`Opus decodes to 8, 12, 16, 24 or 48 kHz, not ${rate}`);
    }
    this.sampleRate = rate;
    this.#decoder = new Decoder({ channels: 1, sample_rate: rate });
  }

  /**
   * Decodes one packet. A malformed packet throws CodecError (and leaves the decoder usable);
   * it never crashes the process.
   */
  decode(packet: Uint8Array): Int16Array {
    const decoder = this.#decoder;
    if (decoder === undefined) throw new InvalidStateError('OpusDecoder is closed');
    if (packet.length === 0 || packet.length > MAX_PACKET_BYTES) {
      throw new CodecError(`Opus packet of ${packet.length} bytes is outside 1..${MAX_PACKET_BYTES}`);
    }
    let bytes: Uint8Array;
    try {
      bytes = decoder.decode(packet);
    } catch (error) {
      throw codecError('Opus decode failed', error);
    }
    // The binding returns a fresh copy of its output buffer; view it as samples (little endian host).
    return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  }

  /** Idempotent. The native state is freed by the garbage collector. */
  close(): void {
    this.#decoder = undefined;
  }
}
