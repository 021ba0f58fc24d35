import type { AppDeps } from '../../deps'
import { createConsoleApp } from './app'
import { integrationPages } from './integrations'
import { overviewPages } from './overview'
import { webhookPages } from './webhooks'

/** The console's routes, mounted at /console: the frame (./app.tsx) and each page group. */
export function consoleRoutes(deps: AppDeps) {
  return createConsoleApp(deps, [overviewPages, webhookPages, integrationPages])
}
