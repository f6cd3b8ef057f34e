import { ConfigError, loadConfig, jetstream as names, runService } from '@duet/runtime';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { ClockMismatchError, ClockReplica } from './clockReplica.js';
import { clockConfig, validateClockConfig } from './config.js';
import { LeaseStore } from './leaseStore.js';
import { createClockMetrics } from './metrics.js';
import { tickSchedule } from './tickSchedule.js';

// Checks across variables before connecting anywhere (exit 2 like any bad variable).
try {
  validateClockConfig(loadConfig('clock', clockConfig));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(2);
}

await runService({
  name: 'clock',
  config: clockConfig,
  async start(ctx) {
    // The lease's own client with a short request timeout: a lease read or write in flight on a
    // NATS node that stops would otherwise wait the default 5 s, and no tick would go out
    // meanwhile; failing after two chunks costs a tick or two, and the next one retries.
    const leaseTimeoutMs = Math.max(250, 2 * ctx.config.DUET_CLOCK_CHUNK_MS);
    const leaseKv = await new Kvm(jetstream(ctx.nc, { timeout: leaseTimeoutMs })).open(names.clockBucket);
    const replica = new ClockReplica({
      self: ctx.instanceId,
      schedule: tickSchedule(ctx.config.DUET_CLOCK_CHUNK_MS, ctx.config.DUET_CLOCK_EPOCH_MS),
      takeoverMs: ctx.config.DUET_CLOCK_TAKEOVER_MS,
      store: new LeaseStore(leaseKv),
      nc: ctx.nc,
      log: ctx.log,
      metrics: createClockMetrics(ctx.registry),
    });
    try {
      await replica.start();
    } catch (error) {
      if (!(error instanceof ClockMismatchError)) throw error;
      ctx.log.fatal(error.message);
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    return {
      grpc: [],
      ready: () =>
        replica.ready ? { ready: true } : { ready: false, reason: 'clock lease not yet claimed or observed' },
      drain: () => replica.drain(),
      close: async () => replica.close(),
    };
  },
});
