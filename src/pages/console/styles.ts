import { THEME_CSS } from '../theme'

/** The console's own pieces, after the shared theme. One stylesheet, served at /console/assets/console.css. */
const CONSOLE_ONLY = `
.skip { position: absolute; left: -9999px; top: 0; background: #fff; color: var(--ink); padding: 8px 12px; border-radius: 8px; z-index: 10; }
.skip:focus { left: 12px; top: 12px; }
/* The skip link's target takes the focus (tabindex=-1) without an outline around the whole page. */
main:focus { outline: none; }
/* Long unbroken text (a path, an id) wraps instead of making its card a scroll region no key can reach. */
.card p, .card li, .empty { overflow-wrap: anywhere; }
/* On the light parts of the page the focus ring in the brand colour (the theme's light one is for the dark top bar: under 3:1 on white). */
main :focus-visible, .orgbar :focus-visible { outline-color: var(--brand); }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.top .who { display: flex; gap: 10px; align-items: center; font-size: .85rem; color: #cfd2dc; flex-wrap: wrap; }
.top .who form { margin: 0; }
.top .who button { padding: 5px 10px; font-size: .85rem; background: #2a2c38; color: #fff; font-weight: 500; }
.orgbar { background: #fff; border-bottom: 1px solid var(--line); }
.orgbar nav { max-width: 1120px; margin: 0 auto; padding: 6px 20px; display: flex; gap: 2px; flex-wrap: wrap; }
.orgbar nav a { color: var(--ink); text-decoration: none; padding: 6px 10px; border-radius: 8px; font-size: .92rem; }
.orgbar nav a[aria-current="page"] { background: #eceafe; color: var(--brand); font-weight: 600; }
.orgbar nav a:hover { background: #f3f4f8; }
.page-head { display: flex; gap: 12px; align-items: flex-end; justify-content: space-between; flex-wrap: wrap; margin-bottom: 16px; }
.page-head h1 { margin: 0; }
.crumbs { font-size: .88rem; color: var(--muted); margin: 0 0 4px; }
.stats { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(min(150px, 100%), 1fr)); margin-bottom: 16px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius); padding: 12px 14px; }
.stat b { display: block; font-size: 1.6rem; line-height: 1.2; }
.stat span { color: var(--muted); font-size: .85rem; }
.chart { width: 100%; height: auto; display: block; }
.chart .bar { fill: var(--brand); }
.chart .axis { stroke: var(--line); }
.chart text { fill: var(--muted); font-size: 10px; }
form.stack { display: grid; gap: 4px; max-width: 640px; }
form.inline { display: inline; margin: 0; }
.filters { display: flex; gap: 10px; align-items: end; flex-wrap: wrap; margin-bottom: 12px; }
.filters > div { flex: 1 1 160px; min-width: 0; }
.filters button { flex: 0 0 auto; }
input[type=password], input[type=url], input[type=email], input[type=search], textarea { font: inherit; padding: 8px 10px; border: 1px solid #c9cfda; border-radius: 8px; width: 100%; background: #fff; color: var(--ink); }
textarea { min-height: 6rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88rem; }
textarea:focus-visible { outline: 3px solid var(--brand); outline-offset: 2px; }
.hint { color: var(--muted); font-size: .84rem; margin: 2px 0 6px; }
.field-error { color: var(--bad); font-size: .86rem; margin: 2px 0 6px; }
.note.ok { background: #ecfdf3; border-color: #abefc6; color: var(--ok); }
.note.warn { background: #fffaeb; border-color: #fedf89; color: var(--warn); }
.secret { border: 2px solid var(--brand); background: #f7f6ff; border-radius: var(--radius); padding: 14px 16px; margin: 0 0 16px; }
.secret h2 { margin-bottom: 6px; }
.copy { display: flex; gap: 8px; align-items: center; margin: 4px 0 8px; }
.copy input { flex: 1 1 auto; min-width: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .86rem; }
.copy button { flex: 0 0 auto; padding: 8px 12px; }
.buttons { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
button.small, .button.small { padding: 5px 10px; font-size: .85rem; }
.pager { display: flex; gap: 10px; justify-content: flex-end; margin-top: 12px; }
.empty-state { text-align: left; padding: 8px 0; }
.empty-state h2 { margin-bottom: 6px; }
.health { list-style: none; padding: 0; margin: 0; display: grid; gap: 8px; }
.health li { display: flex; gap: 10px; align-items: center; justify-content: space-between; flex-wrap: wrap; }
.signin { max-width: 440px; margin: 6vh auto 0; }
.timeline { list-style: none; padding: 0; margin: 0; }
.timeline li { border-left: 3px solid var(--line); padding: 4px 0 10px 12px; }
/* Webhooks and Integrations pages */
.badge.SUCCEEDED { background: #dcfce7; color: var(--ok); }
.card-head { display: flex; gap: 10px; align-items: center; justify-content: space-between; flex-wrap: wrap; margin-bottom: 10px; }
.card-head h2 { margin: 0; }
.card.integration { border-top: 4px solid var(--line); }
.card.integration.azure { border-top-color: var(--azure); } .card.integration.aws { border-top-color: var(--aws); } .card.integration.gcp { border-top-color: var(--gcp); }
ul.plain { list-style: none; padding: 0; margin: 0; }
.checks { border-radius: 10px; padding: 10px 14px; margin: 8px 0 12px; border: 1px solid var(--line); }
.checks.ok { background: #ecfdf3; border-color: #abefc6; }
.checks.bad { background: #fef3f2; border-color: #fecdca; }
.checks li > span { min-width: 0; overflow-wrap: anywhere; }
.check { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 2px 8px; align-items: center; margin: 8px 0 4px; }
.check label { font-size: .88rem; font-weight: 600; }
.check .hint { grid-column: 2; }
.check input { width: 1.1rem; height: 1.1rem; margin: 0; }
td details pre { max-width: 60ch; font-size: .8rem; }
.filters.narrow > div { flex: 0 1 260px; }
table.deliveries th { overflow-wrap: normal; }
table.deliveries td.when { overflow-wrap: normal; min-width: 11ch; }
table.deliveries button { white-space: nowrap; }
table.deliveries td:nth-child(5) { min-width: 26ch; max-width: 48ch; }
/* End of the Webhooks and Integrations pages */
/* ---- API keys, audit log, signup form, orgs (c-keys) ---- */
.table-scroll { overflow-x: auto; position: relative; max-width: 100%; }
.table-scroll:focus-visible { outline: 3px solid var(--brand); outline-offset: 2px; }
table.wide th, table.wide td { overflow-wrap: normal; }
table.wide thead th { white-space: nowrap; }
table.wide tbody th[scope="row"] { color: var(--ink); font-size: .92rem; text-transform: none; letter-spacing: 0; }
table.wide td.when { white-space: nowrap; }
table.wide td.changes-cell { min-width: 18rem; overflow-wrap: anywhere; }
table.keys { min-width: 980px; }
table.audit { min-width: 860px; }
table.signups { min-width: 900px; }
table.orgs { min-width: 480px; }
.filters.action-filter > div { flex: 0 1 420px; }
.key-actions { display: flex; gap: 8px; align-items: flex-start; flex-wrap: wrap; min-width: 11rem; }
.key-actions details { flex: 1 1 100%; }
.key-actions details form.stack { margin-top: 6px; }
.badge.own { background: #eceafe; color: var(--brand); }
.badge.EXPIRED, .badge.REVOKED { background: #eef0f5; color: var(--muted); }
ul.changes { margin: 0; padding-left: 1.1rem; }
ul.changes li { overflow-wrap: anywhere; }
.pre { white-space: pre-wrap; }
fieldset.checks { border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px 10px; margin: 8px 0 0; }
fieldset.checks legend { font-size: .88rem; font-weight: 600; padding: 0 4px; }
fieldset.checks label { display: inline-flex; gap: 6px; align-items: center; margin-right: 16px; }
.note.warn form { margin-top: 6px; }
.note p { margin: 0 0 6px; }
input[aria-invalid="true"], textarea[aria-invalid="true"], select[aria-invalid="true"] { border-color: var(--bad); }
/* ---- end c-keys ---- */
@media (max-width: 480px) {
  .top .bar, .orgbar nav { padding-left: 12px; padding-right: 12px; }
  .stat b { font-size: 1.3rem; }
}

/* ---- Overview and Entitlements pages ---- */
.page-head > div { min-width: 0; }
.page-head h1 { overflow-wrap: anywhere; }
table.wide { min-width: 680px; }
table.by-marketplace { min-width: 560px; }
table.by-marketplace tbody th { text-transform: none; letter-spacing: 0; font-size: .92rem; }
table.entitlements td:first-child a { white-space: nowrap; }
table.wide .badge { white-space: nowrap; }
table.events td:nth-child(3) { white-space: nowrap; }
pre:focus-visible { outline: 3px solid var(--brand); outline-offset: 2px; }
.chart { max-height: 240px; margin: 4px 0; }
a.stat { color: var(--ink); text-decoration: none; display: block; }
a.stat:hover { border-color: var(--brand); }
a.stat:hover span { color: var(--brand); }
.chart .bar.zero { fill: #c9cfda; }
.chart .y-label, .chart .x-label { font-size: 13px; }
@media (max-width: 480px) { .chart .y-label, .chart .x-label { font-size: 18px; } }
.chart-table { margin-top: 8px; }
.chart-table table { margin-top: 8px; }
.first-step { border-top: 1px solid var(--line); padding-top: 10px; margin-top: 10px; }
.first-step h3 { margin-bottom: 2px; }
.badge.none { background: #eef0f5; color: var(--muted); }
.filters .filter-search { flex: 2 1 240px; }
.filter-form { margin-bottom: 12px; }
.filter-form .filters { margin-bottom: 0; }
.filters .filter-buttons { flex: 0 0 auto; }
.filters select { min-width: 0; }
table.events code, table.usage code, table.deliveries code { font-size: .8rem; }
@media (max-width: 480px) {
  .filters .filter-buttons { flex: 1 1 100%; }
}
`

export const CONSOLE_CSS = `${THEME_CSS}\n${CONSOLE_ONLY}`

/**
 * The console's one script: it only improves pages that work without it. A `data-copy` button
 * copies its field's value; a form with `data-confirm` asks first.
 */
export const CONSOLE_JS = `document.addEventListener('click', function (event) {
  var button = event.target.closest && event.target.closest('button[data-copy]')
  if (!button) return
  var field = document.getElementById(button.getAttribute('data-copy'))
  if (!field) return
  event.preventDefault()
  var done = function () { var text = button.textContent; button.textContent = 'Copied'; setTimeout(function () { button.textContent = text }, 1500) }
  if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(field.value).then(done, function () { field.select() })
  else { field.select(); document.execCommand('copy'); done() }
})
document.addEventListener('submit', function (event) {
  var form = event.target
  var question = form.getAttribute && form.getAttribute('data-confirm')
  if (question && !window.confirm(question)) event.preventDefault()
})
document.querySelectorAll('button[data-copy]').forEach(function (button) { button.hidden = false })
`
