import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alawDecode, alawEncode, mulawDecode, mulawEncode } from './g711.js';

// sha256 of CPython 3.11 audioop (the Sun g711.c reference) over every input:
//   lin2ulaw/lin2alaw of the int16 ramp -32768..32767 (little endian), ulaw2lin/alaw2lin of bytes 0..255.
const AUDIOOP = {
  ulawEncode: '81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a',
  alawEncode: '38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b',
  ulawDecode: '3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827',
  alawDecode: 'e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174',
};
const sha256 = (view: ArrayBufferView) =>
  createHash('sha256')
    .update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength))
    .digest('hex');
const everyPcm = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);

// Half the quantisation step of the segment a sample falls in, plus the truncation of the low
// bits the encoder drops first (3 for A-law, 2 for mu-law), plus the clipping at full scale.
function quantisationBound(law: 'mulaw' | 'alaw', pcm: number): number {
  const magnitude = Math.abs(pcm);
  if (law === 'alaw') {
    const value = pcm >= 0 ? pcm >> 3 : -(pcm >> 3) - 1; // as the encoder folds the sign
    const segment = value < 32 ? 0 : Math.floor(Math.log2(value)) - 4;
    const step = segment < 2 ? 16 : 2 ** (segment + 3);
    return step / 2 + 8 + Math.max(0, magnitude - 32256 - step / 2);
  }
  const value = pcm >= 0 ? pcm >> 2 : -(pcm >> 2);
  const segment = Math.max(0, Math.floor(Math.log2(value + 33)) - 5);
  const step = 2 ** (segment + 3);
  return step / 2 + 4 + Math.max(0, magnitude - 32124 - step / 2);
}

describe('g711', () => {
  it('matches the reference implementation on every input', () => {
    expect(sha256(mulawEncode(everyPcm))).toBe(AUDIOOP.ulawEncode);
    expect(sha256(alawEncode(everyPcm))).toBe(AUDIOOP.alawEncode);
    expect(sha256(mulawDecode(everyByte))).toBe(AUDIOOP.ulawDecode);
    expect(sha256(alawDecode(everyByte))).toBe(AUDIOOP.alawDecode);
  });

  it('knows the textbook code points (silence, full scale)', () => {
    expect(mulawEncode(Int16Array.of(0))[0]).toBe(0xff);
    expect(alawEncode(Int16Array.of(0))[0]).toBe(0xd5);
    expect(mulawDecode(Uint8Array.of(0x80, 0x00))).toEqual(Int16Array.of(32124, -32124));
    expect(alawDecode(Uint8Array.of(0xaa, 0x2a))).toEqual(Int16Array.of(32256, -32256));
  });

  it('A-law encode(decode(byte)) == byte for all 256 bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), (byte) => {
        expect(alawEncode(alawDecode(Uint8Array.of(byte)))[0]).toBe(byte);
      }),
      { numRuns: 1000 },
    );
    expect(alawEncode(alawDecode(everyByte))).toEqual(everyByte);
  });

  it('mu-law encode(decode(byte)) == byte for every byte but 0x7f, negative zero, which reads as 0xff', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), (byte) => {
        const expected = byte === 0x7f ? 0xff : byte;
        expect(mulawEncode(mulawDecode(Uint8Array.of(byte)))[0]).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it('decode(encode(pcm)) stays within half a quantisation step (property + exhaustive)', () => {
    for (const [law, encode, decode] of [
      ['mulaw', mulawEncode, mulawDecode],
      ['alaw', alawEncode, alawDecode],
    ] as const) {
      fc.assert(
        fc.property(fc.integer({ min: -32768, max: 32767 }), (pcm) => {
          const back = decode(encode(Int16Array.of(pcm)))[0]!;
          expect(Math.abs(back - pcm)).toBeLessThanOrEqual(quantisationBound(law, pcm));
        }),
      );
      const back = decode(encode(everyPcm));
      for (let i = 0; i < everyPcm.length; i++) {
        const pcm = everyPcm[i]!;
        if (Math.abs(back[i]! - pcm) > quantisationBound(law, pcm)) {
          expect.fail(`${law}: ${pcm} came back as ${back[i]}`);
        }
      }
    }
  });

  it('keeps signal-to-noise above 35 dB on a speech-level sine', () => {
    const sine = Int16Array.from({ length: 8000 }, (_, i) =>
      Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000)),
    );
    for (const back of [mulawDecode(mulawEncode(sine)), alawDecode(alawEncode(sine))]) {
      let signal = 0;
      let noise = 0;
      for (let i = 0; i < sine.length; i++) {
        signal += sine[i]! ** 2;
        noise += (back[i]! - sine[i]!) ** 2;
      }
      expect(10 * Math.log10(signal / noise)).toBeGreaterThan(35);
    }
  });
});
