import { randomBytes } from 'node:crypto'
import { dropTestDatabases, postgresProblem } from './postgres'

/**
 * Runs once before the suite, in the process that starts every test worker and every server
 * the tests spawn (they all use `process.execPath`). It prints which Node that is, and refuses
 * to go on below Node 22: better-sqlite3 13 and Google's clients need it, and `npm test` brings
 * Node 24 through the `node` dev dependency, so an older one here means the suite was started
 * around npm (say `npx vitest` with a system Node 20) and would test a runtime we do not support.
 *
 * It also names this run for the PostgreSQL test databases (the workers inherit the variable):
 * whatever a killed test left of them is dropped at the end, and what a killed run left hours
 * ago is dropped at the start.
 */
export default async function setup() {
  const major = Number(process.versions.node.split('.')[0])
  console.log(`marketbridge tests on Node ${process.version} (${process.execPath})`)
  if (major < 22) {
    throw new Error(`Node ${process.version} is below the supported 22; run the tests with \`npm test\`, which uses the project's own Node 24`)
  }
  const run = (process.env.MB_TEST_RUN ||= randomBytes(6).toString('hex'))
  // Without a server there is nothing to sweep; the PostgreSQL test files report that themselves.
  if (await postgresProblem()) return
  await dropTestDatabases(run)
  return async () => {
    const left = await dropTestDatabases(run)
    if (left.length > 0) console.log(`dropped ${left.length} PostgreSQL test database(s) left by this run`)
  }
}
