// The SIP bridge's environment variables (the common DUET_* ones are added by the shell).

import { availableParallelism } from 'node:os';
import { env } from '@duet/runtime';
import { z } from 'zod';

/** A trunk: who may call (source CIDRs) and, optionally, the digest credentials they must present. */
const trunk = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a trunk name is [A-Za-z0-9_.-]{1,64}'),
    /** Source addresses (CIDR or single IPs); empty or absent: any source (then credentials are required). */
    allow: z.array(z.string().min(1)).default([]),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.username === undefined) === (t.password === undefined), {
    message: 'username and password go together',
  })
  .refine((t) => t.allow.length > 0 || t.username !== undefined, {
    message: 'a trunk needs an allow list, credentials, or both',
  });

export type TrunkConfig = z.infer<typeof trunk>;

const trunks = z
  .string()
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not JSON' });
      return z.NEVER;
    }
  })
  .pipe(z.array(trunk).min(1));

export const sipConfig = {
  /** SIP port (UDP and TCP). */
  DUET_SIP_PORT: env.port(5060),
  /** Transports to listen on. */
  DUET_SIP_TRANSPORTS: env.oneOf(['udp,tcp', 'udp', 'tcp'] as const, 'udp,tcp'),
  /** Address SIP listens on. */
  DUET_SIP_LISTEN_IP: env.string('0.0.0.0'),
  /** Address put in Contact/Via and SDP when it differs from what callers reach (NAT); default: the media IP. */
  DUET_SIP_ANNOUNCED_IP: z.string().min(1).optional(),
  /** Who may call: a JSON array of trunks {name, allow: [CIDR...], username?, password?}. */
  DUET_SIP_TRUNKS: trunks.default([{ name: 'local', allow: ['127.0.0.0/8', '::1/128'] }]),
  /** Digest realm. */
  DUET_SIP_REALM: env.string('duet'),
  /** Largest SIP message accepted (bytes, headers and body; UDP and TCP). */
  DUET_SIP_MAX_MESSAGE_BYTES: env.int(8_192, 1_024, 65_535),
  DUET_SIP_MAX_CALLS: env.int(500, 1, 100_000),
  DUET_SIP_MAX_CALLS_PER_SOURCE: env.int(200, 1, 100_000),
  /** INVITEs per source address: sustained rate per second, and the burst allowed on top. */
  DUET_SIP_INVITES_PER_SECOND: env.number(50, 0.1, 100_000),
  DUET_SIP_INVITE_BURST: env.int(200, 1, 100_000),
  /** Retry-After (s) on 503 (no capacity, draining, over a limit). */
  DUET_SIP_RETRY_AFTER_S: env.int(5, 1, 3_600),
  /** Ring this long (180 Ringing) before answering (0: answer as soon as the call is set up). */
  DUET_SIP_ANSWER_DELAY_MS: env.int(0, 0, 60_000),
  /**
   * When the 200 OK may go out. media: once the call is admitted and its caller-facing RTP socket
   * (the port of the SDP answer) is bound, while the mediasoup side and the call services are set
   * up behind it (a failure there after the answer ends the call with a BYE carrying Reason
   * cause=503); services: only once the call is open on inference, tokenizer and vocoder with its
   * audio wired (audio from the first packet; every setup failure is a 503). Admission (capacity,
   * limits) is the same for both.
   */
  DUET_SIP_ANSWER_ON: env.oneOf(['media', 'services'] as const, 'media'),
  /** A call with no RTP from the caller for this long is ended (BYE); paused while on hold. */
  DUET_SIP_RTP_TIMEOUT_MS: env.int(30_000, 1_000, 3_600_000),
  /** RFC 3261 T1 (RTT estimate) for retransmissions; T2 caps the interval. */
  DUET_SIP_T1_MS: env.int(500, 10, 10_000),
  DUET_SIP_T2_MS: env.int(4_000, 100, 60_000),
  /** Latch the caller's media address on its first RTP packet (callers behind NAT) instead of trusting the SDP. */
  DUET_SIP_COMEDIA: env.bool(false),
  /** Codecs accepted, in order of preference (the first one the caller offers is answered). */
  DUET_SIP_CODECS: z
    .string()
    .transform((s) => s.split(',').map((v) => v.trim().toUpperCase()))
    .pipe(z.array(z.enum(['PCMU', 'PCMA', 'OPUS'])).min(1))
    .default(['OPUS', 'PCMU', 'PCMA']),
  /** The mediasoup worker binary (default: MEDIASOUP_WORKER_BIN, else the build script's cache). */
  DUET_SIP_WORKER_BIN: z.string().min(1).optional(),
  DUET_SIP_WORKERS: env.int(Math.min(availableParallelism(), 4), 1, 256),
  DUET_SIP_WORKER_LOG_LEVEL: env.oneOf(['debug', 'warn', 'error', 'none'] as const, 'warn'),
  /** IP the media (plain RTP) transports listen on; announced in SDP unless DUET_SIP_ANNOUNCED_IP. */
  DUET_SIP_MEDIA_IP: env.string('127.0.0.1'),
  /** Callers' RTP ports (one per call, even numbers). */
  DUET_SIP_RTP_PORT_MIN: env.port(46_000),
  DUET_SIP_RTP_PORT_MAX: env.port(46_999),
  /** mediasoup's plain transports (three per call, towards the RTP socket, tokenizer and vocoder). */
  DUET_SIP_MS_PORT_MIN: env.port(47_000),
  DUET_SIP_MS_PORT_MAX: env.port(48_999),
  /** gRPC control addresses of the call services. */
  DUET_SIP_INFERENCE_ADDR: env.string('127.0.0.1:50051'),
  DUET_SIP_TOKENIZER_ADDR: env.string('127.0.0.1:50052'),
  DUET_SIP_VOCODER_ADDR: env.string('127.0.0.1:50053'),
} as const;

export type SipConfig = z.infer<z.ZodObject<typeof sipConfig>>;
