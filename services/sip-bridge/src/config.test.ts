import { ConfigError, loadConfig } from '@duet/runtime';
import { describe, expect, it } from 'vitest';
import { sipConfig } from './config.js';

const load = (env: Record<string, string>) => loadConfig('sip-bridge', sipConfig, env);

describe('sipConfig', () => {
  it('defaults: SIP on 5060 over UDP and TCP, loopback callers only, Opus first', () => {
    const c = load({});
    expect([c.DUET_SIP_PORT, c.DUET_SIP_TRANSPORTS]).toEqual([5060, 'udp,tcp']);
    expect(c.DUET_SIP_TRUNKS).toEqual([{ name: 'local', allow: ['127.0.0.0/8', '::1/128'] }]);
    expect(c.DUET_SIP_CODECS).toEqual(['OPUS', 'PCMU', 'PCMA']);
    expect(c.DUET_SIP_ANSWER_ON).toBe('media');
  });

  it('DUET_SIP_ANSWER_ON: media (default) or services', () => {
    expect(load({ DUET_SIP_ANSWER_ON: 'services' }).DUET_SIP_ANSWER_ON).toBe('services');
    expect(load({ DUET_SIP_ANSWER_ON: 'media' }).DUET_SIP_ANSWER_ON).toBe('media');
  });

  it('reads trunks as JSON, with credentials', () => {
    const trunks = [{ name: 'pbx', allow: [], username: 'u', password: 'p' }];
    expect(load({ DUET_SIP_TRUNKS: JSON.stringify(trunks), DUET_SIP_CODECS: 'pcmu,pcma' })).toMatchObject({
      DUET_SIP_TRUNKS: trunks,
      DUET_SIP_CODECS: ['PCMU', 'PCMA'],
    });
  });

  it('refuses bad values, naming the variable: not JSON, an unknown trunk key, half credentials, an open trunk, a codec', () => {
    for (const env of <Record<string, string>[]>[
      { DUET_SIP_TRUNKS: 'not json' },
      { DUET_SIP_TRUNKS: '[{"name":"t","allow":["10.0.0.0/8"],"secret":"x"}]' },
      { DUET_SIP_TRUNKS: '[{"name":"t","allow":["10.0.0.0/8"],"username":"u"}]' },
      { DUET_SIP_TRUNKS: '[{"name":"t"}]' },
      { DUET_SIP_TRUNKS: '[]' },
      { DUET_SIP_CODECS: 'PCMU,G729' },
      { DUET_SIP_TRANSPORTS: 'sctp' },
      { DUET_SIP_MAX_MESSAGE_BYTES: '100' },
      { DUET_SIP_ANSWER_ON: 'ringing' },
      { DUET_SIP_ANSWER_ON: 'MEDIA' },
    ]) {
      const key = Object.keys(env)[0]!;
      expect(() => load(env), key).toThrow(ConfigError);
      try {
        load(env);
      } catch (error) {
        expect((error as ConfigError).message).toContain(key);
      }
    }
  });
});
