/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { Layout } from './layout'

/**
 * `/api/docs`: Swagger UI (the `swagger-ui-dist` package) rendering `/api/openapi.json`, every
 * file served by the broker itself: no CDN, and no request to any other host (validatorUrl is
 * null, so the spec is never posted to validator.swagger.io). The page has no inline script or
 * style, so its CSP can be `script-src 'self'; style-src 'self'`.
 *
 * Files under ASSETS_PATH: OWN_FILES (initializer and stylesheet) are the app's own, the same on
 * both runtimes; SWAGGER_UI_FILES come from `swagger-ui-dist` through `AppDeps.docsAsset` (Node:
 * read from node_modules; Workers: the static-assets binding). Anything else there is 404.
 */
export const SPEC_URL = '/api/openapi.json'
export const ASSETS_PATH = '/api/docs/assets'

/** The files of `swagger-ui-dist` the page uses, with their content types: the allow-list. */
export const SWAGGER_UI_FILES: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
}

/**
 * The initializer. The default BaseLayout (no StandaloneLayout): no top bar where a visitor could
 * load another URL's spec; `queryConfigEnabled: false` likewise ignores `?url=` / `?configUrl=`.
 * No OAuth2 flow is declared (the API uses bearer keys), so no oauth2 redirect page is needed.
 */
const initializer = `'use strict';
if (typeof SwaggerUIBundle !== 'function') {
  // The viewer's bundle did not load (e.g. swagger-ui-dist missing from node_modules): say so.
  document.getElementById('swagger-ui').textContent = 'The API viewer could not be loaded; the OpenAPI document is linked above.';
} else {
  window.ui = SwaggerUIBundle({
    url: ${JSON.stringify(SPEC_URL)},
    dom_id: '#swagger-ui',
    validatorUrl: null,
    queryConfigEnabled: false,
    deepLinking: true,
    docExpansion: 'list',
    displayRequestDuration: true,
  });
}
`

const stylesheet = `body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
.mb-bar { display: flex; gap: 1rem; align-items: baseline; max-width: 1460px; margin: 0 auto; padding: 1rem 20px 0; box-sizing: border-box; }
.mb-bar strong { font-size: 1rem; }
.mb-bar a { color: #4990e2; }
`

/** A short, stable hash of a text (FNV-1a, 32 bits), for the ETag of the app's own files. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193)
  return (hash >>> 0).toString(16).padStart(8, '0')
}

/** One of the app's own files: its content type, its body and an ETag of the body. */
export const ownFile = (type: string, body: string) => ({ type, body, etag: `"${fnv1a(body)}"` })

/** The app's own files under ASSETS_PATH: content type, body and ETag. */
export const OWN_FILES: Readonly<Record<string, { type: string; body: string; etag: string }>> = {
  'docs.js': ownFile('text/javascript; charset=utf-8', initializer),
  'docs.css': ownFile('text/css; charset=utf-8', stylesheet),
}

/** Long-lived, but not immutable: the paths carry no version, and the ETag revalidates after a day. */
export const ASSET_CACHE_CONTROL = 'public, max-age=86400'

/**
 * The page's policy: scripts and styles from the broker only (none inline); the spec and
 * "Try it out" requests to the broker; images from the broker or the stylesheet's data: URIs.
 */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** The page; without `viewer` (no `docsAsset` in this deployment), just the link to the document. */
export function DocsPage(props: { viewer: boolean }) {
  const asset = (file: string) => `${ASSETS_PATH}/${file}`
  return (
    <Layout
      title="marketbridge API"
      styles={null}
      head={
        props.viewer ? (
          <>
            <link rel="stylesheet" href={asset('swagger-ui.css')} />
            <link rel="stylesheet" href={asset('docs.css')} />
            <link rel="icon" type="image/png" href={asset('favicon-32x32.png')} sizes="32x32" />
            <link rel="icon" type="image/png" href={asset('favicon-16x16.png')} sizes="16x16" />
          </>
        ) : (
          <link rel="stylesheet" href={asset('docs.css')} />
        )
      }
    >
      <div class="mb-bar">
        <strong>marketbridge API</strong>
        <a href={SPEC_URL}>OpenAPI 3.1 document (JSON): {SPEC_URL}</a>
      </div>
      {props.viewer ? (
        <>
          <div id="swagger-ui">
            <noscript>The interactive reference needs JavaScript; the API is described by <a href={SPEC_URL}>{SPEC_URL}</a>.</noscript>
          </div>
          <script src={asset('swagger-ui-bundle.js')} />
          <script src={asset('docs.js')} />
        </>
      ) : (
        <p class="mb-bar">This deployment does not serve the interactive viewer (Swagger UI); the document above describes the API.</p>
      )}
    </Layout>
  )
}
