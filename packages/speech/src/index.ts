export { crossFade } from './crossFade.js';
export { ClosedError, InvalidArgumentError, SpeechModelError } from './errors.js';
export { loadSpeechManifest, type UnitsManifest, type VocoderManifest } from './manifest.js';
export {
  SpeechTokenizer,
  type SpeechTokenizerOptions,
  type TokenizeItem,
  TokenizerStream,
} from './speechTokenizer.js';
export { type VocodeItem, Vocoder, type VocoderOptions, VocoderStream } from './vocoder.js';
