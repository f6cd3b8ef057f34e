import { pino } from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stdout (one object per line), tagged with the service and replica. */
export function createLogger(service: string, instance: string, level = 'info'): Logger {
  return pino({
    level,
    base: { service, instance },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
