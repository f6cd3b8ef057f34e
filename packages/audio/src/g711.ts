// G.711 (ITU-T, 1988) companding as RTP carries it: PCMU (mu-law, payload type 0) and PCMA
// (A-law, payload type 8), one byte per sample at 8 kHz. The algorithm is the Sun reference
// implementation (g711.c) that CPython's audioop and most telephony stacks use; the tests check
// every one of the 65536 inputs against audioop's output. Encoding goes through 64 KiB lookup
// tables built once on first use.

const ALAW_SEG_END = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff] as const;
const ULAW_SEG_END = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff] as const;
const ULAW_BIAS = 0x84;
const ULAW_CLIP = 8159;

function segment(value: number, ends: readonly number[]): number {
  for (let i = 0; i < ends.length; i++) if (value <= ends[i]!) return i;
  return ends.length;
}

/** One PCM16 sample to an A-law byte. */
export function alawEncodeSample(pcm: number): number {
  let value = pcm >> 3;
  let mask: number;
  if (value >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    value = -value - 1;
  }
  const seg = segment(value, ALAW_SEG_END);
  if (seg >= 8) return 0x7f ^ mask;
  const mantissa = seg < 2 ? (value >> 1) & 0xf : (value >> seg) & 0xf;
  return ((seg << 4) | mantissa) ^ mask;
}

/** One A-law byte to a PCM16 sample. */
export function alawDecodeSample(byte: number): number {
  const a = (byte & 0xff) ^ 0x55;
  let t = (a & 0xf) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else {
    t += 0x108;
    if (seg > 1) t <<= seg - 1;
  }
  return a & 0x80 ? t : -t;
}

/** One PCM16 sample to a mu-law byte. */
export function mulawEncodeSample(pcm: number): number {
  let value = pcm >> 2;
  let mask: number;
  if (value < 0) {
    value = -value;
    mask = 0x7f;
  } else mask = 0xff;
  if (value > ULAW_CLIP) value = ULAW_CLIP;
  value += ULAW_BIAS >> 2;
  const seg = segment(value, ULAW_SEG_END);
  if (seg >= 8) return 0x7f ^ mask;
  return ((seg << 4) | ((value >> (seg + 1)) & 0xf)) ^ mask;
}

/** One mu-law byte to a PCM16 sample. */
export function mulawDecodeSample(byte: number): number {
  const u = ~byte & 0xff;
  const t = (((u & 0xf) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
  return u & 0x80 ? ULAW_BIAS - t : t - ULAW_BIAS;
}

interface Tables {
  encode: Uint8Array; // indexed by pcm + 32768
  decode: Int16Array; // indexed by byte
}

function buildTables(encodeSample: (pcm: number) => number, decodeSample: (byte: number) => number): Tables {
  const encode = new Uint8Array(65536);
  for (let i = 0; i < 65536; i++) encode[i] = encodeSample(i - 32768);
  const decode = new Int16Array(256);
  for (let b = 0; b < 256; b++) decode[b] = decodeSample(b);
  return { encode, decode };
}

let alawTables: Tables | undefined;
let mulawTables: Tables | undefined;
const alaw = (): Tables => {
  alawTables ??= buildTables(alawEncodeSample, alawDecodeSample);
  return alawTables;
};
const mulaw = (): Tables => {
  mulawTables ??= buildTables(mulawEncodeSample, mulawDecodeSample);
  return mulawTables;
};

function encodeWith(tables: Tables, pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) {
    const sample = pcm[i] ?? 0;
    out[i] = tables.encode[sample + 32768] ?? 0;
  }
  return out;
}

function decodeWith(tables: Tables, bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] ?? 0;
    out[i] = tables.decode[byte] ?? 0;
  }
  return out;
}

/** PCM16 samples to A-law bytes (PCMA). */
export const alawEncode = (pcm: Int16Array): Uint8Array => encodeWith(alaw(), pcm);
/** A-law bytes (PCMA) to PCM16 samples. */
export const alawDecode = (bytes: Uint8Array): Int16Array => decodeWith(alaw(), bytes);
/** PCM16 samples to mu-law bytes (PCMU). */
export const mulawEncode = (pcm: Int16Array): Uint8Array => encodeWith(mulaw(), pcm);
/** mu-law bytes (PCMU) to PCM16 samples. */
export const mulawDecode = (bytes: Uint8Array): Int16Array => decodeWith(mulaw(), bytes);
