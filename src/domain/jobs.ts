import type { AppDeps } from '../deps'
import type { Logger } from '../logger'
import { type LandingService, pruneLandingTokens } from './landing'

/**
 * The background job, the same on both runtimes (Node: a timer in the server; Workers: the
 * cron trigger): finish landings whose worker died, retry pending activations whose backoff
 * is over, and forget expired landing-token hashes.
 */
export async function runJobs(deps: AppDeps, landing: LandingService, log: Logger): Promise<{ recovered: number; activations: number }> {
  const recovered = await landing.recoverClaims(log)
  const activations = await landing.retryActivations(log)
  await pruneLandingTokens(deps)
  if (recovered || activations) log.info('background job', { recovered, activations })
  return { recovered, activations }
}
