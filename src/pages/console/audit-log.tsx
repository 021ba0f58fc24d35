/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AuditChanges, AuditEntry } from '../../domain/audit'
import { TableScroll, PageHead, Pager, Badge, time, EmptyState, query } from './components'
import { SelectField } from './parts'
import { orgPath } from './layout'

/** The audit log page (contract §13, §14): the entries GET …/audit-log answers, filtered by action, a page at a time. */

export interface AuditLogViewProps {
  org: { id: string; name: string }
  items: AuditEntry[]
  nextCursor: string | null
  action: string
  /** Whether this is a later page (a cursor was given): offers the way back to the first. */
  paged: boolean
  /** Every known action and its meaning (AUDIT_ACTIONS). */
  actions: Readonly<Record<string, string>>
  retentionDays: number
}

/** A recorded value as text: JSON, so a string, a number and null cannot be mistaken for each other. */
const valueText = (value: unknown) => (value === null || value === undefined ? <em class="muted">none</em> : <code>{JSON.stringify(value)}</code>)

function Changes(props: { changes: AuditChanges }) {
  const fields = Object.entries(props.changes)
  if (fields.length === 0) return <span class="muted">—</span>
  return (
    <ul class="changes">
      {fields.map(([field, change]) => (
        <li>
          <b>{field}</b>: {valueText(change.from)} → {valueText(change.to)}
        </li>
      ))}
    </ul>
  )
}

function Actor(props: { actor: AuditEntry['actor'] }) {
  const { type, name, id } = props.actor
  return (
    <>
      <Badge value={`actor-${type}`} label={type} />
      {name !== null ? <div>{name}</div> : null}
      {id !== null ? (
        <div>
          <code>{id}</code>
        </div>
      ) : null}
    </>
  )
}

export function AuditLogView(props: AuditLogViewProps) {
  const { org, items, action, actions } = props
  const base = orgPath(org.id, 'audit-log')
  const options = [{ value: '', label: 'All actions' }, ...Object.entries(actions).map(([value, label]) => ({ value, label: `${label} (${value})` }))]
  // An action asked for in the address that the list does not know (yet) stays selectable.
  if (action && !Object.hasOwn(actions, action)) options.push({ value: action, label: action })
  return (
    <>
      <PageHead title="Audit log" crumbs={org.name} />
      <p class="lead">Every change made to this org through the API or this console, newest first: who made it, what changed, and the request it came with.</p>
      <form method="get" action={base} class="filters action-filter" role="search" aria-label="Filter the audit log">
        <div>
          <SelectField id="audit-action" name="action" label="Action" value={action} options={options} />
        </div>
        <button type="submit">Filter</button>
      </form>
      <div class="card">
        {items.length === 0 ? (
          action ? (
            <EmptyState title="No entries for this action">
              <p>
                Nothing was recorded as <code>{action}</code>
                {props.paged ? ' after the previous page' : ''}. <a href={base}>Show every action</a>.
              </p>
            </EmptyState>
          ) : (
            <EmptyState title={props.paged ? 'No more entries' : 'Nothing has changed yet'}>
              {props.paged ? (
                <p>
                  That was the last page. <a href={base}>Back to the newest entries</a>.
                </p>
              ) : (
                <p>
                  Changes to the org, its integrations, webhook URL and secrets, API keys and signup form, delivery retries and entitlement refreshes are recorded here
                  as they are made, with who made them. Create an API key or edit the signup form and it shows up here.
                </p>
              )}
            </EmptyState>
          )
        ) : (
          <TableScroll label="Audit log entries">
            <table class="wide audit">
              <caption class="sr-only">Audit log entries, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Action</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Target</th>
                  <th scope="col">Changes</th>
                  <th scope="col">Request</th>
                </tr>
              </thead>
              <tbody>
                {items.map((entry) => (
                  <tr id={entry.id}>
                    <td class="when">{time(entry.createdAt)}</td>
                    <th scope="row">
                      <code>{entry.action}</code>
                      {Object.hasOwn(actions, entry.action) ? <div class="muted small">{actions[entry.action]}</div> : null}
                      <div class="muted small">
                        <code>{entry.id}</code>
                      </div>
                    </th>
                    <td>
                      <Actor actor={entry.actor} />
                    </td>
                    <td>
                      {entry.targetType}
                      {entry.targetId !== null ? (
                        <div>
                          <code>{entry.targetId}</code>
                        </div>
                      ) : null}
                    </td>
                    <td class="changes-cell">
                      <Changes changes={entry.changes} />
                    </td>
                    <td>{entry.requestId !== null ? <code>{entry.requestId}</code> : <span class="muted">—</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
        )}
        <Pager next={props.nextCursor ? `${base}${query({ action, cursor: props.nextCursor })}` : null} first={props.paged ? `${base}${query({ action })}` : null} />
      </div>
      <p class="hint">Secrets are never recorded: a changed secret shows as "[redacted]". Entries are kept for {props.retentionDays} days.</p>
    </>
  )
}
