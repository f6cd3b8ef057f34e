/** Raised when a payload is not a valid encoding of the expected message. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    readonly messageType: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Decoder<T> {
  decode(input: Uint8Array): T;
}

/**
 * Decodes a NATS/gRPC payload; malformed bytes become a ProtocolError naming the
 * message type instead of whatever the wire reader happened to throw.
 */
export function decodeMessage<T>(type: Decoder<T>, name: string, bytes: Uint8Array): T {
  try {
    return type.decode(bytes);
  } catch (cause) {
    throw new ProtocolError(
      `malformed ${name} payload (${bytes.length} bytes): ${String((cause as Error)?.message ?? cause)}`,
      name,
      { cause },
    );
  }
}
