/**
 * Whether `value` lies under the configured `prefix`, judged on the parsed URLs and never on the
 * strings: a string prefix `http://host:9000/sns` also admits `http://host:9000/sns-rogue/…`, and
 * an origin `https://mirror.example.com` also admits `https://mirror.example.com.evil.test/…`
 * and `https://mirror.example.com@evil.test/…`. A URL we are about to trust (fetch a signing key
 * from, confirm a subscription at) must have:
 * - the prefix's scheme (http or https only), host and port (default ports normalized away);
 * - no userinfo, which only ever serves to make a URL look like another host's;
 * - a path equal to the prefix's, or continuing it after a `/` (`/sns` and `/sns/` both admit
 *   `/sns/x.pem`, neither `/sns-rogue/x.pem`; an origin-only prefix admits every path on exactly
 *   that origin). Dot segments are resolved by the parser first (`/sns/../x` is `/x`), and an
 *   encoded `/` or `\` is refused, since a server may decode it into a segment boundary of its own.
 */
export function isUnderTrustedPrefix(value: string, prefix: string): boolean {
  const url = parseHttpUrl(value)
  const base = parseHttpUrl(prefix)
  if (!url || !base) return false
  if (url.protocol !== base.protocol || url.hostname !== base.hostname || url.port !== base.port) return false
  if (/%(2f|5c)/i.test(url.pathname)) return false
  const root = base.pathname.replace(/\/+$/, '')
  return url.pathname === root || url.pathname.startsWith(`${root}/`)
}

/** An absolute http(s) URL without userinfo, parsed; anything else is null. */
export function parseHttpUrl(value: string): URL | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null
  if (url.username || url.password || !url.hostname) return null
  return url
}
