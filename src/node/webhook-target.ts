import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

/**
 * The SSRF guard for webhook deliveries on Node: the ISV's webhookUrl must not reach the broker's
 * own network. The host is resolved at every send (DNS may change after the URL was checked) and
 * every address it resolves to must be public; private, loopback, link-local, CGNAT, multicast
 * and unspecified ranges are refused. The one exception is a URL whose host was given literally
 * as `localhost` or `127.0.0.1` (an ISV testing on its own machine), as `fulfillmentUrl` allows.
 */
const blocked = new BlockList()
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4')
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['::ffff:0:0', 96],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6')
}

const LITERAL_LOCAL = new Set(['localhost', '127.0.0.1'])

export async function checkWebhookTarget(url: string): Promise<string | null> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'not a URL'
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '')
  if (LITERAL_LOCAL.has(host)) return null
  let addresses: Array<{ address: string; family: number }>
  try {
    addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true, verbatim: true })
  } catch {
    return `${host} does not resolve`
  }
  for (const { address, family } of addresses) {
    if (blocked.check(address, family === 6 ? 'ipv6' : 'ipv4')) return `${host} resolves to a private, loopback or link-local address`
  }
  return null
}
