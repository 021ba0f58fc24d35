import { ROOT_CONTEXT } from '@opentelemetry/api'
import { type AppDeps, nowIso } from '../deps'
import { SpanKind, inSpan } from '../telemetry'
import type { Logger } from '../logger'
import { pruneAuditLog } from './audit'
import { pruneConsoleSessions } from './console-sessions'
import { applyDueNotifications } from './inbox'
import { type LandingService, pruneLandingTokens } from './landing'
import { pruneRateLimitWindows } from './rate-limits'
import { reconcileDue } from './reconcile'
import { deleteExpiredTokens } from '../db/signups'
import { sendDueEmails } from './signups'
import { reportUsage } from './usage-reporter'
import { deliverDue } from './webhooks'

/**
 * The background job, the same on both runtimes (Node: a timer in the server; Workers: the
 * cron trigger): finish landings whose worker died, retry pending activations whose backoff
 * is over, apply marketplace notifications that are due (retries, and those that waited for
 * their landing), re-read entitlements due for reconciliation, report usage (hours that have
 * ended, and retries), send webhook deliveries that are due (first attempts a request missed, and retries), and forget expired landing-token
 * hashes, audit-log entries past AUDIT_RETENTION_DAYS and finished rate-limit windows. Each task
 * works a bounded batch per run.
 */
export async function runJobs(deps: AppDeps, landing: LandingService, log: Logger) {
  // Each task on its own: one that fails (a database hiccup, a bug) does not stop the others.
  // Each a span `job <name>` of its own trace, when tracing is on.
  const task = async <T>(name: string, run: () => Promise<T>, none: T): Promise<T> => {
    try {
      return await inSpan(`job ${name}`, { 'marketbridge.job': name }, run, SpanKind.INTERNAL, ROOT_CONTEXT)
    } catch (error) {
      log.error('background task failed; it runs again next time', { task: name, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
      return none
    }
  }
  const recovered = await task('claims', () => landing.recoverClaims(log), 0)
  const activations = await task('activations', () => landing.retryActivations(log), 0)
  const notifications = await task('notifications', () => applyDueNotifications(deps, log), 0)
  const reconciled = await task('reconcile', () => reconcileDue(deps, log), 0)
  const usage = await task('usage', async () => (await reportUsage(deps, log)).settled, 0)
  const webhooks = await task('webhooks', () => deliverDue(deps, log), 0)
  const emails = await task('emails', () => sendDueEmails(deps, log), 0)
  await task('prune', () => pruneLandingTokens(deps), undefined)
  await task('prune-signup-tokens', () => deleteExpiredTokens(deps.db, nowIso(deps)), undefined)
  await task('prune-audit-log', () => pruneAuditLog(deps), 0)
  await task('prune-rate-limits', () => pruneRateLimitWindows(deps), undefined)
  await task('prune-console-sessions', () => pruneConsoleSessions(deps), undefined)
  if (recovered || activations || notifications || reconciled || usage || webhooks || emails) log.info('background job', { recovered, activations, notifications, reconciled, usage, webhooks, emails })
  return { recovered, activations, notifications, reconciled, usage, webhooks, emails }
}
