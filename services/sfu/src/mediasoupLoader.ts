// Loads mediasoup with its worker binary: mediasoup reads MEDIASOUP_WORKER_BIN once, when the
// module is first imported, so it is set here before a dynamic import.

import { accessSync, constants } from 'node:fs';
import { defaultWorkerBin } from './config.js';

export type Mediasoup = typeof import('mediasoup');

let loaded: Promise<Mediasoup> | undefined;

/** The worker binary: the given path, else MEDIASOUP_WORKER_BIN, else the build script's cache. */
export function resolveWorkerBin(configured?: string): string {
  const bin = configured ?? process.env.MEDIASOUP_WORKER_BIN ?? defaultWorkerBin();
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(
      `mediasoup worker not found at ${bin}: run scripts/build-mediasoup-worker.sh (or set DUET_SFU_WORKER_BIN / MEDIASOUP_WORKER_BIN)`,
    );
  }
  return bin;
}

export function loadMediasoup(workerBin: string): Promise<Mediasoup> {
  if (!loaded) {
    process.env.MEDIASOUP_WORKER_BIN = workerBin;
    loaded = import('mediasoup');
  }
  return loaded;
}
