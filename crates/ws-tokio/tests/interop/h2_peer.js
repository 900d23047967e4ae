// A WebSocket-over-HTTP/2 peer on Node's built-in `http2` module (RFC 8441 extended CONNECT,
// `enableConnectProtocol`), for ws-tokio's interop tests. Node implements the HTTP/2 side;
// the WebSocket framing here is a minimal one of our own (no extensions).
//
//   node h2_peer.js server CERT.pem KEY.pem
//     Serves wss over HTTP/2 on 127.0.0.1 (a free port, printed as "listening PORT"). Every
//     WebSocket echoes whole messages (fragments reassembled), answers pings, and answers a
//     close with the same code; then prints "closed code=C messages=N bytes=B max=M".
//   node h2_peer.js client PORT CA.pem
//     Opens a WebSocket on https://localhost:PORT/node over HTTP/2, sends messages of
//     several sizes (text and binary, masked), checks every echo, closes with 4000 and
//     prints "ok messages=N bytes=B close=C" (exit 0) or "error ..." (exit 1).
'use strict';
const http2 = require('http2');
const fs = require('fs');
const crypto = require('crypto');

const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20];
const LIMIT_MS = 60000;

function frame(opcode, payload, mask) {
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = 0x80 | opcode;
  if (!mask) return Buffer.concat([head, payload]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

// The status code of a close frame's payload (1005 when it has none).
function closeCode(payload) {
  return payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
}

// Calls `handle` with every whole message (or control frame) `stream` delivers, in order, until
// it returns false.
function eachMessage(stream, msgs, handle) {
  stream.on('data', (chunk) => {
    msgs.push(chunk);
    let m;
    while ((m = msgs.next())) {
      if (handle(m) === false) return;
    }
  });
}

// Whole messages out of a byte stream: fragments reassembled, control frames passed through.
class Messages {
  constructor() {
    this.chunks = [];
    this.size = 0;
    this.parts = [];
    this.opcode = 0;
  }
  push(chunk) {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }
  bytes() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] || Buffer.alloc(0);
  }
  // The next complete frame or message: {opcode, payload}, or null.
  next() {
    for (;;) {
      const b = this.bytes();
      if (b.length < 2) return null;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return null;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return null;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b[1] & 0x80) !== 0;
      const key = off;
      if (masked) off += 4;
      if (b.length < off + len) return null;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[key + (i & 3)];
      this.chunks = [b.subarray(off + len)];
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      if (opcode >= 8) return { opcode, payload };
      if (opcode !== 0) this.opcode = opcode;
      this.parts.push(payload);
      if (fin) {
        const message = { opcode: this.opcode, payload: Buffer.concat(this.parts) };
        this.parts = [];
        return message;
      }
    }
  }
}

function server(certPath, keyPath) {
  const srv = http2.createSecureServer({
    cert: fs.readFileSync(certPath),
    key: fs.readFileSync(keyPath),
    settings: { enableConnectProtocol: true, initialWindowSize: 1 << 20 },
  });
  srv.on('stream', (stream, headers) => {
    if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
      stream.respond({ ':status': 400 });
      stream.end('websocket only');
      return;
    }
    stream.respond({ ':status': 200 });
    const msgs = new Messages();
    let count = 0;
    let bytes = 0;
    let max = 0;
    eachMessage(stream, msgs, (m) => {
        if (m.opcode === 8) {
          const code = closeCode(m.payload);
          stream.end(frame(8, m.payload, false));
          console.log(`closed code=${code} messages=${count} bytes=${bytes} max=${max}`);
          return false;
        } else if (m.opcode === 9) {
          stream.write(frame(10, m.payload, false));
        } else if (m.opcode === 1 || m.opcode === 2) {
          count += 1;
          bytes += m.payload.length;
          max = Math.max(max, m.payload.length);
          stream.write(frame(m.opcode, m.payload, false));
        }
        return true;
    });
    stream.on('error', () => {});
  });
  srv.listen(0, '127.0.0.1', () => console.log(`listening ${srv.address().port}`));
}

function client(port, caPath) {
  const fail = (why) => {
    console.log(`error ${why}`);
    process.exit(1);
  };
  setTimeout(() => fail('timed out'), LIMIT_MS).unref();
  const session = http2.connect(`https://localhost:${port}`, { ca: fs.readFileSync(caPath) });
  session.on('error', (e) => fail(`session: ${e.message}`));
  session.once('remoteSettings', (settings) => {
    if (!settings.enableConnectProtocol) fail('the server does not enable extended CONNECT');
    const stream = session.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': '/node',
      ':authority': `localhost:${port}`,
      'sec-websocket-version': '13',
    });
    stream.on('error', (e) => fail(`stream: ${e.message}`));
    stream.on('response', (h) => {
      if (h[':status'] !== 200) fail(`status ${h[':status']}`);
      const msgs = new Messages();
      const sent = SIZES.map((n, i) => ({ opcode: i % 2 ? 2 : 1, payload: Buffer.alloc(n, 97 + (i % 26)) }));
      let next = 0;
      let bytes = 0;
      const sendNext = () => {
        if (next < sent.length) {
          stream.write(frame(sent[next].opcode, sent[next].payload, true));
        } else {
          const close = Buffer.alloc(5);
          close.writeUInt16BE(4000, 0);
          close.write('bye', 2);
          stream.write(frame(8, close, true));
        }
      };
      eachMessage(stream, msgs, (m) => {
          if (m.opcode === 8) {
            const code = closeCode(m.payload);
            console.log(`ok messages=${next} bytes=${bytes} close=${code}`);
            stream.end();
            session.close();
            return false;
          }
          const want = sent[next];
          if (!want || m.opcode !== want.opcode || !m.payload.equals(want.payload)) {
            fail(`echo ${next} differs (opcode ${m.opcode}, ${m.payload.length} bytes)`);
          }
          bytes += m.payload.length;
          next += 1;
          sendNext();
          return true;
      });
      sendNext();
    });
  });
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'server') server(a, b);
else if (mode === 'client') client(Number(a), b);
else {
  console.log('usage: h2_peer.js server CERT KEY | client PORT CA');
  process.exit(2);
}
