import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { SWAGGER_UI_FILES } from '../pages/docs'

interface CachedFile {
  bytes: Uint8Array<ArrayBuffer>
  etag: string
}

/**
 * `AppDeps.docsAsset` on Node: the allow-listed files of `swagger-ui-dist`, read from the installed
 * package the first time they are asked for and kept in memory afterwards (about 1.9 MB for all
 * four), each with a content-hash ETag.
 */
export function createNodeDocsAssets(): (file: string) => Promise<Response | null> {
  const cache = new Map<string, Promise<CachedFile | null>>()
  let folder: string | undefined
  const load = async (file: string): Promise<CachedFile | null> => {
    try {
      // Resolved on first use: a missing package makes these files 404, not the server fail.
      folder ??= dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'))
      const bytes = new Uint8Array(await readFile(join(folder, file)))
      return { bytes, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"` }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'MODULE_NOT_FOUND') return null
      throw error
    }
  }
  return async (file) => {
    // The same allow-list as the route: never a path built from anything else.
    if (!Object.hasOwn(SWAGGER_UI_FILES, file)) return null
    let entry = cache.get(file)
    if (!entry) {
      entry = load(file)
      cache.set(file, entry)
      // A failed read (not a missing file) is tried again on the next request.
      entry.catch(() => cache.delete(file))
    }
    const found = await entry
    return found ? new Response(found.bytes, { headers: { etag: found.etag } }) : null
  }
}
