import { describe, expect, it } from 'vitest';
import { canonicalJson, sameCapabilities } from './rtpCapabilities.js';

const opus = {
  kind: 'audio',
  mimeType: 'audio/opus',
  clockRate: 48_000,
  channels: 2,
  preferredPayloadType: 111,
  parameters: { useinbandfec: 1, minptime: 10 },
  rtcpFeedback: [{ type: 'nack', parameter: '' }, { type: 'transport-cc' }],
};
const caps = {
  codecs: [opus],
  headerExtensions: [{ kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 }],
};

describe('RTP capabilities comparison', () => {
  it('ignores key order at every depth but not array order', () => {
    const reordered = {
      headerExtensions: [{ preferredId: 1, uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', kind: 'audio' }],
      codecs: [{ ...opus, parameters: { minptime: 10, useinbandfec: 1 } }],
    };
    expect(canonicalJson(reordered)).toBe(canonicalJson(caps));
    expect(sameCapabilities(reordered, caps)).toBe(true);
    const swapped = { ...caps, codecs: [{ ...opus, rtcpFeedback: [...opus.rtcpFeedback].reverse() }] };
    expect(sameCapabilities(swapped, caps)).toBe(false);
  });

  it('tells a different router apart', () => {
    expect(sameCapabilities({ ...caps, codecs: [{ ...opus, preferredPayloadType: 100 }] }, caps)).toBe(false);
    expect(sameCapabilities({ codecs: [opus] }, caps)).toBe(false);
    expect(sameCapabilities(undefined, caps)).toBe(false);
    expect(sameCapabilities(undefined, undefined)).toBe(false);
  });
});
