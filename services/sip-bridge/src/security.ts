// Who may call: per-trunk source allowlists (CIDR) and RFC 8760/2617 digest authentication
// (MD5, qop=auth, stateless nonces signed with a per-process key), and a token bucket of INVITEs
// per source address.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { TrunkConfig } from './config.js';

interface Trunk {
  readonly name: string;
  readonly allow: BlockList | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

export type AdmitResult =
  | { readonly ok: true; readonly trunk: string }
  | { readonly ok: false; readonly status: 401; readonly challenge: string }
  | { readonly ok: false; readonly status: 403; readonly reason: 'forbidden' | 'auth_failed' };

const NONCE_TTL_MS = 300_000;

export class TrunkGuard {
  private readonly trunks: Trunk[];
  private readonly key = randomBytes(32);

  /** Throws RangeError naming the trunk when an allow entry is not an IP or CIDR. */
  constructor(
    trunks: readonly TrunkConfig[],
    private readonly realm: string,
  ) {
    this.trunks = trunks.map((t) => {
      let allow: BlockList | undefined;
      if (t.allow.length) {
        allow = new BlockList();
        for (const entry of t.allow) {
          const [addr = '', prefix] = entry.split('/');
          const family = isIP(addr);
          if (!family) throw new RangeError(`trunk ${t.name}: ${entry} is not an IP or CIDR`);
          const type = family === 6 ? 'ipv6' : 'ipv4';
          if (prefix === undefined) allow.addAddress(addr, type);
          else {
            const bits = Number(prefix);
            if (!/^\d{1,3}$/.test(prefix) || bits > (family === 6 ? 128 : 32))
              throw new RangeError(`trunk ${t.name}: bad prefix in ${entry}`);
            allow.addSubnet(addr, bits, type);
          }
        }
      }
      return { name: t.name, allow, username: t.username, password: t.password };
    });
  }

  private matches(t: Trunk, source: string): boolean {
    if (!t.allow) return true;
    const family = isIP(source);
    if (!family) return false;
    // An IPv4 source on a dual-stack socket arrives as ::ffff:a.b.c.d.
    const v4 = source.startsWith('::ffff:') && isIP(source.slice(7)) === 4 ? source.slice(7) : undefined;
    return v4 ? t.allow.check(v4, 'ipv4') : t.allow.check(source, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** Admits a request from `source` (an IP), checking its Authorization header where a trunk needs one. */
  admit(source: string, method: string, authorization: string | undefined, now = Date.now()): AdmitResult {
    const candidates = this.trunks.filter((t) => this.matches(t, source));
    if (candidates.length === 0) return { ok: false, status: 403, reason: 'forbidden' };
    const open = candidates.find((t) => t.username === undefined);
    if (open) return { ok: true, trunk: open.name };
    const challenge = () =>
      ({ ok: false, status: 401, challenge: this.challenge(source, now) }) as const satisfies AdmitResult;
    if (!authorization) return challenge();
    const creds = parseDigest(authorization);
    if (!creds?.username) return { ok: false, status: 403, reason: 'auth_failed' };
    const trunk = candidates.find((t) => t.username === creds.username);
    if (!trunk || creds.realm !== this.realm) return { ok: false, status: 403, reason: 'auth_failed' };
    if (!this.nonceValid(creds.nonce ?? '', source, now)) return challenge();
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');
    const ha1 = md5(`${trunk.username}:${this.realm}:${trunk.password}`);
    const ha2 = md5(`${method}:${creds.uri}`);
    const expected =
      creds.qop === 'auth'
        ? md5(`${ha1}:${creds.nonce}:${creds.nc}:${creds.cnonce}:auth:${ha2}`)
        : md5(`${ha1}:${creds.nonce}:${ha2}`);
    const got = Buffer.from(creds.response ?? '', 'latin1');
    const want = Buffer.from(expected, 'latin1');
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return { ok: false, status: 403, reason: 'auth_failed' };
    return { ok: true, trunk: trunk.name };
  }

  private sign(ts: string, source: string): string {
    return createHmac('sha256', this.key).update(`${ts}:${source}`).digest('base64url').slice(0, 22);
  }

  private challenge(source: string, now: number): string {
    const ts = now.toString(36);
    return `Digest realm="${this.realm}", nonce="${ts}.${this.sign(ts, source)}", algorithm=MD5, qop="auth"`;
  }

  private nonceValid(nonce: string, source: string, now: number): boolean {
    const [ts = '', sig = ''] = nonce.split('.');
    const issued = Number.parseInt(ts, 36);
    if (!Number.isFinite(issued) || now - issued > NONCE_TTL_MS || issued > now + 1_000) return false;
    const want = Buffer.from(this.sign(ts, source));
    const got = Buffer.from(sig);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** The fields of `Digest k="v", k=v, ...` (undefined when not a digest header). */
export function parseDigest(value: string): Record<string, string | undefined> | undefined {
  const m = /^Digest\s+(.*)$/is.exec(value.trim());
  if (!m) return undefined;
  const out: Record<string, string | undefined> = {};
  const re = /([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)/g;
  for (const p of m[1]!.matchAll(re)) out[p[1]!.toLowerCase()] = p[2] ?? p[3];
  return out;
}
