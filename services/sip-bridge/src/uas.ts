// The SIP user agent server (RFC 3261): server transactions with their retransmission timers
// (INVITE: A-less UAS side G/H/I and the 2xx retransmission until ACK; non-INVITE: J), the
// dialogs of answered calls, CANCEL, BYE in both directions (ours as a client transaction with
// timers E/F), OPTIONS, re-INVITE hold/resume, INFO DTMF, and the refusals: 400, 401, 403, 405,
// 481, 487, 488, 503 + Retry-After. Media and the call services sit behind CallBackend.

import { randomBytes } from 'node:crypto';
import type { KeyedRateLimiter, Logger } from '@duet/runtime';
import type { SipEndReason, SipErrorReason, SipMetrics } from './metrics.js';
import { buildAnswer, type CodecName, type Direction, type Negotiated, negotiate, SdpError } from './sdp.js';
import type { TrunkGuard } from './security.js';
import {
  HEADER_NAMES,
  header,
  headerList,
  parseCSeq,
  parseMessage,
  parseNameAddr,
  parseSipUri,
  parseVia,
  SipParseError,
  type SipRequest,
  type SipResponse,
  serialize,
} from './sipMessage.js';

/** Where a message came from and how to answer it (a UDP peer or a TCP connection). */
export interface Flow {
  readonly transport: 'UDP' | 'TCP';
  readonly address: string;
  readonly port: number;
  send(data: Buffer): void;
  readonly isOpen: boolean;
}

export interface MediaHandle {
  /** The RTP port the caller sends to (the SDP answer's). */
  readonly port: number;
  /** Where the setup time went (ms), for the log (filled in as the phases complete). */
  readonly timings?: Readonly<Record<string, number | undefined>>;
  /**
   * The services phase: opens the call on every call service and wires the audio both ways.
   * Rejects with NoCapacityError when inference is full, else with the failure; on rejection the
   * media is already released (close() stays safe to call). Called once.
   */
  openServices(): Promise<void>;
  setHeld(held: boolean): void;
  /** ms since the caller's last RTP, or undefined while on hold. */
  idleMs(now: number): number | undefined;
  /** Packets since the last call (in: from the caller, out: to the caller). */
  takeCounts(): { in: number; out: number };
  close(): void;
}

export class NoCapacityError extends Error {
  override readonly name = 'NoCapacityError';
}

export interface CallBackend {
  /** False when no inference worker is known to have room: the INVITE is refused at once. */
  hasCapacity(): boolean;
  /**
   * True when hasCapacity() rests on fresh inference heartbeats. When it does not (none yet, or
   * all stale: inference may be down), a call is answered only once the services opened it,
   * whatever DUET_SIP_ANSWER_ON says, so that a call inference cannot take gets a 503, not a BYE.
   */
  capacityKnown(): boolean;
  /**
   * The local phase of a call's media (router, transports, the caller's RTP socket): resolves once
   * the port of the SDP answer exists; the call services are opened by the handle's openServices().
   */
  open(request: {
    callId: string;
    negotiated: Negotiated;
    isCancelled: () => boolean;
    onDtmf: (digit: string) => void;
    onMediaClosed: (detail: string) => void;
  }): Promise<MediaHandle>;
  /** Closes the call on the call services (idempotent). */
  closeCall(callId: string, reason: string): void;
}

/**
 * When an INVITE is answered: `media` once the caller-facing media endpoint (the RTP port of the
 * SDP answer) exists, the rest of the media and the call services being set up behind the 200 OK;
 * `services` once the call is open on every call service with its audio wired.
 */
export type AnswerOn = 'media' | 'services';

export interface UasOptions {
  readonly log: Logger;
  readonly metrics: SipMetrics;
  readonly backend: CallBackend;
  readonly guard: TrunkGuard;
  readonly limiter: KeyedRateLimiter;
  readonly publishDtmf: (callId: string, digit: string) => void;
  readonly codecs: readonly CodecName[];
  /** Address for Contact and SDP. */
  readonly announcedIp: string;
  /** The SIP port for Contact and Via (setSipPort once the transport is bound). */
  readonly sipPort: number;
  readonly maxMessageBytes: number;
  readonly maxCalls: number;
  readonly maxCallsPerSource: number;
  readonly retryAfterS: number;
  readonly answerDelayMs: number;
  readonly answerOn: AnswerOn;
  readonly rtpTimeoutMs: number;
  readonly t1Ms: number;
  readonly t2Ms: number;
}

const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS, INFO';
const KNOWN = new Set([
  'INVITE',
  'ACK',
  'BYE',
  'CANCEL',
  'OPTIONS',
  'INFO',
  'REGISTER',
  'SUBSCRIBE',
  'NOTIFY',
  'REFER',
  'MESSAGE',
  'UPDATE',
  'PRACK',
  'PUBLISH',
]);
const MAX_TRANSACTIONS = 20_000;
const REASONS: Record<number, string> = {
  100: 'Trying',
  180: 'Ringing',
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  415: 'Unsupported Media Type',
  420: 'Bad Extension',
  481: 'Call/Transaction Does Not Exist',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  483: 'Too Many Hops',
  491: 'Request Pending',
  500: 'Server Internal Error',
  503: 'Service Unavailable',
};

interface ServerTx {
  readonly key: string;
  readonly request: SipRequest;
  readonly flow: Flow;
  last: Buffer | undefined;
  lastStatus: number;
  timers: NodeJS.Timeout[];
  call: SipCall | undefined;
}

type CallState = 'setup' | 'answered' | 'ended';

interface SipCall {
  readonly id: string;
  readonly sipCallId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly source: string;
  readonly flow: Flow;
  readonly invite: ServerTx;
  /** The caller's From (our To in requests we send) and To with our tag (our From). */
  readonly remoteFrom: string;
  readonly localTo: string;
  readonly remoteTarget: string;
  readonly routeSet: string[];
  readonly receivedAt: number;
  state: CallState;
  negotiated: Negotiated;
  media: MediaHandle | undefined;
  answer: string | undefined;
  sdpVersion: number;
  localCseq: number;
  remoteCseq: number;
  answeredAt: number | undefined;
  /** The 200 OK waiting for the ring delay (DUET_SIP_ANSWER_DELAY_MS). */
  answerTimer: NodeJS.Timeout | undefined;
  /** The call is open on every call service with its audio wired. */
  servicesReady: boolean;
  /** Why the call services failed after the 200 OK went out (a BYE with cause 503 follows the ACK). */
  failedAfterAnswer: string | undefined;
  /** The 2xx being retransmitted until its ACK. */
  pendingAck: { cseq: number; timers: NodeJS.Timeout[]; deadline: NodeJS.Timeout } | undefined;
}

const tag = () => randomBytes(6).toString('hex');
const branch = () => `z9hG4bK${randomBytes(8).toString('hex')}`;

export class SipUas {
  private readonly transactions = new Map<string, ServerTx>();
  private readonly clientTx = new Map<string, { timers: NodeJS.Timeout[] }>();
  private readonly calls = new Map<string, SipCall>();
  private readonly perSource = new Map<string, number>();
  private draining = false;
  private readonly sweeper: NodeJS.Timeout;
  private sipPort: number;

  constructor(private readonly o: UasOptions) {
    this.sipPort = o.sipPort;
    this.sweeper = setInterval(() => this.sweep(), 1_000);
    this.sweeper.unref();
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  setSipPort(port: number): void {
    this.sipPort = port;
  }

  /** Stop taking calls (new INVITEs get 503 + Retry-After); calls in progress go on. */
  drain(): void {
    this.draining = true;
  }

  /** One message from the network. Never throws. */
  receive(data: Buffer, flow: Flow): void {
    let message: SipRequest | SipResponse;
    try {
      message = parseMessage(data, this.o.maxMessageBytes);
    } catch (error) {
      const tooLarge = data.length > this.o.maxMessageBytes;
      this.o.metrics.errors.inc({ reason: tooLarge ? 'too_large' : 'malformed' });
      if (error instanceof SipParseError) this.badRequest(data, flow, error.message);
      return;
    }
    try {
      if (message.kind === 'response') this.onResponse(message);
      else this.onRequest(message, flow);
    } catch (error) {
      // A request that passed the parser but broke a handler: answered 500 where possible, never fatal.
      this.o.log.warn({ err: error, from: flow.address }, 'SIP request handling failed');
      this.o.metrics.errors.inc({ reason: 'malformed' });
      if (message.kind === 'request' && message.method !== 'ACK') {
        try {
          flow.send(this.response(message, 500));
        } catch {
          // nothing more to do
        }
      }
    }
  }

  /** 400 to a request the parser refused, when enough of it is readable to address an answer. */
  private badRequest(data: Buffer, flow: Flow, why: string): void {
    if (data.length > this.o.maxMessageBytes) return;
    const end = data.indexOf('\r\n\r\n', 0, 'latin1');
    const head = data.toString('latin1', 0, end < 0 ? Math.min(data.length, this.o.maxMessageBytes) : end);
    const lines = head.split(/\r?\n/);
    const first = lines[0] ?? '';
    const m = /^([A-Za-z]{1,32}) \S+ SIP\/2\.0$/.exec(first);
    if (!m || m[1]!.toUpperCase() === 'ACK') return;
    const copy: [string, string][] = [];
    for (const name of ['via', 'from', 'to', 'call-id', 'cseq']) {
      const line = lines.find((l) => l.toLowerCase().startsWith(`${name}:`));
      if (!line || line.length > 1_024 || hasControlCharacters(line)) return;
      copy.push([HEADER_NAMES[name]!, line.slice(name.length + 1).trim()]);
    }
    const reason = `Bad Request (${why.replace(/[^\x20-\x7e]/g, '')})`;
    flow.send(serialize({ startLine: `SIP/2.0 400 ${reason}`, headers: copy }));
    this.o.metrics.responses.inc({ code: '400' });
  }

  // ---- responses and requests we build ----

  private response(
    req: SipRequest,
    status: number,
    opts: { toTag?: string; headers?: [string, string][]; sdp?: string; reason?: string } = {},
  ): Buffer {
    const headers: [string, string][] = [];
    for (const v of headerList(req, 'via')) headers.push(['Via', v]);
    headers.push(['From', header(req, 'from')!]);
    let to = header(req, 'to')!;
    if (opts.toTag && parseNameAddr(to).tag === undefined) to = `${to};tag=${opts.toTag}`;
    headers.push(['To', to]);
    headers.push(['Call-ID', header(req, 'call-id')!]);
    headers.push(['CSeq', header(req, 'cseq')!]);
    if (req.method === 'INVITE' && status > 100 && status < 300) {
      for (const rr of headerList(req, 'record-route')) headers.push(['Record-Route', rr]);
    }
    headers.push(['Server', 'Duet sip-bridge']);
    headers.push(...(opts.headers ?? []));
    if (opts.sdp !== undefined) headers.push(['Content-Type', 'application/sdp']);
    return serialize({
      startLine: `SIP/2.0 ${status} ${opts.reason ?? REASONS[status] ?? 'Unknown'}`,
      headers,
      ...(opts.sdp !== undefined ? { body: opts.sdp } : {}),
    });
  }

  private contact(flow: Flow): string {
    const host = this.o.announcedIp.includes(':') ? `[${this.o.announcedIp}]` : this.o.announcedIp;
    return `<sip:duet@${host}:${this.sipPort};transport=${flow.transport.toLowerCase()}>`;
  }

  /** Sends a response in `tx` and keeps it for retransmitted requests; schedules timers. */
  private respond(
    tx: ServerTx,
    status: number,
    opts: Parameters<SipUas['response']>[2] & { reason?: string } = {},
  ): void {
    const data = this.response(tx.request, status, opts);
    tx.last = data;
    tx.lastStatus = status;
    tx.flow.send(data);
    this.o.metrics.responses.inc({ code: String(status) });
    if (status < 200) return;
    const { t1Ms, t2Ms } = this.o;
    const udp = tx.flow.transport === 'UDP';
    if (tx.request.method === 'INVITE' && status >= 300) {
      // Timer G (UDP: retransmit until ACK) and H (give up after 64*T1).
      if (udp) this.retransmit(tx.timers, () => this.resend(tx), t1Ms, t2Ms);
      tx.timers.push(setTimeout(() => this.forget(tx), 64 * t1Ms));
    } else if (tx.request.method !== 'INVITE') {
      // Timer J: absorb retransmissions of the request (UDP), then forget.
      tx.timers.push(setTimeout(() => this.forget(tx), udp ? 64 * t1Ms : 0));
    }
  }

  private resend(tx: ServerTx): void {
    if (!tx.last || !tx.flow.isOpen) return;
    tx.flow.send(tx.last);
    this.o.metrics.retransmissions.inc();
  }

  /** Calls `send` at T1, 2*T1, 4*T1 ... capped at T2 (the timer handles go into `timers`). */
  private retransmit(timers: NodeJS.Timeout[], send: () => void, t1: number, t2: number): void {
    let interval = t1;
    const arm = () => {
      const t = setTimeout(() => {
        send();
        interval = Math.min(interval * 2, t2);
        arm();
      }, interval);
      timers.push(t);
      if (timers.length > 16) timers.splice(0, timers.length - 16);
    };
    arm();
  }

  private forget(tx: ServerTx): void {
    for (const t of tx.timers) clearTimeout(t);
    tx.timers = [];
    if (this.transactions.get(tx.key) === tx) this.transactions.delete(tx.key);
  }

  private txKey(req: SipRequest, method: string): string {
    const via = parseVia(headerList(req, 'via')[0]!);
    const b = via.branch?.startsWith('z9hG4bK')
      ? via.branch
      : `${header(req, 'call-id')}|${parseCSeq(header(req, 'cseq')!).seq}|${parseNameAddr(header(req, 'from')!).tag}`;
    return `${b}|${via.host}:${via.port ?? ''}|${method}`;
  }

  // ---- requests ----

  private onRequest(req: SipRequest, flow: Flow) {
    const method = req.method;
    this.o.metrics.requests.inc({ method: KNOWN.has(method) ? method : 'other' });
    const key = this.txKey(req, method === 'ACK' ? 'INVITE' : method);
    const existing = this.transactions.get(key);
    if (method === 'ACK') {
      if (existing) {
        // ACK of a non-2xx final response: the transaction is confirmed (Timer I: absorb more ACKs).
        for (const t of existing.timers) clearTimeout(t);
        existing.timers = [setTimeout(() => this.forget(existing), this.o.t1Ms * 10)];
        if (existing.lastStatus >= 200 && existing.lastStatus < 300) this.onAck(req);
        return;
      }
      this.onAck(req);
      return;
    }
    if (existing) {
      // A retransmitted request: the last response again (nothing yet: it is still being worked on).
      this.resend(existing);
      return;
    }
    const tx: ServerTx = {
      key,
      request: req,
      flow,
      last: undefined,
      lastStatus: 0,
      timers: [],
      call: undefined,
    };
    if (this.transactions.size < MAX_TRANSACTIONS) this.transactions.set(key, tx);
    const toTag = parseNameAddr(header(req, 'to')!).tag;
    if (method === 'CANCEL') return this.onCancel(tx);
    if (header(req, 'max-forwards') === '0' && method !== 'OPTIONS') {
      this.o.metrics.errors.inc({ reason: 'malformed' });
      return this.respond(tx, 483, { toTag: toTag ?? tag() });
    }
    // Extensions the caller requires and the bridge lacks (100rel, timer, ...): 420 (RFC 3261 8.2.2.3).
    const required = headerList(req, 'require').filter((r) => r.length > 0);
    if (required.length > 0) {
      this.o.metrics.errors.inc({ reason: 'not_allowed' });
      return this.respond(tx, 420, {
        toTag: toTag ?? tag(),
        headers: [['Unsupported', required.join(', ')]],
      });
    }
    if (toTag !== undefined) return this.inDialog(tx, toTag);
    switch (method) {
      case 'INVITE':
        return void this.onInvite(tx);
      case 'OPTIONS':
        return this.onOptions(tx);
      case 'BYE':
      case 'INFO':
        this.o.metrics.errors.inc({ reason: 'no_dialog' });
        return this.respond(tx, 481, { toTag: tag() });
      default:
        this.o.metrics.errors.inc({ reason: 'not_allowed' });
        return this.respond(tx, 405, { toTag: tag(), headers: [['Allow', ALLOW]] });
    }
  }

  private onOptions(tx: ServerTx) {
    const admitted = this.o.guard.admit(tx.flow.address, 'OPTIONS', undefined);
    // Keep-alives from a trunk that authenticates by digest are answered too (no call is made).
    if (!admitted.ok && admitted.status === 403) {
      this.o.metrics.errors.inc({ reason: 'forbidden' });
      return this.respond(tx, 403, { toTag: tag() });
    }
    this.respond(tx, 200, {
      toTag: tag(),
      headers: [
        ['Allow', ALLOW],
        ['Accept', 'application/sdp'],
        ['Supported', ''],
        ['Contact', this.contact(tx.flow)],
      ],
    });
  }

  private refuse(
    tx: ServerTx,
    status: number,
    reason: SipErrorReason,
    headers: [string, string][] = [],
  ): void {
    this.o.metrics.errors.inc({ reason });
    this.respond(tx, status, { toTag: tag(), headers });
  }

  private retryAfter(): [string, string] {
    return ['Retry-After', String(this.o.retryAfterS)];
  }

  private async onInvite(tx: ServerTx): Promise<void> {
    const req = tx.request;
    const source = tx.flow.address;
    this.o.metrics.invites.inc();
    if (this.draining) return this.refuse(tx, 503, 'draining', [this.retryAfter()]);
    if (!this.o.limiter.take(source, Date.now()))
      return this.refuse(tx, 503, 'rate_limited', [this.retryAfter()]);
    const admitted = this.o.guard.admit(source, 'INVITE', header(req, 'authorization'));
    if (!admitted.ok) {
      if (admitted.status === 401)
        return this.refuse(tx, 401, 'auth_challenge', [['WWW-Authenticate', admitted.challenge]]);
      return this.refuse(tx, 403, admitted.reason);
    }
    if (this.calls.size >= this.o.maxCalls || (this.perSource.get(source) ?? 0) >= this.o.maxCallsPerSource) {
      return this.refuse(tx, 503, 'max_calls', [this.retryAfter()]);
    }
    // No capacity: refused before any further work (the cheapest answer under a burst).
    if (!this.o.backend.hasCapacity()) return this.refuse(tx, 503, 'no_capacity', [this.retryAfter()]);
    const contentType = header(req, 'content-type')?.split(';')[0]?.trim().toLowerCase();
    if (req.body.length === 0 || contentType !== 'application/sdp') {
      // Offerless INVITEs (the offer in the 200, the answer in the ACK) are not supported.
      return this.refuse(tx, 488, 'codec', [['Warning', '399 duet "an SDP offer is required"']]);
    }
    let negotiated: Negotiated;
    try {
      negotiated = negotiate(req.body.toString('utf8'), this.o.codecs);
    } catch (error) {
      if (!(error instanceof SdpError)) throw error;
      return this.refuse(tx, 488, 'codec', [['Warning', `399 duet "${error.message}"`]]);
    }
    let contact: string;
    try {
      contact = parseNameAddr(headerList(req, 'contact')[0] ?? '').uri;
      parseSipUri(contact);
    } catch {
      return this.refuse(tx, 400, 'malformed');
    }
    const from = parseNameAddr(header(req, 'from')!);
    const localTag = tag();
    const call: SipCall = {
      id: `sip-${randomBytes(8).toString('hex')}`,
      sipCallId: header(req, 'call-id')!,
      localTag,
      remoteTag: from.tag ?? '',
      source,
      flow: tx.flow,
      invite: tx,
      remoteFrom: header(req, 'from')!,
      localTo: `${header(req, 'to')!};tag=${localTag}`,
      remoteTarget: contact,
      routeSet: headerList(req, 'record-route'),
      receivedAt: performance.now(),
      state: 'setup',
      negotiated,
      media: undefined,
      answer: undefined,
      sdpVersion: 1,
      localCseq: 1,
      remoteCseq: parseCSeq(header(req, 'cseq')!).seq,
      answeredAt: undefined,
      answerTimer: undefined,
      servicesReady: false,
      failedAfterAnswer: undefined,
      pendingAck: undefined,
    };
    tx.call = call;
    this.calls.set(this.dialogKey(call.sipCallId, localTag), call);
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
    this.o.metrics.activeCalls.set(this.calls.size);
    this.respond(tx, 100);
    this.respond(tx, 180, { toTag: localTag, headers: [['Contact', this.contact(tx.flow)]] });
    // Whether the 200 OK waits for the call services: on request, or when the capacity that
    // admitted the call rests on no fresh heartbeat (inference may be down or unknown yet).
    const waitForServices = this.o.answerOn === 'services' || !this.o.backend.capacityKnown();
    let media: MediaHandle;
    try {
      media = await this.o.backend.open({
        callId: call.id,
        negotiated,
        isCancelled: () => call.state === 'ended',
        onDtmf: (digit) => this.dtmf(call, digit),
        onMediaClosed: (detail) => this.hangUp(call, 'media_closed', detail),
      });
    } catch (error) {
      // The local phase failed (no media worker, no RTP port, mediasoup): nothing is open on the services.
      if (call.state === 'ended') return; // cancelled meanwhile: 487 went out
      this.removeCall(call);
      call.state = 'ended';
      const full = error instanceof NoCapacityError;
      if (!full) this.o.log.warn({ callId: call.id, err: (error as Error).message }, 'SIP call setup failed');
      this.o.metrics.errors.inc({ reason: full ? 'no_capacity' : 'setup_failed' });
      return this.respond(tx, 503, { toTag: localTag, headers: [this.retryAfter()] });
    }
    if (call.state === 'ended') {
      // Cancelled (or hung up) while the media was being made: released already, but for the media.
      media.close();
      return;
    }
    call.media = media;
    call.answer = buildAnswer(req.body.toString('utf8'), negotiated, {
      ip: this.o.announcedIp,
      port: media.port,
      sessionId: String(Date.now()),
      sessionVersion: call.sdpVersion,
    });
    // The services phase runs from here on, whether or not the 200 OK waits for it.
    const services = media
      .openServices()
      .then(
        () => this.servicesReady(call),
        (error: unknown) => this.servicesFailed(call, error as Error),
      )
      .catch((error: unknown) =>
        this.o.log.warn({ callId: call.id, err: error }, 'SIP call setup handling failed'),
      );
    if (waitForServices) {
      await services;
      if (call.state !== 'setup' || !call.servicesReady) return;
    }
    const setupMs = performance.now() - call.receivedAt;
    const delay = this.o.answerDelayMs - setupMs;
    const answer = () => {
      call.answerTimer = undefined;
      if (call.state !== 'setup') return;
      call.state = 'answered';
      call.answeredAt = performance.now();
      this.o.metrics.accepted.inc();
      this.o.metrics.setupMs.observe(setupMs);
      this.sendOk(call, tx);
      this.o.log.info(
        {
          callId: call.id,
          sipCallId: call.sipCallId,
          source,
          trunk: admitted.trunk,
          codec: negotiated.name,
          setupMs: Math.round(setupMs),
          servicesReady: call.servicesReady,
          ...timingFields(media.timings),
        },
        'SIP call answered',
      );
    };
    if (delay > 0) call.answerTimer = setTimeout(answer, delay);
    else answer();
  }

  /** The services phase succeeded: the call has audio both ways from now on. */
  private servicesReady(call: SipCall): void {
    if (call.state === 'ended') {
      // Ended during the services phase after they answered: closed on them again (idempotent).
      this.o.backend.closeCall(call.id, 'ended during setup');
      return;
    }
    call.servicesReady = true;
    const readyMs = performance.now() - call.receivedAt;
    this.o.metrics.servicesReadyMs.observe(readyMs);
    this.o.log.info(
      {
        callId: call.id,
        sipCallId: call.sipCallId,
        readyMs: Math.round(readyMs),
        answered: call.state === 'answered',
        ...timingFields(call.media?.timings),
      },
      'SIP call services ready',
    );
  }

  /**
   * The services phase failed. Before the 200 OK: 503 + Retry-After (as if the call had waited for
   * the services). After it: a BYE with `Reason: SIP;cause=503` (RFC 3326), once the 200 is
   * acknowledged (RFC 3261 15: no BYE before the ACK), counted as setup_failed_after_answer.
   */
  private servicesFailed(call: SipCall, error: Error): void {
    if (call.state === 'ended') {
      // Cancelled or hung up meanwhile (LinkClosedError, or the router gone): released already.
      this.o.backend.closeCall(call.id, 'setup failed');
      return;
    }
    const full = error instanceof NoCapacityError;
    if (call.state === 'setup') {
      if (call.answerTimer) clearTimeout(call.answerTimer);
      call.answerTimer = undefined;
      if (!full) this.o.log.warn({ callId: call.id, err: error.message }, 'SIP call setup failed');
      this.releaseCall(call, 'setup failed');
      this.o.metrics.errors.inc({ reason: full ? 'no_capacity' : 'setup_failed' });
      this.respond(call.invite, 503, { toTag: call.localTag, headers: [this.retryAfter()] });
      return;
    }
    this.failAfterAnswer(call, full ? 'no inference capacity' : `call setup failed: ${error.message}`);
  }

  /** The services of an answered call failed to open: released now, the BYE (cause 503) after the ACK. */
  private failAfterAnswer(call: SipCall, detail: string): void {
    if (call.state !== 'answered' || call.failedAfterAnswer !== undefined) return;
    call.failedAfterAnswer = detail;
    this.o.metrics.errors.inc({ reason: 'setup_failed_after_answer' });
    this.o.log.warn(
      { callId: call.id, sipCallId: call.sipCallId, err: detail },
      'SIP call services failed after the answer: hanging up (BYE, Reason cause=503)',
    );
    if (!call.pendingAck) {
      this.hangUp(call, 'setup_failed', detail);
      return;
    }
    // Until the ACK (or its deadline) only the dialog stays: no media, nothing on the services.
    call.media?.close();
    call.media = undefined;
    this.o.backend.closeCall(call.id, 'setup failed');
  }

  /** 200 OK with the current answer; over UDP retransmitted (T1 doubling to T2) until the ACK. */
  private sendOk(call: SipCall, tx: ServerTx): void {
    this.respond(tx, 200, {
      toTag: call.localTag,
      headers: [['Contact', this.contact(call.flow)]],
      sdp: call.answer!,
    });
    const cseq = parseCSeq(header(tx.request, 'cseq')!).seq;
    this.clearPendingAck(call);
    const timers: NodeJS.Timeout[] = [];
    if (call.flow.transport === 'UDP')
      this.retransmit(timers, () => this.resend(tx), this.o.t1Ms, this.o.t2Ms);
    const deadline = setTimeout(() => {
      for (const t of timers) clearTimeout(t);
      call.pendingAck = undefined;
      if (call.failedAfterAnswer !== undefined) {
        this.hangUp(call, 'setup_failed', call.failedAfterAnswer);
        return;
      }
      this.o.metrics.errors.inc({ reason: 'ack_timeout' });
      this.hangUp(call, 'ack_timeout', 'no ACK for the 200 OK');
    }, 64 * this.o.t1Ms);
    call.pendingAck = { cseq, timers, deadline };
    // The transaction stays (retransmitted INVITEs get the 200 again) until the ACK or the deadline.
    tx.timers.push(setTimeout(() => this.forget(tx), 64 * this.o.t1Ms));
  }

  private clearPendingAck(call: SipCall): void {
    const p = call.pendingAck;
    if (!p) return;
    for (const t of p.timers) clearTimeout(t);
    clearTimeout(p.deadline);
    call.pendingAck = undefined;
  }

  private onAck(req: SipRequest): void {
    const toTag = parseNameAddr(header(req, 'to')!).tag;
    if (toTag === undefined) return;
    const call = this.calls.get(this.dialogKey(header(req, 'call-id')!, toTag));
    if (!call?.pendingAck) return;
    if (parseCSeq(header(req, 'cseq')!).seq !== call.pendingAck.cseq) return;
    this.clearPendingAck(call);
    // The services failed after the 200 OK: the BYE waited for this ACK.
    if (call.failedAfterAnswer !== undefined) this.hangUp(call, 'setup_failed', call.failedAfterAnswer);
  }

  private onCancel(tx: ServerTx) {
    const inviteKey = this.txKey(tx.request, 'INVITE');
    const invite = this.transactions.get(inviteKey);
    if (!invite) {
      this.o.metrics.errors.inc({ reason: 'no_dialog' });
      return this.respond(tx, 481, { toTag: tag() });
    }
    const call = invite.call;
    this.respond(tx, 200, { toTag: call?.localTag ?? tag() });
    if (call && call.state === 'setup') {
      call.state = 'ended';
      this.o.metrics.errors.inc({ reason: 'cancelled' });
      this.respond(invite, 487, { toTag: call.localTag });
      this.releaseCall(call, 'cancelled');
    }
  }

  private dialogKey(callId: string, localTag: string): string {
    return `${callId}|${localTag}`;
  }

  private inDialog(tx: ServerTx, toTag: string) {
    const req = tx.request;
    const call = this.calls.get(this.dialogKey(header(req, 'call-id')!, toTag));
    const fromTag = parseNameAddr(header(req, 'from')!).tag;
    if (!call || call.state === 'ended' || fromTag !== call.remoteTag) {
      this.o.metrics.errors.inc({ reason: 'no_dialog' });
      return this.respond(tx, 481);
    }
    const cseq = parseCSeq(header(req, 'cseq')!).seq;
    if (cseq <= call.remoteCseq && req.method !== 'ACK') {
      return this.respond(tx, 500, { reason: 'CSeq Out Of Order' });
    }
    call.remoteCseq = cseq;
    switch (req.method) {
      case 'BYE':
        this.respond(tx, 200);
        return this.endCall(call, 'caller_bye', 'the caller hung up');
      case 'INVITE':
        return this.onReInvite(call, tx);
      case 'OPTIONS':
        return this.respond(tx, 200, { headers: [['Allow', ALLOW]] });
      case 'INFO':
        return this.onInfo(call, tx);
      default:
        this.o.metrics.errors.inc({ reason: 'not_allowed' });
        return this.respond(tx, 405, { headers: [['Allow', ALLOW]] });
    }
  }

  private onReInvite(call: SipCall, tx: ServerTx) {
    if (call.state !== 'answered') return this.respond(tx, 491);
    if (call.pendingAck) return this.respond(tx, 491);
    const req = tx.request;
    let direction: Direction = 'sendrecv';
    if (req.body.length > 0) {
      let n: Negotiated;
      try {
        n = negotiate(req.body.toString('utf8'), [call.negotiated.name]);
      } catch (error) {
        if (!(error instanceof SdpError)) throw error;
        this.o.metrics.errors.inc({ reason: 'codec' });
        return this.respond(tx, 488, { headers: [['Warning', `399 duet "${error.message}"`]] });
      }
      const old = call.negotiated;
      const moved =
        n.remote.ip !== '0.0.0.0' && (n.remote.ip !== old.remote.ip || n.remote.port !== old.remote.port);
      if (n.codec.payloadType !== old.codec.payloadType || moved) {
        this.o.metrics.errors.inc({ reason: 'codec' });
        return this.respond(tx, 488, {
          headers: [['Warning', '399 duet "the codec and media address cannot change within a call"']],
        });
      }
      direction = n.direction;
      call.negotiated = { ...n, remote: old.remote };
      call.sdpVersion++;
      call.answer = buildAnswer(req.body.toString('utf8'), call.negotiated, {
        ip: this.o.announcedIp,
        port: call.media!.port,
        sessionId: call.answer!.match(/^o=\S+ (\d+)/m)?.[1] ?? '1',
        sessionVersion: call.sdpVersion,
      });
    }
    const held = direction === 'sendonly' || direction === 'inactive';
    call.media?.setHeld(held);
    this.o.log.info({ callId: call.id, held }, held ? 'SIP call on hold' : 'SIP call resumed');
    tx.call = call;
    this.sendOk(call, tx);
  }

  private onInfo(call: SipCall, tx: ServerTx): void {
    const type = header(tx.request, 'content-type')?.split(';')[0]?.trim().toLowerCase();
    if (type === 'application/dtmf-relay' || type === 'application/dtmf') {
      const body = tx.request.body.toString('latin1');
      const digit = (/^\s*Signal\s*=\s*([0-9*#A-D])\s*$/im.exec(body) ??
        /^\s*([0-9*#A-D])\s*$/.exec(body))?.[1];
      if (digit) this.dtmf(call, digit);
    }
    this.respond(tx, 200);
  }

  private dtmf(call: SipCall, digit: string): void {
    if (call.state === 'ended') return;
    this.o.metrics.dtmf.inc();
    this.o.publishDtmf(call.id, digit);
    this.o.log.info({ callId: call.id, digit }, 'DTMF');
  }

  // ---- ending calls ----

  private removeCall(call: SipCall): void {
    const key = this.dialogKey(call.sipCallId, call.localTag);
    if (this.calls.get(key) !== call) return;
    this.calls.delete(key);
    const n = (this.perSource.get(call.source) ?? 1) - 1;
    if (n > 0) this.perSource.set(call.source, n);
    else this.perSource.delete(call.source);
    this.o.metrics.activeCalls.set(this.calls.size);
  }

  /** Media and the call services released; the dialog forgotten. */
  private releaseCall(call: SipCall, why: string): void {
    call.state = 'ended';
    if (call.answerTimer) clearTimeout(call.answerTimer);
    call.answerTimer = undefined;
    this.clearPendingAck(call);
    call.media?.close();
    this.o.backend.closeCall(call.id, why);
    this.removeCall(call);
  }

  private endCall(call: SipCall, reason: SipEndReason, detail: string): void {
    if (call.state === 'ended') return;
    const answered = call.state === 'answered';
    this.releaseCall(call, `${reason}: ${detail}`);
    if (answered) {
      this.o.metrics.ended.inc({ reason });
      this.o.metrics.durationSeconds.observe(
        (performance.now() - (call.answeredAt ?? call.receivedAt)) / 1000,
      );
    }
    this.o.log.info({ callId: call.id, sipCallId: call.sipCallId, reason, detail }, 'SIP call ended');
  }

  /**
   * Ends a call from our side: BYE when answered (or a final error while still setting up),
   * then releases everything. Idempotent.
   */
  hangUp(call: SipCall, reason: SipEndReason, detail: string): void {
    if (call.state === 'ended') return;
    if (call.state === 'setup') {
      this.respond(call.invite, 503, { toTag: call.localTag, headers: [this.retryAfter()] });
    } else if (call.flow.isOpen) {
      // RFC 3326: cause 503 when the call services failed after the answer, else 200 (a normal end).
      this.sendBye(call, detail, call.failedAfterAnswer !== undefined ? 503 : 200);
    }
    this.endCall(call, reason, detail);
  }

  private sendBye(call: SipCall, detail: string, cause: number): void {
    const b = branch();
    const host = this.o.announcedIp.includes(':') ? `[${this.o.announcedIp}]` : this.o.announcedIp;
    const headers: [string, string][] = [
      ['Via', `SIP/2.0/${call.flow.transport} ${host}:${this.sipPort};branch=${b};rport`],
      ['Max-Forwards', '70'],
      ['From', call.localTo],
      ['To', call.remoteFrom],
      ['Call-ID', call.sipCallId],
      ['CSeq', `${++call.localCseq} BYE`],
    ];
    for (const r of [...call.routeSet].reverse()) headers.push(['Route', r]);
    headers.push(['Reason', `SIP;cause=${cause};text="${detail.replace(/["\\\r\n]/g, '')}"`]);
    const data = serialize({ startLine: `BYE ${call.remoteTarget} SIP/2.0`, headers });
    // Sent on the flow the call came in on (symmetric signalling, works behind NAT).
    call.flow.send(data);
    const entry = { timers: [] as NodeJS.Timeout[] };
    this.clientTx.set(b, entry);
    if (call.flow.transport === 'UDP') {
      this.retransmit(
        entry.timers,
        () => {
          call.flow.send(data);
          this.o.metrics.retransmissions.inc();
        },
        this.o.t1Ms,
        this.o.t2Ms,
      );
    }
    // Timer F: give up after 64*T1.
    entry.timers.push(setTimeout(() => this.endClientTx(b), 64 * this.o.t1Ms));
  }

  private endClientTx(b: string): void {
    const entry = this.clientTx.get(b);
    if (!entry) return;
    for (const t of entry.timers) clearTimeout(t);
    this.clientTx.delete(b);
  }

  private onResponse(res: SipResponse): void {
    const via = parseVia(headerList(res, 'via')[0]!);
    if (via.branch && res.status >= 200) this.endClientTx(via.branch);
  }

  /** Ends the call whose Duet call id is `callId` (a call service closed it). */
  closeByService(callId: string, detail: string): boolean {
    for (const call of this.calls.values()) {
      if (call.id === callId) {
        // Answered while the services were still opening: their CLOSED is the setup failing.
        if (call.state === 'answered' && !call.servicesReady) this.failAfterAnswer(call, detail);
        else this.hangUp(call, 'closed_by_service', detail);
        return true;
      }
    }
    return false;
  }

  /** Once a second: RTP counts into metrics, inactive calls ended. */
  private sweep(): void {
    const now = performance.now();
    let inbound = 0;
    let outbound = 0;
    for (const call of [...this.calls.values()]) {
      if (!call.media) continue;
      const c = call.media.takeCounts();
      inbound += c.in;
      outbound += c.out;
      const idle = call.media.idleMs(now);
      if (call.state === 'answered' && idle !== undefined && idle > this.o.rtpTimeoutMs) {
        this.hangUp(call, 'rtp_timeout', `no RTP for ${Math.round(idle / 1000)} s`);
      }
    }
    if (inbound) this.o.metrics.rtpPackets.inc({ direction: 'in' }, inbound);
    if (outbound) this.o.metrics.rtpPackets.inc({ direction: 'out' }, outbound);
  }

  /** Ends every call (BYE to the answered ones) and stops the timers. */
  close(): void {
    clearInterval(this.sweeper);
    for (const call of [...this.calls.values()]) this.hangUp(call, 'shutdown', 'the bridge is shutting down');
    for (const tx of this.transactions.values()) for (const t of tx.timers) clearTimeout(t);
    this.transactions.clear();
    for (const b of [...this.clientTx.keys()]) this.endClientTx(b);
  }
}

/** Setup timings (ms) as log fields: `media` -> `mediaMs`, rounded; phases not done yet left out. */
function timingFields(
  timings: Readonly<Record<string, number | undefined>> | undefined,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(timings ?? {})) if (v !== undefined) out[`${k}Ms`] = Math.round(v);
  return out;
}

function hasControlCharacters(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x20) return true;
  return false;
}
