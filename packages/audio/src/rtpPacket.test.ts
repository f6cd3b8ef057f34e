import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, RtpPacketError } from './errors.js';
import { parseRtpPacket, serializeRtpPacket } from './rtpPacket.js';

const header = (first: number, rest: number[] = []) =>
  Uint8Array.of(first, 111, 0x12, 0x34, 0, 0, 0x03, 0xc0, 0xde, 0xad, 0xbe, 0xef, ...rest);

describe('rtpPacket', () => {
  it('parses the fixed header and payload', () => {
    const packet = parseRtpPacket(
      Uint8Array.of(0x80, 0x80 | 111, 0xff, 0xff, 0, 0, 0x03, 0xc0, 1, 2, 3, 4, 9, 8, 7),
    );
    expect(packet).toMatchObject({ payloadType: 111, marker: true, sequenceNumber: 65535, timestamp: 960 });
    expect(packet.ssrc).toBe(0x01020304);
    expect(packet.csrcs).toEqual([]);
    expect([...packet.payload]).toEqual([9, 8, 7]);
  });

  it('serialize then parse keeps every field, with CSRCs and one- and two-byte extensions (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          payloadType: fc.integer({ min: 0, max: 127 }).filter((pt) => pt < 64 || pt > 95),
          sequenceNumber: fc.integer({ min: 0, max: 65535 }),
          timestamp: fc.integer({ min: 0, max: 0xffffffff }),
          ssrc: fc.integer({ min: 0, max: 0xffffffff }),
          marker: fc.boolean(),
          csrcs: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 15 }),
          extensions: fc.uniqueArray(
            fc.tuple(fc.integer({ min: 1, max: 20 }), fc.uint8Array({ minLength: 1, maxLength: 20 })),
            {
              maxLength: 4,
              selector: (e) => e[0],
            },
          ),
          payload: fc.uint8Array({ maxLength: 200 }),
        }),
        (fields) => {
          const extensions = new Map(fields.extensions);
          const bytes = serializeRtpPacket({ ...fields, extensions });
          const parsed = parseRtpPacket(bytes);
          expect(parsed.payloadType).toBe(fields.payloadType);
          expect(parsed.sequenceNumber).toBe(fields.sequenceNumber);
          expect(parsed.timestamp).toBe(fields.timestamp);
          expect(parsed.ssrc).toBe(fields.ssrc);
          expect(parsed.marker).toBe(fields.marker);
          expect(parsed.csrcs).toEqual(fields.csrcs);
          expect(new Map([...parsed.extensions].map(([id, v]) => [id, [...v]]))).toEqual(
            new Map([...extensions].map(([id, v]) => [id, [...v]])),
          );
          expect([...parsed.payload]).toEqual([...fields.payload]);
        },
      ),
    );
  });

  it('strips padding', () => {
    const packet = parseRtpPacket(header(0xa0, [5, 6, 0, 0, 3]));
    expect([...packet.payload]).toEqual([5, 6]);
  });

  it('rejects malformed packets with RtpPacketError', () => {
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /needs 12/],
      [header(0x80).subarray(0, 11), /needs 12/],
      [header(0x40), /version 1/],
      [header(0x82, [0, 0, 0, 1]), /2 CSRCs/],
      [header(0x90, [0xbe, 0xde]), /no room/],
      [header(0x90, [0xbe, 0xde, 0, 2, 0x10, 0]), /runs past the end/],
      [header(0xa0, [1, 2, 0]), /padding count is 0/],
      [header(0xa0, [1, 2, 30]), /overlaps/],
      [header(0x90, [0xbe, 0xde, 0, 1, 0x1f, 0, 0, 0]), /One-Byte/], // element longer than the block
      [Uint8Array.of(0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), /RTCP/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => parseRtpPacket(bytes)).toThrow(RtpPacketError);
      expect(() => parseRtpPacket(bytes)).toThrow(message);
    }
  });

  it('random bytes never throw anything but RtpPacketError (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, forceVersion2) => {
        if (forceVersion2 && bytes.length > 0) bytes[0] = (bytes[0]! & 0x3f) | 0x80;
        try {
          const packet = parseRtpPacket(bytes);
          expect(packet.payload.length).toBeLessThanOrEqual(bytes.length - 12);
        } catch (error) {
          expect(error).toBeInstanceOf(RtpPacketError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('serializeRtpPacket() rejects out-of-range fields', () => {
    const base = {
      payloadType: 0,
      sequenceNumber: 0,
      timestamp: 0,
      ssrc: 0,
      marker: false,
      payload: new Uint8Array(1),
    };
    expect(() => serializeRtpPacket({ ...base, payloadType: 128 })).toThrow(InvalidArgumentError);
    expect(() => serializeRtpPacket({ ...base, sequenceNumber: 65536 })).toThrow(InvalidArgumentError);
    expect(() => serializeRtpPacket({ ...base, timestamp: -1 })).toThrow(InvalidArgumentError);
    expect(() => serializeRtpPacket({ ...base, csrcs: new Array(16).fill(1) })).toThrow(InvalidArgumentError);
    expect(() => serializeRtpPacket({ ...base, extensions: new Map([[0, Uint8Array.of(1)]]) })).toThrow(
      InvalidArgumentError,
    );
  });
});
