// One RTP payload to PCM, per codec, plus the concealment of frames the jitter buffer reports
// lost. G.711 repeats the last frame while fading it out over three frames, then goes silent
// (a short repeat hides a single loss better than a hole; a long one would sound like a stuck
// note and feed the unit model a fake vowel). The Opus binding has no packet-loss concealment
// (packages/audio/src/opus.ts), so Opus gaps become silence.

import { alawDecode, mulawDecode, OPUS_FRAME_SAMPLES, OpusDecoder } from '@duet/audio';
import { Codec } from '@duet/protocol';

/** Frames repeated (fading) before concealment turns to silence. */
export const FADE_FRAMES = 3;

export interface FrameDecoder {
  /** The codec's RTP clock rate. */
  readonly clockRate: 8000 | 48000;
  /** The rate of the PCM decode() returns (Opus decodes straight to the model's 16 kHz). */
  readonly sampleRate: 8000 | 16000;
  /** Decodes one payload; throws on a payload the codec rejects. */
  decode(payload: Uint8Array): Int16Array;
  /** PCM standing in for `count` lost frames. */
  conceal(count: number): Int16Array;
  close(): void;
}

/**
 * Repeat-and-fade: `count` copies of `last`, the gain falling linearly from 1 to 0 over
 * `fadeFrames` frames, silence after. Pure (exported for tests).
 */
export function repeatAndFade(last: Int16Array, count: number, fadeFrames = FADE_FRAMES): Int16Array {
  const n = last.length;
  const out = new Int16Array(n * count);
  const fadeSamples = n * fadeFrames;
  const audible = Math.min(count, fadeFrames) * n;
  for (let i = 0; i < audible; i++) {
    const gain = 1 - (i + 1) / fadeSamples;
    out[i] = Math.round(last[i % n]! * gain);
  }
  return out;
}

class G711Decoder implements FrameDecoder {
  readonly clockRate = 8000 as const;
  readonly sampleRate = 8000 as const;
  #last: Int16Array | undefined;
  // Consecutive frames concealed so far: the fade continues across gap events, never restarts.
  #concealedRun = 0;
  constructor(private readonly law: 'mu' | 'a') {}

  decode(payload: Uint8Array): Int16Array {
    const pcm = this.law === 'mu' ? mulawDecode(payload) : alawDecode(payload);
    if (pcm.length > 0) this.#last = pcm;
    this.#concealedRun = 0;
    return pcm;
  }

  conceal(count: number): Int16Array {
    const last = this.#last ?? new Int16Array(160);
    const remainingFade = Math.max(0, FADE_FRAMES - this.#concealedRun);
    this.#concealedRun += count;
    if (remainingFade === 0) return new Int16Array(last.length * count);
    // Continue the fade where it stands: render the whole fade, keep the tail that is due.
    const done = FADE_FRAMES - remainingFade;
    const full = repeatAndFade(last, done + count);
    return full.subarray(done * last.length);
  }

  close(): void {}
}

class OpusFrameDecoder implements FrameDecoder {
  readonly clockRate = 48000 as const;
  readonly sampleRate = 16000 as const;
  readonly #decoder = new OpusDecoder({ sampleRate: 16000 });
  #lastLength = OPUS_FRAME_SAMPLES / 3;

  decode(payload: Uint8Array): Int16Array {
    const pcm = this.#decoder.decode(payload);
    if (pcm.length > 0) this.#lastLength = pcm.length;
    return pcm;
  }

  conceal(count: number): Int16Array {
    return new Int16Array(this.#lastLength * count);
  }

  close(): void {
    this.#decoder.close();
  }
}

export function createFrameDecoder(codec: Codec): FrameDecoder {
  switch (codec) {
    case Codec.CODEC_PCMU:
      return new G711Decoder('mu');
    case Codec.CODEC_PCMA:
      return new G711Decoder('a');
    case Codec.CODEC_OPUS:
      return new OpusFrameDecoder();
    default:
      throw new RangeError(`codec ${String(codec)} is not supported`);
  }
}
