// Loaded with `--import` into the broker the sandbox starts: the sandbox holds the other end of
// this process's stdin, so when the sandbox goes away — even killed with SIGKILL, when none of its
// handlers run — stdin ends, and the broker stops as it does on SIGTERM (gracefully).
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'))
process.stdin.on('error', () => process.kill(process.pid, 'SIGTERM'))
process.stdin.resume()
// Not a reason to keep running by itself.
;(process.stdin as unknown as { unref?: () => void }).unref?.()
