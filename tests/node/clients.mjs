// Node.js Redis clients, unmodified and with their default settings, against a tickerd.
//
//   node tests/node/clients.mjs <port> [host]
//
// Runs one fixed scenario with each client (ioredis and node-redis, each in its default RESP3 mode
// and in RESP2) and prints one JSON line: {"ok": true, "runs": {...}}. Each client talks to tickerd
// through a small recording proxy in this process, so the report also says what the client sent
// on connect (the commands before the scenario's first INCR) and how many commands it wrote at once.
// Exits 1 with {"ok": false, "error": ...} on the first failure, 2 on bad usage; never hangs.

import net from "node:net";
import { createRequire } from "node:module";

import Redis from "ioredis";
import { createClient } from "redis";

const OVERALL_TIMEOUT_MS = 30_000; // the whole run, whatever happens
const STEP_TIMEOUT_MS = 10_000; // one step of one scenario (connect, a pipeline, ...)
const REFUSAL = "tickets only move forward";
const PIPELINE_SIZE = 5;

const require = createRequire(import.meta.url);
const VERSIONS = {
  node: process.versions.node,
  ioredis: require("ioredis/package.json").version,
  redis: require("redis/package.json").version,
  "@redis/client": require("@redis/client/package.json").version,
};

function fail(message) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: message, versions: VERSIONS })}\n`);
  process.stderr.write(`clients.mjs: ${message}\n`);
  process.exit(1);
}

setTimeout(() => fail(`no result within ${OVERALL_TIMEOUT_MS / 1000} s`), OVERALL_TIMEOUT_MS).unref();

const [portArg, host = "127.0.0.1"] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write("usage: node clients.mjs <port> [host]\n");
  process.exit(2);
}

class CheckError extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckError(message);
}

function withTimeout(promise, label) {
  let timer;
  const timeout = new Promise((_, reject) => {
    const message = `${label}: no reply within ${STEP_TIMEOUT_MS} ms`;
    timer = setTimeout(() => reject(new Error(message)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// A recording proxy: forwards bytes both ways, parses what the client sends (RESP multibulk).

function parseCommands(buffer) {
  // Returns [commands, rest]; each command is an array of strings. Inline commands are not
  // expected from these clients and are recorded as one raw string.
  const commands = [];
  let pos = 0;
  const line = (from) => {
    const end = buffer.indexOf("\r\n", from);
    return end === -1 ? null : [buffer.subarray(from, end).toString("latin1"), end + 2];
  };
  while (pos < buffer.length) {
    const head = line(pos);
    if (head === null) break;
    if (!head[0].startsWith("*")) {
      commands.push([`<inline> ${head[0]}`]);
      pos = head[1];
      continue;
    }
    let cursor = head[1];
    const args = [];
    let complete = true;
    for (let i = 0; i < Number(head[0].slice(1)); i += 1) {
      const bulk = line(cursor);
      if (bulk === null) {
        complete = false;
        break;
      }
      const size = Number(bulk[0].slice(1));
      if (buffer.length < bulk[1] + size + 2) {
        complete = false;
        break;
      }
      args.push(buffer.subarray(bulk[1], bulk[1] + size).toString("utf8"));
      cursor = bulk[1] + size + 2;
    }
    if (!complete) break;
    commands.push(args);
    pos = cursor;
  }
  return [commands, buffer.subarray(pos)];
}

async function startProxy() {
  const connections = []; // per client connection: {commands, writes}
  const upstreamErrors = []; // the proxy's own connections to tickerd
  const sockets = new Set();
  const server = net.createServer((client) => {
    const record = { commands: [], writes: [] };
    connections.push(record);
    const upstream = net.connect(port, host);
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    client.on("data", (chunk) => {
      upstream.write(chunk);
      let commands;
      [commands, pending] = parseCommands(Buffer.concat([pending, chunk]));
      record.commands.push(...commands);
      if (commands.length) record.writes.push(commands.map((args) => args[0].toUpperCase()));
    });
    upstream.on("data", (chunk) => client.write(chunk));
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("error", () => upstream.destroy());
    upstream.on("error", (error) => {
      upstreamErrors.push(`${error.code ?? error.name}: ${error.message}`);
      client.destroy();
    });
    client.on("close", () => sockets.delete(client));
    upstream.on("close", () => sockets.delete(upstream));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    port: server.address().port,
    connections,
    upstreamErrors,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function summarize(proxy) {
  // What the client sent before the scenario began, and the most commands written at once.
  check(proxy.connections.length >= 1, "the client never connected");
  const first = proxy.connections[0].commands;
  const start = first.findIndex((args) => args[0].toUpperCase() === "INCR");
  return {
    connections: proxy.connections.length,
    on_connect: (start === -1 ? first : first.slice(0, start)).map((args) => args.join(" ")),
    largest_write: Math.max(0, ...proxy.connections.flatMap((c) => c.writes.map((w) => w.length))),
    commands: proxy.connections.flatMap((c) => c.commands.map((args) => args[0].toUpperCase())),
  };
}

// ---------------------------------------------------------------------------------------------
// The scenario, once per client. `steps` adapts it to each client's API.

function parseInfo(text) {
  check(typeof text === "string", `INFO returned ${typeof text}, not a string`);
  const fields = {};
  const sections = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith("# ")) sections.push(line.slice(2).trim());
    else if (line.includes(":")) fields[line.slice(0, line.indexOf(":"))] = line.slice(line.indexOf(":") + 1);
  }
  check(sections.length > 0, `INFO has no "# Section" lines: ${JSON.stringify(text.slice(0, 80))}`);
  check("redis_version" in fields, "INFO has no redis_version field");
  return { sections, redis_version: fields.redis_version, loading: fields.loading ?? null };
}

function asNumber(value, what) {
  const number = Number(value);
  const shown = JSON.stringify(value);
  check(Number.isSafeInteger(number) && number > 0, `${what} is not a positive integer: ${shown}`);
  return number;
}

async function scenario(name, steps) {
  const proxy = await startProxy();
  const errors = []; // what the client emitted as "error" events
  const result = { client: name };
  let step = "connect";
  let client;
  try {
    client = await withTimeout(steps.connect(proxy.port, errors), step);
    step = "INCR";
    const first = asNumber(await withTimeout(client.incr("users"), step), "INCR users");
    const second = asNumber(await withTimeout(client.incr("users"), step), "INCR users");
    check(second > first, `INCR users gave ${first} then ${second}`);
    result.incr = [first, second];
    result.tickets = [first, second]; // every ticket, in the order they were asked for
    step = "GET";
    const last = await withTimeout(client.get("users"), step);
    check(String(last) === String(second), `GET users is ${JSON.stringify(last)}, not ${second}`);
    result.get = String(last);
    for (const [key, run] of Object.entries(steps.batches)) {
      step = key;
      const tickets = (await withTimeout(run(client), step)).map((t) => asNumber(t, `${key} reply`));
      check(tickets.length === PIPELINE_SIZE, `${key} gave ${tickets.length} replies, not ${PIPELINE_SIZE}`);
      result[key] = tickets;
      result.tickets.push(...tickets);
    }
    // INCR, GET, INCR sent together: Redis answers GET with the first INCR's ticket. Recorded, not
    // checked here, so that the test can name a mismatch on its own (tests/test_node_clients.py).
    for (const [key, run] of Object.entries(steps.ordered)) {
      step = key;
      const [before, seen, after] = await withTimeout(run(client), step);
      result[key] = {
        before: asNumber(before, `${key} INCR`),
        get: seen,
        after: asNumber(after, `${key} INCR`),
      };
      result.tickets.push(result[key].before, result[key].after);
    }
    step = "PING";
    result.ping = await withTimeout(client.ping(), step);
    check(result.ping === "PONG", `PING replied ${JSON.stringify(result.ping)}`);
    step = "INFO";
    result.info = parseInfo(await withTimeout(client.info(), step));
    step = "DEL (refused)";
    const refused = await withTimeout(
      client.del("users").then(
        (value) => ({ value }),
        (error) => ({ error }),
      ),
      step,
    );
    check(refused.error, `DEL users succeeded with ${JSON.stringify(refused.value)}`);
    result.refused = { name: refused.error.constructor.name, message: refused.error.message };
    check(refused.error.message.includes(REFUSAL), `DEL users failed with "${refused.error.message}"`);
    step = "GET after DEL";
    const after = await withTimeout(client.get("users"), step);
    const latest = String(result.tickets.at(-1));
    check(String(after) === latest, `GET users after DEL is ${after}, not ${latest}`);
    step = "quit";
    result.quit = await withTimeout(steps.quit(client), step);
    client = undefined;
    result.emitted_errors = errors.map(String);
    Object.assign(result, summarize(proxy));
    return result;
  } catch (error) {
    const seen = proxy.connections.map((c) => c.commands.map((args) => args.join(" ")));
    const why = error instanceof CheckError ? error.message : `${error?.name}: ${error?.message}`;
    throw new Error(
      `${name}: step "${step}" failed: ${why}` +
        (errors.length ? `; client error events: ${errors.map(String).join(" | ")}` : "") +
        (proxy.upstreamErrors.length
          ? `; proxy to tickerd: ${[...new Set(proxy.upstreamErrors)].join(" | ")}`
          : "") +
        `; commands sent per connection: ${JSON.stringify(seen)}`,
    );
  } finally {
    if (client) steps.destroy(client);
    await proxy.close();
  }
}

// ioredis: `new Redis()` connects at once; "ready" comes after HELLO/CLIENT SETINFO and the INFO
// ready check. Everything else is left at its default (retries, offline queue, ready check).
function ioredis(protocol) {
  return {
    connect(proxyPort, errors) {
      const options = protocol === undefined ? {} : { protocol };
      const client = new Redis(proxyPort, "127.0.0.1", options);
      client.on("error", (error) => errors.push(error));
      return new Promise((resolve, reject) => {
        client.once("ready", () => resolve(client));
        client.once("end", () => reject(new Error("connection ended before ready")));
      }).catch((error) => {
        client.disconnect();
        throw error;
      });
    },
    batches: {
      async pipeline(client) {
        const pipe = client.pipeline();
        for (let i = 0; i < PIPELINE_SIZE; i += 1) pipe.incr("users");
        return unwrapIoredis(await pipe.exec(), "pipeline");
      },
      async multi(client) {
        const multi = client.multi();
        for (let i = 0; i < PIPELINE_SIZE; i += 1) multi.incr("users");
        return unwrapIoredis(await multi.exec(), "multi");
      },
    },
    ordered: {
      get_in_pipeline: async (client) =>
        unwrapIoredis(await client.pipeline().incr("users").get("users").incr("users").exec(), "pipeline"),
      get_in_multi: async (client) =>
        unwrapIoredis(await client.multi().incr("users").get("users").incr("users").exec(), "multi"),
    },
    async quit(client) {
      const ended = new Promise((resolve) => client.once("end", resolve));
      const reply = await client.quit();
      await ended;
      return reply;
    },
    destroy: (client) => client.disconnect(),
  };
}

function unwrapIoredis(results, what) {
  check(Array.isArray(results), `${what}.exec() gave ${JSON.stringify(results)}`);
  return results.map(([error, value]) => {
    if (error) throw new CheckError(`${what} entry failed: ${error.message}`);
    return value;
  });
}

// node-redis: createClient() + connect(); RESP3 is its default (HELLO 3). Concurrent commands are
// written together (auto-pipelining); MULTI/EXEC through .multi().exec().
function nodeRedis(RESP) {
  return {
    async connect(proxyPort, errors) {
      const options = { socket: { host: "127.0.0.1", port: proxyPort } };
      if (RESP !== undefined) options.RESP = RESP;
      const client = createClient(options);
      client.on("error", (error) => errors.push(error));
      try {
        return await client.connect();
      } catch (error) {
        client.destroy();
        throw error;
      }
    },
    batches: {
      auto_pipeline: (client) =>
        Promise.all(Array.from({ length: PIPELINE_SIZE }, () => client.incr("users"))),
      async multi(client) {
        const multi = client.multi();
        for (let i = 0; i < PIPELINE_SIZE; i += 1) multi.incr("users");
        return multi.exec();
      },
      async pipeline(client) {
        const multi = client.multi();
        for (let i = 0; i < PIPELINE_SIZE; i += 1) multi.incr("users");
        return multi.execAsPipeline();
      },
    },
    ordered: {
      get_in_pipeline: (client) =>
        Promise.all([client.incr("users"), client.get("users"), client.incr("users")]),
      get_in_multi: (client) => client.multi().incr("users").get("users").incr("users").exec(),
    },
    // close() is the current API (waits for pending replies, then closes); the deprecated quit()
    // that sends QUIT is still what much existing code calls, so the RESP2 run uses it.
    async quit(client) {
      if (RESP === 2) return client.quit();
      await client.close();
      return "closed";
    },
    destroy: (client) => client.destroy(),
  };
}

const RUNS = {
  "ioredis": ioredis(undefined),
  "ioredis-resp2": ioredis(2),
  "node-redis": nodeRedis(undefined),
  "node-redis-resp2": nodeRedis(2),
};

const runs = {};
try {
  for (const [name, steps] of Object.entries(RUNS)) runs[name] = await scenario(name, steps);
} catch (error) {
  fail(error.message);
}
process.stdout.write(`${JSON.stringify({ ok: true, versions: VERSIONS, runs })}\n`);
process.exit(0);
