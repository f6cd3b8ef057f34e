import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { connectNats, type NatsConnection } from './nats.js';
import { StreamPublisher } from './streamPublisher.js';
import { type NatsServerHandle, startNatsServer } from './testing/natsServer.js';

describe('StreamPublisher (real nats-server)', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: 'test', log: createLogger('test', 't', 'silent') });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'SP', subjects: ['sp.>'] });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('stores each message once by id, and core subscribers get it too', async () => {
    const seen: string[] = [];
    const sub = nc.subscribe('sp.a', {
      callback: (_e, m) => {
        seen.push(new TextDecoder().decode(m.data));
      },
    });
    const publisher = new StreamPublisher(nc);
    publisher.publish('sp.a', new TextEncoder().encode('one'), 'a/1');
    publisher.publish('sp.a', new TextEncoder().encode('one again'), 'a/1'); // a resend: same id
    publisher.publish('sp.a', new TextEncoder().encode('two'), 'a/2');
    await publisher.flush();
    expect(publisher.pending).toBe(0);
    const info = await (await jetstreamManager(nc)).streams.info('SP');
    expect(info.state.messages).toBe(2);
    await nc.flush();
    expect(seen).toEqual(['one', 'one again', 'two']);
    sub.unsubscribe();
  });

  it('sends again while no stream answers, then gives up and says so', async () => {
    const retries: string[] = [];
    const gaveUp: string[] = [];
    const publisher = new StreamPublisher(nc, {
      attempts: 3,
      ackTimeoutMs: 200,
      backoffMs: 10,
      onRetry: (s) => retries.push(s),
      onGiveUp: (s) => gaveUp.push(s),
    });
    publisher.publish('nostream.x', new Uint8Array([1]), 'x/1');
    expect(publisher.pending).toBe(1);
    await publisher.flush();
    expect(retries).toEqual(['nostream.x', 'nostream.x']);
    expect(gaveUp).toEqual(['nostream.x']);
  });

  it('keeps a message the stream missed: it is stored once the stream is back', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'LATE', subjects: ['late.>'] });
    await jsm.streams.delete('LATE');
    const publisher = new StreamPublisher(nc, { attempts: 8, ackTimeoutMs: 200, backoffMs: 50 });
    publisher.publish('late.x', new Uint8Array([7]), 'late/1');
    await new Promise((r) => setTimeout(r, 120));
    await jsm.streams.add({ name: 'LATE', subjects: ['late.>'] });
    await publisher.flush();
    expect((await jsm.streams.info('LATE')).state.messages).toBe(1);
  });
});
