// The call's link to the call loop, shared by every edge (WebRTC SFU, SIP bridge): on the call's
// router, a PlainTransport to the tokenizer (the caller's audio leaves through a consumer on it)
// and a PlainTransport the vocoder sends to (the agent's audio enters as a producer there). The
// call is opened on inference, tokenizer and vocoder with DuetControl in the edge's codec, so
// mediasoup never transcodes: the caller's codec is the loop's codec.

import { randomInt } from 'node:crypto';
import type { Codec } from '@duet/protocol';
import type { DuetCall, DuetControl } from '@duet/runtime';
import type { types } from 'mediasoup';

/** One audio codec as the router, producers and consumers of a call carry it. */
export interface LoopCodec {
  /** The control API's codec enum (what tokenizer and vocoder decode and encode). */
  readonly codec: Codec;
  readonly mimeType: 'audio/opus' | 'audio/PCMU' | 'audio/PCMA';
  readonly payloadType: number;
  readonly clockRate: number;
  /** 2 for Opus (mediasoup's Opus is always declared stereo), 1 otherwise. */
  readonly channels: number;
}

/** The router codec capability of a LoopCodec (the router is created with it). */
export function routerCodec(c: LoopCodec): types.RtpCodecCapability {
  return {
    kind: 'audio',
    mimeType: c.mimeType,
    clockRate: c.clockRate,
    channels: c.channels,
    preferredPayloadType: c.payloadType,
    parameters: c.mimeType === 'audio/opus' ? { useinbandfec: 1, minptime: 10 } : {},
  };
}

export interface LoopLinkOptions {
  readonly listenIp: string;
  readonly announcedIp?: string;
}

export class LoopLink {
  private duetCall: DuetCall | undefined;
  private agent: types.Producer | undefined;

  private constructor(
    readonly toTokenizer: types.PlainTransport,
    readonly fromVocoder: types.PlainTransport,
  ) {}

  /** The two plain transports on `router` (they close with it). */
  static async create(router: types.Router, options: LoopLinkOptions): Promise<LoopLink> {
    const { listenIp, announcedIp } = options;
    const plain = (comedia: boolean) =>
      router.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: listenIp, ...(announcedIp ? { announcedIp } : {}) },
        rtcpMux: true,
        comedia,
      });
    const [toTokenizer, fromVocoder] = await Promise.all([
      plain(false),
      // The vocoder sends to this transport; comedia latches on its first packet.
      plain(true),
    ]);
    return new LoopLink(toTokenizer, fromVocoder);
  }

  /** The call on the services, once open() resolved. */
  get call(): DuetCall | undefined {
    return this.duetCall;
  }

  /** The agent's audio (a producer on fromVocoder), once produceAgent() or open() resolved. */
  get agentProducer(): types.Producer | undefined {
    return this.agent;
  }

  /**
   * Creates the agent's producer before the call is open, with an SSRC the edge picks (open()
   * asks the vocoder to send with it): a caller can consume the agent's audio, and its transport
   * connect, while the services open the call. Without it, open() produces once the vocoder
   * named its SSRC.
   */
  async produceAgent(codec: LoopCodec, ssrc: number = randomInt(1, 0xffff_ffff)): Promise<types.Producer> {
    if (this.agent) throw new Error('the agent is already produced');
    this.agent = await this.fromVocoder.produce(audioProducerOptions(codec, ssrc));
    return this.agent;
  }

  get plainPorts(): number[] {
    return [this.toTokenizer.tuple.localPort, this.fromVocoder.tuple.localPort];
  }

  /**
   * Opens the call on inference, tokenizer and vocoder (the vocoder sends to fromVocoder), points
   * toTokenizer at the tokenizer and produces the agent's audio. `isClosed` is checked after the
   * services answered: a call hung up meanwhile is closed on them again and the open rejects.
   * Throws CallSetupError from DuetControl (RESOURCE_EXHAUSTED when no worker has capacity).
   */
  async open(
    control: DuetControl,
    callId: string,
    codec: LoopCodec,
    isClosed: () => boolean,
  ): Promise<DuetCall> {
    const { localIp, localPort } = this.fromVocoder.tuple;
    const ssrc = this.agent?.rtpParameters.encodings?.[0]?.ssrc;
    const call = await control.openCall({
      callId,
      codec: codec.codec,
      payloadType: codec.payloadType,
      destination: { host: localIp, port: localPort },
      ...(ssrc !== undefined ? { ssrc } : {}),
    });
    if (isClosed()) {
      await control.closeCall(callId, 'hung up during setup').catch(() => undefined);
      throw new LinkClosedError();
    }
    if (ssrc !== undefined && call.agentSsrc !== ssrc) {
      await control.closeCall(callId, 'vocoder SSRC mismatch').catch(() => undefined);
      throw new Error(`the vocoder sends with SSRC ${call.agentSsrc}, not the requested ${ssrc}`);
    }
    this.duetCall = call;
    await this.toTokenizer.connect({ ip: call.tokenizerRtp.host, port: call.tokenizerRtp.port });
    this.agent ??= await this.fromVocoder.produce(audioProducerOptions(codec, call.agentSsrc));
    return call;
  }

  /** The caller's audio (a producer on the call's router) to the tokenizer. */
  async forwardCaller(producer: types.Producer, codec: LoopCodec): Promise<types.Consumer> {
    return this.toTokenizer.consume({
      producerId: producer.id,
      rtpCapabilities: { codecs: [routerCodec(codec)], headerExtensions: [] },
    });
  }
}

/** A plain-RTP audio producer's options: one codec, one encoding with the given SSRC. */
export const audioProducerOptions = (codec: LoopCodec, ssrc: number): types.ProducerOptions => ({
  kind: 'audio',
  rtpParameters: {
    codecs: [
      {
        mimeType: codec.mimeType,
        payloadType: codec.payloadType,
        clockRate: codec.clockRate,
        channels: codec.channels,
      },
    ],
    encodings: [{ ssrc }],
  },
});

/** The call was closed while the services were opening it. */
export class LinkClosedError extends Error {
  override readonly name = 'LinkClosedError';
  constructor() {
    super('the call was closed during setup');
  }
}
