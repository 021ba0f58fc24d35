import fc from 'fast-check'
import { expect, test } from 'vitest'
import { isTrustedSnsUrl } from '../providers/aws/sns'
import { isUnderTrustedPrefix } from '../providers/shared/trusted-url'
import { parseConfig } from '../src/config'
import { ADMIN_TOKEN } from './helpers'

/** "Is this URL under the trusted prefix", for AWS_SNS_TRUSTED_CERT_PREFIX and any later one. */

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/)
const host = fc.oneof(fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => `${labels.join('.')}.example`), fc.constant('127.0.0.1'))
const segment = fc.stringMatching(/^[A-Za-z0-9_~-]{1,10}$/)
const path = fc.array(segment, { maxLength: 3 }).map((segments) => segments.map((s) => `/${s}`).join(''))
const origin = fc.record({ scheme: fc.constantFrom('http', 'https'), host, port: fc.oneof(fc.constant(''), fc.integer({ min: 1, max: 65535 }).map(String)) })
  .map(({ scheme, host, port }) => `${scheme}://${host}${port ? `:${port}` : ''}`)

test('property: every path below the prefix is admitted, the prefix given with or without its slash', () => {
  fc.assert(
    fc.property(origin, path, fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 3 }), (base, prefixPath, slash, rest) => {
      const url = `${base}${prefixPath}/${rest.join('/')}`
      expect(isUnderTrustedPrefix(url, `${base}${prefixPath}${slash ? '/' : ''}`)).toBe(true)
    }),
  )
})

test('property: a look-alike is refused: a sibling segment, a longer host, another port or scheme, userinfo', () => {
  fc.assert(
    fc.property(origin, path, segment, fc.stringMatching(/^[a-z0-9.-]{1,10}$/), fc.boolean(), (base, prefixPath, tail, extra, slash) => {
      const prefix = `${base}${prefixPath}${slash ? '/' : ''}`
      const parsed = new URL(base)
      // `/sns` → `/sns-rogue/…`, `/snsx.pem`
      if (prefixPath) expect(isUnderTrustedPrefix(`${base}${prefixPath}-${tail}/cert.pem`, prefix)).toBe(false)
      // `mirror.example.com` → `mirror.example.com.evil.test`, `mirror.example.comx`
      expect(isUnderTrustedPrefix(`${parsed.protocol}//${parsed.hostname}${extra.startsWith('.') ? '' : '.'}${extra}.evil${parsed.port ? `:${parsed.port}` : ''}${prefixPath}/cert.pem`, prefix)).toBe(false)
      // another port (the default one, or any other)
      const otherPort = parsed.port ? '' : ':8443'
      expect(isUnderTrustedPrefix(`${parsed.protocol}//${parsed.hostname}${otherPort}${prefixPath}/cert.pem`, prefix)).toBe(false)
      // http ↔ https
      expect(isUnderTrustedPrefix(`${base.startsWith('https') ? base.replace('https:', 'http:') : base.replace('http:', 'https:')}${prefixPath}/cert.pem`, prefix)).toBe(false)
      // the prefix's origin as userinfo in front of another host, or credentials on the right host
      expect(isUnderTrustedPrefix(`${base}@evil.test${prefixPath}/cert.pem`, prefix)).toBe(false)
      expect(isUnderTrustedPrefix(`${parsed.protocol}//user:pass@${parsed.host}${prefixPath}/cert.pem`, prefix)).toBe(false)
      // a dot segment climbing out of the prefix's path
      if (prefixPath) expect(isUnderTrustedPrefix(`${base}${prefixPath}/../..${prefixPath}-${tail}/cert.pem`, prefix)).toBe(false)
    }),
  )
})

test('property: anything at all is an answer, never an exception; what is admitted shares the prefix origin', () => {
  fc.assert(
    fc.property(fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string()), fc.oneof(fc.webUrl(), fc.string()), (value, prefix) => {
      const admitted = isUnderTrustedPrefix(value, prefix)
      if (admitted) expect(new URL(value).origin).toBe(new URL(prefix).origin)
    }),
  )
})

test('the cases of the report, and the default rule (https on sns.<region>.amazonaws.com) parsed too', () => {
  const admitted: Array<[string, string]> = [
    ['http://127.0.0.1:9000/sns/x.pem', 'http://127.0.0.1:9000/sns/'],
    ['http://127.0.0.1:9000/sns/x.pem', 'http://127.0.0.1:9000/sns'],
    ['http://127.0.0.1:9000/sns', 'http://127.0.0.1:9000/sns'],
    ['https://mirror.example.com/any/where.pem', 'https://mirror.example.com'],
    ['https://MIRROR.example.com:443/a.pem', 'https://mirror.example.com/'],
  ]
  const refused: Array<[string, string]> = [
    ['http://127.0.0.1:9000/sns-rogue/cert.pem', 'http://127.0.0.1:9000/sns/'],
    ['http://127.0.0.1:9000/sns-rogue/cert.pem', 'http://127.0.0.1:9000/sns'],
    ['http://127.0.0.1:9000/sns/..%2Fsns-rogue/cert.pem', 'http://127.0.0.1:9000/sns/'],
    ['http://127.0.0.1:9000/sns/%2e%2e/sns-rogue/cert.pem', 'http://127.0.0.1:9000/sns/'],
    ['http://127.0.0.1:90001/sns/x.pem', 'http://127.0.0.1:9000/sns/'],
    ['http://127.0.0.1:9001/sns/x.pem', 'http://127.0.0.1:900'],
    ['https://mirror.example.com.evil.test/x.pem', 'https://mirror.example.com'],
    ['https://mirror.example.com@evil.test/x.pem', 'https://mirror.example.com'],
    ['http://mirror.example.com/x.pem', 'https://mirror.example.com'],
    ['https://mirror.example.com:8443/x.pem', 'https://mirror.example.com'],
    ['file:///etc/passwd', 'file:///etc'],
    ['not a url', 'https://mirror.example.com'],
  ]
  for (const [url, prefix] of admitted) expect(isUnderTrustedPrefix(url, prefix), `${url} under ${prefix}`).toBe(true)
  for (const [url, prefix] of refused) expect(isUnderTrustedPrefix(url, prefix), `${url} under ${prefix}`).toBe(false)

  expect(isTrustedSnsUrl('https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem', undefined)).toBe(true)
  expect(isTrustedSnsUrl('https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem', undefined)).toBe(true)
  for (const url of [
    'https://sns.us-east-1.amazonaws.com@evil.test/SimpleNotificationService-abc.pem',
    'https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-abc.pem',
    'https://evil.test/sns.us-east-1.amazonaws.com/x.pem',
    'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem',
    'https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
  ]) {
    expect(isTrustedSnsUrl(url, undefined), url).toBe(false)
  }
})

test('AWS_SNS_TRUSTED_CERT_PREFIX is kept exactly as given (its slash too); credentials, a query or a fragment are a configuration error', () => {
  const env = { ADMIN_TOKEN, ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64') }
  expect(parseConfig({ ...env, AWS_SNS_TRUSTED_CERT_PREFIX: 'http://127.0.0.1:9000/sns/' }).AWS_SNS_TRUSTED_CERT_PREFIX).toBe('http://127.0.0.1:9000/sns/')
  for (const bad of ['https://user:pass@mirror.example.com/sns/', 'https://mirror.example.com/sns/?x=1', 'https://mirror.example.com/sns/#x', 'ftp://mirror.example.com/']) {
    expect(() => parseConfig({ ...env, AWS_SNS_TRUSTED_CERT_PREFIX: bad }), bad).toThrow(/AWS_SNS_TRUSTED_CERT_PREFIX/)
  }
})
