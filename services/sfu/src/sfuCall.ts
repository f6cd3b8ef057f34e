// One WebRTC call on the SFU: its own router (isolation: closing the router releases every
// transport, producer, consumer and port of the call at once), two WebRTC transports with the
// caller (mediasoup-client sends and receives on separate ones), and a PlainTransport pair with
// the call loop: the caller's Opus leaves to the tokenizer, the vocoder's Opus comes back and is
// consumed by the caller. The call is opened on inference, tokenizer and vocoder with DuetControl.

import { Codec } from '@duet/protocol';
import type { CallSetupError, DuetControl } from '@duet/runtime';
import type { types } from 'mediasoup';
import { LinkClosedError, type LoopCodec, LoopLink } from './loopLink.js';
import { Timeline } from './timeline.js';
import type { WorkerSlot } from './workerPool.js';

export interface SfuCallOptions {
  readonly callId: string;
  readonly agent: string;
  readonly slot: WorkerSlot;
  readonly control: DuetControl;
  readonly listenIp: string;
  readonly announcedIp?: string;
  readonly opusPayloadType: number;
  /** Called once when the call ends, whoever ended it. */
  readonly onClosed: (call: SfuCall, reason: CallEndReason, detail: string) => void;
  /** The setup's timeline, started when the caller's socket opened (the call marks its steps in it). */
  readonly timeline?: Timeline;
  /**
   * Called once when the caller's media is up (both WebRTC transports' DTLS connected, the agent's
   * audio resumed and the call open on every service), with the setup timeline.
   */
  readonly onMediaUp?: (call: SfuCall, timeline: Timeline) => void;
}

const loopOpus = (payloadType: number): LoopCodec => ({
  codec: Codec.CODEC_OPUS,
  mimeType: 'audio/opus',
  payloadType,
  clockRate: 48_000,
  channels: 2,
});

export const opusCodec = (payloadType: number): types.RtpCodecCapability => ({
  kind: 'audio',
  mimeType: 'audio/opus',
  clockRate: 48_000,
  channels: 2,
  preferredPayloadType: payloadType,
  parameters: { useinbandfec: 1, minptime: 10 },
});

/** What the SFU offers a caller to set up its transports (one message: fewer round trips). */
export interface JoinAnswer {
  readonly callId: string;
  readonly routerRtpCapabilities: types.RtpCapabilities;
  readonly sendTransport: TransportInfo;
  readonly recvTransport: TransportInfo;
}

interface TransportInfo {
  readonly id: string;
  readonly iceParameters: types.IceParameters;
  readonly iceCandidates: types.IceCandidate[];
  readonly dtlsParameters: types.DtlsParameters;
}

const info = (t: types.WebRtcTransport): TransportInfo => ({
  id: t.id,
  iceParameters: t.iceParameters,
  iceCandidates: t.iceCandidates,
  dtlsParameters: t.dtlsParameters,
});

/** Why a call ended (a bounded metric label). */
export type CallEndReason =
  | 'hangup'
  | 'caller_left'
  | 'idle_timeout'
  | 'setup_failed'
  | 'worker_died'
  | 'dtls_failed'
  | 'closed_by_service'
  | 'shutdown';

export class SfuCall {
  readonly createdAt = performance.now();
  readonly timeline: Timeline;
  private mediaUpReported = false;
  private closed = false;
  endReason: CallEndReason | undefined;
  private callerProducer: types.Producer | undefined;
  private callerConsumer: types.Consumer | undefined;
  private loopOpen = false;
  /** Resolves when the call is open on every service (the agent's audio can be resumed). */
  readonly opened: Promise<void>;

  private constructor(
    private readonly options: SfuCallOptions,
    readonly router: types.Router,
    readonly sendTransport: types.WebRtcTransport,
    readonly recvTransport: types.WebRtcTransport,
    readonly loop: LoopLink,
  ) {
    this.timeline = options.timeline ?? new Timeline();
    router.observer.once('close', () => this.close('worker_died', 'media worker closed'));
    for (const [name, t] of [
      ['send', sendTransport],
      ['recv', recvTransport],
    ] as const) {
      t.on('icestatechange', (state) => {
        if (state === 'connected' || state === 'completed') this.mark(`${name}IceConnected`);
      });
      t.on('dtlsstatechange', (state) => {
        if (state === 'connecting') this.mark(`${name}DtlsConnecting`);
        if (state === 'connected') this.mark(`${name}DtlsConnected`);
        if (state === 'failed' || state === 'closed') this.close('dtls_failed', `caller DTLS ${state}`);
      });
    }
    this.opened = this.openOnServices();
    // A failed open is reported through close(); resumeConsumer() awaits `opened` and sees it too.
    this.opened.catch(() => undefined);
  }

  get callId(): string {
    return this.options.callId;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Marks a setup step; once the caller's media is up, reports the timeline (once). */
  private mark(name: string): void {
    this.timeline.mark(name);
    const t = this.timeline;
    if (
      this.mediaUpReported ||
      this.closed ||
      !['sendDtlsConnected', 'recvDtlsConnected', 'resumed', 'servicesOpen'].every((m) => t.has(m))
    )
      return;
    this.mediaUpReported = true;
    this.options.onMediaUp?.(this, t);
  }

  static async create(options: SfuCallOptions): Promise<SfuCall> {
    const { slot, listenIp, announcedIp, opusPayloadType } = options;
    const webRtcServer = slot.webRtcServer;
    if (!webRtcServer) throw new Error('the media worker has no WebRtcServer');
    const router = await slot.worker.createRouter({
      mediaCodecs: [opusCodec(opusPayloadType)],
      appData: { callId: options.callId },
    });
    options.timeline?.mark('routerCreated');
    try {
      const webrtc = () => router.createWebRtcTransport({ webRtcServer, enableUdp: true, enableTcp: false });
      // The agent's producer exists from the start (the SFU picks its SSRC and the vocoder is
      // asked to send with it): the caller consumes it, and connects its receiving transport,
      // while the services open the call.
      const [send, recv, loop] = await Promise.all([
        webrtc(),
        webrtc(),
        LoopLink.create(router, { listenIp, ...(announcedIp ? { announcedIp } : {}) }).then(async (l) => {
          await l.produceAgent(loopOpus(opusPayloadType));
          return l;
        }),
      ]);
      options.timeline?.mark('transportsCreated');
      return new SfuCall(options, router, send, recv, loop);
    } catch (error) {
      router.close();
      throw error;
    }
  }

  joinAnswer(): JoinAnswer {
    return {
      callId: this.callId,
      routerRtpCapabilities: this.router.rtpCapabilities,
      sendTransport: info(this.sendTransport),
      recvTransport: info(this.recvTransport),
    };
  }

  private async openOnServices(): Promise<void> {
    const { control, callId, opusPayloadType } = this.options;
    try {
      try {
        // Hung up while the services were opening it: the link closes what the open created.
        await this.loop.open(control, callId, loopOpus(opusPayloadType), () => this.closed);
      } catch (error) {
        if (error instanceof LinkClosedError) throw new CallRequestError('call_closed', error.message);
        throw error;
      }
      this.loopOpen = true;
      this.mark('servicesOpen');
      if (this.callerProducer) await this.forwardCallerAudio(this.callerProducer);
    } catch (error) {
      if (this.closed) throw error;
      const stage = (error as Partial<CallSetupError>).stage;
      this.close('setup_failed', `${stage ?? 'sfu'}: ${(error as Error).message}`);
      throw error;
    }
  }

  /** The caller's audio to the tokenizer (once both the producer and the tokenizer exist). */
  private async forwardCallerAudio(producer: types.Producer): Promise<void> {
    if (!this.loopOpen || this.closed) return;
    await this.loop.forwardCaller(producer, loopOpus(this.options.opusPayloadType));
  }

  private transport(id: string): types.WebRtcTransport {
    if (id === this.sendTransport.id) return this.sendTransport;
    if (id === this.recvTransport.id) return this.recvTransport;
    throw new CallRequestError('unknown_transport', `no transport ${id} in this call`);
  }

  async connectTransport(transportId: string, dtlsParameters: types.DtlsParameters): Promise<void> {
    this.assertOpen();
    const transport = this.transport(transportId);
    await transport.connect({ dtlsParameters });
    this.mark(transport === this.sendTransport ? 'sendConnected' : 'recvConnected');
  }

  async produce(transportId: string, rtpParameters: types.RtpParameters): Promise<string> {
    this.assertOpen();
    if (transportId !== this.sendTransport.id) {
      throw new CallRequestError('unknown_transport', 'produce on the send transport');
    }
    if (this.callerProducer)
      throw new CallRequestError('already_producing', 'the caller already sends audio');
    const producer = await this.sendTransport.produce({ kind: 'audio', rtpParameters });
    this.callerProducer = producer;
    await this.forwardCallerAudio(producer);
    this.mark('produced');
    return producer.id;
  }

  /**
   * The agent's audio for the caller, at once (the producer exists before the services opened
   * the call); paused until resumeConsumer, as mediasoup recommends.
   */
  async consume(rtpCapabilities: types.RtpCapabilities): Promise<{
    id: string;
    producerId: string;
    kind: string;
    rtpParameters: types.RtpParameters;
  }> {
    this.assertOpen();
    const producer = this.loop.agentProducer;
    if (!producer || this.closed) throw new CallRequestError('call_closed', 'the call is closed');
    if (this.callerConsumer)
      throw new CallRequestError('already_consuming', 'the caller already receives audio');
    if (!this.router.canConsume({ producerId: producer.id, rtpCapabilities })) {
      throw new CallRequestError('cannot_consume', 'the caller cannot receive Opus');
    }
    const consumer = await this.recvTransport.consume({
      producerId: producer.id,
      rtpCapabilities,
      paused: true,
    });
    this.callerConsumer = consumer;
    this.mark('consumed');
    return {
      id: consumer.id,
      producerId: producer.id,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
    };
  }

  /** Resumes the agent's audio once the call is open on every service (waits for it). */
  async resumeConsumer(consumerId: string): Promise<void> {
    this.assertOpen();
    const consumer = this.callerConsumer;
    if (consumer?.id !== consumerId)
      throw new CallRequestError('unknown_consumer', `no consumer ${consumerId}`);
    await this.opened;
    this.assertOpen();
    await consumer.resume();
    this.mark('resumed');
  }

  /** What the SFU sees of the caller: inbound (mic) and outbound (agent) RTP stream stats. */
  async stats(): Promise<{ callerIn: unknown[]; agentOut: unknown[]; iceState: string }> {
    this.assertOpen();
    const [callerIn, agentOut] = await Promise.all([
      this.callerProducer?.getStats() ?? [],
      this.callerConsumer?.getStats() ?? [],
    ]);
    return { callerIn, agentOut, iceState: this.sendTransport.iceState };
  }

  /** mediasoup's view of the call (tests check that hang-up releases all of it). */
  async dump(): Promise<{ callId: string; router: unknown; plainPorts: number[]; transports: unknown[] }> {
    const transports = [this.sendTransport, this.recvTransport, this.loop.toTokenizer, this.loop.fromVocoder];
    return {
      callId: this.callId,
      router: await this.router.dump(),
      plainPorts: this.loop.plainPorts,
      transports: await Promise.all(transports.map((t) => t.dump())),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new CallRequestError('call_closed', 'the call is closed');
  }

  /** Ends the call everywhere: the router (every transport and port) and the call services. Idempotent. */
  close(reason: CallEndReason, detail = ''): void {
    if (this.closed) return;
    this.closed = true;
    this.endReason = reason;
    this.router.close();
    const why = detail ? `${reason}: ${detail}` : reason;
    void this.options.control.closeCall(this.callId, why).catch(() => undefined);
    this.options.onClosed(this, reason, detail);
  }
}

/** A request the call refused (answered on the socket with this code; the call goes on). */
export class CallRequestError extends Error {
  override readonly name = 'CallRequestError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
