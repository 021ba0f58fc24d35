/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'

const styles = `
  :root { color-scheme: light dark; }
  body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; display: grid; min-height: 100vh; place-items: center; background: Canvas; color: CanvasText; }
  main { max-width: 34rem; padding: 2rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .75rem; }
  p { margin: .5rem 0; }
  .muted { opacity: .7; font-size: .9rem; }
`

/**
 * A page: its title, and the stylesheet (the default one unless the page brings its own; null:
 * no inline stylesheet, for a page whose CSP allows none), plus anything else for the head.
 */
export function Layout(props: { title: string; children: Child; styles?: string | null; head?: Child; referrer?: 'no-referrer' }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="robots" content="noindex" />
        {props.referrer ? <meta name="referrer" content={props.referrer} /> : null}
        <title>{props.title}</title>
        {props.styles === null ? null : <style dangerouslySetInnerHTML={{ __html: props.styles ?? styles }} />}
        {props.head ?? null}
      </head>
      <body>
        <main>{props.children}</main>
      </body>
    </html>
  )
}
