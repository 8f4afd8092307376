// Drives a headless cncjs server over its socket.io API, as its web UI does.
//
// Usage: CNCJS_SECRET=... NODE_PATH=<bench-peers>/node_modules \
//          node cncjs_driver.js URL PORT JOB
// Spoken to one JSON object a line (bench/peers/procs.py SenderProcess): prints {"ready"} once
// the job is loaded into cncjs, starts it on "go", prints {"done"} when cncjs's sender says
// every line is answered, closes the port and exits on "quit".
//
// The token is a JWT signed with the server's own secret (the `secret` cncjs wrote to its
// config file), as cncjs's /api/signin hands one to the UI. The port is opened with the Grbl
// controller at 115200 baud, the controller reset (Ctrl-X) so it reads a fresh banner and runs
// its start-up queries, the job loaded with 'gcode:load' and started with 'gcode:start'.
'use strict';

const fs = require('fs');
const readline = require('readline');
const io = require('socket.io-client');
const jwt = require('jsonwebtoken');

const [url, port, jobFile] = process.argv.slice(2);
const gcode = fs.readFileSync(jobFile, 'utf8');
const token = jwt.sign({ id: '', name: 'bench' }, process.env.CNCJS_SECRET, { expiresIn: '1h' });

const say = (data) => process.stdout.write(JSON.stringify(data) + '\n');
const fail = (why) => { say({ error: String(why) }); process.exit(1); };

// Words from the bench, queued until someone waits for them.
const words = [];
const waiters = [];
readline.createInterface({ input: process.stdin })
  .on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line.trim()); else words.push(line.trim());
  })
  .on('close', () => process.exit(0));
const nextWord = () => new Promise((resolve) => {
  if (words.length) resolve(words.shift()); else waiters.push(resolve);
});

const socket = io.connect(url, { query: 'token=' + token, transports: ['websocket'] });
let booted = false;
let started = false;
let finished = false;

socket.on('error', fail);
socket.on('connect_error', fail);

socket.on('connect', () => {
  socket.emit('open', port, { controllerType: 'Grbl', baudrate: 115200 }, (err) => {
    if (err) fail(err);
    socket.emit('command', port, 'reset');
  });
});

socket.on('serialport:read', (data) => {
  if (booted || !/^Grbl /.test(String(data))) return;
  booted = true;
  // Let cncjs's start-up queries ($$, $G, ?) be answered before the job goes.
  setTimeout(load, 1500);
});

function load() {
  socket.emit('command', port, 'gcode:load', 'tshirt-front.nc', gcode, {}, async (err, state) => {
    if (err) fail(err);
    say({ ready: true, total: state.total });
    if ((await nextWord()) !== 'go') { socket.emit('close', port); process.exit(0); }
    started = true;
    socket.emit('command', port, 'gcode:start');
  });
}

socket.on('sender:status', async (status) => {
  if (!started || finished || !(status.finishTime > 0)) return;
  finished = true;
  say({ done: true, total: status.total, sent: status.sent, received: status.received,
        cncjs_elapsed_ms: status.elapsedTime });
  await nextWord();
  socket.emit('close', port, () => process.exit(0));
  setTimeout(() => process.exit(0), 2000);
});
