/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { Layout } from './layout'

/**
 * `/api/docs`: renders the OpenAPI document in the browser with a small inline script, so
 * the page works on a machine with no internet access (no CDN-hosted viewer).
 */
const script = `
(async () => {
  const root = document.getElementById('docs');
  const spec = await (await fetch(root.dataset.spec)).json();
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) node.append(child);
    return node;
  };
  const resolve = (schema) => {
    if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split('/').pop()];
    return schema;
  };
  root.replaceChildren(
    el('h1', {}, spec.info.title + ' API ' + spec.info.version),
    el('p', {}, spec.info.description || ''),
    el('p', {}, el('a', { href: root.dataset.spec }, 'OpenAPI 3.1 document (JSON)')),
  );
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const section = el('section', { className: 'op' },
        el('h2', {}, el('code', {}, method.toUpperCase() + ' ' + path)),
        el('p', {}, op.summary || ''));
      if (op.description) section.append(el('p', { className: 'muted' }, op.description));
      for (const p of op.parameters || []) {
        section.append(el('div', {}, el('code', {}, p.in + ': ' + p.name), p.required ? ' (required)' : ''));
      }
      const body = op.requestBody && op.requestBody.content['application/json'];
      if (body) section.append(el('details', {}, el('summary', {}, 'Request body'), el('pre', {}, JSON.stringify(resolve(body.schema), null, 2))));
      for (const [status, response] of Object.entries(op.responses || {})) {
        const json = response.content && response.content['application/json'];
        section.append(el('details', {}, el('summary', {}, status + ' ' + response.description),
          el('pre', {}, json ? JSON.stringify(resolve(json.schema), null, 2) : '')));
      }
      root.append(section);
    }
  }
})();
`

export function DocsPage(props: { specUrl: string }) {
  return (
    <Layout title="marketbridge API">
      <style
        dangerouslySetInnerHTML={{
          __html: 'main{max-width:60rem} .op{border-top:1px solid #8884;padding:.5rem 0} pre{overflow:auto;font-size:.8rem} h2{font-size:1rem}',
        }}
      />
      <div id="docs" data-spec={props.specUrl}>
        Loading the API description from <a href={props.specUrl}>{props.specUrl}</a>…
      </div>
      <script dangerouslySetInnerHTML={{ __html: script }} />
    </Layout>
  )
}
