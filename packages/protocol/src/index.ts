// Generated message types (from proto/ via `pnpm gen`) plus safe decoding.

export { decodeMessage, ProtocolError } from './decode.js';
export { Tick } from './gen/duet/v1/clock.js';
export { Speaker, UnitChunk } from './gen/duet/v1/units.js';
