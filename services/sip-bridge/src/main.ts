// Entry of the SIP bridge: phone callers in over SIP, their media on the mediasoup plane.

import { runService } from '@duet/runtime';
import { sipConfig } from './config.js';
import { startSipBridge } from './sipService.js';

await runService({ name: 'sip-bridge', config: sipConfig, start: startSipBridge });
