import { describe, expect, it } from 'vitest';
import { mintCallToken, TokenError, verifyCallToken } from './token.js';

const secret = 'test-secret-test-secret-test-secret!';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (error) {
    return error instanceof TokenError ? error.code : `other: ${String(error)}`;
  }
}

describe('caller tokens', () => {
  it('a minted token grants its call and agent until it expires', async () => {
    const token = await mintCallToken({
      secret,
      callId: 'call-1',
      agent: 'support',
      ttlSeconds: 60,
      now: 1_000,
    });
    await expect(verifyCallToken(token, secret, { now: 1_030 })).resolves.toEqual({
      callId: 'call-1',
      agent: 'support',
      expiresAt: 1_060,
    });
    expect(await code(verifyCallToken(token, secret, { now: 1_061 }))).toBe('token_expired');
  });

  it('refuses a missing, garbled, foreign-signed or claim-less token with its own code', async () => {
    expect(await code(verifyCallToken(undefined, secret))).toBe('token_missing');
    expect(await code(verifyCallToken('', secret))).toBe('token_missing');
    expect(await code(verifyCallToken('not.a.jwt', secret))).toBe('token_invalid');
    const other = await mintCallToken({ secret: 'another-secret-another-secret-another', callId: 'c' });
    expect(await code(verifyCallToken(other, secret))).toBe('token_invalid');
    const good = await mintCallToken({ secret, callId: 'c' });
    const [h, p, s] = good.split('.');
    const forged = JSON.parse(Buffer.from(p!, 'base64url').toString());
    forged.call = 'someone-else';
    expect(
      await code(
        verifyCallToken(`${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`, secret),
      ),
    ).toBe('token_invalid');
    // alg "none" is never accepted.
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    expect(await code(verifyCallToken(none, secret))).toBe('token_invalid');
  });

  it('refuses to mint for a call id that is not a subject token, or with a short secret', async () => {
    await expect(mintCallToken({ secret, callId: 'a.b' })).rejects.toThrow(RangeError);
    await expect(mintCallToken({ secret: 'short', callId: 'a' })).rejects.toThrow(RangeError);
  });
});
