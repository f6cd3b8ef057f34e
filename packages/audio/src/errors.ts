// Error kinds of @duet/audio. Each takes Error's own (message, { cause }) constructor, so a
// service can map each class to one transport status in one place.

/** A caller passed a value that can never be valid (bad sample rate, odd frame size, ...). */
export class InvalidArgumentError extends Error {
  override name = 'InvalidArgumentError';
}

/** The object is valid in general but not in its current state (e.g. used after close()). */
export class InvalidStateError extends Error {
  override name = 'InvalidStateError';
}

/** Bytes that should hold a WAV file do not (truncated, not RIFF/WAVE, unsupported encoding). */
export class WavFormatError extends Error {
  override name = 'WavFormatError';
}

/** Bytes that should hold an RTP packet do not (RFC 3550 section 5.1). */
export class RtpPacketError extends Error {
  override name = 'RtpPacketError';
}

/** The codec rejected its input or failed (libopus error text in the message, original in `cause`). */
export class CodecError extends Error {
  override name = 'CodecError';
}
