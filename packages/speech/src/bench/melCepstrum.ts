/**
 * Mel-cepstral distortion between two 16 kHz signals of equal length, frame by frame:
 * 25 ms Hann windows every 10 ms, 40 mel bands (HTK), log amplitude, DCT-II, cepstra 1..13 (c0, the level,
 * is left out), MCD = 10 / ln 10 * sqrt(2 * sum (c - c')^2), averaged over the frames where
 * the reference `a` is not silent (within 40 dB of its loudest frame; silence has no spectrum
 * worth comparing). No time warping: the vocoded audio is aligned to the original by
 * construction (same units).
 */
const RATE = 16000;
const WIN = 400;
const HOP = 160;
const MELS = 40;
const CEPS = 13;

const hann = Float64Array.from({ length: WIN }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / WIN));
const BINS = WIN / 2 + 1;
const cosTable = Float64Array.from({ length: BINS * WIN }, (_, i) =>
  Math.cos((2 * Math.PI * Math.floor(i / WIN) * (i % WIN)) / WIN),
);
const sinTable = Float64Array.from({ length: BINS * WIN }, (_, i) =>
  Math.sin((2 * Math.PI * Math.floor(i / WIN) * (i % WIN)) / WIN),
);

const mel = (hz: number) => 2595 * Math.log10(1 + hz / 700);
const hz = (m: number) => 700 * (10 ** (m / 2595) - 1);
const melPoints = Array.from({ length: MELS + 2 }, (_, i) => hz((mel(RATE / 2) * i) / (MELS + 1)));
const filters = Array.from({ length: MELS }, (_, m) =>
  Float64Array.from({ length: BINS }, (_, k) => {
    const f = (k * RATE) / WIN;
    const [a, b, c] = [melPoints[m]!, melPoints[m + 1]!, melPoints[m + 2]!];
    return f <= a || f >= c ? 0 : f <= b ? (f - a) / (b - a) : (c - f) / (c - b);
  }),
);

function frameEnergy(signal: Float32Array, start: number): number {
  let e = 0;
  for (let n = 0; n < WIN; n++) e += ((signal[start + n] ?? 0) * hann[n]!) ** 2;
  return e;
}

function cepstra(signal: Float32Array, start: number): Float64Array {
  const power = new Float64Array(BINS);
  for (let k = 0; k < BINS; k++) {
    let re = 0;
    let im = 0;
    for (let n = 0; n < WIN; n++) {
      const x = (signal[start + n] ?? 0) * hann[n]!;
      re += x * cosTable[k * WIN + n]!;
      im -= x * sinTable[k * WIN + n]!;
    }
    power[k] = re * re + im * im;
  }
  const logMel = filters.map((f) => {
    let e = 0;
    for (let k = 0; k < BINS; k++) e += f[k]! * power[k]!;
    return Math.log(Math.sqrt(e) + 1e-5); // log mel amplitude, as mel-cepstra are defined
  });
  const c = new Float64Array(CEPS);
  for (let q = 1; q <= CEPS; q++) {
    let s = 0;
    for (let m = 0; m < MELS; m++) s += logMel[m]! * Math.cos((Math.PI * q * (m + 0.5)) / MELS);
    c[q - 1] = s * Math.sqrt(2 / MELS);
  }
  return c;
}

export function melCepstralDistortion(a: Float32Array, b: Float32Array): number {
  const n = Math.min(a.length, b.length);
  let loudest = 0;
  for (let start = 0; start + WIN <= n; start += HOP) loudest = Math.max(loudest, frameEnergy(a, start));
  let sum = 0;
  let frames = 0;
  for (let start = 0; start + WIN <= n; start += HOP) {
    if (frameEnergy(a, start) < loudest * 1e-4) continue;
    const ca = cepstra(a, start);
    const cb = cepstra(b, start);
    let d = 0;
    for (let q = 0; q < CEPS; q++) d += (ca[q]! - cb[q]!) ** 2;
    sum += (10 / Math.LN10) * Math.sqrt(2 * d);
    frames++;
  }
  return frames === 0 ? 0 : sum / frames;
}
