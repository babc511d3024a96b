// The race lab's server: Node's http server closing each connection that
// stays idle LIMIT seconds after its last response, with a timer of its own
// (millisecond-precise) and no Keep-Alive header (keepAliveTimeout = 0 turns
// Node's own timer and header off). Prints "PORT n" once listening, then
// "CONN" for every connection it accepts and "POST <body>" for every POST
// it answers (for counting connections and duplicates).
//
//     node benchmarks/race_server.js LIMIT
'use strict';
const http = require('http');

const limit = Number(process.argv[2]) * 1000;
const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (part) => parts.push(part));
  req.on('end', () => {
    if (req.method === 'POST') {
      process.stdout.write(`POST ${Buffer.concat(parts).toString()}\n`);
    }
    res.on('finish', () => req.socket.emit('idle-start'));
    res.writeHead(200, { 'Content-Length': 2 });
    res.end('ok');
  });
});
server.keepAliveTimeout = 0;
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
