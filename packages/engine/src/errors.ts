export { InvalidArgumentError, InvalidStateError } from '@duet/sync';

/** A model file or manifest that does not satisfy the `duet.synclm/1` contract. */
export class ModelContractError extends Error {
  override readonly name = 'ModelContractError';
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** No free slot (the engine is at capacity); callers turn this into a refusal. */
export class NoCapacityError extends Error {
  override readonly name = 'NoCapacityError';
}

/** Use of an engine, slot or call after close(). */
export class ClosedError extends Error {
  override readonly name = 'ClosedError';
}
