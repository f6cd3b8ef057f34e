import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidStateError } from './errors.js';

describe('errors', () => {
  it('InvalidArgumentError is an Error with its own name, message and cause', () => {
    const cause = new Error('root');
    const error = new InvalidArgumentError('bad chunk', { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.name).toBe('InvalidArgumentError');
    expect(error.message).toBe('bad chunk');
    expect(error.cause).toBe(cause);
    expect(String(error)).toBe('InvalidArgumentError: bad chunk');
  });

  it('InvalidStateError is an Error with its own name and cause, distinct from InvalidArgumentError', () => {
    const error = new InvalidStateError('closed', { cause: 'why' });
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(InvalidArgumentError);
    expect(error.name).toBe('InvalidStateError');
    expect(error.cause).toBe('why');
  });

  it('errors without options have no cause', () => {
    expect(new InvalidStateError('x').cause).toBeUndefined();
    expect('cause' in new InvalidArgumentError('x')).toBe(false);
  });
});
