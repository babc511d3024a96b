// The race lab's server: Node's http server closing each connection that
// stays idle LIMIT seconds after its last response, with a timer of its own
// (millisecond-precise); Node's own timer and header are off
// (keepAliveTimeout = 0). Prints "PORT n" once listening, then "CONN" for
// every connection it accepts and "POST <body>" for every POST it answers
// (for counting connections and duplicates).
//
//     node benchmarks/race_server.js LIMIT [ANNOUNCE [MAX [CHANGE_AFTER NEW_LIMIT]]]
//
// ANNOUNCE  send "Keep-Alive: timeout=ANNOUNCE" (0: say nothing); a value
//           above LIMIT is a server that closes earlier than it says
// MAX       Apache's way: "max=M" counts the requests the connection still
//           takes, and the last one is answered with "Connection: close"
//           (0: no limit)
// CHANGE_AFTER, NEW_LIMIT  after that many requests in all, connections
//           idle NEW_LIMIT seconds are closed instead (a reconfigured server)
//
// ANNOUNCE "own" leaves it all to Node itself: keepAliveTimeout = LIMIT,
// announced as "Keep-Alive: timeout=LIMIT", and Node's own timer, which
// closes a second or so later than it says.
'use strict';
const http = require('http');

const [limitArg, announceArg = '0', maxArg = '0', changeAfterArg = '0', newLimitArg = '0'] =
  process.argv.slice(2);
let limit = Number(limitArg) * 1000;
const own = announceArg === 'own';
const announce = own ? 0 : Number(announceArg);
const max = Number(maxArg);
const changeAfter = Number(changeAfterArg);
let answered = 0;

const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (part) => parts.push(part));
  req.on('end', () => {
    if (req.method === 'POST') {
      process.stdout.write(`POST ${Buffer.concat(parts).toString()}\n`);
    }
    answered += 1;
    if (changeAfter > 0 && answered === changeAfter) limit = Number(newLimitArg) * 1000;
    const socket = req.socket;
    socket.served = (socket.served || 0) + 1;
    const headers = { 'Content-Length': 2 };
    const left = max - socket.served + 1; // further requests after this one
    if (max > 0 && left <= 0) {
      headers.Connection = 'close';
    } else if (announce > 0) {
      headers['Keep-Alive'] = max > 0 ? `timeout=${announce}, max=${left}` : `timeout=${announce}`;
    }
    if (!own) res.on('finish', () => socket.emit('idle-start'));
    res.writeHead(200, headers);
    res.end('ok');
  });
});
server.keepAliveTimeout = own ? limit : 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
server.on('connection', (socket) => {
  process.stdout.write('CONN\n');
  let timer = null;
  socket.on('idle-start', () => {
    clearTimeout(timer);
    timer = setTimeout(() => socket.destroy(), limit);
  });
  socket.on('data', () => clearTimeout(timer));
  socket.on('close', () => clearTimeout(timer));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
