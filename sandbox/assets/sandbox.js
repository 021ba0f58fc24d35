// The sandbox's one script (no inline scripts: the pages' CSP is script-src 'self').
// 1. A marketplace hand-off form submits itself, as the marketplace's page does.
// 2. A page that waits for something (data-refresh="seconds") reloads while nobody is typing.
const handoff = document.querySelector('form[data-autosubmit]')
if (handoff) handoff.submit()
const refresh = Number(document.body.dataset.refresh || 0)
if (refresh > 0) {
  setTimeout(function again() {
    const typing = document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)
    if (typing || document.querySelector('details[open]')) setTimeout(again, refresh * 1000)
    else location.reload()
  }, refresh * 1000)
}
