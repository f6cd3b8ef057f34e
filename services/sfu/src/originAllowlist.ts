// The origin allowlist of the signalling socket (the per-IP limit is @duet/runtime's KeyedRateLimiter).

/** Origin check: no Origin (not a browser), the SFU's own origin, or one on the allowlist. */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[],
): boolean {
  if (origin === undefined) return true;
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}
