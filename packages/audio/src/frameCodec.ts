// One 20 ms frame of PCM16 in, one RTP payload out (and back), for the codecs Duet carries:
// the same shape for G.711 and Opus so that RTP endpoints need not care which one a call uses.

import { InvalidArgumentError } from './errors.js';
import { alawDecode, alawEncode, mulawDecode, mulawEncode } from './g711.js';
import { OpusDecoder, OpusEncoder } from './opus.js';

export type FrameCodecName = 'pcmu' | 'pcma' | 'opus';

export interface FrameCodec {
  readonly name: FrameCodecName;
  /** RTP clock rate and PCM sample rate of the frames (8000 for G.711, 48000 for Opus). */
  readonly sampleRate: 8000 | 48000;
  /** Samples per 20 ms frame (RTP timestamp step per packet). */
  readonly frameSamples: number;
  /** Static RTP payload type (0 PCMU, 8 PCMA), or the usual dynamic one for Opus (111). */
  readonly defaultPayloadType: number;
  encode(frame: Int16Array): Uint8Array;
  /** Throws CodecError on a malformed payload. */
  decode(payload: Uint8Array): Int16Array;
  close(): void;
}

export const FRAME_MS = 20;

export function createFrameCodec(name: FrameCodecName): FrameCodec {
  switch (name) {
    case 'pcmu':
      return g711('pcmu', 0, mulawEncode, mulawDecode);
    case 'pcma':
      return g711('pcma', 8, alawEncode, alawDecode);
    case 'opus': {
      let encoder: OpusEncoder | undefined;
      let decoder: OpusDecoder | undefined;
      return {
        name,
        sampleRate: 48000,
        frameSamples: 960,
        defaultPayloadType: 111,
        encode(frame) {
          encoder ??= new OpusEncoder();
          return encoder.encode(frame);
        },
        decode(payload) {
          decoder ??= new OpusDecoder();
          return decoder.decode(payload);
        },
        close() {
          encoder?.close();
          decoder?.close();
        },
      };
    }
    default:
      throw new InvalidArgumentError(`unknown codec ${String(name)}`);
  }
}

function g711(
  name: 'pcmu' | 'pcma',
  payloadType: number,
  encode: (pcm: Int16Array) => Uint8Array,
  decode: (bytes: Uint8Array) => Int16Array,
): FrameCodec {
  return {
    name,
    sampleRate: 8000,
    frameSamples: 160,
    defaultPayloadType: payloadType,
    encode,
    decode,
    close() {},
  };
}
