// Caller tokens: HS256 JWTs that name the call and the agent and expire. The SFU verifies them;
// `duet token` mints them with the same secret. No I/O beyond jose's WebCrypto.

import { errors, jwtVerify, SignJWT } from 'jose';

export const TOKEN_ISSUER = 'duet';
export const TOKEN_AUDIENCE = 'duet-sfu';
const CALL_ID = /^[A-Za-z0-9_-]{1,64}$/;
const AGENT = /^[A-Za-z0-9_.-]{1,64}$/;

export interface CallGrant {
  /** The call this token opens (a NATS subject token: [A-Za-z0-9_-]{1,64}). */
  readonly callId: string;
  /** Which agent answers (a name the deployment knows; "default" for the bundled model). */
  readonly agent: string;
  /** Expiry, seconds since the epoch. */
  readonly expiresAt: number;
}

export type TokenErrorCode = 'token_missing' | 'token_invalid' | 'token_expired';

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly code: TokenErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function key(secret: string): Uint8Array {
  if (secret.length < 32) throw new RangeError('the token secret must be at least 32 characters');
  return new TextEncoder().encode(secret);
}

export interface MintOptions {
  readonly secret: string;
  readonly callId: string;
  readonly agent?: string;
  /** Lifetime in seconds (default 600). */
  readonly ttlSeconds?: number;
  /** Clock override (seconds since the epoch), for tests. */
  readonly now?: number;
}

/** Signs a token granting one call. */
export async function mintCallToken(options: MintOptions): Promise<string> {
  const agent = options.agent ?? 'default';
  if (!CALL_ID.test(options.callId))
    throw new RangeError(`call id ${JSON.stringify(options.callId)} is not [A-Za-z0-9_-]{1,64}`);
  if (!AGENT.test(agent)) throw new RangeError(`agent ${JSON.stringify(agent)} is not [A-Za-z0-9_.-]{1,64}`);
  const ttl = options.ttlSeconds ?? 600;
  if (!(ttl > 0 && ttl <= 7 * 24 * 3600)) throw new RangeError('ttl must be within (0, 7 days]');
  const now = options.now ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ call: options.callId, agent })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.round(ttl))
    .sign(key(options.secret));
}

/** Verifies a token; throws TokenError with a code the signalling protocol maps to a close code. */
export async function verifyCallToken(
  token: unknown,
  secret: string,
  options: { now?: number } = {},
): Promise<CallGrant> {
  if (typeof token !== 'string' || token.length === 0) throw new TokenError('token_missing', 'no token');
  if (token.length > 4096) throw new TokenError('token_invalid', 'token too long');
  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(token, key(secret), {
      algorithms: ['HS256'],
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      requiredClaims: ['exp', 'call'],
      ...(options.now !== undefined ? { currentDate: new Date(options.now * 1000) } : {}),
    }));
  } catch (error) {
    if (error instanceof errors.JWTExpired)
      throw new TokenError('token_expired', 'token expired', { cause: error });
    throw new TokenError('token_invalid', 'token invalid', { cause: error });
  }
  const { call, agent, exp } = payload as { call?: unknown; agent?: unknown; exp?: number };
  if (typeof call !== 'string' || !CALL_ID.test(call))
    throw new TokenError('token_invalid', 'token names no valid call');
  const agentName = agent === undefined ? 'default' : agent;
  if (typeof agentName !== 'string' || !AGENT.test(agentName)) {
    throw new TokenError('token_invalid', 'token names no valid agent');
  }
  return { callId: call, agent: agentName, expiresAt: exp ?? 0 };
}
