import { describe, expect, it } from 'vitest';
import { CLOSE, parseRequest } from './signallingProtocol.js';

describe('signalling protocol', () => {
  it('parses each request by method', () => {
    const r = parseRequest(JSON.stringify({ id: 1, method: 'join', data: { token: 'x' } }));
    expect(r).toEqual({ ok: true, request: { id: 1, method: 'join', data: { token: 'x' } } });
    expect(parseRequest(JSON.stringify({ id: 2, method: 'hangup' })).ok).toBe(true);
    const p = parseRequest(
      JSON.stringify({
        id: 3,
        method: 'produce',
        data: { transportId: 't', kind: 'audio', rtpParameters: { codecs: [] } },
      }),
    );
    expect(p.ok).toBe(true);
  });

  it('refuses what is not the protocol, keeping the id when there is one', () => {
    expect(parseRequest('{')).toEqual({ ok: false, message: 'not JSON' });
    expect(parseRequest('[]').ok).toBe(false);
    expect(parseRequest(JSON.stringify({ id: -1, method: 'join' })).ok).toBe(false);
    expect(parseRequest(JSON.stringify({ id: 1, method: 'rm -rf' }))).toMatchObject({ ok: false, id: 1 });
    expect(parseRequest(JSON.stringify({ id: 1, method: 'constructor' }))).toMatchObject({
      ok: false,
      id: 1,
    });
    expect(
      parseRequest(
        JSON.stringify({
          id: 4,
          method: 'produce',
          data: { transportId: 't', kind: 'video', rtpParameters: {} },
        }),
      ),
    ).toMatchObject({ ok: false, id: 4 });
    expect(parseRequest(JSON.stringify({ id: 5, method: 'join', data: { token: 'x', extra: 1 } })).ok).toBe(
      false,
    );
    expect(parseRequest(JSON.stringify({ id: 6, method: 'join', extra: true })).ok).toBe(false);
  });

  it('gives every close kind its own code in the application range', () => {
    const codes = Object.values(CLOSE).map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c >= 4000 && c <= 4999).toBe(true);
  });
});
