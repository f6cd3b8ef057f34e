// RTP packets (RFC 3550 section 5.1) with RFC 8285 header extensions, parsed and serialized by
// rtp.js (versatica, the mediasoup authors). rtp.js accepts some inputs RFC 3550 forbids (a
// padding count of 0) and reports others as TypeError/RangeError, so the fixed header, CSRC
// list, extension block and padding are checked here first and anything rtp.js still throws is
// wrapped: parseRtpPacket() throws RtpPacketError and nothing else.

import { RtpPacket as RtpJsPacket } from 'rtp.js/packets';
import { InvalidArgumentError, RtpPacketError } from './errors.js';

export interface RtpPacket {
  /** 0..127 */
  readonly payloadType: number;
  /** 0..65535 */
  readonly sequenceNumber: number;
  /** 0..2^32-1, in the payload's clock (8000 for G.711, 48000 for Opus). */
  readonly timestamp: number;
  readonly ssrc: number;
  readonly marker: boolean;
  /** Up to 15 contributing sources. */
  readonly csrcs: readonly number[];
  /**
   * RFC 8285 header extension elements by id (one-byte 0xBEDE or two-byte 0x100x form). A header
   * extension of another profile is validated and skipped.
   */
  readonly extensions: ReadonlyMap<number, Uint8Array>;
  /** The payload without padding. parseRtpPacket() returns a view into its input, not a copy. */
  readonly payload: Uint8Array;
}

/** What serializeRtpPacket() needs; csrcs and extensions default to none. */
export type RtpPacketInit = Omit<RtpPacket, 'csrcs' | 'extensions'> & {
  readonly csrcs?: readonly number[];
  readonly extensions?: ReadonlyMap<number, Uint8Array>;
};

export const RTP_HEADER_BYTES = 12;

function fail(message: string, cause?: unknown): never {
  throw new RtpPacketError(`malformed RTP packet: ${message}`, cause === undefined ? undefined : { cause });
}

/** Checks the layout RFC 3550 prescribes before rtp.js reads it; returns nothing, throws RtpPacketError. */
function checkLayout(bytes: Uint8Array): void {
  const length = bytes.length;
  if (length < RTP_HEADER_BYTES) fail(`${length} bytes, the fixed header needs ${RTP_HEADER_BYTES}`);
  const first = bytes[0]!;
  const version = first >> 6;
  if (version !== 2) fail(`version ${version}, expected 2`);
  // RFC 5761: with RTP/RTCP multiplexing, a second byte of 192..223 is an RTCP packet type.
  const second = bytes[1]!;
  if (second >= 192 && second <= 223) fail(`second byte ${second} is an RTCP packet type (RFC 5761)`);
  const csrcCount = first & 0x0f;
  let pos = RTP_HEADER_BYTES + 4 * csrcCount;
  if (pos > length) fail(`${csrcCount} CSRCs need ${pos} header bytes, packet has ${length}`);
  if (first & 0x10) {
    if (pos + 4 > length) fail('header extension bit set but no room for the extension header');
    const words = (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
    pos += 4 + 4 * words;
    if (pos > length) fail(`header extension of ${words} words runs past the end (${length} bytes)`);
  }
  if (first & 0x20) {
    const padding = bytes[length - 1]!;
    if (padding === 0) fail('padding bit set but the padding count is 0');
    if (pos + padding > length)
      fail(`padding of ${padding} bytes overlaps the header (${length} bytes in all)`);
  }
}

/** Parses one RTP packet. Throws RtpPacketError (with rtp.js's error as `cause` where it came from there). */
export function parseRtpPacket(bytes: Uint8Array): RtpPacket {
  checkLayout(bytes);
  let packet: RtpJsPacket;
  try {
    packet = new RtpJsPacket(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error), error);
  }
  const extensions = new Map<number, Uint8Array>();
  for (const [id, view] of packet.getExtensions()) {
    extensions.set(id, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  }
  const payload = packet.getPayload();
  return {
    payloadType: packet.getPayloadType(),
    sequenceNumber: packet.getSequenceNumber(),
    timestamp: packet.getTimestamp(),
    ssrc: packet.getSsrc(),
    marker: packet.getMarker(),
    csrcs: packet.getCsrcs(),
    extensions,
    payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
  };
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new InvalidArgumentError(`RTP ${name} must be an integer in 0..${max}, got ${value}`);
  }
}

/**
 * Serializes a packet into a new buffer (no padding). Extensions use the one-byte form when every
 * id is 1..14 and every value 1..16 bytes, the two-byte form otherwise. Throws InvalidArgumentError
 * on out-of-range fields.
 */
export function serializeRtpPacket(init: RtpPacketInit): Uint8Array {
  const { csrcs = [], extensions = new Map<number, Uint8Array>() } = init;
  checkUint('payload type', init.payloadType, 127);
  checkUint('sequence number', init.sequenceNumber, 0xffff);
  checkUint('timestamp', init.timestamp, 0xffffffff);
  checkUint('SSRC', init.ssrc, 0xffffffff);
  if (csrcs.length > 15) throw new InvalidArgumentError(`RTP carries at most 15 CSRCs, got ${csrcs.length}`);
  for (const csrc of csrcs) checkUint('CSRC', csrc, 0xffffffff);
  let oneByte = true;
  for (const [id, value] of extensions) {
    checkUint('extension id', id, 255);
    if (id === 0) throw new InvalidArgumentError('RTP extension id 0 is reserved for padding');
    if (value.length > 255)
      throw new InvalidArgumentError(`RTP extension ${id} is ${value.length} bytes, max 255`);
    if (id > 14 || value.length < 1 || value.length > 16) oneByte = false;
  }
  const packet = new RtpJsPacket();
  packet.setPayloadType(init.payloadType);
  packet.setSequenceNumber(init.sequenceNumber);
  packet.setTimestamp(init.timestamp);
  packet.setSsrc(init.ssrc);
  packet.setMarker(init.marker);
  packet.setCsrcs([...csrcs]);
  if (extensions.size > 0) {
    if (oneByte) packet.enableOneByteExtensions();
    else packet.enableTwoBytesExtensions();
    for (const [id, value] of extensions) {
      packet.setExtension(id, new DataView(value.buffer, value.byteOffset, value.byteLength));
    }
  }
  const payload = init.payload;
  packet.setPayload(new DataView(payload.buffer, payload.byteOffset, payload.byteLength));
  const view = packet.getView();
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
}
