// RTP numbering of a call's agent stream, derived from time rather than from a counter: frame n
// (the n-th 20 ms frame since the call's first tick) always has sequence number seq0 + n and
// timestamp ts0 + n x samplesPerFrame, with seq0/ts0 a hash of call id and SSRC. A restarted
// vocoder therefore continues the same stream with no jump a receiver could notice.

import { Codec } from '@duet/protocol';

export const FRAME_MS = 20;

export interface CodecParams {
  /** RTP clock (and PCM rate of the frames). */
  readonly clockRate: 8000 | 48000;
  readonly samplesPerFrame: number;
}

export function codecParams(codec: Codec): CodecParams | undefined {
  switch (codec) {
    case Codec.CODEC_PCMU:
    case Codec.CODEC_PCMA:
      return { clockRate: 8000, samplesPerFrame: 160 };
    case Codec.CODEC_OPUS:
      return { clockRate: 48000, samplesPerFrame: 960 };
    default:
      return undefined;
  }
}

/** FNV-1a (32 bit) of a string, with a seed mixed in first. */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32) so nearby call ids give unrelated values.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

export interface RtpBase {
  readonly seq0: number;
  readonly ts0: number;
}

/** The stream's starting sequence number and timestamp (RFC 3550 wants them unpredictable-looking). */
export function rtpBase(callId: string, ssrc: number): RtpBase {
  const key = `${callId}/${ssrc >>> 0}`;
  return { seq0: fnv1a(key, 0x5eed) & 0xffff, ts0: fnv1a(key, 0x7157) };
}

/** Sequence number and timestamp of frame `frameIndex` (>= 0) of the stream. */
export function rtpNumbering(
  base: RtpBase,
  samplesPerFrame: number,
  frameIndex: number,
): { sequenceNumber: number; timestamp: number } {
  return {
    sequenceNumber: (base.seq0 + frameIndex) % 0x10000,
    // frameIndex x samplesPerFrame stays far below 2^53 (years of frames), so plain numbers are exact.
    timestamp: (base.ts0 + frameIndex * samplesPerFrame) % 0x100000000,
  };
}
