// One call's audio path after the vocoder: 16 kHz model audio -> streaming resampler -> 20 ms
// frames on the call's frame grid -> G.711 or Opus payloads.

import {
  alawEncode,
  createResampler,
  floatToPcm16,
  mulawEncode,
  OpusEncoder,
  type Resampler,
  type SampleRate,
} from '@duet/audio';
import { Codec } from '@duet/protocol';
import { FrameCutter } from './frameCutter.js';
import { codecParams } from './rtpStream.js';

export interface EncodedFrame {
  readonly frameIndex: number;
  readonly payload: Uint8Array;
}

type Encode = (pcm: Int16Array) => Uint8Array;

function toPcm16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = floatToPcm16(samples[i]!);
  return out;
}

let opusSilence: Uint8Array | undefined;

/**
 * The payload of a frame with no audio: digital silence. For Opus a steady packet from its own
 * encoder, so no call's encoder state moves (and the main thread needs no per-call encoder).
 */
export function silencePayload(codec: Codec): Uint8Array {
  if (codec !== Codec.CODEC_OPUS) {
    const encode = codec === Codec.CODEC_PCMA ? alawEncode : mulawEncode;
    return encode(new Int16Array(160));
  }
  if (opusSilence === undefined) {
    const encoder = new OpusEncoder();
    const zero = new Int16Array(960);
    for (let i = 0; i < 5; i++) opusSilence = encoder.encode(zero);
    encoder.close();
  }
  return opusSilence!;
}

export class CallAudio {
  readonly #resampler: Resampler;
  readonly #cutter: FrameCutter;
  readonly #encode: Encode;
  readonly #opus: OpusEncoder | undefined;
  readonly #ratio: number;

  static async create(codec: Codec, modelRate: SampleRate): Promise<CallAudio> {
    const params = codecParams(codec);
    if (!params) throw new RangeError(`unsupported codec ${codec}`);
    const resampler = await createResampler({ inputRate: modelRate, outputRate: params.clockRate });
    return new CallAudio(codec, resampler, params.samplesPerFrame, params.clockRate / modelRate);
  }

  private constructor(codec: Codec, resampler: Resampler, samplesPerFrame: number, ratio: number) {
    this.#resampler = resampler;
    this.#cutter = new FrameCutter(samplesPerFrame);
    this.#ratio = ratio;
    if (codec === Codec.CODEC_OPUS) {
      const opus = new OpusEncoder();
      this.#opus = opus;
      this.#encode = (pcm) => opus.encode(pcm);
    } else {
      this.#encode = codec === Codec.CODEC_PCMU ? mulawEncode : alawEncode;
    }
  }

  /** Encodes the vocoded audio of the chunk whose first frame is `startFrame`. */
  encodeChunk(startFrame: number, audio: Float32Array): EncodedFrame[] {
    const resampled = this.#resampler.process(audio);
    const expected = Math.round(audio.length * this.#ratio);
    return this.#cutter
      .push(startFrame, resampled, expected)
      .map((f) => ({ frameIndex: f.frameIndex, payload: this.#encode(toPcm16(f.samples)) }));
  }

  close(): void {
    this.#resampler.close();
    this.#opus?.close();
  }
}
