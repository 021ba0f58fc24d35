// A webhook receiver for the benchmarks, in its own process: answers every POST 204 and counts
// it; GET /count answers the count. Usage: node bench/receiver.ts <port>; prints {"url"}.
import { createServer } from 'node:http'

let count = 0
const server = createServer((req, res) => {
  if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count }))
  req.resume()
  req.on('end', () => {
    count++
    res.writeHead(204).end()
  })
})
server.listen(Number(process.argv[2]), '127.0.0.1', () => console.log(JSON.stringify({ url: `http://127.0.0.1:${process.argv[2]}` })))
