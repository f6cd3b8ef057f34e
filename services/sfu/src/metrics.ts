// The SFU's Prometheus metrics (documented in README.md). No per-call labels.

import { STAGE_MS_BUCKETS } from '@duet/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createSfuMetrics(registry: Registry) {
  const registers = [registry];
  const m = {
    activeCalls: new Gauge({
      name: 'duet_sfu_active_calls',
      help: 'WebRTC calls open on this replica',
      registers,
    }),
    sockets: new Gauge({
      name: 'duet_sfu_signalling_sockets',
      help: 'Open signalling WebSockets',
      registers,
    }),
    calls: new Counter({
      name: 'duet_sfu_calls_total',
      help: 'Calls ended, by why',
      labelNames: ['reason'] as const,
      registers,
    }),
    rejected: new Counter({
      name: 'duet_sfu_signalling_rejected_total',
      help: 'Signalling connections or messages refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    setupMs: new Histogram({
      name: 'duet_sfu_call_setup_ms',
      help: 'Join received to the call open on every service (inference, tokenizer, vocoder)',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    workers: new Gauge({ name: 'duet_sfu_workers', help: 'Live mediasoup workers', registers }),
    workerDeaths: new Counter({
      name: 'duet_sfu_worker_deaths_total',
      help: 'mediasoup workers that died (each is replaced)',
      registers,
    }),
  };
  return m;
}

export type SfuMetrics = ReturnType<typeof createSfuMetrics>;
