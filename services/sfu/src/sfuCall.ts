// One WebRTC call on the SFU: its own router (isolation: closing the router releases every
// transport, producer, consumer and port of the call at once), two WebRTC transports with the
// caller (mediasoup-client sends and receives on separate ones), and a PlainTransport pair with
// the call loop: the caller's Opus leaves to the tokenizer, the vocoder's Opus comes back and is
// consumed by the caller. The call is opened on inference, tokenizer and vocoder with DuetControl.

import { Codec } from '@duet/protocol';
import type { CallSetupError, DuetControl } from '@duet/runtime';
import type { types } from 'mediasoup';
import { LinkClosedError, type LoopCodec, LoopLink } from './loopLink.js';
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
  private closed = false;
  endReason: CallEndReason | undefined;
  private callerProducer: types.Producer | undefined;
  private callerConsumer: types.Consumer | undefined;
  private loopOpen = false;
  /** Resolves when the call is open on every service and the agent's audio can be consumed. */
  readonly opened: Promise<void>;

  private constructor(
    private readonly options: SfuCallOptions,
    readonly router: types.Router,
    readonly sendTransport: types.WebRtcTransport,
    readonly recvTransport: types.WebRtcTransport,
    readonly loop: LoopLink,
  ) {
    router.observer.once('close', () => this.close('worker_died', 'media worker closed'));
    for (const t of [sendTransport, recvTransport]) {
      t.on('dtlsstatechange', (state) => {
        if (state === 'failed' || state === 'closed') this.close('dtls_failed', `caller DTLS ${state}`);
      });
    }
    this.opened = this.openOnServices();
    // A failed open is reported through close(); consume() awaits `opened` and sees the error too.
    this.opened.catch(() => undefined);
  }

  get callId(): string {
    return this.options.callId;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  static async create(options: SfuCallOptions): Promise<SfuCall> {
    const { slot, listenIp, announcedIp, opusPayloadType } = options;
    const webRtcServer = slot.webRtcServer;
    if (!webRtcServer) throw new Error('the media worker has no WebRtcServer');
    const router = await slot.worker.createRouter({
      mediaCodecs: [opusCodec(opusPayloadType)],
      appData: { callId: options.callId },
    });
    try {
      const webrtc = () => router.createWebRtcTransport({ webRtcServer, enableUdp: true, enableTcp: false });
      const [send, recv, loop] = await Promise.all([
        webrtc(),
        webrtc(),
        LoopLink.create(router, { listenIp, ...(announcedIp ? { announcedIp } : {}) }),
      ]);
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
    await this.transport(transportId).connect({ dtlsParameters });
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
    return producer.id;
  }

  /** The agent's audio for the caller (paused until resumeConsumer, as mediasoup recommends). */
  async consume(rtpCapabilities: types.RtpCapabilities): Promise<{
    id: string;
    producerId: string;
    kind: string;
    rtpParameters: types.RtpParameters;
  }> {
    this.assertOpen();
    await this.opened;
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
    return {
      id: consumer.id,
      producerId: producer.id,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
    };
  }

  async resumeConsumer(consumerId: string): Promise<void> {
    this.assertOpen();
    if (this.callerConsumer?.id !== consumerId)
      throw new CallRequestError('unknown_consumer', `no consumer ${consumerId}`);
    await this.callerConsumer.resume();
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
