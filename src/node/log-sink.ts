/**
 * Log lines for stdout, written in batches: a write to a pipe or file is a system call, and
 * one per line was the largest single cost of a small request. Lines queue until the end of
 * the current turn of the event loop (or 64 KiB), then go out in one write; whatever is
 * queued at exit is written synchronously.
 */
export function createStdoutSink(): (line: string) => void {
  let queue: string[] = []
  let bytes = 0
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (!queue.length) return
    const chunk = queue.join('')
    queue = []
    bytes = 0
    process.stdout.write(chunk)
  }
  process.on('exit', flush)
  return (line) => {
    queue.push(`${line}\n`)
    bytes += line.length + 1
    if (bytes >= 64 * 1024) flush()
    else if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  }
}
