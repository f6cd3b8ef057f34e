import { ConfigError, loadConfig, runService } from '@duet/runtime';
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
    const replica = new ClockReplica({
      self: ctx.instanceId,
      schedule: tickSchedule(ctx.config.DUET_CLOCK_CHUNK_MS, ctx.config.DUET_CLOCK_EPOCH_MS),
      takeoverMs: ctx.config.DUET_CLOCK_TAKEOVER_MS,
      store: new LeaseStore(ctx.js.clock),
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
