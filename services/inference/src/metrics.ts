import { STAGE_MS_BUCKETS } from '@duet/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type UserChunkResult = 'on_time' | 'late' | 'duplicate' | 'early' | 'replaced' | 'confirmed' | 'lost';

/** The worker's metrics (no per-call labels). */
export function createInferenceMetrics(registry: Registry) {
  const registers = [registry];
  const metrics = {
    activeCalls: new Gauge({
      name: 'duet_inference_active_calls',
      help: 'Calls open on this worker',
      registers,
    }),
    capacitySlots: new Gauge({
      name: 'duet_inference_capacity_slots',
      help: 'Calls this worker can hold (slots)',
      registers,
    }),
    stepMs: new Histogram({
      name: 'duet_inference_step_ms',
      help: 'Duration of one engine step (all calls)',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    stepHeadroomMs: new Gauge({
      name: 'duet_inference_step_headroom_ms',
      help: 'Step budget (chunk - phase - vocoder lead) minus the last step duration',
      registers,
    }),
    batchSize: new Histogram({
      name: 'duet_inference_batch_size',
      help: 'Calls stepped together in one step',
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    }),
    tickLatenessMs: new Histogram({
      name: 'duet_inference_tick_lateness_ms',
      help: 'Step start minus T(n)',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    agentChunkLatencyMs: new Histogram({
      name: 'duet_inference_agent_chunk_latency_ms',
      help: 'Agent chunk publish time minus T(n) of the tick that produced it',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    deadlineMisses: new Counter({
      name: 'duet_inference_deadline_misses_total',
      help: 'Agent chunks j published after T(f+j) - vocoder lead',
      registers,
    }),
    missedTicks: new Counter({
      name: 'duet_inference_missed_ticks_total',
      help: 'Ticks that arrived while the previous step was still running',
      registers,
    }),
    tickGaps: new Counter({
      name: 'duet_inference_tick_gaps_total',
      help: 'Clock seqs never received (the clock skipped them)',
      registers,
    }),
    userChunks: new Counter({
      name: 'duet_inference_user_chunks_total',
      help: 'Real user chunks by outcome: admission (on_time, late, duplicate, early) and application (replaced, confirmed, lost = prediction stood)',
      labelNames: ['result'] as const,
      registers,
    }),
    placements: new Counter({
      name: 'duet_inference_placements_total',
      help: 'Placement requests handled by this worker',
      labelNames: ['result'] as const,
      registers,
    }),
    noCapacity: new Counter({
      name: 'duet_inference_no_capacity_total',
      help: 'OpenCall refused because no worker had a free slot',
      registers,
    }),
    resumes: new Counter({
      name: 'duet_inference_resumes_total',
      help: 'Calls this worker took over from a dead or leaving worker',
      registers,
    }),
    resumesDegraded: new Counter({
      name: 'duet_inference_resumes_degraded_total',
      help: 'Resumes that went on without the stored history or the real user units (unreadable in time)',
      labelNames: ['missing'] as const,
      registers,
    }),
    historyErrors: new Counter({
      name: 'duet_inference_history_errors_total',
      help: 'Failed writes of CallHistory / heartbeats to KV',
      registers,
    }),
    badMessages: new Counter({
      name: 'duet_inference_bad_messages_total',
      help: 'Messages refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
  // Every series exists from the start (at 0), so rates and alerts work before the first event.
  for (const result of ['on_time', 'late', 'duplicate', 'early', 'replaced', 'confirmed', 'lost'])
    metrics.userChunks.inc({ result }, 0);
  for (const result of ['accepted', 'declined_full', 'duplicate']) metrics.placements.inc({ result }, 0);
  return metrics;
}

export type InferenceMetrics = ReturnType<typeof createInferenceMetrics>;
