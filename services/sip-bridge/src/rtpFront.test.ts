import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { RtpFront, type RtpFrontOptions } from './rtpFront.js';

const sockets: Socket[] = [];
const fronts: RtpFront[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
  for (const f of fronts.splice(0)) f.close();
});

async function socket(): Promise<{ s: Socket; port: number; got: Buffer[] }> {
  const s = createSocket('udp4');
  sockets.push(s);
  const got: Buffer[] = [];
  s.on('message', (m) => got.push(m));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return { s, port: s.address().port, got };
}

function rtp(pt: number, seq: number, ts: number, ssrc: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(12);
  h[0] = 0x80;
  h[1] = pt;
  h.writeUInt16BE(seq, 2);
  h.writeUInt32BE(ts, 4);
  h.writeUInt32BE(ssrc, 8);
  return Buffer.concat([h, payload]);
}

const settle = () => new Promise((r) => setTimeout(r, 50));

async function setup(extra: Partial<RtpFrontOptions> = {}) {
  const caller = await socket();
  const mediasoup = await socket();
  const digits: string[] = [];
  const front = await RtpFront.create({
    bindIp: '127.0.0.1',
    portMin: 41_000,
    portMax: 41_999,
    audioPt: 0,
    telephoneEventPt: 101,
    producerSsrc: 0x1234,
    remote: { ip: '127.0.0.1', port: caller.port },
    comedia: false,
    onDtmf: (d) => digits.push(d),
    ...extra,
  });
  fronts.push(front);
  front.setMediasoup({ ip: '127.0.0.1', port: mediasoup.port });
  return { caller, mediasoup, front, digits };
}

describe('RtpFront', () => {
  it('relays the caller audio with the producer SSRC, takes out DTMF once per event, drops strangers and RTCP', async () => {
    const { caller, mediasoup, front, digits } = await setup();
    expect(front.port % 2).toBe(0);
    const audio = Buffer.alloc(160, 0x7f);
    caller.s.send(rtp(0, 1, 160, 0xabcdef, audio), front.port, '127.0.0.1');
    // One RFC 4733 event: three packets, one timestamp.
    for (let i = 0; i < 3; i++)
      caller.s.send(
        rtp(101, 2 + i, 320, 0xabcdef, Buffer.from([5, i === 2 ? 0x8a : 0x0a, 0, 160])),
        front.port,
        '127.0.0.1',
      );
    caller.s.send(rtp(8, 5, 480, 0xabcdef, audio), front.port, '127.0.0.1'); // a payload type not negotiated
    caller.s.send(Buffer.from([0x80, 200, 0, 3, ...Array(12).fill(0)]), front.port, '127.0.0.1'); // RTCP (SR)
    const stranger = await socket();
    stranger.s.send(rtp(0, 9, 999, 1, audio), front.port, '127.0.0.1');
    await settle();
    expect(mediasoup.got).toHaveLength(1);
    expect(mediasoup.got[0]!.readUInt32BE(8)).toBe(0x1234);
    expect(mediasoup.got[0]!.subarray(12)).toEqual(audio);
    expect(digits).toEqual(['5']);
    expect(front.counts.in).toBe(4);
    expect(front.counts.dropped).toBe(2);
  });

  it("sends the agent's RTP to the caller from its own port, except while on hold", async () => {
    const { caller, mediasoup, front } = await setup();
    const agent = rtp(0, 1, 160, 0x99, Buffer.alloc(160, 1));
    mediasoup.s.send(agent, front.port, '127.0.0.1');
    await settle();
    expect(caller.got).toHaveLength(1);
    front.setHeld(true);
    mediasoup.s.send(agent, front.port, '127.0.0.1');
    await settle();
    expect(caller.got).toHaveLength(1);
    front.setHeld(false);
    mediasoup.s.send(agent, front.port, '127.0.0.1');
    await settle();
    expect(caller.got).toHaveLength(2);
    expect(front.counts.out).toBe(2);
  });

  it('with comedia, latches the first source and answers there', async () => {
    const { mediasoup, front } = await setup({ comedia: true, remote: { ip: '127.0.0.1', port: 9 } });
    const natted = await socket();
    natted.s.send(rtp(0, 1, 160, 7, Buffer.alloc(160)), front.port, '127.0.0.1');
    await settle();
    mediasoup.s.send(rtp(0, 1, 160, 0x99, Buffer.alloc(160)), front.port, '127.0.0.1');
    await settle();
    expect(natted.got).toHaveLength(1);
    expect(mediasoup.got).toHaveLength(1);
  });
});
