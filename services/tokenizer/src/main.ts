// Entry of the tokenizer service: caller RTP in, user speech units out on every clock tick.

import { runService } from '@duet/runtime';
import { tokenizerConfig } from './config.js';
import { TokenizerService } from './tokenizerService.js';

await runService({
  name: 'tokenizer',
  config: tokenizerConfig,
  start: async (ctx) => (await TokenizerService.start(ctx)).handle(),
});
