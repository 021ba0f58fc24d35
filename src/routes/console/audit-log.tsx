/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AppDeps } from '../../deps'
import { AUDIT_ACTIONS, listAuditLog } from '../../domain/audit'
import { ApiError } from '../../errors'
import { AuditLogView } from '../../pages/console/audit-log'
import { type ConsoleApp, page } from './app'

/** Audit log (contract §13, §14): GET …/audit-log's entries, filtered by action, paged by its cursor. */

const PAGE_SIZE = 50

export function auditLogPages(app: ConsoleApp, deps: AppDeps) {
  app.get('/orgs/:orgId/audit-log', async (c) => {
    const org = c.get('org')
    const action = (c.req.query('action') ?? '').trim()
    const cursor = c.req.query('cursor') ?? ''
    // The API's own bounds on its query (routes/audit.ts).
    if (action.length > 100) throw new ApiError('VALIDATION_ERROR', 'An action is at most 100 characters long.')
    if (cursor.length > 512) throw new ApiError('INVALID_CURSOR', 'This page link is not one the console made. Go back to the first page.')
    const { items, nextCursor } = await listAuditLog(deps, org.id, { ...(action ? { action } : {}), limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) })
    return page(c, {
      title: 'Audit log',
      current: 'audit-log',
      children: (
        <AuditLogView org={org} items={items} nextCursor={nextCursor} action={action} paged={Boolean(cursor)} actions={AUDIT_ACTIONS} retentionDays={deps.config.AUDIT_RETENTION_DAYS} />
      ),
    })
  })
}
