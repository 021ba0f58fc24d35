/**
 * Marketplace tokens are printable ASCII (base64, base64url, JWTs). Anything else — spaces,
 * control characters, non-ASCII, or kilobytes more than any marketplace sends — is refused
 * before a network call. It also keeps a token out of places where it could break an HTTP
 * header (a newline in a header value would otherwise surface as a 5xx).
 */
export const PLAUSIBLE_TOKEN = /^[\x21-\x7e]{1,8192}$/

export const isPlausibleToken = (token: string) => PLAUSIBLE_TOKEN.test(token)

/**
 * A token read from an urlencoded form: marketplace tokens are base64 and never contain a
 * space, so a space can only be a `+` that a client left unencoded and form decoding turned
 * into a space (the reason Microsoft's accelerator restores them too).
 */
export const formToken = (value: string | undefined): string | null => (value === undefined ? null : value.replace(/ /g, '+'))
