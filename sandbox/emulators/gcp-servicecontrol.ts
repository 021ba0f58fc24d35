import { Hono } from 'hono'
import { listenOnLoopback } from './listen'

/**
 * Google Service Control API v1 emulator (usage reporting for Cloud Marketplace SaaS), written
 * from Google's documents:
 * - "Configure usage reporting to Google"
 *   (https://cloud.google.com/marketplace/docs/partners/integrated-saas/configure-usage-reports):
 *   `services.check` first and `services.report` only when `checkErrors[]` is empty; the report is
 *   an Operation `{operationId, operationName, consumerId: <usageReportingId>, startTime, endTime,
 *   metricValueSets: [{metricName: "<product>/<metric>", metricValues: [{int64Value: "150"}]}],
 *   userLabels?}` POSTed to `/v1/services/<service name>:report` (Google's example:
 *   `example-messaging-service.gcpmarketplace.example.com`); the same operationId for the check and
 *   the report of one operation; a consumer whose service is disabled gets a check error and is
 *   not charged.
 * - The Service Control v1 REST reference
 *   (https://cloud.google.com/service-infrastructure/docs/service-control/reference/rest/v1/services/check,
 *   …/services/report, …/Operation; CheckError.Code and ReportResponse as in the client libraries'
 *   reference pages): `POST /v1/services/{serviceName}:check` `{operation, serviceConfigId?}` ->
 *   `{operationId, checkErrors?: [{code, subject, detail, status}], serviceConfigId,
 *   serviceRolloutId}`; `POST /v1/services/{serviceName}:report` `{operations[], serviceConfigId?}`
 *   -> `{serviceConfigId, serviceRolloutId}` on complete success, or with `reportErrors:
 *   [{operationId, status: {code, message}}]`, one per failed Operation (partial success; the
 *   others are accepted). Both need the `servicemanagement.services.check`/`.report` permission on
 *   the service. Operation: `operationId` is unique per operation and the idempotent id for
 *   deduplication; `consumerId` is `project:ID`, `project_number:NUMBER`, `projects/ID|NUMBER`,
 *   `folders/N`, `organizations/N` or `api_key:KEY`; `startTime` is required; `endTime` is required
 *   in a report. A MetricValue holds one of boolValue, int64Value (a JSON string or number),
 *   doubleValue, stringValue, distributionValue, moneyValue.
 *
 * What it enforces:
 * - `Authorization: Bearer <token>` accepted by `options.isAuthorized` (e.g. the GCP emulator's
 *   access tokens), else 401 UNAUTHENTICATED.
 * - A service nobody registered (`addConsumer` registers it, as does `addService`): 403
 *   PERMISSION_DENIED "Permission 'servicemanagement.services.<check|report>' denied on service
 *   '<name>'." (Google answers with the permission error rather than revealing whether a service
 *   exists).
 * - Request bodies read as Google's JSON mapping does: malformed JSON, unknown fields (camelCase or
 *   snake_case accepted), a missing operation/operationId/startTime (and endTime in a report), a
 *   bad timestamp or endTime before startTime, a metric value with not exactly one value, a
 *   non-integral int64Value: 400 INVALID_ARGUMENT for the whole call.
 * - Check: an unknown consumer -> checkErrors `PROJECT_INVALID` (a project consumerId) or
 *   `CONSUMER_INVALID` (any other form, or none); a suspended consumer -> `SERVICE_NOT_ACTIVATED`
 *   (or `BILLING_DISABLED` / `PROJECT_DELETED`, per `suspendConsumer`). HTTP 200 either way.
 * - Report: per operation, the same consumer rules give a `reportErrors` entry (HTTP 200) and the
 *   operation is not recorded; an operationId already accepted for the service is accepted again
 *   and not counted twice (`reports` keeps the first; `duplicates` counts the repeats).
 * - `failNext(route, status, times)` answers a Google error of that status after auth.
 */

/** CheckError.Code values (google.api.servicecontrol.v1.CheckError.Code) this emulator emits. */
export type CheckErrorCode =
  | 'NOT_FOUND'
  | 'PERMISSION_DENIED'
  | 'SERVICE_NOT_ACTIVATED'
  | 'BILLING_DISABLED'
  | 'PROJECT_DELETED'
  | 'PROJECT_INVALID'
  | 'CONSUMER_INVALID'

export type ServiceControlRoute = 'check' | 'report'

export interface CheckError {
  code: CheckErrorCode
  subject?: string
  detail: string
  status?: { code: number; message: string }
}

export interface MetricValue {
  int64Value?: string
  doubleValue?: number
  boolValue?: boolean
  stringValue?: string
  startTime?: string
  endTime?: string
  labels?: Record<string, string>
  [field: string]: unknown
}

export interface MetricValueSet {
  metricName: string
  metricValues: MetricValue[]
}

/** An operation the emulator accepted in a report (the first time its operationId came). */
export interface AcceptedOperation {
  serviceName: string
  operationId: string
  operationName?: string
  consumerId: string
  startTime: string
  endTime: string
  metricValueSets: MetricValueSet[]
  userLabels?: Record<string, string>
  labels?: Record<string, string>
  receivedAt: string
}

export interface ServiceControlCall {
  route: ServiceControlRoute | null
  method: string
  path: string
  serviceName: string
  body: string
  authorization: string | null
}

/** google.rpc.Code numbers and names used below. */
const RPC = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
} as const

const REASON_FOR_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  501: 'NOT_IMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
}

/** The fields of each message, for the JSON mapping's unknown-field check. */
const CHECK_REQUEST_FIELDS = ['operation', 'serviceConfigId', 'requestProjectSettings', 'skipActivationCheck']
const REPORT_REQUEST_FIELDS = ['operations', 'serviceConfigId']
const OPERATION_FIELDS = [
  'operationId',
  'operationName',
  'consumerId',
  'startTime',
  'endTime',
  'labels',
  'metricValueSets',
  'logEntries',
  'importance',
  'extensions',
  'userLabels',
  'quotaProperties',
  'traceSpans',
]
const METRIC_VALUE_SET_FIELDS = ['metricName', 'metricValues']
const METRIC_VALUE_FIELDS = ['labels', 'startTime', 'endTime', 'boolValue', 'int64Value', 'doubleValue', 'stringValue', 'distributionValue', 'moneyValue']
const VALUE_FIELDS = ['boolValue', 'int64Value', 'doubleValue', 'stringValue', 'distributionValue', 'moneyValue']

/** RFC 3339 with a `Z` or offset, as google.protobuf.Timestamp's JSON form. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/
/** The consumerId forms the Operation reference lists. */
const PROJECT_CONSUMER = /^(project:[a-z][-a-z0-9]{4,28}[a-z0-9]|project_number:\d+|projects\/[^/]+)$/
const OTHER_CONSUMER = /^(folders\/\d+|organizations\/\d+|api_key:.+)$/

class InvalidArgument extends Error {}

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase())

/** One message as Google's JSON mapping reads it: snake_case or lowerCamelCase names, unknown names refused. */
function readObject(value: unknown, fields: string[], where: string): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidArgument(`Invalid value at '${where}': expected an object.`)
  }
  const out: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(value)) {
    const name = camel(key)
    if (!fields.includes(name)) throw new InvalidArgument(`Invalid JSON payload received. Unknown name "${key}" at '${where}': Cannot find field.`)
    out[name] = field
  }
  return out
}

function readTimestamp(value: unknown, where: string, required: boolean): string | undefined {
  if (value === undefined || value === null) {
    if (required) throw new InvalidArgument(`${where} is required.`)
    return undefined
  }
  if (typeof value !== 'string' || !TIMESTAMP.test(value) || Number.isNaN(Date.parse(value))) {
    throw new InvalidArgument(`Invalid value at '${where}' (type.googleapis.com/google.protobuf.Timestamp), Field '${where}', Invalid time format: ${JSON.stringify(value)}`)
  }
  return value
}

function readStringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new InvalidArgument(`Invalid value at '${where}': expected a map of strings.`)
  }
  return value as Record<string, string>
}

function readMetricValue(raw: unknown, where: string): MetricValue {
  const value = readObject(raw, METRIC_VALUE_FIELDS, where)
  const present = VALUE_FIELDS.filter((field) => value[field] !== undefined && value[field] !== null)
  if (present.length !== 1) throw new InvalidArgument(`${where} must set exactly one value (${VALUE_FIELDS.join(', ')}).`)
  const out: MetricValue = {}
  const startTime = readTimestamp(value.startTime, `${where}.start_time`, false)
  const endTime = readTimestamp(value.endTime, `${where}.end_time`, false)
  if (startTime) out.startTime = startTime
  if (endTime) out.endTime = endTime
  if (startTime && endTime && Date.parse(endTime) < Date.parse(startTime)) throw new InvalidArgument(`${where}: end_time is before start_time.`)
  const labels = readStringMap(value.labels, `${where}.labels`)
  if (labels) out.labels = labels
  const field = present[0]!
  const given = value[field]
  if (field === 'int64Value') {
    // int64 is a JSON string in Google's mapping; a JSON integer is accepted too.
    const text = typeof given === 'number' && Number.isInteger(given) ? String(given) : given
    if (typeof text !== 'string' || !/^-?\d+$/.test(text) || BigInt(text) > 9223372036854775807n || BigInt(text) < -9223372036854775808n) {
      throw new InvalidArgument(`Invalid value at '${where}.int64_value' (TYPE_INT64), ${JSON.stringify(given)}`)
    }
    out.int64Value = text
  } else if (field === 'doubleValue') {
    const number = typeof given === 'string' && given.trim() !== '' ? Number(given) : given
    if (typeof number !== 'number' || !Number.isFinite(number)) throw new InvalidArgument(`Invalid value at '${where}.double_value' (TYPE_DOUBLE), ${JSON.stringify(given)}`)
    out.doubleValue = number
  } else if (field === 'boolValue') {
    if (typeof given !== 'boolean') throw new InvalidArgument(`Invalid value at '${where}.bool_value' (TYPE_BOOL), ${JSON.stringify(given)}`)
    out.boolValue = given
  } else if (field === 'stringValue') {
    if (typeof given !== 'string') throw new InvalidArgument(`Invalid value at '${where}.string_value' (TYPE_STRING), ${JSON.stringify(given)}`)
    out.stringValue = given
  } else {
    out[field] = given
  }
  return out
}

interface ReadOperation {
  operationId: string
  operationName?: string
  consumerId?: string
  startTime: string
  endTime?: string
  metricValueSets: MetricValueSet[]
  userLabels?: Record<string, string>
  labels?: Record<string, string>
}

function readOperation(raw: unknown, where: string, forReport: boolean): ReadOperation {
  const operation = readObject(raw, OPERATION_FIELDS, where)
  if (typeof operation.operationId !== 'string' || !operation.operationId) throw new InvalidArgument(`${where}.operation_id is required.`)
  if (operation.operationName !== undefined && typeof operation.operationName !== 'string') throw new InvalidArgument(`Invalid value at '${where}.operation_name' (TYPE_STRING).`)
  if (operation.consumerId !== undefined && typeof operation.consumerId !== 'string') throw new InvalidArgument(`Invalid value at '${where}.consumer_id' (TYPE_STRING).`)
  const startTime = readTimestamp(operation.startTime, `${where}.start_time`, true)!
  const endTime = readTimestamp(operation.endTime, `${where}.end_time`, forReport)
  if (endTime && Date.parse(endTime) < Date.parse(startTime)) throw new InvalidArgument(`${where}: end_time is before start_time.`)
  const sets = operation.metricValueSets ?? []
  if (!Array.isArray(sets)) throw new InvalidArgument(`Invalid value at '${where}.metric_value_sets': expected a list.`)
  const metricValueSets = sets.map((rawSet, i) => {
    const setWhere = `${where}.metric_value_sets[${i}]`
    const set = readObject(rawSet, METRIC_VALUE_SET_FIELDS, setWhere)
    if (typeof set.metricName !== 'string' || !set.metricName) throw new InvalidArgument(`${setWhere}.metric_name is required.`)
    const values = set.metricValues ?? []
    if (!Array.isArray(values)) throw new InvalidArgument(`Invalid value at '${setWhere}.metric_values': expected a list.`)
    return { metricName: set.metricName, metricValues: values.map((value, j) => readMetricValue(value, `${setWhere}.metric_values[${j}]`)) }
  })
  const out: ReadOperation = { operationId: operation.operationId, startTime, metricValueSets }
  if (typeof operation.operationName === 'string') out.operationName = operation.operationName
  if (typeof operation.consumerId === 'string') out.consumerId = operation.consumerId
  if (endTime) out.endTime = endTime
  const userLabels = readStringMap(operation.userLabels, `${where}.user_labels`)
  if (userLabels) out.userLabels = userLabels
  const labels = readStringMap(operation.labels, `${where}.labels`)
  if (labels) out.labels = labels
  return out
}

/** The public google.rpc.Status a check error carries (as Google's own ESP proxies surface them). */
function statusFor(code: CheckErrorCode, serviceName: string): { code: number; message: string } {
  switch (code) {
    case 'NOT_FOUND':
      return { code: RPC.INVALID_ARGUMENT, message: 'Client project not found. Please pass a valid project.' }
    case 'PROJECT_INVALID':
      return { code: RPC.INVALID_ARGUMENT, message: 'Client project not valid. Please pass a valid project.' }
    case 'CONSUMER_INVALID':
      return { code: RPC.INVALID_ARGUMENT, message: 'Consumer is not valid. Please pass a valid consumer.' }
    case 'PROJECT_DELETED':
      return { code: RPC.PERMISSION_DENIED, message: 'Project has been deleted.' }
    case 'SERVICE_NOT_ACTIVATED':
      return { code: RPC.PERMISSION_DENIED, message: `API ${serviceName} is not enabled for the project.` }
    case 'BILLING_DISABLED':
      return { code: RPC.PERMISSION_DENIED, message: `API ${serviceName} has billing disabled. Please enable it.` }
    case 'PERMISSION_DENIED':
      return { code: RPC.PERMISSION_DENIED, message: `Consumer doesn't have access to the API ${serviceName}.` }
  }
}

const DETAIL: Record<CheckErrorCode, string> = {
  NOT_FOUND: "The consumer's project id, network container, or resource container was not found.",
  PERMISSION_DENIED: "The consumer doesn't have access to the specified resource.",
  SERVICE_NOT_ACTIVATED: "The consumer hasn't activated the service.",
  BILLING_DISABLED: 'The consumer cannot access the service because billing is disabled.',
  PROJECT_DELETED: "The consumer's project has been marked as deleted (soft deletion).",
  PROJECT_INVALID: "The consumer's project number or id does not represent a valid project.",
  CONSUMER_INVALID: 'The input consumer info does not represent a valid consumer folder or organization.',
}

export function createServiceControlEmulator(options: { isAuthorized: (bearer: string) => boolean }) {
  /** serviceName -> consumerId -> the check error it gets now (null: in good standing). */
  const services = new Map<string, Map<string, CheckErrorCode | null>>()
  /** Accepted report operations, first arrival of each (serviceName, operationId). */
  const reports: AcceptedOperation[] = []
  const accepted = new Map<string, AcceptedOperation>()
  /** Every check the emulator answered: the operation and the errors it gave. */
  const checks: Array<{ serviceName: string; operationId: string; consumerId?: string; checkErrors: CheckError[] }> = []
  /** Operations that came again with an operationId already accepted (not counted). */
  const duplicates: Array<{ serviceName: string; operationId: string }> = []
  const calls: ServiceControlCall[] = []
  const faults: Array<{ route: ServiceControlRoute; status: number; remaining: number }> = []
  let baseUrl = ''
  const serviceConfigId = '2024-01-01r0'
  const serviceRolloutId = '2024-01-01r0'

  const googleError = (status: number, message: string, reason: string) => Response.json({ error: { code: status, message, status: reason } }, { status })
  const invalidArgument = (message: string) => googleError(400, message, 'INVALID_ARGUMENT')

  const take = (route: ServiceControlRoute) => {
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (!fault) return null
    fault.remaining--
    return googleError(fault.status, 'injected fault', REASON_FOR_STATUS[fault.status] ?? (fault.status >= 500 ? 'UNAVAILABLE' : 'FAILED_PRECONDITION'))
  }

  /** The check error for this consumer of this service, or null when it may be served and charged. */
  const consumerError = (serviceName: string, consumerId: string | undefined): CheckError | null => {
    const consumers = services.get(serviceName)!
    const known = consumerId !== undefined ? consumers.get(consumerId) : undefined
    let code: CheckErrorCode | null
    if (known === undefined) code = consumerId && PROJECT_CONSUMER.test(consumerId) ? 'PROJECT_INVALID' : 'CONSUMER_INVALID'
    else code = known
    if (!code) return null
    return { code, ...(consumerId ? { subject: consumerId } : {}), detail: DETAIL[code], status: statusFor(code, serviceName) }
  }

  const app = new Hono()

  app.all('/v1/services/*', async (c) => {
    const pathname = new URL(c.req.url).pathname
    const rest = decodeURIComponent(pathname.slice('/v1/services/'.length))
    const colon = rest.lastIndexOf(':')
    const serviceName = colon > 0 ? rest.slice(0, colon) : rest
    const verb = colon > 0 ? rest.slice(colon + 1) : ''
    const route: ServiceControlRoute | null = c.req.method === 'POST' && (verb === 'check' || verb === 'report') && !serviceName.includes('/') ? verb : null
    const body = c.req.method === 'GET' || c.req.method === 'HEAD' ? '' : await c.req.text()
    calls.push({ route, method: c.req.method, path: pathname, serviceName, body, authorization: c.req.header('authorization') ?? null })

    const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1]
    if (!bearer || !options.isAuthorized(bearer)) {
      return googleError(
        401,
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        'UNAUTHENTICATED',
      )
    }
    if (!route) return googleError(404, 'Method not found.', 'NOT_FOUND')
    if (!services.has(serviceName)) {
      return googleError(403, `Permission 'servicemanagement.services.${route}' denied on service '${serviceName}'.`, 'PERMISSION_DENIED')
    }
    const fault = take(route)
    if (fault) return fault

    let parsed: unknown
    try {
      parsed = body.trim() ? JSON.parse(body) : {}
    } catch {
      return invalidArgument('Invalid JSON payload received. Unexpected token.')
    }

    try {
      if (route === 'check') {
        const request = readObject(parsed, CHECK_REQUEST_FIELDS, 'request')
        if (request.operation === undefined || request.operation === null) throw new InvalidArgument('operation is required.')
        const operation = readOperation(request.operation, 'operation', false)
        const error = consumerError(serviceName, operation.consumerId)
        const checkErrors = error ? [error] : []
        checks.push({ serviceName, operationId: operation.operationId, ...(operation.consumerId ? { consumerId: operation.consumerId } : {}), checkErrors })
        return c.json({ operationId: operation.operationId, ...(checkErrors.length ? { checkErrors } : {}), serviceConfigId, serviceRolloutId })
      }

      const request = readObject(parsed, REPORT_REQUEST_FIELDS, 'request')
      const rawOperations = request.operations ?? []
      if (!Array.isArray(rawOperations)) throw new InvalidArgument("Invalid value at 'operations': expected a list.")
      // Read every operation first: a malformed one fails the whole call, nothing is recorded.
      const operations = rawOperations.map((raw, i) => readOperation(raw, `operations[${i}]`, true))
      const reportErrors: Array<{ operationId: string; status: { code: number; message: string } }> = []
      for (const operation of operations) {
        const key = `${serviceName}\u0000${operation.operationId}`
        if (accepted.has(key)) {
          duplicates.push({ serviceName, operationId: operation.operationId })
          continue
        }
        const error = consumerError(serviceName, operation.consumerId)
        if (error) {
          reportErrors.push({ operationId: operation.operationId, status: { code: error.status!.code, message: `${error.code}: ${error.status!.message}` } })
          continue
        }
        const record: AcceptedOperation = {
          serviceName,
          operationId: operation.operationId,
          ...(operation.operationName !== undefined ? { operationName: operation.operationName } : {}),
          consumerId: operation.consumerId!,
          startTime: operation.startTime,
          endTime: operation.endTime!,
          metricValueSets: operation.metricValueSets,
          ...(operation.userLabels ? { userLabels: operation.userLabels } : {}),
          ...(operation.labels ? { labels: operation.labels } : {}),
          receivedAt: new Date().toISOString(),
        }
        accepted.set(key, record)
        reports.push(record)
      }
      return c.json({ ...(reportErrors.length ? { reportErrors } : {}), serviceConfigId, serviceRolloutId })
    } catch (error) {
      if (error instanceof InvalidArgument) return invalidArgument(error.message)
      throw error
    }
  })

  const consumersOf = (serviceName: string) => {
    let consumers = services.get(serviceName)
    if (!consumers) services.set(serviceName, (consumers = new Map()))
    return consumers
  }

  return {
    app,
    calls,
    /** Accepted report operations (deduplicated by operationId per service), oldest first. */
    reports,
    /** Every check answered, with the checkErrors it returned. */
    checks,
    /** Report operations that repeated an accepted operationId (accepted, not counted). */
    duplicates,
    /** Registers a service (the ISV's product service name) with no consumers yet. */
    addService(serviceName: string) {
      consumersOf(serviceName)
    },
    /** A consumer (an entitlement's usageReportingId) in good standing for the service; registers the service. */
    addConsumer(serviceName: string, consumerId: string) {
      consumersOf(serviceName).set(consumerId, null)
    },
    /**
     * The consumer may no longer be served: its checks (and reports) get this error.
     * SERVICE_NOT_ACTIVATED (default: the service was disabled for the project, e.g. the
     * entitlement ended), BILLING_DISABLED, or PROJECT_DELETED.
     */
    suspendConsumer(serviceName: string, consumerId: string, code: 'SERVICE_NOT_ACTIVATED' | 'BILLING_DISABLED' | 'PROJECT_DELETED' | 'PERMISSION_DENIED' = 'SERVICE_NOT_ACTIVATED') {
      consumersOf(serviceName).set(consumerId, code)
    },
    /** Back in good standing. */
    reinstateConsumer(serviceName: string, consumerId: string) {
      consumersOf(serviceName).set(consumerId, null)
    },
    /** The summed metric values accepted for a consumer's metric (int64 and double values). */
    usageFor(serviceName: string, consumerId: string, metricName: string) {
      let total = 0
      for (const report of reports) {
        if (report.serviceName !== serviceName || report.consumerId !== consumerId) continue
        for (const set of report.metricValueSets) {
          if (set.metricName !== metricName) continue
          for (const value of set.metricValues) total += value.int64Value !== undefined ? Number(value.int64Value) : (value.doubleValue ?? 0)
        }
      }
      return total
    },
    /** The next `times` calls to the route (after auth and the service check) answer a Google error with `status`. */
    failNext(route: ServiceControlRoute, status: number, times = 1) {
      faults.push({ route, status, remaining: times })
    },
    callsTo(route: ServiceControlRoute) {
      return calls.filter((call) => call.route === route)
    },
    get url() {
      return baseUrl
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      const listening = await listenOnLoopback(app.fetch)
      baseUrl = listening.url
      return listening
    },
  }
}

export type ServiceControlEmulator = ReturnType<typeof createServiceControlEmulator>
