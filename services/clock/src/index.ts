// What other services reuse from the clock: pure helpers for consuming ticks.
export { decideTick, type LeaseView, phaseAt, type TickDecision, type TickPhase } from './election.js';
export { TickGapDetector, type TickObservation, type TickObservationKind } from './tickGapDetector.js';
export { type TickSchedule, tickSchedule } from './tickSchedule.js';
