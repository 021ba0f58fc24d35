/**
 * The visual language the sandbox's pages and the console share: colours, type, the dark top
 * bar, cards, buttons, fields, tables, badges and notes. No web fonts, images or external assets.
 * The sandbox adds its own marketplace pieces (sandbox/assets/sandbox.css), the console its own
 * (src/pages/console/styles.ts).
 */
export const THEME_CSS = `:root {
  --ink: #1d2433; --muted: #5b6577; --line: #e3e7ee; --bg: #f6f7fb; --card: #fff;
  --brand: #4b3fe0; --ok: #137a3f; --warn: #9a5b00; --bad: #b42318;
  --azure: #0078d4; --aws: #ff9900; --aws-ink: #232f3e; --gcp: #1a73e8;
  --radius: 12px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg); line-height: 1.5;
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--brand); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; overflow-wrap: anywhere; }
pre { background: #0f1420; color: #e6e9ef; padding: 12px 14px; border-radius: 8px; overflow: auto; max-height: 360px; white-space: pre-wrap; word-break: break-word; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 8px 0 6px; }
h2 { font-size: 1.2rem; margin: 0 0 12px; }
h3 { font-size: 1rem; margin: 0 0 6px; }
.lead { color: var(--muted); font-size: 1.08rem; max-width: 760px; margin: 0 0 20px; }
.muted { color: var(--muted); }
.small { font-size: .86rem; }

/* Header */
.top { background: #12131a; color: #fff; }
.top .bar { max-width: 1120px; margin: 0 auto; padding: 12px 20px; display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
.top .logo { font-weight: 700; letter-spacing: .2px; color: #fff; text-decoration: none; }
.top .logo span { color: #a9a4ff; font-weight: 500; }
.top nav { display: flex; gap: 4px; flex-wrap: wrap; flex: 1; }
.top nav a { color: #d6d8e0; text-decoration: none; padding: 6px 10px; border-radius: 8px; font-size: .93rem; }
.top nav a[aria-current="page"], .top nav a:hover { background: #2a2c38; color: #fff; }
.runtime { font-size: .8rem; background: #2a2c38; color: #cfd2dc; padding: 4px 10px; border-radius: 999px; }


/* Cards and grids */
.grid { display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(min(290px, 100%), 1fr)); }
.two { display: grid; gap: 16px; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); align-items: start; }
@media (max-width: 860px) { .two { grid-template-columns: minmax(0, 1fr); } }
.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius); padding: 18px; margin-bottom: 16px; min-width: 0; }

/* Buttons and forms */
button, .button { font: inherit; border: 0; border-radius: 10px; padding: 10px 16px; background: var(--brand); color: #fff; cursor: pointer; font-weight: 600; text-decoration: none; display: inline-block; }
button:hover, .button:hover { filter: brightness(1.08); }
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid #a9a4ff; outline-offset: 2px; }
button.secondary, .button.secondary { background: #eef0f5; color: var(--ink); }
button.danger { background: #fde8e7; color: var(--bad); }
label.field { display: block; font-size: .88rem; font-weight: 600; margin: 8px 0 4px; }
input[type=number], input[type=text], select { font: inherit; padding: 8px 10px; border: 1px solid #c9cfda; border-radius: 8px; width: 100%; background: #fff; }
.row { display: flex; gap: 10px; align-items: end; flex-wrap: wrap; }
.row > * { flex: 1 1 140px; }
.row > button { flex: 0 0 auto; }

/* Tables, badges, notes */
table { width: 100%; border-collapse: collapse; font-size: .92rem; }
th, td { text-align: left; padding: 7px 8px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 600; font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 6px 16px; margin: 0; font-size: .94rem; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: .78rem; font-weight: 700; letter-spacing: .03em; background: #eef0f5; color: var(--ink); white-space: nowrap; }
.badge.ACTIVE, .badge.REPORTED, .badge.SENT, .badge.ok { background: #dcfce7; color: var(--ok); }
.badge.PENDING_START, .badge.PENDING, .badge.PENDING_CANCEL { background: #fef3c7; color: var(--warn); }
.badge.SUSPENDED, .badge.CANCELLED, .badge.REJECTED, .badge.FAILED, .badge.bad { background: #fee4e2; color: var(--bad); }
.badge.azure { background: #e5f1fb; color: #005a9e; } .badge.aws { background: #fff3e0; color: #8a5300; } .badge.gcp { background: #e8f0fe; color: #1558b0; }
.note { border-radius: 10px; padding: 10px 14px; margin: 0 0 16px; background: #eef4ff; border: 1px solid #c7d7fe; }
.note.bad { background: #fef3f2; border-color: #fecdca; color: var(--bad); }
.empty { color: var(--muted); font-style: italic; }
details summary { cursor: pointer; color: var(--brand); font-size: .9rem; }
/* Small screens: a wide table scrolls inside its card, never the page. */
.card { overflow-x: auto; }
@media (max-width: 480px) {
  main { padding: 16px 12px 48px; }
  th, td { padding: 6px 4px; }
  .badge { white-space: normal; overflow-wrap: anywhere; }
  h1 { font-size: 1.5rem; }
}
`
