import { describe, expect, it } from 'vitest';
import {
  frameStream,
  header,
  headerList,
  MAX_HEADERS,
  parseMessage,
  parseNameAddr,
  parseSipUri,
  parseVia,
  SipParseError,
  splitList,
} from './sipMessage.js';

const crlf = (lines: string[], body = '') => Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
const base = [
  'INVITE sip:duet@127.0.0.1:5060 SIP/2.0',
  'Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK776asdhds;rport',
  'From: "Alice" <sip:alice@10.0.0.1>;tag=1928301774',
  'To: <sip:duet@127.0.0.1>',
  'Call-ID: a84b4c76e66710',
  'CSeq: 314159 INVITE',
  'Max-Forwards: 70',
];
const MAX = 8_192;

describe('parseMessage', () => {
  it('reads a request with compact headers, folded lines, several Vias and a body cut to Content-Length', () => {
    const m = parseMessage(
      crlf(
        [
          ...base.slice(0, 1),
          'v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK776asdhds, SIP/2.0/TCP proxy.example:5060;branch=z9hG4bKx',
          ...base.slice(2),
          'Subject: a long',
          '  folded subject',
          'c: application/sdp',
          'l: 4',
        ],
        'v=0\r\nrest of datagram',
      ),
      MAX,
    );
    expect(m.kind).toBe('request');
    if (m.kind !== 'request') return;
    expect(m.method).toBe('INVITE');
    expect(headerList(m, 'via')).toHaveLength(2);
    expect(header(m, 'subject')).toBe('a long folded subject');
    expect(header(m, 'content-type')).toBe('application/sdp');
    expect(m.body.toString()).toBe('v=0\r');
  });

  it('reads a response', () => {
    const m = parseMessage(
      crlf(['SIP/2.0 200 OK', ...base.slice(1, 5), 'CSeq: 1 BYE', 'Content-Length: 0']),
      MAX,
    );
    expect(m.kind === 'response' && m.status).toBe(200);
  });

  const bad: [string, Buffer][] = [
    ['no blank line', Buffer.from(base.join('\r\n'))],
    ['a missing Call-ID', crlf(base.filter((l) => !l.startsWith('Call-ID')))],
    ['a missing Via', crlf(base.filter((l) => !l.startsWith('Via')))],
    ['a non-numeric CSeq', crlf([...base.filter((l) => !l.startsWith('CSeq')), 'CSeq: x INVITE'])],
    ['a CSeq method that differs', crlf([...base.filter((l) => !l.startsWith('CSeq')), 'CSeq: 1 BYE'])],
    ['a CSeq beyond 2^31', crlf([...base.filter((l) => !l.startsWith('CSeq')), 'CSeq: 3000000000 INVITE'])],
    ['Content-Length beyond the body', crlf([...base, 'Content-Length: 10'], 'abc')],
    ['two Content-Lengths', crlf([...base, 'Content-Length: 0', 'l: 0'])],
    ['two Max-Forwards', crlf([...base, 'Max-Forwards: 1'])],
    ['a header without a colon', crlf([...base, 'NoColonHere'])],
    ['a bad header name', crlf([...base, 'Bad Name: x'])],
    ['a NUL in the headers', crlf([...base, 'X-A: a\u0000b'])],
    [
      'a foreign URI scheme',
      crlf([base[0]!.replace('sip:duet@127.0.0.1:5060', 'http://x'), ...base.slice(1)]),
    ],
    ['a bad start line', crlf(['HELLO WORLD', ...base.slice(1)])],
    ['a bad Via', crlf([base[0]!, 'Via: nonsense', ...base.slice(2)])],
    ['a From without a URI', crlf([...base.filter((l) => !l.startsWith('From')), 'From: nobody'])],
    ['too many headers', crlf([...base, ...Array.from({ length: MAX_HEADERS }, (_, i) => `X-H${i}: v`)])],
    ['a message over the size limit', crlf([...base, `X-Big: ${'a'.repeat(MAX)}`])],
  ];
  for (const [name, data] of bad) {
    it(`refuses ${name}`, () => {
      expect(() => parseMessage(data, MAX)).toThrow(SipParseError);
    });
  }
});

describe('header values', () => {
  it('splits lists outside quotes and angle brackets', () => {
    expect(splitList('"a, b" <sip:x@y;p=1,2>, <sip:z@w>')).toEqual(['"a, b" <sip:x@y;p=1,2>', '<sip:z@w>']);
  });
  it('parses name-addr, Via and SIP URIs', () => {
    const a = parseNameAddr('"Bob" <sip:bob@example.com:5070;transport=tcp>;tag=abc');
    expect([a.display, a.uri, a.tag]).toEqual(['Bob', 'sip:bob@example.com:5070;transport=tcp', 'abc']);
    const u = parseSipUri(a.uri);
    expect([u.user, u.host, u.port, u.transport]).toEqual(['bob', 'example.com', 5070, 'tcp']);
    const v = parseVia('SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKa;received=1.2.3.4');
    expect([v.transport, v.host, v.port, v.branch]).toEqual(['TCP', '[2001:db8::1]', 5061, 'z9hG4bKa']);
  });
});

describe('frameStream', () => {
  it('cuts a TCP stream into messages by Content-Length and keeps the partial rest', () => {
    const one = crlf([...base, 'Content-Length: 3'], 'abc');
    const two = crlf([...base, 'Content-Length: 0']);
    const stream = Buffer.concat([Buffer.from('\r\n\r\n'), one, two, two.subarray(0, 20)]);
    const { messages, rest } = frameStream(stream, MAX);
    expect(messages.map((m) => m.length)).toEqual([one.length, two.length]);
    expect(rest.length).toBe(20);
  });
  it('refuses a stream message without Content-Length, or one too large', () => {
    expect(() => frameStream(crlf(base), MAX)).toThrow(SipParseError);
    expect(() => frameStream(crlf([...base, 'Content-Length: 99999']), MAX)).toThrow(/too large/);
    expect(() => frameStream(Buffer.alloc(MAX + 1, 0x41), MAX)).toThrow(/too large/);
  });
});
