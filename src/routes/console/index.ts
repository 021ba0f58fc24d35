import type { AppDeps } from '../../deps'
import { createConsoleApp } from './app'
import { overviewPages } from './overview'

/** The console's routes, mounted at /console: the frame (./app.tsx) and each page group. */
export function consoleRoutes(deps: AppDeps) {
  return createConsoleApp(deps, [overviewPages])
}
