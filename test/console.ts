import { PUBLIC_URL } from './helpers'

/**
 * A browser-less console user for tests: a cookie jar, the pages' HTML, and forms posted as a
 * browser posts them (same Origin, the page's CSRF token). `send` is the in-process app's
 * request or fetch to a running broker; `base` the URL it answers on (the Origin the browser
 * would send is that of PUBLIC_URL unless told otherwise).
 */
export function consoleUser(send: (url: string, init: RequestInit) => Response | Promise<Response>, base = PUBLIC_URL, origin = new URL(base).origin) {
  const cookies = new Map<string, string>()
  const remember = (response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const at = pair!.indexOf('=')
      const name = pair!.slice(0, at).trim()
      const value = pair!.slice(at + 1).trim()
      if (!value || /max-age=0/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name)
      else cookies.set(name, value)
    }
    return response
  }
  const cookieHeader = () => [...cookies].map(([name, value]) => `${name}=${value}`).join('; ')

  async function get(path: string, headers: Record<string, string> = {}) {
    const response = remember(await send(`${base}${path}`, { headers: { cookie: cookieHeader(), ...headers }, redirect: 'manual' }))
    return { response, status: response.status, location: response.headers.get('location'), html: await response.text() }
  }

  async function post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
    const response = remember(
      await send(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin, cookie: cookieHeader(), ...headers },
        body: new URLSearchParams(fields).toString(),
        redirect: 'manual',
      }),
    )
    return { response, status: response.status, location: response.headers.get('location'), html: await response.text() }
  }

  /** The CSRF token in a page's forms. */
  const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? null

  /**
   * Posts a form the way the page at `pagePath` would: reads the page, takes its CSRF token,
   * posts `fields` with it to `action`.
   */
  async function submit(pagePath: string, action: string, fields: Record<string, string> = {}) {
    const pageHtml = (await get(pagePath)).html
    const token = csrfOf(pageHtml)
    if (!token) throw new Error(`no CSRF token on ${pagePath}:\n${pageHtml.slice(0, 500)}`)
    return post(action, { _csrf: token, ...fields })
  }

  async function signIn(credential: string) {
    const answer = await post('/console/sign-in', { credential })
    if (answer.status !== 303) throw new Error(`sign-in: ${answer.status} ${answer.html.slice(0, 300)}`)
    return answer
  }

  return { get, post, submit, signIn, csrfOf, cookies }
}

/** The text of an HTML fragment without its tags, spaces collapsed (what a reader sees, roughly). */
export const textOf = (html: string) =>
  html
    .replace(/<(script|style)[\s\S]*?<\/\1>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/\s+/g, ' ')
    .trim()
