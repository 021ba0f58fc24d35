/**
 * Runs once before the suite, in the process that starts every test worker and every server
 * the tests spawn (they all use `process.execPath`). It prints which Node that is, and refuses
 * to go on below Node 22: better-sqlite3 13 and Google's clients need it, and `npm test` brings
 * Node 24 through the `node` dev dependency, so an older one here means the suite was started
 * around npm (say `npx vitest` with a system Node 20) and would test a runtime we do not support.
 */
export default function setup() {
  const major = Number(process.versions.node.split('.')[0])
  console.log(`marketbridge tests on Node ${process.version} (${process.execPath})`)
  if (major < 22) {
    throw new Error(`Node ${process.version} is below the supported 22; run the tests with \`npm test\`, which uses the project's own Node 24`)
  }
}
