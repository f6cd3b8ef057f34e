// The vocoder's Prometheus metrics (README.md documents each).

import { STAGE_MS_BUCKETS } from '@duet/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type VocoderMetrics = ReturnType<typeof createVocoderMetrics>;

export function createVocoderMetrics(registry: Registry) {
  const registers = [registry];
  return {
    activeCalls: new Gauge({
      name: 'duet_vocoder_active_calls',
      help: 'Calls open on this replica',
      registers,
    }),
    packetsSent: new Counter({
      name: 'duet_vocoder_rtp_packets_sent_total',
      help: 'RTP packets sent (audio and silence)',
      registers,
    }),
    chunks: new Counter({
      name: 'duet_vocoder_chunks_total',
      help: 'Agent chunks by outcome: played, missing (silence at its play time), late (arrived after it)',
      labelNames: ['result'] as const,
      registers,
    }),
    framesSkipped: new Counter({
      name: 'duet_vocoder_frames_skipped_total',
      help: 'Frames not sent because the process was more than 200 ms late for them (a stall)',
      registers,
    }),
    sendLateness: new Histogram({
      name: 'duet_vocoder_send_lateness_ms',
      help: 'Actual send time minus due time of each RTP packet',
      buckets: [0.5, 1, 2, 3, 5, 10, 20, 40, 80, 160],
      registers,
    }),
    chunkLead: new Histogram({
      name: 'duet_vocoder_chunk_lead_ms',
      help: "Due time of a chunk's first frame minus the arrival of its units (negative: late)",
      buckets: [-160, -80, -40, -20, 0, 20, 40, 60, 80, 100, 120, 160, 240, 320],
      registers,
    }),
    unitsToAudio: new Histogram({
      name: 'duet_vocoder_units_to_audio_ms',
      help: 'Arrival of a chunk of units to its frames encoded and queued',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: 'duet_vocoder_batch_size',
      help: 'Chunks vocoded in one model run',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    vocodeMs: new Histogram({
      name: 'duet_vocoder_vocode_ms',
      help: 'Duration of one batched vocoder run',
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    badMessages: new Counter({
      name: 'duet_vocoder_bad_messages_total',
      help: 'Messages refused, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}
