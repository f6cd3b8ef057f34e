import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, env, loadConfig } from './config.js';
import { ensureJetStream } from './jetstream.js';
import { createLogger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';
import { connectNats, type NatsConnection } from './nats.js';
import { startOpsServer } from './opsServer.js';
import { callIdOfSubject, subjects } from './subjects.js';
import { type NatsServerHandle, startNatsServer } from './testing/natsServer.js';

describe('config', () => {
  const schema = {
    DUET_X_PORT: env.port(5000),
    DUET_X_MODE: env.oneOf(['a', 'b'] as const, 'a'),
    DUET_X_ON: env.bool(false),
  };
  it('applies defaults and coerces strings', () => {
    expect(loadConfig('x', schema, {})).toEqual({ DUET_X_PORT: 5000, DUET_X_MODE: 'a', DUET_X_ON: false });
    expect(loadConfig('x', schema, { DUET_X_PORT: '7', DUET_X_MODE: 'b', DUET_X_ON: 'true' })).toEqual({
      DUET_X_PORT: 7,
      DUET_X_MODE: 'b',
      DUET_X_ON: true,
    });
  });
  it('reports every bad variable with its value', () => {
    try {
      loadConfig('x', schema, { DUET_X_PORT: '70000', DUET_X_MODE: 'c' });
      expect.fail('should throw');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const e = error as ConfigError;
      expect(e.problems).toHaveLength(2);
      expect(e.message).toContain('DUET_X_PORT');
      expect(e.message).toContain('"70000"');
      expect(e.message).toContain('DUET_X_MODE');
    }
  });
  it('rejects a non-numeric port', () => {
    expect(() => loadConfig('x', { P: env.port(1), S: z.string().optional() }, { P: 'abc' })).toThrow(/P:/);
  });
});

describe('subjects', () => {
  it('names call subjects and refuses ids that are not one subject token', () => {
    expect(subjects.userUnits('call-1')).toBe('duet.call.call-1.user');
    expect(callIdOfSubject('duet.call.call-1.agent')).toBe('call-1');
    expect(callIdOfSubject('duet.clock.tick')).toBeUndefined();
    expect(() => subjects.userUnits('a.b')).toThrow(RangeError);
    expect(() => subjects.userUnits('*')).toThrow(RangeError);
    expect(() => subjects.userUnits('')).toThrow(RangeError);
  });
});

describe('ops server', () => {
  it('serves /metrics, /healthz and /readyz', async () => {
    const registry = createMetricsRegistry('test');
    let ready = false;
    const ops = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      health: { live: () => true, ready: () => ({ ready, reason: 'models loading' }) },
    });
    try {
      const base = `http://127.0.0.1:${ops.port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.text()).toContain('models loading');
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain('duet_process_cpu_seconds_total');
      expect(metrics).toContain('service="test"');
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await ops.close();
    }
  });
});

describe('jetstream resources on a real nats-server', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: 'test', log: createLogger('test', 't', 'silent') });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('creates buckets idempotently; create() and update() are compare-and-set', async () => {
    const js = await ensureJetStream(nc);
    await ensureJetStream(nc);
    const rev = await js.calls.create('c1.inference', new TextEncoder().encode('a'));
    await expect(js.calls.create('c1.inference', new TextEncoder().encode('b'))).rejects.toThrow();
    const rev2 = await js.calls.update('c1.inference', new TextEncoder().encode('c'), rev);
    await expect(js.calls.update('c1.inference', new TextEncoder().encode('d'), rev)).rejects.toThrow();
    expect(rev2).toBeGreaterThan(rev);
  });
});
