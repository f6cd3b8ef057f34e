// The media of one SIP call on the SFU's media plane: its own mediasoup router (closing it
// releases every transport and port of the call), an edge PlainTransport facing the call's
// RtpFront (the caller's audio is produced there, the agent's consumed there), and the SFU's
// LoopLink to the tokenizer and vocoder in the caller's codec (no transcoding anywhere).

import { randomInt } from 'node:crypto';
import type { DuetControl } from '@duet/runtime';
import { type LoopCodec, LoopLink, routerCodec, type WorkerSlot } from '@duet/sfu/media';
import type { types } from 'mediasoup';
import { RtpFront } from './rtpFront.js';
import type { Negotiated } from './sdp.js';

export interface SipMediaOptions {
  readonly callId: string;
  readonly slot: WorkerSlot;
  readonly control: DuetControl;
  readonly negotiated: Negotiated;
  /** mediasoup's listen IP (reachable from tokenizer and vocoder) and announced IP. */
  readonly mediaIp: string;
  readonly announcedIp?: string;
  /** The callers' RTP ports (RtpFront sockets). */
  readonly rtpPortMin: number;
  readonly rtpPortMax: number;
  readonly comedia: boolean;
  readonly onDtmf: (digit: string) => void;
  readonly onStranger?: (address: string) => void;
  /** The media side ended the call (router closed: worker died). */
  readonly onClosed: (detail: string) => void;
}

export class SipMedia {
  private closed = false;
  /** Where setup time went (ms): mediasoup objects, the call services' open, the wiring after it. */
  readonly timings = { media: 0, services: 0, wiring: 0 };

  private constructor(
    readonly router: types.Router,
    readonly front: RtpFront,
    readonly edge: types.PlainTransport,
    readonly link: LoopLink,
    readonly codec: LoopCodec,
    options: SipMediaOptions,
  ) {
    router.observer.once('close', () => {
      if (!this.closed) {
        this.close();
        options.onClosed('media worker closed');
      }
    });
  }

  /** Where the caller sends RTP (the SDP answer's address is chosen by the caller of this). */
  get localPort(): number {
    return this.front.port;
  }

  /**
   * Creates the call's media, opens it on every call service and wires the audio both ways.
   * `isCancelled` is checked after the services answered (a CANCEL or BYE during setup).
   * Throws CallSetupError (from DuetControl) or LinkClosedError; leaves nothing behind on error.
   */
  static async open(options: SipMediaOptions, isCancelled: () => boolean): Promise<SipMedia> {
    const { slot, negotiated, mediaIp, announcedIp } = options;
    const codec = negotiated.codec;
    const ssrc = randomInt(1, 2 ** 31);
    const t0 = performance.now();
    const router = await slot.worker.createRouter({
      mediaCodecs: [routerCodec(codec)],
      appData: { callId: options.callId },
    });
    let front: RtpFront | undefined;
    try {
      const listenInfo = { protocol: 'udp' as const, ip: mediaIp };
      const [edge, link, f] = await Promise.all([
        router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: false }),
        LoopLink.create(router, { listenIp: mediaIp, ...(announcedIp ? { announcedIp } : {}) }),
        RtpFront.create({
          bindIp: mediaIp,
          portMin: options.rtpPortMin,
          portMax: options.rtpPortMax,
          audioPt: codec.payloadType,
          telephoneEventPt: negotiated.telephoneEvent,
          producerSsrc: ssrc,
          remote: negotiated.remote,
          comedia: options.comedia,
          onDtmf: options.onDtmf,
          ...(options.onStranger ? { onStranger: options.onStranger } : {}),
        }),
      ]);
      front = f;
      const t1 = performance.now();
      f.setMediasoup({ ip: edge.tuple.localIp, port: edge.tuple.localPort });
      const media = new SipMedia(router, f, edge, link, codec, options);
      const rtpCodec = {
        mimeType: codec.mimeType,
        payloadType: codec.payloadType,
        clockRate: codec.clockRate,
        channels: codec.channels,
      };
      // The edge sends to the front socket; the caller's producer exists before the services open.
      let t2 = 0;
      const [, callerProducer] = await Promise.all([
        edge.connect({ ip: mediaIp, port: f.port }),
        edge.produce({ kind: 'audio', rtpParameters: { codecs: [rtpCodec], encodings: [{ ssrc }] } }),
        link.open(options.control, options.callId, codec, isCancelled).then(() => {
          t2 = performance.now();
        }),
      ]);
      const agent = link.agentProducer!;
      await Promise.all([
        link.forwardCaller(callerProducer, codec),
        edge.consume({
          producerId: agent.id,
          rtpCapabilities: { codecs: [routerCodec(codec)], headerExtensions: [] },
        }),
      ]);
      media.timings.media = t1 - t0;
      media.timings.services = t2 - t1;
      media.timings.wiring = performance.now() - t2;
      media.front.setHeld(negotiated.direction === 'sendonly' || negotiated.direction === 'inactive');
      return media;
    } catch (error) {
      front?.close();
      router.close();
      throw error;
    }
  }

  /** Hold (the caller sends only or nothing) or resume. */
  setHeld(held: boolean): void {
    this.front.setHeld(held);
  }

  /** Releases the router (every transport and port) and the front socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.front.close();
    this.router.close();
  }
}
