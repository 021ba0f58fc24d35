import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, test } from 'vitest'

/**
 * No module of src/ reaches itself through runtime imports (review §4: deps.ts, env.ts and the
 * orgs, integrations and webhooks domains were one circle). A cycle makes load order matter: a
 * module may run before what it imports is initialised, which shows up as an undefined export in
 * one entry and not the other. `import type` and `export type` are erased and do not count; an
 * `import { type X }` does (verbatimModuleSyntax keeps it as a bare import).
 */

const ROOT = resolve(__dirname, '..')
const SRC = join(ROOT, 'src')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return files(path)
    return /\.tsx?$/.test(name) && !name.endsWith('.d.ts') ? [path] : []
  })
}

// import … from '…', export … from '…', import '…' (not `import type`, not `export type`).
const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm

function resolveImport(from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null
  const base = resolve(dirname(from), specifier)
  for (const candidate of [base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts'), join(base, 'index.tsx')]) {
    try {
      if (statSync(candidate).isFile()) return candidate
    } catch {}
  }
  throw new Error(`${relative(ROOT, from)}: cannot resolve ${specifier}`)
}

export function runtimeImports(path: string): string[] {
  const text = readFileSync(path, 'utf8')
  const found: string[] = []
  for (const match of text.matchAll(IMPORT)) {
    if (match[2]) continue
    const target = resolveImport(path, match[3]!)
    if (target) found.push(target)
  }
  return found
}

/** Every cycle's modules (strongly connected components of more than one module, or a self-import). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (node: string) => {
    indices.set(node, index)
    low.set(node, index++)
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indices.get(next)!))
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component: string[] = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1 || graph.get(node)?.includes(node)) found.push(component.sort())
    }
  }
  for (const node of graph.keys()) if (!indices.has(node)) visit(node)
  return found
}

describe('the import graph of src/', () => {
  test('has no runtime cycle', () => {
    // Only src/ is walked; providers/ never imports src/ (checked elsewhere), so no cycle passes through it.
    const graph = new Map(files(SRC).map((path) => [path, runtimeImports(path).filter((target) => target.startsWith(SRC))]))
    expect(graph.size).toBeGreaterThan(50)
    expect(cycles(graph).map((cycle) => cycle.map((path) => relative(ROOT, path)))).toEqual([])
  })

  test('the cycle finder finds a two-module cycle and a self-import, and nothing in a chain', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]]))).toEqual([['a', 'b']])
    expect(cycles(new Map([['a', ['a']]]))).toEqual([['a']])
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]]))).toEqual([])
  })

  test('type-only imports do not count, inline `type` specifiers do', () => {
    // orgs.ts: `import type { Org } from '../schemas'`, `import { type AppDeps, nowIso, nowMs } from '../deps'`.
    const imports = runtimeImports(join(SRC, 'domain/orgs.ts')).map((path) => relative(SRC, path))
    expect(imports).toContain('deps.ts')
    expect(imports).toContain('domain/webhook-signing.ts')
    expect(imports).not.toContain('schemas.ts')
    expect(imports).not.toContain('domain/caller.ts')
  })

  test('src/deps.ts is a leaf, and only the entries import the composition module', () => {
    expect(runtimeImports(join(SRC, 'deps.ts'))).toEqual([])
    const importers = files(SRC).filter((path) => runtimeImports(path).includes(join(SRC, 'composition.ts')))
    expect(importers.map((path) => relative(SRC, path)).sort()).toEqual(['node/deps.ts', 'worker.ts'])
  })
})
