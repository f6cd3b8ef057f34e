// Public API of @duet/audio: audio plumbing for the tokenizer and vocoder services.

export {
  CodecError,
  InvalidArgumentError,
  InvalidStateError,
  RtpPacketError,
  WavFormatError,
} from './errors.js';
export { createFrameCodec, FRAME_MS, type FrameCodec, type FrameCodecName } from './frameCodec.js';
export { alawDecode, alawEncode, mulawDecode, mulawEncode } from './g711.js';
export {
  JitterBuffer,
  type JitterBufferOptions,
  type JitterBufferStats,
  type JitterPacket,
  type PlayoutEvent,
  type PushOutcome,
} from './jitterBuffer.js';
export {
  OPUS_FRAME_MS,
  OPUS_FRAME_SAMPLES,
  OPUS_SAMPLE_RATE,
  OpusDecoder,
  OpusEncoder,
  type OpusEncoderOptions,
} from './opus.js';
export {
  createResampler,
  idleResamplers,
  prewarmResamplers,
  type Resampler,
  type ResamplerOptions,
  type ResamplerQuality,
  type SampleRate,
} from './resample.js';
export {
  parseRtpPacket,
  RTP_HEADER_BYTES,
  type RtpPacket,
  type RtpPacketInit,
  serializeRtpPacket,
} from './rtpPacket.js';
export {
  type DecodedWav,
  decodeWav,
  encodeWav,
  floatToPcm16,
  type WavAudio,
  type WavEncoding,
} from './wav.js';
