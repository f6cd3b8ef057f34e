import { describe, expect, it } from 'vitest';
import { originAllowed } from './originAllowlist.js';

describe('origin allowlist', () => {
  it('allows no Origin, the same origin and listed origins only', () => {
    expect(originAllowed(undefined, 'sfu:8088', [])).toBe(true);
    expect(originAllowed('http://sfu:8088', 'sfu:8088', [])).toBe(true);
    expect(originAllowed('https://evil.example', 'sfu:8088', [])).toBe(false);
    expect(originAllowed('https://app.example', 'sfu:8088', ['https://app.example'])).toBe(true);
    expect(originAllowed('https://x.example', 'sfu:8088', ['*'])).toBe(true);
    expect(originAllowed('garbage', 'sfu:8088', [])).toBe(false);
  });
});
