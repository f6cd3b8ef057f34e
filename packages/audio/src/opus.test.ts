import { describe, expect, it } from 'vitest';
import { CodecError, InvalidArgumentError, InvalidStateError } from './errors.js';
import { OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, OpusDecoder, OpusEncoder } from './opus.js';

function sineFrames(hz: number, frames: number, amplitude = 10000): Int16Array[] {
  return Array.from({ length: frames }, (_, f) =>
    Int16Array.from({ length: OPUS_FRAME_SAMPLES }, (_, i) =>
      Math.round(amplitude * Math.sin((2 * Math.PI * hz * (f * OPUS_FRAME_SAMPLES + i)) / OPUS_SAMPLE_RATE)),
    ),
  );
}

/** Magnitude of the DFT of `samples` at `hz`, normalised to the sine amplitude. */
function toneAmplitude(samples: Int16Array, hz: number, rate = OPUS_SAMPLE_RATE): number {
  let re = 0;
  let im = 0;
  for (let i = 0; i < samples.length; i++) {
    const phase = (2 * Math.PI * hz * i) / rate;
    re += samples[i]! * Math.cos(phase);
    im -= samples[i]! * Math.sin(phase);
  }
  return (2 * Math.hypot(re, im)) / samples.length;
}

describe('opus', () => {
  it('a 440 Hz sine survives encode and decode with its frequency and energy', () => {
    const encoder = new OpusEncoder();
    const decoder = new OpusDecoder();
    const decoded: Int16Array[] = [];
    for (const frame of sineFrames(440, 50)) {
      const packet = encoder.encode(frame);
      expect(packet.length).toBeGreaterThan(0);
      expect(packet.length).toBeLessThan(400);
      const pcm = decoder.decode(packet);
      expect(pcm.length).toBe(OPUS_FRAME_SAMPLES);
      decoded.push(pcm);
    }
    // Skip the codec's start-up (lookahead and first frames), analyse the last 500 ms.
    const tail = new Int16Array(25 * OPUS_FRAME_SAMPLES);
    for (const [k, pcm] of decoded.slice(25).entries()) tail.set(pcm, k * OPUS_FRAME_SAMPLES);
    expect(toneAmplitude(tail, 440)).toBeGreaterThan(10000 * 0.8);
    expect(toneAmplitude(tail, 440)).toBeLessThan(10000 * 1.2);
    // The energy sits at 440 Hz, not elsewhere.
    expect(toneAmplitude(tail, 1000)).toBeLessThan(10000 * 0.05);
    let energy = 0;
    for (const s of tail) energy += s * s;
    const rms = Math.sqrt(energy / tail.length);
    expect(rms).toBeGreaterThan((10000 / Math.SQRT2) * 0.8);
    expect(rms).toBeLessThan((10000 / Math.SQRT2) * 1.2);
  });

  it('decodes straight to 16 kHz (the units model rate): 320 samples per frame, same tone', () => {
    const encoder = new OpusEncoder();
    const decoder = new OpusDecoder({ sampleRate: 16000 });
    expect(decoder.sampleRate).toBe(16000);
    const decoded: Int16Array[] = [];
    for (const frame of sineFrames(440, 50)) {
      const pcm = decoder.decode(encoder.encode(frame));
      expect(pcm.length).toBe(320);
      decoded.push(pcm);
    }
    const tail = new Int16Array(25 * 320);
    for (const [k, pcm] of decoded.slice(25).entries()) tail.set(pcm, k * 320);
    expect(toneAmplitude(tail, 440, 16000)).toBeGreaterThan(10000 * 0.8);
    expect(toneAmplitude(tail, 440, 16000)).toBeLessThan(10000 * 1.2);
    expect(toneAmplitude(tail, 1000, 16000)).toBeLessThan(10000 * 0.05);
    expect(() => new OpusDecoder({ sampleRate: 44100 as 48000 })).toThrow(InvalidArgumentError);
  });

  it('a malformed packet throws CodecError and leaves the decoder usable', () => {
    const decoder = new OpusDecoder();
    expect(() => decoder.decode(new Uint8Array(0))).toThrow(CodecError);
    expect(() => decoder.decode(Uint8Array.of(0xff, 0xff, 0xff))).toThrow(CodecError);
    expect(() => decoder.decode(new Uint8Array(5000))).toThrow(CodecError);
    let thrown: unknown;
    try {
      decoder.decode(Uint8Array.of(0xff, 0xff, 0xff));
    } catch (error) {
      thrown = error;
    }
    expect((thrown as CodecError).cause).toBeInstanceOf(Error);
    expect((thrown as Error).message).toMatch(/Opus decode failed/);
    const encoder = new OpusEncoder();
    expect(decoder.decode(encoder.encode(sineFrames(440, 1)[0]!)).length).toBe(OPUS_FRAME_SAMPLES);
  });

  it('random bytes never crash the decoder, only CodecError', () => {
    const decoder = new OpusDecoder();
    let state = 12345;
    const next = () => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state >> 16;
    };
    for (let k = 0; k < 500; k++) {
      const packet = Uint8Array.from({ length: 1 + (next() % 300) }, () => next() & 0xff);
      try {
        const pcm = decoder.decode(packet);
        expect(pcm.length % 120).toBe(0); // whole 2.5 ms units
      } catch (error) {
        expect(error).toBeInstanceOf(CodecError);
      }
    }
  });

  it('rejects a frame of the wrong size, a bad bitrate and use after close()', () => {
    expect(() => new OpusEncoder({ bitrate: 10 })).toThrow(InvalidArgumentError);
    const encoder = new OpusEncoder({ bitrate: 64000, application: 'audio' });
    expect(() => encoder.encode(new Int16Array(480))).toThrow(InvalidArgumentError);
    encoder.close();
    encoder.close();
    expect(() => encoder.encode(new Int16Array(OPUS_FRAME_SAMPLES))).toThrow(InvalidStateError);
    const decoder = new OpusDecoder();
    decoder.close();
    expect(() => decoder.decode(Uint8Array.of(1))).toThrow(InvalidStateError);
  });
});
