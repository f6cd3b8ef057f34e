// The per-call 16 kHz FIFO between the decoder and the chunk cutter, and the cutting rule.
// Pure: no clock, no I/O.
//
// Decoded audio arrives in 20 ms frames whose count per tick wobbles (the tick phase against the
// frames' due times, timer jitter, the resampler's filter delay), so the cutter keeps a small
// cushion: when audio (re)starts it lines the FIFO up to one chunk plus the cushion (silence in
// front), then takes exactly one chunk per tick. Too little audio at a tick is an underrun (the
// chunk is padded with silence at its end, and the next audio lines up again); more than two
// chunks waiting is an overrun (the caller's clock runs fast, or a burst arrived): the oldest
// samples are dropped back to one chunk plus the cushion, so latency never builds up.

/** A growable ring of float samples. */
export class SampleFifo {
  #buf: Float32Array;
  #start = 0;
  #length = 0;

  constructor(initialCapacity = 8192) {
    this.#buf = new Float32Array(Math.max(16, initialCapacity));
  }

  get length(): number {
    return this.#length;
  }

  push(samples: ArrayLike<number>): void {
    const n = samples.length;
    if (n === 0) return;
    this.#reserve(this.#length + n);
    const cap = this.#buf.length;
    let pos = (this.#start + this.#length) % cap;
    for (let i = 0; i < n; i++) {
      this.#buf[pos] = samples[i]!;
      pos = pos + 1 === cap ? 0 : pos + 1;
    }
    this.#length += n;
  }

  /** Appends n zeros. */
  pushSilence(n: number): void {
    if (n <= 0) return;
    this.#reserve(this.#length + n);
    const cap = this.#buf.length;
    let pos = (this.#start + this.#length) % cap;
    for (let i = 0; i < n; i++) {
      this.#buf[pos] = 0;
      pos = pos + 1 === cap ? 0 : pos + 1;
    }
    this.#length += n;
  }

  /** Puts n zeros in front of what is held (it becomes the oldest audio). */
  prependSilence(n: number): void {
    if (n <= 0) return;
    this.#reserve(this.#length + n);
    const cap = this.#buf.length;
    this.#start = (this.#start - n + cap * 2) % cap;
    let pos = this.#start;
    for (let i = 0; i < n; i++) {
      this.#buf[pos] = 0;
      pos = pos + 1 === cap ? 0 : pos + 1;
    }
    this.#length += n;
  }

  /** Drops the n oldest samples (all of them if n exceeds the length). */
  drop(n: number): void {
    const k = Math.min(Math.max(0, n), this.#length);
    this.#start = (this.#start + k) % this.#buf.length;
    this.#length -= k;
  }

  /** Moves the n oldest samples into out[offset..]; n must not exceed the length. */
  shiftInto(out: Float32Array, n: number, offset = 0): void {
    const k = Math.min(n, this.#length);
    const cap = this.#buf.length;
    let pos = this.#start;
    for (let i = 0; i < k; i++) {
      out[offset + i] = this.#buf[pos]!;
      pos = pos + 1 === cap ? 0 : pos + 1;
    }
    this.#start = pos;
    this.#length -= k;
  }

  clear(): void {
    this.#start = 0;
    this.#length = 0;
  }

  #reserve(needed: number): void {
    if (needed <= this.#buf.length) return;
    let cap = this.#buf.length;
    while (cap < needed) cap *= 2;
    const next = new Float32Array(cap);
    const old = this.#buf;
    for (let i = 0; i < this.#length; i++) next[i] = old[(this.#start + i) % old.length]!;
    this.#buf = next;
    this.#start = 0;
  }
}

export interface ChunkCut {
  /** Exactly chunkSamples samples. */
  readonly pcm: Float32Array;
  /** Samples of silence padded at the end because the FIFO ran short (0 when none). */
  readonly underrunSamples: number;
  /** Samples dropped from the front because the FIFO held more than two chunks (0 when none). */
  readonly overrunSamples: number;
  /** True when the chunk carries none of the caller's audio (nothing received yet, or a pause). */
  readonly silent: boolean;
}

export interface ChunkCutterOptions {
  /** Samples per chunk (chunk ms x 16 at 16 kHz). */
  readonly chunkSamples: number;
  /** Samples kept back after each cut once audio flows (absorbs +-1 frame per tick). */
  readonly cushionSamples: number;
}

/** Cuts one chunk per tick from a SampleFifo (see the file header for the rule). */
export class ChunkCutter {
  readonly fifo = new SampleFifo();
  readonly chunkSamples: number;
  readonly cushionSamples: number;
  // Whether audio is flowing (the FIFO has been lined up and has not run dry since).
  #primed = false;

  constructor(options: ChunkCutterOptions) {
    const { chunkSamples, cushionSamples } = options;
    if (!Number.isInteger(chunkSamples) || chunkSamples < 1)
      throw new RangeError(`chunkSamples must be a positive integer, got ${chunkSamples}`);
    if (!Number.isInteger(cushionSamples) || cushionSamples < 0 || cushionSamples > chunkSamples)
      throw new RangeError(`cushionSamples must be an integer in 0..chunkSamples, got ${cushionSamples}`);
    this.chunkSamples = chunkSamples;
    this.cushionSamples = cushionSamples;
  }

  get primed(): boolean {
    return this.#primed;
  }

  /**
   * Most samples held between cuts (four chunks): audio keeps arriving when ticks do not (the
   * clock is down, or the call's first tick is still ahead), and only the newest can matter.
   */
  get maxSamples(): number {
    return 4 * this.chunkSamples;
  }

  push(samples: ArrayLike<number>): void {
    this.fifo.push(samples);
    this.#bound();
  }

  pushSilence(n: number): void {
    this.fifo.pushSilence(n);
    this.#bound();
  }

  #bound(): void {
    const excess = this.fifo.length - this.maxSamples;
    if (excess > 0) this.fifo.drop(excess);
  }

  /** Forgets the buffered audio (a new stream starts). */
  reset(): void {
    this.fifo.clear();
    this.#primed = false;
  }

  /** Takes exactly one chunk. */
  cut(): ChunkCut {
    const chunk = this.chunkSamples;
    const target = chunk + this.cushionSamples;
    const fifo = this.fifo;
    const pcm = new Float32Array(chunk);
    if (!this.#primed) {
      if (fifo.length === 0) return { pcm, underrunSamples: 0, overrunSamples: 0, silent: true };
      // Audio (re)starts: line it up so this and the following ticks find a full chunk.
      if (fifo.length < target) fifo.prependSilence(target - fifo.length);
      else fifo.drop(fifo.length - target);
      this.#primed = true;
    }
    let overrunSamples = 0;
    if (fifo.length > 2 * chunk) {
      overrunSamples = fifo.length - target;
      fifo.drop(overrunSamples);
    }
    let underrunSamples = 0;
    if (fifo.length < chunk) {
      underrunSamples = chunk - fifo.length;
      this.#primed = false;
    }
    fifo.shiftInto(pcm, chunk - underrunSamples);
    return { pcm, underrunSamples, overrunSamples, silent: false };
  }
}
