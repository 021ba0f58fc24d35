import { OFFER_TYPES, type Partner } from '../../../providers/types'
import { ApiError } from '../../errors'
import type { Integration } from '../../schemas'

/**
 * The console's integration forms: one field per field of the `PUT …/integrations/{partner}` body
 * (providers/{partner}/settings.ts), how it is typed, and where its value is in the answer's
 * settings. The form is turned into exactly that body, so the console configures an integration
 * as the API does (the same domain call); secret fields are never pre-filled.
 */

export type FieldKind =
  /** One line of text; empty = left out. */
  | 'text'
  /** A secret typed again or left blank (kept, see configureIntegration's keepOmittedSecrets). */
  | 'secret'
  /** A secret JSON document (Google's service account key file). */
  | 'secret-json'
  /** `key = value` lines, a record. */
  | 'pairs'
  /** One value a line, a list. */
  | 'lines'
  /** A yes/no, checked or not. */
  | 'checkbox'

export interface IntegrationField {
  /** The form field's name and the setting it shows (the answer's key). */
  name: string
  /** Where it goes in the PUT body: `name`, or `parent.name`. */
  path: [string] | [string, string]
  kind: FieldKind
  label: string
  hint: string
  placeholder?: string
  required?: boolean
  /** A checkbox's value when there is no integration yet. */
  initially?: boolean
}

const offerTypesHint = (keyName: string) =>
  `One a line: ${keyName} = offer type, e.g. gold = SUBSCRIPTION (one of ${OFFER_TYPES.join(', ')}). Unlisted ones are told by the marketplace.`

export const INTEGRATION_FIELDS: Record<Partner, IntegrationField[]> = {
  azure: [
    {
      name: 'tenantId',
      path: ['tenantId'],
      kind: 'text',
      required: true,
      label: 'Tenant ID',
      hint: 'The Directory (tenant) ID of the Microsoft Entra app registered for your offer in Partner Center (Technical configuration).',
      placeholder: '72f988bf-86f1-41af-91ab-2d7cd011db47',
    },
    {
      name: 'clientId',
      path: ['clientId'],
      kind: 'text',
      required: true,
      label: 'Client (application) ID',
      hint: 'The Application (client) ID of that app registration (Entra admin center → App registrations).',
    },
    {
      name: 'clientSecret',
      path: ['clientSecret'],
      kind: 'secret',
      required: true,
      label: 'Client secret',
      hint: "A client secret's Value (not its ID), from the app registration's Certificates & secrets.",
    },
    { name: 'offerTypes', path: ['offerTypes'], kind: 'pairs', label: 'Offer types by plan', hint: offerTypesHint('plan id') },
  ],
  aws: [
    {
      name: 'region',
      path: ['region'],
      kind: 'text',
      label: 'Region',
      hint: 'Where the AWS Marketplace APIs are called: us-east-1 (the default) for almost every seller.',
      placeholder: 'us-east-1',
    },
    {
      name: 'accessKeyId',
      path: ['credentials', 'accessKeyId'],
      kind: 'text',
      label: 'Access key ID',
      hint: 'Of an IAM user in your seller account allowed to call the AWS Marketplace Metering and Entitlement APIs. Leave the keys empty to use only a role.',
      placeholder: 'AKIA…',
    },
    {
      name: 'secretAccessKey',
      path: ['credentials', 'secretAccessKey'],
      kind: 'secret',
      label: 'Secret access key',
      hint: "The access key's secret, shown by IAM when the key was created.",
    },
    {
      name: 'sessionToken',
      path: ['credentials', 'sessionToken'],
      kind: 'secret',
      label: 'Session token',
      hint: 'Only for temporary credentials. Left blank with the secret access key, the stored one is kept with it.',
    },
    {
      name: 'roleArn',
      path: ['roleArn'],
      kind: 'text',
      label: 'Role ARN',
      hint: 'A role in your seller account to assume for the marketplace calls (with the keys above, or with the broker’s own credentials).',
      placeholder: 'arn:aws:iam::123456789012:role/Marketbridge',
    },
    { name: 'externalId', path: ['externalId'], kind: 'text', label: 'External ID', hint: "Only if the role's trust policy asks for one." },
    { name: 'offerTypes', path: ['offerTypes'], kind: 'pairs', label: 'Offer types by product code', hint: offerTypesHint('product code') },
    {
      name: 'notificationTopicArns',
      path: ['notificationTopicArns'],
      kind: 'lines',
      label: 'SNS topics',
      hint: 'The aws-mp-subscription-notification-… and aws-mp-entitlement-notification-… topic ARNs to accept, one a line; any AWS Marketplace topic when empty.',
    },
  ],
  gcp: [
    {
      name: 'providerId',
      path: ['providerId'],
      kind: 'text',
      required: true,
      label: 'Provider ID',
      hint: 'Your Producer Portal provider id (the providers/{id} of the Cloud Commerce Partner Procurement API).',
    },
    {
      name: 'audience',
      path: ['audience'],
      kind: 'text',
      required: true,
      label: 'JWT audience',
      hint: "The audience of the signup JWT Google sends with a buyer: your product's domain as set in Producer Portal.",
    },
    {
      name: 'serviceAccountKey',
      path: ['serviceAccountKey'],
      kind: 'secret-json',
      required: true,
      label: 'Service account key (JSON)',
      hint: 'The whole JSON key file of a service account with the Commerce Partner Procurement roles (Google Cloud console → IAM & Admin → Service accounts → Keys → Add key).',
    },
    {
      name: 'pushServiceAccount',
      path: ['pushServiceAccount'],
      kind: 'text',
      label: 'Pub/Sub push service account',
      hint: "The service account your Pub/Sub push subscription authenticates as. Google's notifications are accepted only once it is set.",
    },
    { name: 'pushAudience', path: ['pushAudience'], kind: 'text', label: 'Push audience', hint: "The push subscription's OIDC audience; the notification URL when empty." },
    {
      name: 'autoApprovePlanChanges',
      path: ['autoApprovePlanChanges'],
      kind: 'checkbox',
      initially: true,
      label: 'Approve plan changes at once',
      hint: "A buyer's plan change request is approved by the broker; unchecked, it waits for your app to approve it.",
    },
    { name: 'offerTypes', path: ['offerTypes'], kind: 'pairs', label: 'Offer types by plan', hint: offerTypesHint('plan') },
    {
      name: 'serviceNames',
      path: ['serviceNames'],
      kind: 'pairs',
      label: 'Service Control names by product',
      hint: 'For usage reports. One a line: product id = service name; the product id when not listed.',
    },
  ],
}

/** The answer's keys that are not settings of the form: where the integration is, and when. */
const ABOUT = new Set(['partner', 'partnerId', 'signupUrl', 'notificationUrl', 'notificationSecret', 'createdAt', 'updatedAt'])

/** The label of a setting of the answer (one the form has, or one the broker derives). */
export function settingLabel(partner: Partner, key: string): string {
  if (key === 'serviceAccountEmail') return 'Service account'
  return INTEGRATION_FIELDS[partner].find((field) => field.name === key)?.label ?? key
}

/** The settings of an integration as the API answers them, without where it is and when. */
export const settingsOf = (integration: Integration) => Object.entries(integration).filter(([key]) => !ABOUT.has(key))

const invalid = (label: string, why: string) => new ApiError('VALIDATION_ERROR', `${label}: ${why}`)

function pairs(field: IntegrationField, text: string): Record<string, string> | undefined {
  // A Map, then own properties: a key such as __proto__ is a key like any other.
  const record = new Map<string, string>()
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean)
  for (const [index, line] of lines.entries()) {
    // The last "=": values (offer types, service names) have none, a plan id might.
    const at = line.lastIndexOf('=')
    const key = at < 0 ? '' : line.slice(0, at).trim()
    const value = at < 0 ? '' : line.slice(at + 1).trim()
    if (!key || !value) throw invalid(field.label, `line ${index + 1} must be "key = value".`)
    if (record.has(key)) throw invalid(field.label, `"${key}" is listed twice.`)
    record.set(key, value)
  }
  return lines.length ? Object.fromEntries(record) : undefined
}

/**
 * The PUT body a submitted form stands for: empty fields left out (a secret left out is the stored
 * one), text trimmed. What the form cannot even parse (a line without "=", a key that is no JSON)
 * is a VALIDATION_ERROR naming the field; everything else is the schema's to judge.
 */
export function bodyOfForm(partner: Partner, form: Record<string, string>): Record<string, unknown> {
  const body: Record<string, unknown> = {}
  const put = (path: IntegrationField['path'], value: unknown) => {
    if (path.length === 1) body[path[0]] = value
    else ((body[path[0]] ??= {}) as Record<string, unknown>)[path[1]] = value
  }
  for (const field of INTEGRATION_FIELDS[partner]) {
    const raw = form[field.name] ?? ''
    if (field.kind === 'checkbox') {
      put(field.path, raw !== '')
      continue
    }
    const text = raw.trim()
    if (!text) continue
    if (field.kind === 'pairs') put(field.path, pairs(field, text))
    else if (field.kind === 'lines') put(field.path, text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean))
    else if (field.kind === 'secret-json') {
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        throw invalid(field.label, 'paste the whole JSON key file, from { to }.')
      }
      put(field.path, parsed)
    } else put(field.path, text)
  }
  return body
}

/** The form's values from the integration as the API answers it (secret fields: none, ever). */
export function formOfIntegration(partner: Partner, integration: Integration | undefined): Record<string, string> {
  const values: Record<string, string> = {}
  for (const field of INTEGRATION_FIELDS[partner]) {
    if (field.kind === 'secret' || field.kind === 'secret-json') continue
    const value = integration?.[field.name]
    if (field.kind === 'checkbox') values[field.name] = (integration ? value === true : field.initially) ? 'on' : ''
    else if (value === undefined || value === null) values[field.name] = ''
    else if (field.kind === 'pairs' && typeof value === 'object') values[field.name] = Object.entries(value as Record<string, unknown>).map(([key, inner]) => `${key} = ${String(inner)}`).join('\n')
    else if (field.kind === 'lines' && Array.isArray(value)) values[field.name] = value.map(String).join('\n')
    else values[field.name] = String(value)
  }
  return values
}

/** The values typed into a refused form, secrets dropped: what it is shown again with. */
export function typedValues(partner: Partner, form: Record<string, string>): Record<string, string> {
  const values: Record<string, string> = {}
  for (const field of INTEGRATION_FIELDS[partner]) {
    if (field.kind === 'secret' || field.kind === 'secret-json') continue
    values[field.name] = field.kind === 'checkbox' ? (form[field.name] ? 'on' : '') : (form[field.name] ?? '')
  }
  return values
}
