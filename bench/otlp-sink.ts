// An OTLP/HTTP trace receiver for the benchmarks, in its own process: answers every POST 200 (as
// a collector does) and counts the export requests and the spans in them (JSON encoding, as the
// broker's exporter sends). GET /count answers {requests, spans, bytes}.
// Usage: node --import tsx bench/otlp-sink.ts <port>; prints {"url"} when listening.
import { createServer } from 'node:http'
import { gunzipSync } from 'node:zlib'

const counts = { requests: 0, spans: 0, bytes: 0 }
const server = createServer((req, res) => {
  if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(counts))
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    let body = Buffer.concat(chunks)
    counts.requests++
    counts.bytes += body.length
    try {
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      const payload = JSON.parse(body.toString('utf8')) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: unknown[] }> }> }
      for (const resource of payload.resourceSpans ?? []) for (const scope of resource.scopeSpans ?? []) counts.spans += scope.spans?.length ?? 0
    } catch {
      // Not JSON (a protobuf exporter): counted as a request, its spans unknown.
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
})
server.listen(Number(process.argv[2]), '127.0.0.1', () => console.log(JSON.stringify({ url: `http://127.0.0.1:${process.argv[2]}` })))
