/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { ENTITLEMENT_STATUSES, PARTNERS, type Partner } from '../../../providers/types'
import type { LandingDay, Overview } from '../../domain/overview'
import type { Integration } from '../../schemas'
import { Badge, CopyField, EmptyState, MarketplaceBadge, marketplaceName, query } from './components'
import { orgPath } from './layout'
import { Table } from './tables'

/** The Overview page (contract §14): counts, the landings chart, what needs attention, integration health. */

/** Where each marketplace takes the two URLs (what a new ISV has to do next). */
const PASTE_WHERE: Record<Partner, string> = {
  azure: 'Partner Center → your SaaS offer → Technical configuration: the signup URL is the Landing page URL, the notification URL the Connection webhook.',
  aws: 'AWS Marketplace Management Portal → your SaaS product: the signup URL is the fulfillment URL; subscribe the notification URL to the product’s SNS topics (or an EventBridge API destination).',
  gcp: 'Producer Portal → your SaaS product → Technical integration: the signup URL is the sign-up URL; the notification URL is the push endpoint of the Pub/Sub subscription.',
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
/** `2026-05-03` as `3 May`. */
const shortDay = (day: string) => `${Number(day.slice(8, 10))} ${MONTHS[Number(day.slice(5, 7)) - 1] ?? ''}`

function dayText(day: LandingDay) {
  const parts = PARTNERS.filter((partner) => day.byPartner[partner] > 0).map((partner) => `${marketplaceName(partner)} ${day.byPartner[partner]}`)
  return `${day.day}: ${plural(day.total, 'landing')}${parts.length ? ` (${parts.join(', ')})` : ''}`
}

/**
 * The landings of the last 30 days as bars, drawn here (no script): one bar per day with its
 * number in a <title>, the chart named and described for screen readers, and the same numbers
 * as a table under it.
 */
export function LandingsChart(props: { days: LandingDay[]; total: number }) {
  const { days, total } = props
  const width = 480
  const height = 180
  const plot = { left: 28, right: 6, top: 10, bottom: 26 }
  const plotHeight = height - plot.top - plot.bottom
  const slot = (width - plot.left - plot.right) / days.length
  const barWidth = Math.max(2, slot * 0.7)
  const max = Math.max(1, ...days.map((day) => day.total))
  const busiest = days.reduce((best, day) => (day.total > best.total ? day : best), days[0]!)
  const baseline = plot.top + plotHeight
  const first = days[0]?.day ?? ''
  const last = days.at(-1)?.day ?? ''
  const description =
    total === 0
      ? `No landings from ${first} to ${last} (UTC).`
      : `${plural(total, 'landing')} from ${first} to ${last} (UTC); the most in one day: ${busiest.total}, on ${busiest.day}.`
  // The first day, the middle one and today name the axis.
  const labels: Array<{ i: number; text: string; anchor: string }> = [
    { i: 0, text: shortDay(first), anchor: 'start' },
    { i: Math.floor(days.length / 2), text: shortDay(days[Math.floor(days.length / 2)]?.day ?? ''), anchor: 'middle' },
    { i: days.length - 1, text: 'Today', anchor: 'end' },
  ]
  const xOf = (i: number) => plot.left + i * slot
  return (
    <>
      <svg class="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-labelledby="landings-chart-title landings-chart-desc">
        <title id="landings-chart-title">Landings per day, last {days.length} days</title>
        <desc id="landings-chart-desc">{description}</desc>
        <line class="axis" x1={plot.left} y1={baseline} x2={width - plot.right} y2={baseline} />
        <line class="axis" x1={plot.left} y1={plot.top} x2={width - plot.right} y2={plot.top} />
        <text class="y-label" x={plot.left - 5} y={plot.top + 5} text-anchor="end">
          {max}
        </text>
        <text class="y-label" x={plot.left - 5} y={baseline + 4} text-anchor="end">
          0
        </text>
        {days.map((day, i) => {
          const barHeight = day.total === 0 ? 1 : Math.max(2, (day.total / max) * plotHeight)
          return (
            <rect
              class={day.total === 0 ? 'bar zero' : 'bar'}
              x={(xOf(i) + (slot - barWidth) / 2).toFixed(1)}
              y={(baseline - barHeight).toFixed(1)}
              width={barWidth.toFixed(1)}
              height={barHeight.toFixed(1)}
              data-day={day.day}
              data-count={String(day.total)}
            >
              <title>{dayText(day)}</title>
            </rect>
          )
        })}
        {labels.map((label) => (
          <text
            class="x-label"
            x={(label.anchor === 'start' ? xOf(label.i) : label.anchor === 'end' ? xOf(label.i) + slot : xOf(label.i) + slot / 2).toFixed(1)}
            y={height - 8}
            text-anchor={label.anchor}
          >
            {label.text}
          </text>
        ))}
      </svg>
      <details class="chart-table">
        <summary>The numbers as a table</summary>
        <Table
          label="Landings per day table"
          caption={`Landings per day and marketplace, last ${days.length} days (UTC)`}
          class="landings"
          columns={['Day (UTC)', ...PARTNERS.map(marketplaceName), 'Total']}
        >
          {days.map((day) => (
            <tr>
              <th scope="row">{day.day}</th>
              {PARTNERS.map((partner) => (
                <td>{day.byPartner[partner]}</td>
              ))}
              <td>{day.total}</td>
            </tr>
          ))}
        </Table>
      </details>
    </>
  )
}

/** What a new org does next: the URLs to paste into each marketplace it has configured, or where to configure one. */
function FirstSteps(props: { orgId: string; integrations: Integration[] }) {
  const { orgId, integrations } = props
  const integrationsPath = orgPath(orgId, 'integrations')
  const missing = PARTNERS.filter((partner) => !integrations.some((integration) => integration.partner === partner))
  return (
    <section class="card first-steps">
      <EmptyState title="No purchases yet">
        {integrations.length === 0 ? (
          <>
            <p>
              No marketplace is connected yet. Configure an integration (Azure, AWS or Google Cloud) with your seller credentials: it gives you the signup URL
              and the notification URL to paste into the marketplace, and buyers then land here after they buy.
            </p>
            <p>
              <a class="button" href={integrationsPath}>
                Configure an integration
              </a>
            </p>
          </>
        ) : (
          <>
            <p>Paste these URLs into each marketplace’s listing: buyers arrive at the signup URL after they buy, and the marketplace sends lifecycle changes to the notification URL.</p>
            {integrations.map((integration) => (
              <div class="first-step">
                <h3>
                  <MarketplaceBadge partner={integration.partner} />
                </h3>
                <p class="hint">{PASTE_WHERE[integration.partner]}</p>
                <CopyField id={`first-signup-url-${integration.partner}`} label={`${marketplaceName(integration.partner)} signup URL`} value={integration.signupUrl} />
                <CopyField id={`first-notification-url-${integration.partner}`} label={`${marketplaceName(integration.partner)} notification URL`} value={integration.notificationUrl} />
              </div>
            ))}
            {missing.length ? (
              <p class="small">
                Not connected: {missing.map(marketplaceName).join(', ')}. <a href={integrationsPath}>Configure an integration</a>
              </p>
            ) : null}
          </>
        )}
      </EmptyState>
    </section>
  )
}

function Stat(props: { value: number; label: string; href?: string; id?: string }) {
  const body = (
    <>
      <b>{props.value}</b>
      <span>{props.label}</span>
    </>
  )
  return props.href ? (
    <a class="stat" href={props.href} id={props.id}>
      {body}
    </a>
  ) : (
    <div class="stat" id={props.id}>
      {body}
    </div>
  )
}

export function OverviewPage(props: { orgId: string; overview: Overview }) {
  const { orgId, overview } = props
  const { entitlements, landings, deliveries, usage, integrations } = overview
  const list = (values: Record<string, string>) => `${orgPath(orgId, 'entitlements')}${query(values)}`
  const webhooks = orgPath(orgId, 'webhooks')
  const configured = new Map(integrations.map((integration) => [integration.partner, integration]))
  return (
    <>
      {entitlements.total === 0 ? <FirstSteps orgId={orgId} integrations={integrations} /> : null}

      <section class="card" aria-labelledby="entitlements-title">
        <h2 id="entitlements-title">Entitlements</h2>
        <div class="stats">
          <Stat value={entitlements.total} label="All" href={list({})} id="count-all" />
          {ENTITLEMENT_STATUSES.map((status) => (
            <Stat value={entitlements.byStatus[status]} label={status} href={list({ status })} id={`count-${status}`} />
          ))}
        </div>
        <Table
          label="Entitlements per marketplace table"
          caption="Entitlements per marketplace and status"
          class="by-marketplace"
          columns={['Marketplace', ...ENTITLEMENT_STATUSES, 'Total']}
        >
          {PARTNERS.map((partner) => (
            <tr>
              <th scope="row">
                <a href={list({ partner })}>{marketplaceName(partner)}</a>
              </th>
              {ENTITLEMENT_STATUSES.map((status) => (
                <td data-partner={partner} data-status={status}>
                  {entitlements.byPartnerStatus[partner][status]}
                </td>
              ))}
              <td data-partner={partner} data-status="total">
                {entitlements.byPartner[partner]}
              </td>
            </tr>
          ))}
        </Table>
      </section>

      <section class="card" aria-labelledby="landings-title">
        <h2 id="landings-title">Landings, last 30 days</h2>
        <p class="muted small">
          A landing is a buyer arriving at a signup URL from the marketplace and being sent on to your fulfillment URL (a reload of the same page counts once). Days are UTC.{' '}
          <span id="landings-total">{plural(landings.total, 'landing')}</span> in these 30 days.
        </p>
        <LandingsChart days={landings.days} total={landings.total} />
      </section>

      <div class="grid">
        <section class="card" aria-labelledby="deliveries-title">
          <h2 id="deliveries-title">Webhook deliveries</h2>
          <div class="stats">
            <Stat value={deliveries.FAILED} label="Failed (gave up)" href={`${webhooks}?status=FAILED`} id="deliveries-FAILED" />
            <Stat value={deliveries.PENDING} label="Pending (being retried)" href={`${webhooks}?status=PENDING`} id="deliveries-PENDING" />
          </div>
          <p class="small muted">
            {deliveries.FAILED > 0 ? 'Failed deliveries are not sent again on their own: retry them on the Webhooks page once your endpoint answers 2xx.' : 'Nothing has failed.'}{' '}
            <a href={webhooks}>Webhooks</a>
          </p>
        </section>

        <section class="card" aria-labelledby="usage-title">
          <h2 id="usage-title">Usage records</h2>
          <div class="stats">
            <Stat value={usage.REJECTED} label="Rejected by the marketplace" id="usage-REJECTED" />
            <Stat value={usage.PENDING} label="Pending (not reported yet)" id="usage-PENDING" />
          </div>
          <p class="small muted">An hour is reported once it has ended. A rejected record’s reason is on its entitlement’s page, under Usage.</p>
        </section>

        <section class="card" aria-labelledby="integrations-title">
          <h2 id="integrations-title">Integrations</h2>
          <ul class="health">
            {PARTNERS.map((partner) => {
              const integration = configured.get(partner)
              return (
                <li id={`health-${partner}`}>
                  <MarketplaceBadge partner={partner} />
                  {integration ? <Badge value="ok" label="Configured" /> : <Badge value="none" label="Not configured" />}
                </li>
              )
            })}
          </ul>
          <p class="small">
            <a href={orgPath(orgId, 'integrations')}>{integrations.length === PARTNERS.length ? 'Check credentials on the Integrations page' : 'Configure integrations'}</a>
          </p>
        </section>
      </div>
    </>
  )
}
