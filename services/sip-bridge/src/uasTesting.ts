// For the UAS's in-process tests (not exported from the package): a UAS wired to a recording
// flow and a call backend without media, and builders of SIP requests.

import { createLogger, KeyedRateLimiter } from '@duet/runtime';
import { Registry } from 'prom-client';
import type { TrunkConfig } from './config.js';
import { createSipMetrics, type SipMetrics } from './metrics.js';
import { TrunkGuard } from './security.js';
import { parseMessage, type SipResponse } from './sipMessage.js';
import {
  type CallBackend,
  type Flow,
  type MediaHandle,
  NoCapacityError,
  SipUas,
  type UasOptions,
} from './uas.js';

export interface TestFlow extends Flow {
  readonly sent: Buffer[];
  responses(): SipResponse[];
}

export function testFlow(address = '127.0.0.1', transport: 'UDP' | 'TCP' = 'UDP'): TestFlow {
  const sent: Buffer[] = [];
  return {
    transport,
    address,
    port: 5070,
    isOpen: true,
    sent,
    send: (d) => sent.push(d),
    responses: () =>
      sent.map((d) => parseMessage(d, 65_535)).filter((m): m is SipResponse => m.kind === 'response'),
  };
}

export interface TestBackend extends CallBackend {
  capacity: boolean;
  /** hasCapacity() rests on fresh heartbeats (false: the UAS waits for the services to answer). */
  known: boolean;
  /** The services phase refuses with NoCapacityError (inference full). */
  full: boolean;
  /** The services phase fails with this. */
  fail: Error | undefined;
  /** The services phase waits for this (a test's gate), then checks isCancelled like LoopLink. */
  gate: Promise<void> | undefined;
  readonly opened: string[];
  /** Calls whose services phase succeeded. */
  readonly ready: string[];
  readonly closed: string[];
  readonly handles: (MediaHandle & { readonly released: boolean })[];
}

/** A promise and its resolve, for gating the fake services phase. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

export function testBackend(): TestBackend {
  const b: TestBackend = {
    capacity: true,
    known: true,
    full: false,
    fail: undefined,
    gate: undefined,
    opened: [],
    ready: [],
    closed: [],
    handles: [],
    hasCapacity: () => b.capacity,
    capacityKnown: () => b.known,
    async open(request) {
      await Promise.resolve();
      b.opened.push(request.callId);
      let held = false;
      let released = false;
      const timings: Record<string, number | undefined> = { media: 1 };
      const handle = {
        port: 40_000 + b.opened.length * 2,
        timings,
        get released() {
          return released;
        },
        async openServices() {
          await Promise.resolve();
          if (b.gate) await b.gate;
          try {
            if (b.full) throw new NoCapacityError('full');
            if (b.fail) throw b.fail;
            if (request.isCancelled() || released) throw new Error('the call was closed during setup');
          } catch (error) {
            released = true;
            throw error;
          }
          timings.services = 2;
          timings.wiring = 1;
          b.ready.push(request.callId);
        },
        setHeld: (h: boolean) => {
          held = h;
        },
        idleMs: () => (held ? undefined : 0),
        takeCounts: () => ({ in: 0, out: 0 }),
        close: () => {
          released = true;
        },
      };
      b.handles.push(handle);
      return handle;
    },
    closeCall: (callId) => {
      b.closed.push(callId);
    },
  };
  return b;
}

export function testUas(
  backend: CallBackend,
  overrides: Partial<UasOptions> & { trunks?: TrunkConfig[] } = {},
): { uas: SipUas; metrics: SipMetrics; warnings: unknown[] } {
  const metrics = createSipMetrics(new Registry());
  const log = createLogger('sip-bridge', 'test', 'silent');
  const warnings: unknown[] = [];
  const spy = Object.create(log) as typeof log;
  spy.warn = ((obj: unknown) => {
    warnings.push(obj);
  }) as typeof log.warn;
  const { trunks, ...rest } = overrides;
  const uas = new SipUas({
    log: spy,
    metrics,
    backend,
    guard: new TrunkGuard(trunks ?? [{ name: 'local', allow: ['127.0.0.0/8'] }], 'duet'),
    limiter: new KeyedRateLimiter(1_000, 1_000, 1_000),
    publishDtmf: () => undefined,
    codecs: ['OPUS', 'PCMU', 'PCMA'],
    announcedIp: '127.0.0.1',
    sipPort: 5060,
    maxMessageBytes: 8_192,
    maxCalls: 100,
    maxCallsPerSource: 100,
    retryAfterS: 5,
    answerDelayMs: 0,
    answerOn: 'media',
    rtpTimeoutMs: 30_000,
    t1Ms: 10,
    t2Ms: 40,
    ...rest,
  });
  return { uas, metrics, warnings };
}

export const OFFER = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 30000 RTP/AVP 0 101',
  'a=rtpmap:101 telephone-event/8000',
  '',
].join('\r\n');

export interface RequestSpec {
  method: string;
  callId?: string;
  fromTag?: string;
  toTag?: string;
  cseq?: number;
  branch?: string;
  body?: string;
  contentType?: string;
  extra?: string[];
}

export function request(s: RequestSpec): Buffer {
  const body = s.body ?? '';
  const lines = [
    `${s.method} sip:duet@127.0.0.1:5060 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=${s.branch ?? `z9hG4bK${Math.random().toString(36).slice(2)}`};rport`,
    `From: <sip:caller@127.0.0.1>;tag=${s.fromTag ?? 'caller1'}`,
    `To: <sip:duet@127.0.0.1>${s.toTag ? `;tag=${s.toTag}` : ''}`,
    `Call-ID: ${s.callId ?? 'call-1'}`,
    `CSeq: ${s.cseq ?? 1} ${s.method === 'ACK' || s.method === 'CANCEL' ? s.method : s.method}`,
    'Contact: <sip:caller@127.0.0.1:5070>',
    'Max-Forwards: 70',
    ...(body ? [`Content-Type: ${s.contentType ?? 'application/sdp'}`] : []),
    ...(s.extra ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}
