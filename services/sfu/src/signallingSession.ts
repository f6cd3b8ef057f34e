// One caller's signalling socket: the token first, then the mediasoup requests of one call.
// Every way out (hang-up, socket closed, idle, bad input, the call closed elsewhere) ends the
// call and the socket together, so nothing is left behind.

import type { Logger } from '@duet/runtime';
import type { types } from 'mediasoup';
import type { WebSocket } from 'ws';
import type { SfuMetrics } from './metrics.js';
import { type CallEndReason, CallRequestError, type SfuCall } from './sfuCall.js';
import {
  CLOSE,
  type CloseKind,
  errorResponse,
  notification,
  parseRequest,
  type Request,
  response,
} from './signallingProtocol.js';
import { Timeline } from './timeline.js';
import { type CallGrant, TokenError, verifyCallToken } from './token.js';

export interface SessionHost {
  readonly tokenSecret: string;
  readonly joinTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxMessageBytes: number;
  /** Extra fields of the join answer (e.g. the pipeline delay the client shows). */
  readonly joinExtras: Record<string, unknown>;
  readonly metrics: SfuMetrics;
  readonly log: Logger;
  /**
   * Opens the call named by the grant (throws SessionRefusal when it cannot); `timeline` is the
   * session's setup timeline, for the call to mark its steps in.
   */
  openCall(
    grant: CallGrant,
    onEnded: (reason: CallEndReason, detail: string) => void,
    timeline: Timeline,
  ): Promise<SfuCall>;
}

/** A refusal that ends the session with this close kind. */
export class SessionRefusal extends Error {
  override readonly name = 'SessionRefusal';
  constructor(
    readonly kind: CloseKind,
    message: string,
  ) {
    super(message);
  }
}

const END_CLOSE: Record<CallEndReason, CloseKind> = {
  hangup: 'hangup',
  caller_left: 'hangup',
  idle_timeout: 'idle',
  setup_failed: 'setupFailed',
  worker_died: 'mediaFailed',
  dtls_failed: 'callClosed',
  closed_by_service: 'callClosed',
  shutdown: 'shutdown',
};

export class SignallingSession {
  private call: SfuCall | undefined;
  private joining = false;
  private ended = false;
  private idleTimer: NodeJS.Timeout;
  private readonly joinTimer: NodeJS.Timeout;
  /** Requests run one at a time, in order (mediasoup-client's flow depends on it). */
  private queue: Promise<void> = Promise.resolve();
  /** The setup's steps, in ms since the socket opened (logged by the service once media is up). */
  readonly timeline = new Timeline();

  constructor(
    private readonly ws: WebSocket,
    private readonly host: SessionHost,
    readonly ip: string,
  ) {
    host.metrics.sockets.inc();
    this.joinTimer = setTimeout(
      () => this.end('tokenMissing', 'no join with a token in time'),
      host.joinTimeoutMs,
    );
    this.idleTimer = setTimeout(() => this.onIdle(), host.idleTimeoutMs);
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.onSocketClosed());
    ws.on('error', () => undefined);
  }

  private onIdle(): void {
    this.call?.close('idle_timeout', 'no signalling message');
    this.end('idle', 'no message within the idle timeout');
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.ended) return;
    this.idleTimer.refresh();
    if (isBinary) {
      this.refuse('malformed', 'binary frames are not part of the protocol');
      return;
    }
    if (data.length > this.host.maxMessageBytes) {
      this.refuse('tooLarge', `message over ${this.host.maxMessageBytes} bytes`);
      return;
    }
    const parsed = parseRequest(data.toString('utf8'));
    if (!parsed.ok) {
      this.refuse('malformed', parsed.message);
      return;
    }
    const { request } = parsed;
    this.markArrival(request);
    if (!this.call && !this.joining && request.method !== 'join') {
      this.refuse('tokenMissing', 'the first message must be join with a token');
      return;
    }
    this.queue = this.queue
      .then(() => this.handle(request))
      .catch((error: unknown) => {
        this.host.log.warn({ err: error, method: request.method }, 'signalling request failed');
        this.end('internal', 'internal error');
      });
  }

  /** When the setup's requests reached the SFU (before they wait their turn in the queue). */
  private markArrival(request: Request): void {
    const { method } = request;
    if (method === 'join') this.timeline.mark('joinReceived');
    else if (method === 'connectTransport' && this.call)
      this.timeline.mark(
        request.data.transportId === this.call.sendTransport.id
          ? 'sendConnectReceived'
          : 'recvConnectReceived',
      );
    else if (method === 'produce' || method === 'consume' || method === 'resumeConsumer')
      this.timeline.mark(`${method}Received`);
  }

  /** Ends the session for bad input; `requestId` also gets an error response (after the notification). */
  private refuse(kind: CloseKind, message: string, requestId?: number): void {
    this.host.metrics.rejected.inc({ reason: CLOSE[kind].reason });
    this.call?.close('caller_left', CLOSE[kind].reason);
    this.end(kind, message, requestId);
  }

  private async handle(request: Request): Promise<void> {
    if (this.ended) return;
    if (request.method === 'join') return this.join(request.id, request.data.token);
    const call = this.call;
    if (!call) return this.refuse('tokenMissing', 'join first');
    if (request.method === 'resumeConsumer') {
      // Answered once the call is open on every service; the wait holds no other request up
      // (the caller's transports connect and its audio is produced meanwhile).
      const { consumerId } = request.data;
      void this.serve(request, call, async () => {
        await call.resumeConsumer(consumerId);
        this.reply(response(request.id, {}));
      }).catch((error: unknown) => {
        this.host.log.warn({ err: error, method: request.method }, 'signalling request failed');
        this.end('internal', 'internal error');
      });
      return;
    }
    return this.serve(request, call, async () => {
      switch (request.method) {
        case 'connectTransport':
          await call.connectTransport(
            request.data.transportId,
            request.data.dtlsParameters as unknown as types.DtlsParameters,
          );
          return this.reply(response(request.id, {}));
        case 'produce': {
          const id = await call.produce(
            request.data.transportId,
            request.data.rtpParameters as unknown as types.RtpParameters,
          );
          return this.reply(response(request.id, { id }));
        }
        case 'consume': {
          const consumer = await call.consume(
            request.data.rtpCapabilities as unknown as types.RtpCapabilities,
          );
          return this.reply(response(request.id, consumer));
        }
        case 'getStats':
          return this.reply(response(request.id, await call.stats()));
        case 'ping':
          return this.reply(response(request.id, { t: request.data.t ?? null, serverTime: Date.now() }));
        case 'hangup':
          this.reply(response(request.id, {}));
          call.close('hangup', 'caller hung up');
          return;
      }
    });
  }

  /**
   * Runs one request of the call: a refusal the call can live with is answered with an error
   * response; anything else rejects (the caller ends the session).
   */
  private async serve(request: Request, call: SfuCall, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      if (error instanceof CallRequestError)
        return this.reply(errorResponse(request.id, error.code, error.message));
      // mediasoup's own errors (bad DTLS or RTP parameters): the request fails, the call goes on.
      if (error instanceof TypeError || (error as Error).name === 'UnsupportedError') {
        return this.reply(errorResponse(request.id, 'bad_parameters', (error as Error).message));
      }
      if (call.isClosed) return;
      throw error;
    }
  }

  private async join(id: number, token: string | undefined): Promise<void> {
    if (this.call || this.joining) return this.refuse('malformed', 'already joined');
    this.joining = true;
    clearTimeout(this.joinTimer);
    let grant: CallGrant;
    try {
      grant = await verifyCallToken(token, this.host.tokenSecret);
    } catch (error) {
      const code = error instanceof TokenError ? error.code : 'token_invalid';
      const kind: CloseKind =
        code === 'token_missing'
          ? 'tokenMissing'
          : code === 'token_expired'
            ? 'tokenExpired'
            : 'tokenInvalid';
      return this.refuse(kind, (error as Error).message, id);
    }
    this.timeline.mark('tokenVerified');
    if (this.ended) return;
    let call: SfuCall;
    try {
      call = await this.host.openCall(
        grant,
        (reason, detail) => this.onCallEnded(reason, detail),
        this.timeline,
      );
    } catch (error) {
      const kind = error instanceof SessionRefusal ? error.kind : 'setupFailed';
      return this.refuse(kind, (error as Error).message, id);
    }
    if (this.ended) {
      call.close('caller_left', 'socket closed during join');
      return;
    }
    this.call = call;
    this.reply(
      response(id, {
        ...call.joinAnswer(),
        agent: grant.agent,
        expiresAt: grant.expiresAt,
        ...this.host.joinExtras,
      }),
    );
    this.timeline.mark('joinAnswered');
  }

  private onCallEnded(reason: CallEndReason, detail: string): void {
    if (this.ended) return;
    this.reply(notification('closed', { reason, detail }));
    this.end(END_CLOSE[reason], detail || reason);
  }

  private reply(text: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(text);
  }

  /**
   * Closes the socket with the kind's code. The error goes first as a notification (the client
   * knows the code before any rejected request), then as the response to `requestId` if given.
   */
  private end(kind: CloseKind, message: string, requestId?: number): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.joinTimer);
    clearTimeout(this.idleTimer);
    const { code, reason } = CLOSE[kind];
    if (code !== CLOSE.hangup.code) this.reply(notification('error', { code, reason, message }));
    if (requestId !== undefined) this.reply(errorResponse(requestId, reason, message));
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING)
      this.ws.close(code, reason);
    // A socket that does not finish the closing handshake is cut.
    setTimeout(() => this.ws.terminate(), 2_000).unref();
  }

  private onSocketClosed(): void {
    this.host.metrics.sockets.dec();
    this.call?.close('caller_left', 'signalling socket closed');
    this.ended = true;
    clearTimeout(this.joinTimer);
    clearTimeout(this.idleTimer);
  }

  /** Server shutdown. */
  shutdown(): void {
    this.call?.close('shutdown', 'server shutting down');
    this.end('shutdown', 'server shutting down');
  }
}
