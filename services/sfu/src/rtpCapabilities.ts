// Comparing RTP capabilities as values (pure: the browser client uses it to tell whether the
// Device it loaded ahead of the click fits the router of its call).

/** `value` as JSON with every object's keys sorted (undefined members dropped, as JSON does). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** True when two RTP capabilities (or any JSON values) are equal, whatever their key order. */
export function sameCapabilities(a: unknown, b: unknown): boolean {
  return a !== undefined && b !== undefined && canonicalJson(a) === canonicalJson(b);
}
