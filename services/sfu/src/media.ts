// The media plane other edges reuse (the SIP bridge): mediasoup loading, the worker pool and the
// call's link to the tokenizer and vocoder.

export { defaultWorkerBin, MEDIASOUP_VERSION } from './config.js';
export {
  audioProducerOptions,
  LinkClosedError,
  type LoopCodec,
  LoopLink,
  type LoopLinkOptions,
  routerCodec,
} from './loopLink.js';
export { loadMediasoup, type Mediasoup, resolveWorkerBin } from './mediasoupLoader.js';
export { WorkerPool, type WorkerPoolOptions, type WorkerSlot } from './workerPool.js';
