import type { AppDeps } from '../../deps'
import { apiKeyPages } from './api-keys'
import { createConsoleApp } from './app'
import { auditLogPages } from './audit-log'
import { entitlementPages } from './entitlements'
import { integrationPages } from './integrations'
import { orgPages } from './orgs'
import { overviewPages } from './overview'
import { signupFormPages } from './signup-form'
import { webhookPages } from './webhooks'

/** The console's routes, mounted at /console: the frame (./app.tsx) and each page group. */
export function consoleRoutes(deps: AppDeps) {
  return createConsoleApp(deps, [
    overviewPages,
    entitlementPages,
    webhookPages,
    integrationPages,
    apiKeyPages,
    auditLogPages,
    signupFormPages,
    orgPages,
  ])
}
