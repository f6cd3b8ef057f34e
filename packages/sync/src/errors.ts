// Two error kinds, so services can map each to one transport status in one place
// (invalid argument -> INVALID_ARGUMENT / 400, invalid state -> FAILED_PRECONDITION / 409).
// Both take Error's own (message, { cause }) constructor.

/** A caller passed a value that can never be valid (bad chunk size, malformed token sequence, ...). */
export class InvalidArgumentError extends Error {
  override name = 'InvalidArgumentError';
}

/** The call is valid in general but not in the current state (e.g. a chunk out of order). */
export class InvalidStateError extends Error {
  override name = 'InvalidStateError';
}
