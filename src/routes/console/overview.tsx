/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AppDeps } from '../../deps'
import { PageHead } from '../../pages/console/components'
import type { ConsoleApp } from './app'
import { page } from './app'

/** Overview (contract §14): the org at a glance. */
export function overviewPages(app: ConsoleApp, _deps: AppDeps) {
  app.get('/orgs/:orgId', (c) => {
    const org = c.get('org')
    return page(c, {
      title: 'Overview',
      current: '',
      children: (
        <>
          <PageHead title={org.name} crumbs="Overview" />
        </>
      ),
    })
  })
}
