import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseDigest, TrunkGuard } from './security.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

describe('TrunkGuard', () => {
  it('admits sources on an allowlist (IPv4 CIDR, IPv6, IPv4-mapped) and refuses others', () => {
    const g = new TrunkGuard([{ name: 'carrier', allow: ['203.0.113.0/24', '2001:db8::/32'] }], 'duet');
    expect(g.admit('203.0.113.9', 'INVITE', undefined)).toEqual({ ok: true, trunk: 'carrier' });
    expect(g.admit('::ffff:203.0.113.9', 'INVITE', undefined).ok).toBe(true);
    expect(g.admit('2001:db8::5', 'INVITE', undefined).ok).toBe(true);
    expect(g.admit('198.51.100.1', 'INVITE', undefined)).toEqual({
      ok: false,
      status: 403,
      reason: 'forbidden',
    });
  });

  it('refuses a bad allow entry at start', () => {
    expect(() => new TrunkGuard([{ name: 't', allow: ['not-an-ip/8'] }], 'duet')).toThrow(/trunk t/);
    expect(() => new TrunkGuard([{ name: 't', allow: ['10.0.0.0/40'] }], 'duet')).toThrow(/prefix/);
  });

  it('challenges a digest trunk, admits the right response and refuses a wrong password', () => {
    const g = new TrunkGuard([{ name: 'pbx', allow: [], username: 'pbx1', password: 's3cret' }], 'duet');
    const first = g.admit('198.51.100.7', 'INVITE', undefined, 1_000_000);
    expect(first.ok).toBe(false);
    if (first.ok || first.status !== 401) throw new Error('expected a challenge');
    const c = parseDigest(first.challenge)!;
    const answer = (password: string) => {
      const ha1 = md5(`pbx1:duet:${password}`);
      const ha2 = md5('INVITE:sip:duet@192.0.2.1');
      const response = md5(`${ha1}:${c.nonce}:00000001:abc:auth:${ha2}`);
      return `Digest username="pbx1", realm="duet", nonce="${c.nonce}", uri="sip:duet@192.0.2.1", qop=auth, nc=00000001, cnonce="abc", response="${response}", algorithm=MD5`;
    };
    expect(g.admit('198.51.100.7', 'INVITE', answer('s3cret'), 1_000_500)).toEqual({
      ok: true,
      trunk: 'pbx',
    });
    expect(g.admit('198.51.100.7', 'INVITE', answer('guess'), 1_000_500)).toMatchObject({ status: 403 });
    // The nonce is bound to the source and expires: a new challenge.
    expect(g.admit('198.51.100.8', 'INVITE', answer('s3cret'), 1_000_500)).toMatchObject({ status: 401 });
    expect(g.admit('198.51.100.7', 'INVITE', answer('s3cret'), 1_000_000 + 600_000)).toMatchObject({
      status: 401,
    });
  });
});
