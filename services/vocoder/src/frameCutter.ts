// Cuts a call's resampled audio into 20 ms frames numbered on the call's frame grid. Audio of
// agent chunk j starts at frame j x framesPerChunk; consecutive chunks flow through as one
// signal (the streaming resampler's few samples of delay carry over), and after a gap (a chunk
// missing or dropped) the cutter restarts at the new chunk's first frame.

export interface CutFrame {
  readonly frameIndex: number;
  readonly samples: Float32Array;
}

export class FrameCutter {
  #pending: Float32Array;
  #pendingLength = 0;
  /** Frame index the pending samples belong to; undefined before the first chunk. */
  #nextFrame: number | undefined;

  constructor(readonly samplesPerFrame: number) {
    this.#pending = new Float32Array(samplesPerFrame);
  }

  get nextFrame(): number | undefined {
    return this.#nextFrame;
  }

  /**
   * Adds the audio of the chunk that starts at `startFrame`, `expectedSamples` long at this
   * rate. Returns the whole frames now complete.
   */
  push(startFrame: number, audio: Float32Array, expectedSamples: number): CutFrame[] {
    let input = audio;
    // Continuous when the cutter stands at the chunk's first frame, or one before it with that
    // frame partly filled (the resampler's delay carried over).
    const next = this.#nextFrame;
    const continuous =
      next !== undefined && (next === startFrame || (next === startFrame - 1 && this.#pendingLength > 0));
    if (!continuous) {
      // A new run: drop what was left of the old one and align the chunk on its first frame; a
      // resampler that has not filled its delay yet gives a few samples less, padded in front.
      this.#pendingLength = 0;
      this.#nextFrame = startFrame;
      if (audio.length < expectedSamples) {
        input = new Float32Array(expectedSamples);
        input.set(audio, expectedSamples - audio.length);
      }
    }
    const frames: CutFrame[] = [];
    let pos = 0;
    const n = this.samplesPerFrame;
    while (pos < input.length) {
      const take = Math.min(n - this.#pendingLength, input.length - pos);
      this.#pending.set(input.subarray(pos, pos + take), this.#pendingLength);
      this.#pendingLength += take;
      pos += take;
      if (this.#pendingLength === n) {
        frames.push({ frameIndex: this.#nextFrame!, samples: this.#pending.slice() });
        this.#nextFrame! += 1;
        this.#pendingLength = 0;
      }
    }
    return frames;
  }
}
