// The SIP bridge's Prometheus metrics (docs/metrics.md). No per-call labels: every label is a
// bounded set (methods the bridge knows, reasons below, two directions).

import { STAGE_MS_BUCKETS } from '@duet/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Why a request was refused or a message dropped (the `reason` label of duet_sip_errors_total). */
export type SipErrorReason =
  | 'malformed'
  | 'too_large'
  | 'forbidden'
  | 'auth_challenge'
  | 'auth_failed'
  | 'rate_limited'
  | 'max_calls'
  | 'no_capacity'
  | 'draining'
  | 'codec'
  | 'no_dialog'
  | 'not_allowed'
  | 'setup_failed'
  | 'setup_failed_after_answer'
  | 'cancelled'
  | 'ack_timeout';

/** Why an answered call ended (the `reason` label of duet_sip_calls_ended_total). */
export type SipEndReason =
  | 'caller_bye'
  | 'rtp_timeout'
  | 'closed_by_service'
  | 'media_closed'
  | 'ack_timeout'
  | 'setup_failed'
  | 'shutdown';

export function createSipMetrics(registry: Registry) {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'duet_sip_requests_total',
      help: 'SIP requests received, by method (other: any method the bridge does not know)',
      labelNames: ['method'] as const,
      registers,
    }),
    responses: new Counter({
      name: 'duet_sip_responses_total',
      help: 'SIP responses sent (retransmissions not counted), by status code',
      labelNames: ['code'] as const,
      registers,
    }),
    invites: new Counter({
      name: 'duet_sip_invites_total',
      help: 'Initial INVITEs received (not re-INVITEs, not retransmissions)',
      registers,
    }),
    accepted: new Counter({
      name: 'duet_sip_calls_accepted_total',
      help: 'INVITEs answered with 200 OK (calls set up)',
      registers,
    }),
    errors: new Counter({
      name: 'duet_sip_errors_total',
      help: 'Requests refused and messages dropped, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    ended: new Counter({
      name: 'duet_sip_calls_ended_total',
      help: 'Answered calls that ended, by why',
      labelNames: ['reason'] as const,
      registers,
    }),
    activeCalls: new Gauge({
      name: 'duet_sip_active_calls',
      help: 'SIP calls being set up or answered on this replica',
      registers,
    }),
    setupMs: new Histogram({
      name: 'duet_sip_call_setup_ms',
      help: "INVITE received to 200 OK sent, without the ring delay (DUET_SIP_ANSWER_ON=media: the caller's RTP socket bound; services: the call open on every call service too)",
      buckets: STAGE_MS_BUCKETS,
      registers,
    }),
    servicesReadyMs: new Histogram({
      name: 'duet_sip_services_ready_ms',
      help: 'INVITE received to the call open on every call service with its audio wired both ways (calls whose setup succeeded)',
      buckets: [5, 10, 20, 30, 50, 80, 100, 160, 240, 320, 480, 640, 1000, 1500, 2000, 3000, 5000],
      registers,
    }),
    durationSeconds: new Histogram({
      name: 'duet_sip_call_duration_seconds',
      help: 'Answered calls: 200 OK to the end of the call',
      buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200],
      registers,
    }),
    rtpPackets: new Counter({
      name: 'duet_sip_rtp_packets_total',
      help: 'RTP packets to and from SIP callers (in: from the caller; out: the agent to the caller)',
      labelNames: ['direction'] as const,
      registers,
    }),
    dtmf: new Counter({
      name: 'duet_sip_dtmf_events_total',
      help: 'DTMF digits received (RFC 4733 telephone-event or SIP INFO) and published as call events',
      registers,
    }),
    retransmissions: new Counter({
      name: 'duet_sip_retransmissions_total',
      help: 'Responses and requests the bridge sent again (UDP timers, or a retransmitted request answered)',
      registers,
    }),
    workers: new Gauge({ name: 'duet_sip_media_workers', help: 'Live mediasoup workers', registers }),
  };
}

export type SipMetrics = ReturnType<typeof createSipMetrics>;
