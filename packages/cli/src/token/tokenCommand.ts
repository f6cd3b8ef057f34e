// `duet token`: mints a caller token for the SFU from the configured secret and prints it
// (with the browser client's link when --url is given).

import { randomUUID } from 'node:crypto';
import { mintCallToken } from '@duet/sfu/token';

export interface TokenCommandOptions {
  readonly call?: string;
  readonly agent: string;
  readonly ttl: number;
  readonly secret?: string;
  readonly url?: string;
  readonly json?: boolean;
}

export async function runTokenCommand(options: TokenCommandOptions): Promise<void> {
  const secret = options.secret ?? process.env.DUET_SFU_TOKEN_SECRET;
  if (!secret)
    throw new Error('no secret: pass --secret or set DUET_SFU_TOKEN_SECRET (the SFU must use the same)');
  const callId = options.call ?? `web-${randomUUID().slice(0, 8)}`;
  const token = await mintCallToken({ secret, callId, agent: options.agent, ttlSeconds: options.ttl });
  const link = options.url ? `${options.url.replace(/\/+$/, '')}/?token=${token}` : undefined;
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ token, callId, agent: options.agent, expiresInS: options.ttl, ...(link ? { url: link } : {}) })}\n`,
    );
  } else {
    process.stdout.write(`${link ?? token}\n`);
  }
}
