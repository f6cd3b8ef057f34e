import { STAGE_MS_BUCKETS } from '@duet/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type LeaseErrorReason = 'kv_get' | 'kv_update' | 'decode' | 'config_mismatch' | 'publish' | 'internal';

export interface ClockMetrics {
  readonly ticksPublished: Counter;
  readonly lateness: Histogram;
  readonly isLeader: Gauge;
  readonly failovers: Counter;
  readonly leaseConflicts: Counter;
  readonly leaseErrors: Counter<'reason'>;
}

export function createClockMetrics(registry: Registry): ClockMetrics {
  const registers = [registry];
  return {
    ticksPublished: new Counter({
      name: 'duet_clock_ticks_published_total',
      help: 'Ticks this replica published',
      registers,
    }),
    lateness: new Histogram({
      name: 'duet_clock_tick_lateness_ms',
      help: 'Publish time minus the tick scheduled time (ms)',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    isLeader: new Gauge({
      name: 'duet_clock_is_leader',
      help: '1 while this replica holds the lease (published the last tick)',
      registers,
    }),
    failovers: new Counter({
      name: 'duet_clock_failovers_total',
      help: 'Ticks this replica claimed from a silent leader after the takeover delay',
      registers,
    }),
    leaseConflicts: new Counter({
      name: 'duet_clock_lease_conflicts_total',
      help: 'Lease compare-and-set writes lost to another replica',
      registers,
    }),
    leaseErrors: new Counter({
      name: 'duet_clock_lease_errors_total',
      help: 'Lease read/write failures and unusable lease values',
      labelNames: ['reason'],
      registers,
    }),
  };
}
