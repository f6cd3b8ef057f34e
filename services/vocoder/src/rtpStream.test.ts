import { Codec } from '@duet/protocol';
import { describe, expect, it } from 'vitest';
import { codecParams, rtpBase, rtpNumbering } from './rtpStream.js';

describe('RTP numbering', () => {
  it('is deterministic per call id and SSRC, and differs between them', () => {
    expect(rtpBase('call-1', 42)).toEqual(rtpBase('call-1', 42));
    expect(rtpBase('call-1', 42)).not.toEqual(rtpBase('call-2', 42));
    expect(rtpBase('call-1', 42)).not.toEqual(rtpBase('call-1', 43));
    const b = rtpBase('x', 0xffffffff);
    expect(b.seq0).toBeGreaterThanOrEqual(0);
    expect(b.seq0).toBeLessThan(65536);
    expect(b.ts0).toBeGreaterThanOrEqual(0);
    expect(b.ts0).toBeLessThan(2 ** 32);
  });

  it('advances seq by 1 and ts by one frame per frame, wrapping at 2^16 and 2^32', () => {
    const base = { seq0: 65534, ts0: 2 ** 32 - 160 };
    expect(rtpNumbering(base, 160, 0)).toEqual({ sequenceNumber: 65534, timestamp: 2 ** 32 - 160 });
    expect(rtpNumbering(base, 160, 1)).toEqual({ sequenceNumber: 65535, timestamp: 0 });
    expect(rtpNumbering(base, 160, 2)).toEqual({ sequenceNumber: 0, timestamp: 160 });
    // A day of 20 ms frames later, still consistent.
    const n = 24 * 3600 * 50;
    const r = rtpNumbering(base, 960, n);
    expect(r.sequenceNumber).toBe((65534 + n) % 65536);
    expect(r.timestamp).toBe((2 ** 32 - 160 + n * 960) % 2 ** 32);
  });

  it('knows each codec clock', () => {
    expect(codecParams(Codec.CODEC_PCMU)).toEqual({ clockRate: 8000, samplesPerFrame: 160 });
    expect(codecParams(Codec.CODEC_PCMA)).toEqual({ clockRate: 8000, samplesPerFrame: 160 });
    expect(codecParams(Codec.CODEC_OPUS)).toEqual({ clockRate: 48000, samplesPerFrame: 960 });
    expect(codecParams(Codec.CODEC_UNSPECIFIED)).toBeUndefined();
  });
});
