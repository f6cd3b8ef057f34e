/** A bad argument (wrong sample count, NaN samples, unit ids out of range). */
export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError';
}

/** A model file or manifest that does not satisfy its contract (docs/units-contract.md). */
export class SpeechModelError extends Error {
  override readonly name = 'SpeechModelError';
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** Use of a model or stream after close(). */
export class ClosedError extends Error {
  override readonly name = 'ClosedError';
}
