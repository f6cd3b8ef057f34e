import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, WavFormatError } from './errors.js';
import { decodeWav, encodeWav, floatToPcm16 } from './wav.js';

const ramp = (n: number, scale = 1) => Float32Array.from({ length: n }, (_, i) => (scale * (i - n / 2)) / n);

describe('wav', () => {
  it('encodeWav() then decodeWav() keeps float32 mono samples exactly', () => {
    const samples = ramp(100);
    const decoded = decodeWav(encodeWav({ sampleRate: 16000, channels: [samples] }, 'float32'));
    expect(decoded.sampleRate).toBe(16000);
    expect(decoded.encoding).toBe('float32');
    expect(decoded.channels).toHaveLength(1);
    expect(decoded.channels[0]).toEqual(samples);
  });

  it('encodeWav() then decodeWav() keeps PCM16 stereo within one quantisation step (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.float({ min: -1, max: 1, noNaN: true }), fc.float({ min: -1, max: 1, noNaN: true })),
          {
            maxLength: 200,
          },
        ),
        fc.constantFrom(8000, 16000, 24000, 48000),
        (frames, sampleRate) => {
          const left = Float32Array.from(frames, (f) => f[0]);
          const right = Float32Array.from(frames, (f) => f[1]);
          const decoded = decodeWav(encodeWav({ sampleRate, channels: [left, right] }));
          expect(decoded.encoding).toBe('pcm16');
          expect(decoded.sampleRate).toBe(sampleRate);
          for (const [c, original] of [left, right].entries()) {
            const back = decoded.channels[c]!;
            expect(back.length).toBe(original.length);
            for (let i = 0; i < original.length; i++) {
              expect(Math.abs(back[i]! - original[i]!)).toBeLessThanOrEqual(1 / 32768 + 1e-7);
            }
          }
        },
      ),
    );
  });

  it('writes the canonical 44-byte header', () => {
    const bytes = encodeWav({ sampleRate: 8000, channels: [new Float32Array(10)] });
    expect(bytes.length).toBe(44 + 20);
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('RIFF');
    expect(new TextDecoder().decode(bytes.subarray(36, 40))).toBe('data');
  });

  it('floatToPcm16() rounds and clips', () => {
    expect(floatToPcm16(1)).toBe(32767);
    expect(floatToPcm16(2)).toBe(32767);
    expect(floatToPcm16(-1)).toBe(-32768);
    expect(floatToPcm16(-3)).toBe(-32768);
    expect(floatToPcm16(0.5)).toBe(16384);
  });

  it('decodeWav() skips unknown chunks (LIST) and reads WAVE_FORMAT_EXTENSIBLE float', () => {
    const base = encodeWav({ sampleRate: 24000, channels: [ramp(8)] }, 'float32');
    const list = new Uint8Array([...new TextEncoder().encode('LIST'), 3, 0, 0, 0, 1, 2, 3, 0]); // odd size, padded
    const fmt = new Uint8Array(8 + 40);
    fmt.set(base.subarray(12, 36));
    const view = new DataView(fmt.buffer);
    view.setUint32(4, 40, true);
    view.setUint16(8, 0xfffe, true);
    view.setUint16(24, 22, true); // cbSize
    view.setUint16(26, 32, true); // valid bits
    view.setUint16(32, 3, true); // sub-format GUID starts with IEEE float
    const data = base.subarray(36);
    const body = new Uint8Array(4 + list.length + fmt.length + data.length);
    body.set(new TextEncoder().encode('WAVE'));
    body.set(list, 4);
    body.set(fmt, 4 + list.length);
    body.set(data, 4 + list.length + fmt.length);
    const file = new Uint8Array(8 + body.length);
    file.set(new TextEncoder().encode('RIFF'));
    new DataView(file.buffer).setUint32(4, body.length, true);
    file.set(body, 8);
    const decoded = decodeWav(file);
    expect(decoded.sampleRate).toBe(24000);
    expect(decoded.channels[0]).toEqual(ramp(8));
  });

  it('decodeWav() rejects a truncated file, naming the truncation', () => {
    const bytes = encodeWav({ sampleRate: 16000, channels: [ramp(100)] });
    for (const cut of [0, 5, 11, 30, 43, 44, 100, bytes.length - 1]) {
      expect(() => decodeWav(bytes.subarray(0, cut))).toThrow(WavFormatError);
    }
    expect(() => decodeWav(bytes.subarray(0, 100))).toThrow(/truncated/);
  });

  it('decodeWav() rejects a file that is not RIFF/WAVE', () => {
    const bytes = encodeWav({ sampleRate: 16000, channels: [ramp(10)] });
    const notRiff = bytes.slice();
    notRiff.set(new TextEncoder().encode('RIFX'));
    expect(() => decodeWav(notRiff)).toThrow(/not a WAV file/);
    const notWave = bytes.slice();
    notWave.set(new TextEncoder().encode('AVI '), 8);
    expect(() => decodeWav(notWave)).toThrow(WavFormatError);
  });

  it('decodeWav() rejects unsupported encodings and channel counts', () => {
    const withFmt = (tag: number, bits: number, channels = 1) => {
      const bytes = encodeWav({ sampleRate: 8000, channels: [ramp(4)] }).slice();
      const view = new DataView(bytes.buffer);
      view.setUint16(20, tag, true);
      view.setUint16(22, channels, true);
      view.setUint16(34, bits, true);
      view.setUint16(32, (channels * bits) / 8, true);
      view.setUint32(28, (8000 * channels * bits) / 8, true);
      return bytes;
    };
    expect(() => decodeWav(withFmt(1, 8))).toThrow(/unsupported WAV encoding/);
    expect(() => decodeWav(withFmt(1, 24))).toThrow(WavFormatError);
    expect(() => decodeWav(withFmt(6, 16))).toThrow(/0x6/); // A-law in WAV
    expect(() => decodeWav(withFmt(1, 16, 3))).toThrow(/channel count 3/);
  });

  it('decodeWav() never throws anything but WavFormatError on corrupted headers (property)', () => {
    const good = encodeWav({ sampleRate: 16000, channels: [ramp(32), ramp(32)] });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length + 8), fc.nat(255)), { maxLength: 6 }),
        fc.nat(good.length),
        (edits, cut) => {
          const bytes = good.slice(0, Math.max(cut, 0));
          for (const [pos, value] of edits) if (pos < bytes.length && pos < 48) bytes[pos] = value;
          try {
            decodeWav(bytes);
          } catch (error) {
            expect(error).toBeInstanceOf(WavFormatError);
          }
        },
      ),
    );
  });

  it('encodeWav() rejects bad arguments', () => {
    expect(() => encodeWav({ sampleRate: 16000, channels: [] })).toThrow(InvalidArgumentError);
    expect(() => encodeWav({ sampleRate: 0, channels: [ramp(2)] })).toThrow(InvalidArgumentError);
    expect(() => encodeWav({ sampleRate: 16000, channels: [ramp(2), ramp(3)] })).toThrow(
      InvalidArgumentError,
    );
  });
});
