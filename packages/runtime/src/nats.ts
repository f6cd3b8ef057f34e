import { readFileSync } from 'node:fs';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { Logger } from './logger.js';

export type { NatsConnection } from '@nats-io/nats-core';

/**
 * Connects to NATS and keeps reconnecting forever (a NATS node going away must not take a
 * service down); connection state changes are logged.
 */
export async function connectNats(options: {
  url: string;
  name: string;
  credsFile?: string | undefined;
  log: Logger;
}): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.url.split(',').map((s) => s.trim()),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5_000,
    ...(options.credsFile ? { authenticator: credsAuthenticator(readFileSync(options.credsFile)) } : {}),
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
        options.log.warn({ nats: s.type, server: 'server' in s ? s.server : undefined }, 'nats connection');
    }
  })();
  options.log.info({ server: nc.getServer() }, 'connected to nats');
  return nc;
}
