import { describe, expect, it } from 'vitest';
import { rtpPacket } from './fakeCallServices.js';
import { buildPcap, LINKTYPE, matchForwarding, parsePcap, percentile, rtpKey, udp4 } from './pcap.js';

const eth = (ip: Buffer) => {
  const h = Buffer.alloc(14);
  h.writeUInt16BE(0x0800, 12);
  return Buffer.concat([h, ip]);
};
const sll = (ip: Buffer) => {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0x0800, 14);
  return Buffer.concat([h, ip]);
};
/** A plain RTP packet whose payload starts with a probe id (4 bytes). */
const probeRtp = (ssrc: number, seq: number, probe: number) => {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(0xabcd0000 + probe, 0);
  return rtpPacket(111, ssrc, seq, seq * 960, p);
};
const probeOf = (d: Buffer) =>
  d.length >= 16 && d.readUInt16BE(12) === 0xabcd ? String(d.readUInt16BE(14)) : undefined;

describe('pcap parsing', () => {
  it('reads UDP datagrams of Ethernet (lo) captures with microsecond times', () => {
    const buf = buildPcap(LINKTYPE.EN10MB, [
      { t: 1_700_000_000_123.456, frame: eth(udp4(5000, 6000, Buffer.from('hello'))) },
      { t: 1_700_000_000_125, frame: eth(udp4(6000, 5000, Buffer.from('x'))) },
    ]);
    const { linkType, packets } = parsePcap(buf);
    expect(linkType).toBe(LINKTYPE.EN10MB);
    expect(packets).toHaveLength(2);
    expect(packets[0]!.t).toBeCloseTo(1_700_000_000_123.456, 3);
    expect(packets[0]).toMatchObject({ srcPort: 5000, dstPort: 6000 });
    expect(String(packets[0]!.data)).toBe('hello');
    expect(packets[1]!.dstPort).toBe(5000);
  });

  it('reads Linux cooked (SLL) captures with nanosecond times, skipping non-UDP records', () => {
    const tcp = udp4(1, 2, Buffer.alloc(4));
    tcp[9] = 6;
    const buf = buildPcap(
      LINKTYPE.LINUX_SLL,
      [
        { t: 1_000.000_25, frame: sll(udp4(7, 8, Buffer.from('a'))) },
        { t: 1_001, frame: sll(tcp) },
      ],
      true,
    );
    const { packets } = parsePcap(buf);
    expect(packets).toHaveLength(1);
    expect(packets[0]!.t).toBeCloseTo(1_000.000_25, 6);
  });

  it('reads big-endian files and refuses pcapng and others', () => {
    const le = buildPcap(LINKTYPE.EN10MB, [{ t: 2_000.5, frame: eth(udp4(1, 2, Buffer.from('z'))) }]);
    const be = Buffer.from(le);
    for (const o of [0, 16, 20, 24, 28, 32, 36]) be.writeUInt32BE(le.readUInt32LE(o), o);
    be.writeUInt16BE(2, 4);
    be.writeUInt16BE(4, 6);
    const { packets } = parsePcap(be);
    expect(packets[0]).toMatchObject({ srcPort: 1, dstPort: 2 });
    expect(packets[0]!.t).toBeCloseTo(2_000.5, 3);
    const ng = Buffer.alloc(28);
    ng.writeUInt32LE(0x0a0d0d0a, 0);
    expect(() => parsePcap(ng)).toThrow(/pcapng/);
    expect(() => parsePcap(Buffer.alloc(24))).toThrow(/not a pcap/);
  });
});

describe('rtpKey and percentile', () => {
  it('keys RTP by ssrc:seq and skips RTCP and STUN', () => {
    expect(rtpKey(rtpPacket(111, 42, 7, 0, Buffer.alloc(4)))).toBe('42:7');
    expect(rtpKey(rtpPacket(200 & 0x7f, 42, 7, 0, Buffer.alloc(4)))).toBeUndefined();
    expect(rtpKey(Buffer.alloc(20))).toBeUndefined();
  });
  it('takes the nearest-rank percentile', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(xs, 50)).toBe(51);
    expect(percentile(xs, 99)).toBe(100);
    expect(percentile([], 99)).toBeNaN();
  });
});

describe('forwarding across the SFU', () => {
  const SFU = 46000;
  const CALLER = 50000;
  const TOK = 40001;
  const VOC = 40002;
  const SFU_PLAIN = 46100;
  const at = (t: number, src: number, dst: number, data: Buffer) => ({ t, srcPort: src, dstPort: dst, data });
  // The payload of an SRTP packet is opaque: only the header tells which probe it is.
  const srtp = (ssrc: number, seq: number) => rtpPacket(111, ssrc, seq, 0, Buffer.alloc(20, 0xee));

  it('pairs SRTP in with plain out (up) and plain in with SRTP out (down)', () => {
    const packets = [
      at(100, CALLER, SFU, srtp(1, 10)), // probe 1 in
      at(100.2, SFU_PLAIN, TOK, probeRtp(9, 500, 1)), // probe 1 out: 0.2 ms
      at(120, CALLER, SFU, srtp(1, 11)), // probe 2 in, never out
      at(101, VOC, SFU_PLAIN, probeRtp(77, 3, 5)), // down probe 5 in
      at(101.5, SFU, CALLER, srtp(555, 1000)), // down probe 5 out: 0.5 ms
      at(101.6, SFU, CALLER, srtp(555, 1000)), // a repeat: the first sighting counts
      at(102, CALLER, SFU, rtpPacket(200 & 0x7f, 1, 0, 0, Buffer.alloc(8))), // RTCP: ignored
      at(130, CALLER, SFU, srtp(1, 12)), // probe 3: outside the window
      at(130.1, SFU_PLAIN, TOK, probeRtp(9, 502, 3)),
    ];
    const r = matchForwarding({
      packets,
      sfuPorts: new Set([SFU]),
      tokenizerPorts: new Set([TOK]),
      vocoderPorts: new Set([VOC]),
      upSent: new Map([
        ['1:10', '1'],
        ['1:11', '2'],
        ['1:12', '3'],
      ]),
      downReceived: new Map([['555:1000', '5']]),
      probeOf,
      inWindow: (p) => p !== '3',
    });
    expect(r.up.total).toBe(2);
    expect(r.up.matched).toBe(1);
    expect(r.up.latencies[0]).toBeCloseTo(0.2, 6);
    expect(r.down).toMatchObject({ total: 1, matched: 1 });
    expect(r.down.latencies[0]).toBeCloseTo(0.5, 6);
  });

  it('end to end through a pcap buffer', () => {
    const buf = buildPcap(LINKTYPE.EN10MB, [
      { t: 5_000, frame: eth(udp4(CALLER, SFU, srtp(3, 1))) },
      { t: 5_001.25, frame: eth(udp4(SFU_PLAIN, TOK, probeRtp(9, 1, 8))) },
    ]);
    const r = matchForwarding({
      packets: parsePcap(buf).packets,
      sfuPorts: new Set([SFU]),
      tokenizerPorts: new Set([TOK]),
      vocoderPorts: new Set([VOC]),
      upSent: new Map([['3:1', '8']]),
      downReceived: new Map(),
      probeOf,
      inWindow: () => true,
    });
    expect(r.up).toMatchObject({ total: 1, matched: 1 });
    expect(r.up.latencies[0]).toBeCloseTo(1.25, 3);
    expect(r.down.total).toBe(0);
  });
});
