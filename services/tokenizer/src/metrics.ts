// The tokenizer's Prometheus metrics (documented in README.md). No per-call labels: a metric
// series per call would grow without bound.

import { STAGE_MS_BUCKETS } from '@duet/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createTokenizerMetrics(registry: Registry) {
  const registers = [registry];
  return {
    activeCalls: new Gauge({
      name: 'duet_tokenizer_active_calls',
      help: 'Calls open on this replica',
      registers,
    }),
    rtpPackets: new Counter({
      name: 'duet_tokenizer_rtp_packets_total',
      help: 'RTP datagrams received, by what became of them',
      labelNames: ['result'] as const,
      registers,
    }),
    rtpLost: new Counter({
      name: 'duet_tokenizer_rtp_lost_packets_total',
      help: 'RTP packets the jitter buffer gave up as lost (never arrived in time)',
      registers,
    }),
    rtpJitter: new Histogram({
      name: 'duet_tokenizer_rtp_jitter_ms',
      help: "RFC 3550 interarrival jitter of each call's stream, observed once per call per tick",
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 40, 60, 80, 120, 200],
      registers,
    }),
    ssrcChanges: new Counter({
      name: 'duet_tokenizer_ssrc_changes_total',
      help: "Times a new SSRC took over a call's stream",
      registers,
    }),
    concealedFrames: new Counter({
      name: 'duet_tokenizer_concealed_frames_total',
      help: 'Audio frames concealed (lost packets and undecodable payloads)',
      registers,
    }),
    decodeErrors: new Counter({
      name: 'duet_tokenizer_decode_errors_total',
      help: 'RTP payloads the codec rejected (concealed)',
      registers,
    }),
    underruns: new Counter({
      name: 'duet_tokenizer_chunk_underruns_total',
      help: 'Chunks padded with silence because too little audio had arrived',
      registers,
    }),
    overruns: new Counter({
      name: 'duet_tokenizer_chunk_overruns_total',
      help: 'Times more than two chunks of audio were waiting and the oldest were dropped',
      registers,
    }),
    chunkLatency: new Histogram({
      name: 'duet_tokenizer_chunk_latency_ms',
      help: "Wall time from the tick's scheduled time to the chunk's units being published",
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: 'duet_tokenizer_batch_size',
      help: 'Chunks tokenized together on one tick',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    tokenizeMs: new Histogram({
      name: 'duet_tokenizer_tokenize_ms',
      help: "Time of one tick's batched units-model run",
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    chunksPublished: new Counter({
      name: 'duet_tokenizer_chunks_published_total',
      help: 'User unit chunks published',
      registers,
    }),
    unitsResent: new Counter({
      name: 'duet_tokenizer_units_resent_total',
      help: 'User chunks sent again because the units stream did not acknowledge them',
      registers,
    }),
    unitsNotStored: new Counter({
      name: 'duet_tokenizer_units_not_stored_total',
      help: 'User chunks the units stream never acknowledged after every resend (a resume lacks them)',
      registers,
    }),
    tickGaps: new Counter({
      name: 'duet_tokenizer_tick_gaps_total',
      help: 'Clock ticks never received (sequence numbers skipped)',
      registers,
    }),
    badMessages: new Counter({
      name: 'duet_tokenizer_bad_messages_total',
      help: 'NATS messages and chunks refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

export type TokenizerMetrics = ReturnType<typeof createTokenizerMetrics>;
