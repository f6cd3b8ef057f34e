// The media of one SIP call on the SFU's media plane: its own mediasoup router (closing it
// releases every transport and port of the call), an edge PlainTransport facing the call's
// RtpFront (the caller's audio is produced there, the agent's consumed there), and the SFU's
// LoopLink to the tokenizer and vocoder in the caller's codec (no transcoding anywhere).
// Set up in two phases: create() binds the caller-facing RTP socket (its port is all the SDP
// answer needs, so the 200 OK can go out at once), openServices() builds the mediasoup side, opens
// the call on the call services and wires the audio both ways.

import { randomInt } from 'node:crypto';
import type { DuetCall, DuetControl } from '@duet/runtime';
import {
  audioProducerOptions,
  LinkClosedError,
  LoopLink,
  routerCodec,
  type WorkerSlot,
} from '@duet/sfu/media';
import type { types } from 'mediasoup';
import { RtpFront } from './rtpFront.js';
import type { Negotiated } from './sdp.js';

export interface SipMediaOptions {
  readonly callId: string;
  readonly slot: WorkerSlot;
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
  private servicesStarted = false;
  private router: types.Router | undefined;
  /**
   * Where setup time went (ms): `socket` (the local phase: the caller-facing RTP socket), then as
   * the services phase goes on `media` (the router, transports and the caller's producer),
   * `services` (the call services' open) and `wiring` (the audio connected both ways after it).
   */
  readonly timings: { socket: number; media?: number; services?: number; wiring?: number } = { socket: 0 };

  private constructor(
    readonly front: RtpFront,
    readonly ssrc: number,
    private readonly options: SipMediaOptions,
  ) {}

  /** Where the caller sends RTP (the SDP answer's address is chosen by the caller of this). */
  get localPort(): number {
    return this.front.port;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * The local phase: binds the caller-facing RTP socket (its port is the SDP answer's). Nothing is
   * asked of mediasoup or the call services yet (see openServices); the caller's packets are
   * dropped until the audio is wired. Leaves nothing behind on error.
   */
  static async create(options: SipMediaOptions): Promise<SipMedia> {
    const { negotiated } = options;
    const ssrc = randomInt(1, 2 ** 31);
    const t0 = performance.now();
    const front = await RtpFront.create({
      bindIp: options.mediaIp,
      portMin: options.rtpPortMin,
      portMax: options.rtpPortMax,
      audioPt: negotiated.codec.payloadType,
      telephoneEventPt: negotiated.telephoneEvent,
      producerSsrc: ssrc,
      remote: negotiated.remote,
      comedia: options.comedia,
      onDtmf: options.onDtmf,
      ...(options.onStranger ? { onStranger: options.onStranger } : {}),
    });
    // Held from the start when the offer says so (a re-INVITE may change it during the services phase).
    front.setHeld(negotiated.direction === 'sendonly' || negotiated.direction === 'inactive');
    const media = new SipMedia(front, ssrc, options);
    media.timings.socket = performance.now() - t0;
    return media;
  }

  /**
   * The services phase: the call's router on its worker, the edge PlainTransport (connected to the
   * RTP socket, the caller's producer on it) and the LoopLink's transports; the call opened on
   * inference, tokenizer and vocoder (DuetControl, through the LoopLink) meanwhile; then the audio
   * wired both ways (the caller's producer to the tokenizer, the agent's to the edge).
   * `isCancelled` is checked once the services answered (a CANCEL or BYE meanwhile: the call is
   * closed on them again and this rejects with LinkClosedError); so is this media's own close.
   * Throws CallSetupError (from DuetControl), LinkClosedError or a mediasoup error; on any error
   * the media is closed (the caller of this closes the call on the services, as a failure after
   * they opened it leaves it open there). Called once.
   */
  async openServices(control: DuetControl, isCancelled: () => boolean): Promise<DuetCall> {
    if (this.servicesStarted) throw new Error('openServices called twice');
    this.servicesStarted = true;
    const { slot, negotiated, mediaIp, announcedIp } = this.options;
    const codec = negotiated.codec;
    const t0 = performance.now();
    try {
      if (this.closed) throw new LinkClosedError();
      const router = await slot.worker.createRouter({
        mediaCodecs: [routerCodec(codec)],
        appData: { callId: this.options.callId },
      });
      this.router = router;
      // Closed while the router was being made: close() could not release it.
      if (this.closed) throw new LinkClosedError();
      router.observer.once('close', () => {
        if (!this.closed) {
          this.close();
          this.options.onClosed('media worker closed');
        }
      });
      const listenInfo = { protocol: 'udp' as const, ip: mediaIp };
      const [edge, link] = await Promise.all([
        router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: false }),
        LoopLink.create(router, { listenIp: mediaIp, ...(announcedIp ? { announcedIp } : {}) }),
      ]);
      this.front.setMediasoup({ ip: edge.tuple.localIp, port: edge.tuple.localPort });
      const t1 = performance.now();
      // The edge sends to the front socket and produces the caller's audio while the services open.
      let t2 = 0;
      const [, callerProducer, call] = await Promise.all([
        edge.connect({ ip: mediaIp, port: this.front.port }),
        edge.produce(audioProducerOptions(codec, this.ssrc)),
        link
          .open(control, this.options.callId, codec, () => isCancelled() || this.closed)
          .then((c) => {
            t2 = performance.now();
            return c;
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
      this.timings.media = t1 - t0;
      this.timings.services = t2 - t1;
      this.timings.wiring = performance.now() - t2;
      return call;
    } catch (error) {
      this.close();
      // A router made after a close() (it could not see it) is released here too (idempotent).
      this.router?.close();
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
    this.router?.close();
  }
}
