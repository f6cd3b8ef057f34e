// Entry of the SFU: WebRTC callers in, their audio to the tokenizer, the vocoder's audio back.

import { runService } from '@duet/runtime';
import { sfuConfig } from './config.js';
import { startSfu } from './sfuService.js';

await runService({ name: 'sfu', config: sfuConfig, start: startSfu });
