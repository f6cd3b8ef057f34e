import { describe, expect, it } from 'vitest';
import { melCepstralDistortion } from './melCepstrum.js';

const tone = (hz: number, n = 8000) =>
  Float32Array.from({ length: n }, (_, i) => 0.3 * Math.sin((2 * Math.PI * hz * i) / 16000));

describe('melCepstralDistortion', () => {
  it('is 0 for identical signals, grows with spectral difference, ignores overall level', () => {
    expect(melCepstralDistortion(tone(300), tone(300))).toBeCloseTo(0, 6);
    const near = melCepstralDistortion(tone(300), tone(320));
    const far = melCepstralDistortion(tone(300), tone(2000));
    expect(near).toBeGreaterThan(0);
    expect(far).toBeGreaterThan(near);
    // A broadband signal (every band has energy): a level change moves only c0, which is left out.
    const noise = Float32Array.from(
      { length: 8000 },
      (_, i) => 0.2 * (((Math.sin(i * 12.9898) * 43758.5453) % 1) - 0.5),
    );
    expect(
      melCepstralDistortion(
        noise,
        noise.map((x) => x * 2),
      ),
    ).toBeLessThan(0.01);
  });
});
