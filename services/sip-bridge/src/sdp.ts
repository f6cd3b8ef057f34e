// SDP offer/answer (RFC 3264) for one audio stream, with sdp-transform doing the parsing and
// writing. The bridge answers the first audio m-line it can serve with one codec (the caller's
// payload type kept) plus telephone-event at the codec's clock rate when offered; every other
// m-line is refused with port 0, as RFC 3264 6 asks.

import { Codec } from '@duet/protocol';
import type { LoopCodec } from '@duet/sfu/media';
import * as sdpTransform from 'sdp-transform';

export type CodecName = 'PCMU' | 'PCMA' | 'OPUS';
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface Negotiated {
  readonly name: CodecName;
  readonly codec: LoopCodec;
  /** RFC 4733 telephone-event payload type (at the codec's clock rate), when offered. */
  readonly telephoneEvent: number | undefined;
  /** Where the caller wants RTP (its SDP's connection address and port). */
  readonly remote: { readonly ip: string; readonly port: number };
  /** The offer's direction as the caller sees it (c=0.0.0.0 counts as sendonly: hold). */
  readonly direction: Direction;
  readonly ptime: number | undefined;
  /** Index of the accepted m-line. */
  readonly mline: number;
}

export class SdpError extends Error {
  override readonly name = 'SdpError';
}

const STATIC: Record<number, { codec: string; rate: number }> = {
  0: { codec: 'PCMU', rate: 8000 },
  8: { codec: 'PCMA', rate: 8000 },
};

function loopCodec(name: CodecName, payloadType: number): LoopCodec {
  switch (name) {
    case 'PCMU':
      return { codec: Codec.CODEC_PCMU, mimeType: 'audio/PCMU', payloadType, clockRate: 8000, channels: 1 };
    case 'PCMA':
      return { codec: Codec.CODEC_PCMA, mimeType: 'audio/PCMA', payloadType, clockRate: 8000, channels: 1 };
    case 'OPUS':
      return { codec: Codec.CODEC_OPUS, mimeType: 'audio/opus', payloadType, clockRate: 48_000, channels: 2 };
  }
}

/** Picks the codec for an offer; throws SdpError (answered 488) when nothing fits. */
export function negotiate(offer: string, preference: readonly CodecName[]): Negotiated {
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(offer);
  } catch {
    throw new SdpError('unparsable SDP');
  }
  if (session.version !== 0 || !Array.isArray(session.media) || session.media.length === 0) {
    throw new SdpError('no media in SDP');
  }
  if (session.media.length > 16) throw new SdpError('too many m-lines');
  for (let i = 0; i < session.media.length; i++) {
    const m = session.media[i]!;
    if (m.type !== 'audio' || !m.port || m.protocol !== 'RTP/AVP') continue;
    const payloads = String(m.payloads ?? '')
      .split(/\s+/)
      .filter((p) => /^\d{1,3}$/.test(p))
      .map(Number)
      .filter((p) => p <= 127);
    const map = new Map<number, { codec: string; rate: number; channels: number | undefined }>();
    for (const pt of payloads) {
      const s = STATIC[pt];
      if (s) map.set(pt, { ...s, channels: 1 });
    }
    for (const r of m.rtp ?? []) {
      if (payloads.includes(r.payload)) {
        const ch = r.encoding === undefined ? undefined : Number(r.encoding);
        map.set(r.payload, { codec: r.codec.toUpperCase(), rate: r.rate ?? 0, channels: ch });
      }
    }
    let chosen: { name: CodecName; pt: number } | undefined;
    for (const name of preference) {
      for (const pt of payloads) {
        const c = map.get(pt);
        if (!c || c.codec !== name) continue;
        const ok =
          name === 'OPUS'
            ? c.rate === 48_000 && (c.channels === 2 || c.channels === undefined)
            : c.rate === 8000;
        if (ok) {
          chosen = { name, pt };
          break;
        }
      }
      if (chosen) break;
    }
    if (!chosen) continue;
    const clock = chosen.name === 'OPUS' ? 48_000 : 8000;
    const te = payloads.find((pt) => {
      const c = map.get(pt);
      return c?.codec === 'TELEPHONE-EVENT' && c.rate === clock && pt !== chosen.pt;
    });
    const ip = m.connection?.ip ?? session.connection?.ip;
    if (!ip) throw new SdpError('no connection address');
    if (!/^[0-9.]+$|^[0-9A-Fa-f:]+$/.test(ip)) throw new SdpError('connection address is not an IP');
    const held = ip === '0.0.0.0';
    const direction = (m.direction ?? session.direction ?? 'sendrecv') as Direction;
    return {
      name: chosen.name,
      codec: loopCodec(chosen.name, chosen.pt),
      telephoneEvent: te,
      remote: { ip, port: m.port },
      direction: held && (direction === 'sendrecv' || direction === 'recvonly') ? 'sendonly' : direction,
      ptime: m.ptime,
      mline: i,
    };
  }
  throw new SdpError('no acceptable audio codec');
}

const ANSWER_DIRECTION: Record<Direction, Direction> = {
  sendrecv: 'sendrecv',
  sendonly: 'recvonly',
  recvonly: 'sendonly',
  inactive: 'inactive',
};

export interface AnswerOptions {
  readonly ip: string;
  readonly port: number;
  readonly sessionId: string;
  readonly sessionVersion: number;
}

/** The answer to `offer` (the same m-lines, all but the negotiated one refused with port 0). */
export function buildAnswer(offer: string, n: Negotiated, o: AnswerOptions): string {
  const session = sdpTransform.parse(offer);
  const v4 = !o.ip.includes(':');
  const media = session.media.map((m, i) => {
    if (i !== n.mline) {
      return {
        type: m.type,
        port: 0,
        protocol: m.protocol,
        payloads: String(m.payloads ?? '0').split(/\s+/)[0],
      };
    }
    const { codec } = n;
    const rtp: { payload: number; codec: string; rate: number; encoding?: number }[] = [
      {
        payload: codec.payloadType,
        codec: n.name === 'OPUS' ? 'opus' : n.name,
        rate: codec.clockRate,
        ...(n.name === 'OPUS' ? { encoding: 2 } : {}),
      },
    ];
    const fmtp: { payload: number; config: string }[] = [];
    if (n.name === 'OPUS') fmtp.push({ payload: codec.payloadType, config: 'minptime=10;useinbandfec=1' });
    if (n.telephoneEvent !== undefined) {
      rtp.push({ payload: n.telephoneEvent, codec: 'telephone-event', rate: codec.clockRate });
      fmtp.push({ payload: n.telephoneEvent, config: '0-16' });
    }
    const payloads = [codec.payloadType, ...(n.telephoneEvent !== undefined ? [n.telephoneEvent] : [])];
    return {
      type: 'audio',
      port: o.port,
      protocol: 'RTP/AVP',
      payloads: payloads.join(' '),
      rtp,
      fmtp,
      ptime: 20,
      direction: ANSWER_DIRECTION[n.direction],
    };
  });
  return sdpTransform.write({
    version: 0,
    origin: {
      username: 'duet',
      sessionId: o.sessionId,
      sessionVersion: o.sessionVersion,
      netType: 'IN',
      ipVer: v4 ? 4 : 6,
      address: o.ip,
    },
    name: 'duet',
    connection: { version: v4 ? 4 : 6, ip: o.ip },
    timing: { start: 0, stop: 0 },
    media,
  } as unknown as sdpTransform.SessionDescription);
}
