/**
 * AWS License Manager license ARNs, as AWS Marketplace prints them. ResolveCustomer and
 * GetEntitlements answer `arn:aws:license-manager::<account>:license:l-…`; the EventBridge
 * license events print the same license as `aws:license-manager:us-east-1:<account>:l-…` (no
 * `arn:`, a region, sometimes no `license:`). Only the trailing `l-…` id is the same in every
 * print, so licenses are compared by it and nothing else.
 *
 * Storage: an entitlement keeps the ARN exactly as AWS gave it at its first landing (its
 * `externalId`, and what GetEntitlements and BatchMeterUsage are sent); any later sighting in
 * another print finds it by the id (src/db/entitlements.ts).
 */

/** A license id: `l-` and letters, digits, `_` or `-` (AWS's are 32 hex digits; the data layer escapes `_` in its LIKE). */
const LICENSE_ID = /(?:^|[:/])(l-[\w-]{1,128})$/

/** The `l-…` id of a license ARN in any of AWS's prints, or null when `value` is not one. */
export function licenseId(value: string | null | undefined): string | null {
  if (!value || value.length > 2048 || !value.includes('license-manager')) return null
  return LICENSE_ID.exec(value)?.[1] ?? null
}

/** Whether two strings name the same license (never true when either is not a license ARN). */
export function sameLicense(a: string | null | undefined, b: string | null | undefined): boolean {
  const id = licenseId(a)
  return id !== null && id === licenseId(b)
}
