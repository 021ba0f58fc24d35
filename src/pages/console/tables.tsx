/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import { TableScroll } from './components'

/** Pieces the Overview and Entitlements pages share (statuses are shown as the API writes them). */

/** Text that may be long (JSON): kept in a box that scrolls, reachable by keyboard. */
export const ScrollText = (props: { label: string; id?: string; children: Child }) => (
  <pre id={props.id} role="region" aria-label={props.label} tabindex={0}>
    {props.children}
  </pre>
)

/** A table with its (visually hidden) caption and a header row of `columns`, in a TableScroll; the rows are the children. */
export const Table = (props: { label: string; caption: string; class: string; columns: string[]; children: Child }) => (
  <TableScroll label={props.label}>
    <table class={props.class}>
      <caption class="sr-only">{props.caption}</caption>
      <thead>
        <tr>
          {props.columns.map((column) => (
            <th scope="col">{column}</th>
          ))}
        </tr>
      </thead>
      <tbody>{props.children}</tbody>
    </table>
  </TableScroll>
)
