/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AppDeps } from '../../deps'
import { getOverview } from '../../domain/overview'
import { PageHead } from '../../pages/console/components'
import { OverviewPage } from '../../pages/console/overview'
import type { ConsoleApp } from './app'
import { page } from './app'

/** Overview (contract §14): the org at a glance. */
export function overviewPages(app: ConsoleApp, deps: AppDeps) {
  app.get('/orgs/:orgId', async (c) => {
    const org = c.get('org')
    const overview = await getOverview(deps, org.id)
    return page(c, {
      title: 'Overview',
      current: '',
      children: (
        <>
          <PageHead title={org.name} crumbs="Overview" />
          <OverviewPage orgId={org.id} overview={overview} />
        </>
      ),
    })
  })
}
