import { createProviders } from '../providers/index'
import { retryPolicyFor } from '../providers/shared/http'
import type { Config } from './config'
import type { DB } from './db/schema'
import type { AppDeps, Metrics } from './deps'
import { createSecretBox } from './domain/crypto'
import type { Logger } from './logger'

/*
 * Where the entries (src/node/deps.ts, src/worker.ts) put the app's dependencies together; no
 * other module imports this, so src/deps.ts stays a leaf that the domain can import freely.
 */

/** The runtime-neutral part of the dependencies; each entry brings its own database, logger and clock. */
export async function buildDeps(config: Config, db: DB, logger: Logger, now: () => Date, metrics?: Metrics): Promise<AppDeps> {
  return {
    config,
    db,
    logger,
    now,
    ...(metrics ? { metrics } : {}),
    secrets: await createSecretBox(config.ENCRYPTION_KEY),
    providers: createProviders({
      azure: { apiUrl: config.AZURE_MARKETPLACE_API_URL, loginUrl: config.AZURE_LOGIN_URL },
      aws: {
        meteringUrl: config.AWS_MARKETPLACE_METERING_URL,
        entitlementUrl: config.AWS_MARKETPLACE_ENTITLEMENT_URL,
        agreementUrl: config.AWS_MARKETPLACE_AGREEMENT_URL,
        stsUrl: config.AWS_STS_URL,
        snsTrustedCertPrefix: config.AWS_SNS_TRUSTED_CERT_PREFIX,
      },
      gcp: {
        certsUrl: config.GCP_MARKETPLACE_CERTS_URL,
        procurementUrl: config.GCP_PROCUREMENT_API_URL,
        tokenUrl: config.GCP_OAUTH_TOKEN_URL,
        oidcCertsUrl: config.GCP_OIDC_CERTS_URL,
        serviceControlUrl: config.GCP_SERVICE_CONTROL_URL,
      },
    }, retryPolicyFor(config.UPSTREAM_TIMEOUT_MS), metrics?.upstream),
  }
}
