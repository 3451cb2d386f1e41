#!/usr/bin/env node
// A Node.js consumer with nothing but the fs module.
//
// usage: node node_consumer.js [MOUNT]
//
// Takes tasks from MOUNT/node/tasks, one message per open file (the default
// "message" read mode: a file delivers one message, then end of file), until
// the message "stop"; then sends a receipt to MOUNT/node/receipts:
//     echo "resize a.png" > MOUNT/node/tasks; echo stop > MOUNT/node/tasks
//     cat MOUNT/node/receipts
//
// The reads go through fs.promises, which runs them on libuv's thread pool:
// a read waiting for a message leaves the event loop free for timers and
// sockets, but holds one of the pool's threads (4 by default) until a message
// comes. (fs.readSync would hold the whole event loop while the queue is
// empty.) A consumer that runs for long reads in "stream" mode through one
// fs.createReadStream instead, one message per "data" event (README, "Using
// it from programs"); this one shows the default "message" mode.
'use strict';

const fs = require('fs');
const path = require('path');

const mount = process.argv[2] || '/mnt/mq';
const dir = path.join(mount, 'node');
const tasks = path.join(dir, 'tasks');
const receipts = path.join(dir, 'receipts');

// Receives one message: reads the open file until end of file, so a message
// larger than the buffer arrives whole too.
async function receive(queue) {
  const file = await fs.promises.open(queue, 'r');
  try {
    const parts = [];
    const buffer = Buffer.alloc(64 * 1024);
    for (;;) {
      // position null: read(2) where the file is, as a non-seekable file needs.
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return Buffer.concat(parts).toString();
      parts.push(Buffer.from(buffer.subarray(0, bytesRead)));
    }
  } finally {
    await file.close();
  }
}

// Sends one message: one write(2) is one message.
function send(queue, text) {
  const fd = fs.openSync(queue, 'a');
  try {
    fs.writeSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
}

async function main() {
  fs.mkdirSync(dir, { recursive: true });
  for (const queue of [tasks, receipts]) fs.closeSync(fs.openSync(queue, 'a')); // creates them

  let handled = 0;
  for (;;) {
    const task = (await receive(tasks)).replace(/\n$/, '');
    if (task === 'stop') break;
    handled++;
    console.log(`task ${handled}: ${task}`);
  }
  send(receipts, `node consumer handled ${handled} tasks\n`);
  console.log(`stopped after ${handled} tasks`);
}

main().catch((error) => {
  console.error(`node_consumer: ${error.message}`);
  process.exit(1);
});
