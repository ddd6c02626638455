// The aedes MQTT broker (3.1/3.1.1, no MQTT 5) as the integration tests start it:
//   node aedes-broker.mjs CONFIG.json
// CONFIG.json: {"listeners": [{"kind": "tcp"|"tls"|"ws"|"wss", "port": N,
//   "ca_file", "cert_file", "key_file", "require_certificate"}], "users": [[name, password]],
//   "max_inflight_inbound": N (QoS 2 publishes awaiting PUBREL before aedes drops a client)}
// Every listener binds 127.0.0.1 only. Sessions live in memory (aedes' default persistence):
// they do not survive a restart. Logs connections and errors on stdout.
import { readFileSync } from 'node:fs'
import { createServer as createTcpServer } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const log = (...args) => console.log(new Date().toISOString(), ...args)

const broker = await Aedes.createBroker({ maxInflightInbound: config.max_inflight_inbound ?? 1000 })
const users = new Map(config.users ?? [])
if (users.size > 0) {
  broker.authenticate = (client, username, password, done) => {
    const ok = users.has(username) && users.get(username) === password?.toString()
    if (ok) return done(null, true)
    const err = new Error('bad user name or password')
    err.returnCode = 4
    done(err, false)
  }
}
broker.on('client', (c) => log('client connected', c.id))
broker.on('clientDisconnect', (c) => log('client disconnected', c.id))
broker.on('clientError', (c, e) => log('client error', c?.id, e.message))
broker.on('connectionError', (c, e) => log('connection error', c?.id, e.message))

function tlsOptions (l) {
  return {
    ca: readFileSync(l.ca_file),
    cert: readFileSync(l.cert_file),
    key: readFileSync(l.key_file),
    requestCert: Boolean(l.require_certificate),
    rejectUnauthorized: Boolean(l.require_certificate)
  }
}

function webSocketOn (server) {
  // ws picks the first subprotocol the client offers (`mqtt`, or `mqttv3.1`).
  const wss = new WebSocketServer({ server })
  wss.on('connection', (socket, req) => broker.handle(createWebSocketStream(socket), req))
  return server
}

for (const l of config.listeners) {
  let server
  switch (l.kind) {
    case 'tcp': server = createTcpServer(broker.handle); break
    case 'tls': server = createTlsServer(tlsOptions(l), broker.handle); break
    case 'ws': server = webSocketOn(createHttpServer()); break
    case 'wss': server = webSocketOn(createHttpsServer(tlsOptions(l))); break
    default: throw new Error(`unknown listener kind ${l.kind}`)
  }
  server.listen(l.port, '127.0.0.1', () => log('listening', l.kind, l.port))
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
