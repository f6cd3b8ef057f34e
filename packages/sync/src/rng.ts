// A small seeded PRNG, so a call's sampling is reproducible and its generator can be
// persisted with the call and resumed elsewhere.
//
// Algorithm: sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG, 32-bit, from PractRand),
// whose four 32-bit words a, b, c, d are the first four outputs of splitmix32 started at the
// seed (splitmix32: s += 0x9e3779b9, output = murmur3 fmix32(s)). next() divides the 32-bit
// output by 2^32, so values are multiples of 2^-32 in [0, 1).
import { InvalidArgumentError } from './errors.js';

/** The generator's four 32-bit words (a, b, c, d), as unsigned integers; JSON-safe. */
export type RngState = readonly [number, number, number, number];

export interface Rng {
  /** Next value in [0, 1). */
  next(): number;
  /** Snapshot of the generator; restore() on any Rng continues the same sequence. */
  state(): RngState;
  restore(state: RngState): void;
}

const TWO_POW_32 = 4_294_967_296;

/** Creates a generator from a 32-bit unsigned integer seed. */
export function createRng(seed: number): Rng {
  if (!isUint32(seed)) {
    throw new InvalidArgumentError(`rng seed must be an integer in 0..${TWO_POW_32 - 1}, got ${seed}`);
  }
  let s = seed;
  const splitmix32 = (): number => {
    s = (s + 0x9e3779b9) | 0;
    let z = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix32();
  let b = splitmix32();
  let c = splitmix32();
  let d = splitmix32();

  return {
    next(): number {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + t) | 0;
      return (t >>> 0) / TWO_POW_32;
    },
    state(): RngState {
      return [a >>> 0, b >>> 0, c >>> 0, d >>> 0];
    },
    restore(state: RngState): void {
      if (!Array.isArray(state) || state.length !== 4 || !state.every(isUint32)) {
        throw new InvalidArgumentError(
          `rng state must be four 32-bit unsigned integers, got ${JSON.stringify(state)}`,
        );
      }
      [a, b, c, d] = state;
    },
  };
}

function isUint32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) < TWO_POW_32;
}
