import type { AppDeps } from '../deps'
import type { Logger } from '../logger'
import { applyDueNotifications } from './inbox'
import { type LandingService, pruneLandingTokens } from './landing'
import { reconcileDue } from './reconcile'
import { reportUsage } from './usage-reporter'
import { deliverDue } from './webhooks'

/**
 * The background job, the same on both runtimes (Node: a timer in the server; Workers: the
 * cron trigger): finish landings whose worker died, retry pending activations whose backoff
 * is over, apply marketplace notifications that are due (retries, and those that waited for
 * their landing), re-read entitlements due for reconciliation, report usage (hours that have
 * ended, and retries), send webhook deliveries that are due (first attempts a request missed, and retries), and forget expired landing-token
 * hashes. Each task works a bounded batch per run.
 */
export async function runJobs(deps: AppDeps, landing: LandingService, log: Logger) {
  const recovered = await landing.recoverClaims(log)
  const activations = await landing.retryActivations(log)
  const notifications = await applyDueNotifications(deps, log)
  const reconciled = await reconcileDue(deps, log)
  const usage = (await reportUsage(deps, log)).settled
  const webhooks = await deliverDue(deps, log)
  await pruneLandingTokens(deps)
  if (recovered || activations || notifications || reconciled || usage || webhooks) log.info('background job', { recovered, activations, notifications, reconciled, usage, webhooks })
  return { recovered, activations, notifications, reconciled, usage, webhooks }
}
