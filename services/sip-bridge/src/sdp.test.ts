import { Codec } from '@duet/protocol';
import { parse } from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import { buildAnswer, negotiate, SdpError } from './sdp.js';

const offer = (media: string, c = '10.0.0.5') =>
  `${['v=0', 'o=- 1 1 IN IP4 10.0.0.5', 's=-', `c=IN IP4 ${c}`, 't=0 0', media].join('\r\n')}\r\n`;
const ALL = ['OPUS', 'PCMU', 'PCMA'] as const;

describe('negotiate', () => {
  it('takes the first preferred codec the caller offers, keeping its payload type, and telephone-event at its rate', () => {
    const sdp = offer(
      [
        'm=audio 4000 RTP/AVP 8 0 96 101 102',
        'a=rtpmap:96 opus/48000/2',
        'a=rtpmap:101 telephone-event/8000',
        'a=rtpmap:102 telephone-event/48000',
      ].join('\r\n'),
    );
    const n = negotiate(sdp, ALL);
    expect([n.name, n.codec.payloadType, n.codec.codec, n.telephoneEvent]).toEqual([
      'OPUS',
      96,
      Codec.CODEC_OPUS,
      102,
    ]);
    const g = negotiate(sdp, ['PCMU', 'PCMA']);
    expect([g.name, g.codec.payloadType, g.telephoneEvent, g.remote]).toEqual([
      'PCMU',
      0,
      101,
      { ip: '10.0.0.5', port: 4000 },
    ]);
  });

  it('knows the static payload types without rtpmap', () => {
    expect(negotiate(offer('m=audio 4000 RTP/AVP 8'), ALL).name).toBe('PCMA');
  });

  it('reads hold: a=sendonly, a=inactive, or the old c=0.0.0.0', () => {
    expect(negotiate(offer('m=audio 4000 RTP/AVP 0\r\na=sendonly'), ALL).direction).toBe('sendonly');
    expect(negotiate(offer('m=audio 4000 RTP/AVP 0\r\na=inactive'), ALL).direction).toBe('inactive');
    expect(negotiate(offer('m=audio 4000 RTP/AVP 0', '0.0.0.0'), ALL).direction).toBe('sendonly');
  });

  it('refuses offers it cannot serve', () => {
    for (const sdp of [
      offer('m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000'),
      offer('m=audio 4000 RTP/SAVP 0'),
      offer('m=video 4000 RTP/AVP 96'),
      offer('m=audio 0 RTP/AVP 0'),
      'garbage',
      '',
    ]) {
      expect(() => negotiate(sdp, ALL), sdp).toThrow(SdpError);
    }
  });
});

describe('buildAnswer', () => {
  it('answers the chosen m-line, refuses the others with port 0, mirrors the direction', () => {
    const sdp = offer(
      [
        'm=video 5000 RTP/AVP 96',
        'm=audio 4000 RTP/AVP 0 101',
        'a=rtpmap:101 telephone-event/8000',
        'a=sendonly',
      ].join('\r\n'),
    );
    const n = negotiate(sdp, ALL);
    const answer = parse(
      buildAnswer(sdp, n, { ip: '192.0.2.1', port: 46000, sessionId: '7', sessionVersion: 2 }),
    );
    expect(answer.media).toHaveLength(2);
    expect(answer.media[0]!.port).toBe(0);
    const audio = answer.media[1]!;
    expect([audio.port, audio.payloads, audio.direction]).toEqual([46000, '0 101', 'recvonly']);
    expect(audio.rtp.map((r) => r.codec)).toEqual(['PCMU', 'telephone-event']);
    expect(answer.connection?.ip).toBe('192.0.2.1');
    expect(answer.origin?.sessionVersion).toBe(2);
  });
});
