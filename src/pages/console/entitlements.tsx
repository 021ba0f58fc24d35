/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import { ENTITLEMENT_STATUSES, PARTNERS } from '../../../providers/types'
import type { UsageRecord } from '../../domain/usage'
import type { WebhookDelivery } from '../../domain/webhooks'
import type { Entitlement, EntitlementEvent } from '../../schemas'
import { Badge, EmptyState, MarketplaceBadge, Notice, Pager, marketplaceName, query, time } from './components'
import { type Viewer, CsrfField, orgPath } from './layout'
import { ScrollText, Table } from './tables'

/** The Entitlements pages (contract §14): the list with its filters and search, and one entitlement's page. */

export const entitlementsPath = (orgId: string) => orgPath(orgId, 'entitlements')
export const entitlementPath = (orgId: string, id: string) => `${entitlementsPath(orgId)}/${encodeURIComponent(id)}`

export interface ListFilters {
  partner?: string
  status?: string
  q?: string
}

const dash = (value: unknown) => (value === null || value === undefined || value === '' ? '—' : String(value))
const yesNo = (value: boolean | null) => (value === null ? '—' : value ? 'Yes' : 'No')

/** One of the list's selects: "all" first, then each value, the filter's own one selected. */
function FilterSelect(props: { id: string; name: string; label: string; all: string; selected?: string; options: Array<[string, string]> }) {
  return (
    <div>
      <label class="field" for={props.id}>
        {props.label}
      </label>
      <select id={props.id} name={props.name}>
        <option value="">{props.all}</option>
        {props.options.map(([value, label]) => (
          <option value={value} selected={props.selected === value}>
            {label}
          </option>
        ))}
      </select>
    </div>
  )
}

function FilterForm(props: { orgId: string; filters: ListFilters; searchError?: string }) {
  const { filters } = props
  const filtered = Boolean(filters.partner || filters.status || filters.q)
  return (
    <form method="get" action={entitlementsPath(props.orgId)} class="filter-form" role="search" aria-label="Filter entitlements">
      <div class="filters">
        <FilterSelect
          id="filter-partner"
          name="partner"
          label="Marketplace"
          all="All marketplaces"
          selected={filters.partner}
          options={PARTNERS.map((partner) => [partner, marketplaceName(partner)])}
        />
        <FilterSelect
          id="filter-status"
          name="status"
          label="Status"
          all="All statuses"
          selected={filters.status}
          options={ENTITLEMENT_STATUSES.map((status) => [status, status])}
        />
        <div class="filter-search">
          <label class="field" for="filter-q">
            Search
          </label>
          <input
            type="search"
            id="filter-q"
            name="q"
            value={filters.q ?? ''}
            maxlength={200}
            autocomplete="off"
            aria-describedby={props.searchError ? 'filter-q-hint filter-q-error' : 'filter-q-hint'}
            aria-invalid={props.searchError ? 'true' : undefined}
          />
        </div>
        <div class="buttons filter-buttons">
          <button type="submit">Apply</button>
          {filtered ? (
            <a class="button secondary" href={entitlementsPath(props.orgId)}>
              Clear
            </a>
          ) : null}
        </div>
      </div>
      <p class="hint" id="filter-q-hint">
        Search by an ent_ id, a marketplace id or a buyer email (or part of one).
      </p>
      {props.searchError ? (
        <p class="field-error" id="filter-q-error">
          {props.searchError}
        </p>
      ) : null}
    </form>
  )
}

export function EntitlementList(props: {
  orgId: string
  filters: ListFilters
  /** The page, or null when the filters were refused (the error says why). */
  page: { items: Entitlement[]; nextCursor: string | null } | null
  cursor?: string
  /** A page size asked for in the address (kept by the pager's links). */
  limit?: number
  searchError?: string
  problem?: string
}) {
  const { orgId, filters, page } = props
  const filtered = Boolean(filters.partner || filters.status || filters.q)
  const here = (values: Record<string, string | undefined>) =>
    `${entitlementsPath(orgId)}${query({ partner: filters.partner, status: filters.status, q: filters.q, limit: props.limit, ...values })}`
  return (
    <>
      {props.problem ? <Notice kind="bad">{props.problem}</Notice> : null}
      <section class="card" aria-labelledby="list-title">
        <h2 id="list-title" class="sr-only">
          Entitlements
        </h2>
        <FilterForm orgId={orgId} filters={filters} searchError={props.searchError} />
        {!page ? null : page.items.length === 0 ? (
          filtered || props.cursor ? (
            <EmptyState title="No entitlement matches">
              <p>
                Nothing matches {filters.q ? <>“{filters.q}”</> : 'these filters'}
                {filters.partner ? ` on ${marketplaceName(filters.partner)}` : ''}
                {filters.status ? ` with status ${filters.status}` : ''}.{' '}
                <a href={entitlementsPath(orgId)}>Show all entitlements</a>
              </p>
            </EmptyState>
          ) : (
            <EmptyState title="No entitlements yet">
              <p>
                An entitlement is written when a buyer who bought your offer lands on your signup URL. Paste each marketplace’s signup URL into its listing
                (the <a href={orgPath(orgId, 'integrations')}>Integrations</a> page has them, with copy buttons); the first purchase then appears here.
              </p>
            </EmptyState>
          )
        ) : (
          <>
            <p class="small muted" id="list-summary">
              {page.items.length === 1 ? '1 entitlement' : `${page.items.length} entitlements`} on this page, newest first{page.nextCursor ? '; more on the next page' : ''}.
            </p>
            <Table
              label="Entitlements table"
              caption="Entitlements, newest first"
              class="entitlements wide"
              columns={['Entitlement', 'Marketplace', 'Status', 'Product / plan', 'Buyer email', 'Created', 'Updated']}
            >
              {page.items.map((entitlement) => (
                <tr data-id={entitlement.id}>
                  <td>
                    <a class="mono" href={entitlementPath(orgId, entitlement.id)}>
                      {entitlement.id}
                    </a>
                  </td>
                  <td>
                    <MarketplaceBadge partner={entitlement.partner} />
                  </td>
                  <td>
                    <Badge value={entitlement.status} />
                  </td>
                  <td>
                    {dash(entitlement.productId)}
                    <br />
                    <span class="muted small">{dash(entitlement.planId)}</span>
                  </td>
                  <td>{dash(entitlement.buyer.email)}</td>
                  <td>{time(entitlement.createdAt)}</td>
                  <td>{time(entitlement.updatedAt)}</td>
                </tr>
              ))}
            </Table>
          </>
        )}
        {page ? <Pager next={page.nextCursor ? here({ cursor: page.nextCursor }) : null} first={props.cursor ? here({}) : null} /> : null}
      </section>
    </>
  )
}

/** What the other side answered: its status, and its error under it. */
const Answer = (props: { value: string | number | null; error: string | null }) => (
  <>
    {dash(props.value)}
    {props.error ? (
      <>
        <br />
        <span class="small">{props.error}</span>
      </>
    ) : null}
  </>
)

/** A definition list of label → value pairs. */
function Fields(props: { rows: Array<[string, Child]> }) {
  return (
    <dl class="kv">
      {props.rows.map(([label, value]) => (
        <>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </>
      ))}
    </dl>
  )
}

const NOTICES: Record<string, { kind: 'ok' | 'bad' | 'warn' | undefined; text: string }> = {
  refreshed: { kind: 'ok', text: 'Refreshed from the marketplace: it had changed, and the change is in the history below (and sent as a webhook).' },
  unchanged: { kind: 'ok', text: 'Refreshed from the marketplace: nothing had changed.' },
  'refresh-failed': {
    kind: 'bad',
    text: 'The marketplace could not be asked just now, so nothing was changed. Try again in a few minutes; the broker also re-reads every entitlement once a day.',
  },
  'no-integration': { kind: 'warn', text: 'This org has no integration for this marketplace any more, so there is nothing to ask. Configure it on the Integrations page.' },
}

export function EntitlementDetail(props: {
  orgId: string
  viewer: Viewer
  entitlement: Entitlement
  /** The entitlement's JSON exactly as GET /api/v1/orgs/{orgId}/entitlements/{id} answers it. */
  json: string
  events: EntitlementEvent[]
  usage: { items: UsageRecord[]; nextCursor: string | null }
  usageCursor?: string
  deliveries: WebhookDelivery[]
  hasIntegration: boolean
  webhookUrl: string | null
  notice?: string
}) {
  const { orgId, entitlement: e, events, usage, deliveries } = props
  const notice = props.notice && Object.hasOwn(NOTICES, props.notice) ? NOTICES[props.notice]! : null
  const here = entitlementPath(orgId, e.id)
  const webhooks = orgPath(orgId, 'webhooks')
  return (
    <>
      {notice ? <Notice kind={notice.kind}>{notice.text}</Notice> : null}

      <section class="card" aria-labelledby="refresh-title">
        <h2 id="refresh-title">Refresh from marketplace</h2>
        {props.hasIntegration ? (
          <form method="post" action={`${here}/refresh`} class="inline-actions">
            <CsrfField viewer={props.viewer} />
            <p class="small muted">
              Asks {marketplaceName(e.partner)} for this purchase now and applies what differs, as the daily re-read does: a change is written to the history and sent as a
              webhook.
            </p>
            <button type="submit">Refresh from {marketplaceName(e.partner)}</button>
          </form>
        ) : (
          <p class="small">
            There is no {marketplaceName(e.partner)} integration to ask. <a href={orgPath(orgId, 'integrations')}>Configure it</a> to refresh this entitlement.
          </p>
        )}
      </section>

      <div class="two">
        <section class="card" aria-labelledby="fields-title">
          <h2 id="fields-title">Entitlement</h2>
          <Fields
            rows={[
              ['Id', <code>{e.id}</code>],
              ['Status', <Badge value={e.status} />],
              ['Marketplace', <MarketplaceBadge partner={e.partner} />],
              ['Partner id', <code>{e.partnerId}</code>],
              ['Offer type', e.offerType],
              ['Marketplace id', <code>{e.externalId}</code>],
              ['Product', dash(e.productId)],
              ['Plan', dash(e.planId)],
              ['Quantity', dash(e.quantity)],
              ['Free trial', yesNo(e.isFreeTrial)],
              ['Test purchase', yesNo(e.isTest)],
              ['Org', <code>{e.orgId}</code>],
              ['Created', time(e.createdAt)],
              ['Updated', time(e.updatedAt)],
            ]}
          />
        </section>
        <div>
          <section class="card" aria-labelledby="buyer-title">
            <h2 id="buyer-title">Buyer</h2>
            <Fields
              rows={[
                ['Email', dash(e.buyer.email)],
                ['Name', dash(e.buyer.name)],
                ['Account id', dash(e.buyer.accountId)],
                ['Customer id', dash(e.buyer.customerId)],
                ['Tenant id', dash(e.buyer.tenantId)],
              ]}
            />
          </section>
          <section class="card" aria-labelledby="term-title">
            <h2 id="term-title">Term</h2>
            <Fields
              rows={[
                ['Start', time(e.term.start)],
                ['End', time(e.term.end)],
                ['Unit', dash(e.term.unit)],
                ['Auto-renew', yesNo(e.term.autoRenew)],
              ]}
            />
          </section>
        </div>
      </div>

      <section class="card" aria-labelledby="info-title">
        <h2 id="info-title">Marketplace detail</h2>
        <p class="small muted">What {marketplaceName(e.partner)} answered about this purchase (the entitlement’s info).</p>
        <ScrollText label="Marketplace detail (JSON)">{JSON.stringify(e.info, null, 2)}</ScrollText>
        <details>
          <summary>The entitlement as the API answers it</summary>
          <ScrollText label="The entitlement as JSON" id="entitlement-json">
            {JSON.stringify(JSON.parse(props.json), null, 2)}
          </ScrollText>
        </details>
      </section>

      <section class="card" aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        {events.length === 0 ? (
          <p class="empty">No events recorded.</p>
        ) : (
          <Table
            label="Events table"
            caption="Events, oldest first"
            class="events wide"
            columns={['When', 'Event', 'Source', 'Data']}
          >
            {events.map((event) => (
              <tr data-id={event.id}>
                <td>{time(event.createdAt)}</td>
                <td>
                  <Badge value={event.type} />
                </td>
                <td>{event.source}</td>
                <td>
                  <code>{JSON.stringify(event.data)}</code>
                </td>
              </tr>
            ))}
          </Table>
        )}
      </section>

      <section class="card" aria-labelledby="usage-title">
        <h2 id="usage-title">Usage</h2>
        {usage.items.length === 0 ? (
          <p class="empty">
            {props.usageCursor ? 'No more usage records.' : 'No usage recorded. Report it with POST /api/v1/orgs/{orgId}/entitlements/{id}/usage; records are reported to the marketplace hourly.'}
          </p>
        ) : (
          <Table
            label="Usage records table"
            caption="Usage records, newest first"
            class="usage wide"
            columns={['Time', 'Dimension', 'Quantity', 'Status', 'Marketplace answer', 'Reported', 'Idempotency key']}
          >
            {usage.items.map((record) => (
              <tr data-id={record.id}>
                <td>{time(record.timestamp)}</td>
                <td>{record.dimension}</td>
                <td>{record.quantity}</td>
                <td>
                  <Badge value={record.status} />
                </td>
                <td>
                  <Answer value={record.marketplaceStatus} error={record.error} />
                </td>
                <td>{time(record.reportedAt)}</td>
                <td>
                  <code>{record.idempotencyKey}</code>
                </td>
              </tr>
            ))}
          </Table>
        )}
        <Pager next={usage.nextCursor ? `${here}${query({ usageCursor: usage.nextCursor })}#usage-title` : null} first={props.usageCursor ? `${here}#usage-title` : null} />
      </section>

      <section class="card" aria-labelledby="deliveries-title">
        <h2 id="deliveries-title">Webhook deliveries</h2>
        {deliveries.length === 0 ? (
          <p class="empty">
            {props.webhookUrl ? 'No deliveries of this entitlement’s events yet.' : 'No webhook URL is set, so its events are not delivered. '}
            {props.webhookUrl ? null : <a href={webhooks}>Set one on the Webhooks page</a>}
          </p>
        ) : (
          <>
            <p class="small muted">
              One delivery per event above. <a href={`${webhooks}?status=FAILED`}>Retry failed deliveries on the Webhooks page</a>
            </p>
            <Table
              label="Deliveries table"
              caption="Webhook deliveries of this entitlement’s events, newest first"
              class="deliveries wide"
              columns={['Delivery', 'Type', 'Status', 'Attempts', 'Last answer', 'Next attempt', 'Created']}
            >
              {deliveries.map((delivery) => (
                <tr data-id={delivery.id}>
                  <td>
                    <code>{delivery.id}</code>
                  </td>
                  <td>{delivery.type}</td>
                  <td>
                    <Badge value={delivery.status} />
                  </td>
                  <td>{delivery.attempts}</td>
                  <td>
                    <Answer value={delivery.lastStatusCode} error={delivery.lastError} />
                  </td>
                  <td>{time(delivery.nextAttemptAt)}</td>
                  <td>{time(delivery.createdAt)}</td>
                </tr>
              ))}
            </Table>
          </>
        )}
      </section>
    </>
  )
}
