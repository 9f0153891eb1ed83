#!/usr/bin/env node
// A complete implementation of the replication controller in JavaScript, checked by the
// conformance kit over the wire protocol (specs/09-wire-protocol.md):
//
//   replication conformance --exec "node examples/js/impl.js"
//
// Node.js 18 or later, no npm package: node:crypto has Ed25519, and the canonical JSON
// the signatures cover (RFC 8785) is small for the values a manifest carries. Requests
// arrive on stdin, one JSON object per line; each response goes to stdout on one line.
// stdout carries nothing else: the log goes to stderr.
//
// The checks of each action run in the order specs/01-transitions.md gives them: the
// first that fails decides the reason code. Times are whole microseconds since the
// epoch, which a JavaScript number holds exactly until the year 2255.
"use strict";

const crypto = require("node:crypto");
const readline = require("node:readline");

const PROTOCOL = 1;
const PAYLOAD_TYPE = "replication.manifest.v1";
// DER prefixes that turn a raw 32-byte Ed25519 seed or public key into PKCS #8 / SPKI.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const SIGNATURE = /^ed25519:([0-9a-f]{16}):([0-9a-f]{128})$/;

// -- canonical JSON (RFC 8785) and the signed bytes (specs/03) ------------------------------

// JSON.stringify already writes numbers in ECMAScript form (-0 as 0, 1e+21) and strings
// with exactly the escapes RFC 8785 asks for; only the order of members is left, and
// sort() compares UTF-16 code units, which is the order RFC 8785 specifies.
function canonical(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new Error(`cannot canonicalise ${value}`);
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(",")}]`;
  }
  const members = Object.keys(value).sort();
  return `{${members.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
}

function body(manifest) {
  const resources = manifest.resources;
  return {
    depth: manifest.depth,
    issued_at: manifest.issued_at,
    parent_id: manifest.parent_id,
    resources: {
      cpu_limit: resources.cpu_limit,
      memory_limit_mb: resources.memory_limit_mb,
      network_policy: {
        allow_controller: resources.network_policy.allow_controller,
        allow_external: resources.network_policy.allow_external,
      },
    },
    state_snapshot: manifest.state_snapshot,
    worker_id: manifest.worker_id,
  };
}

function pae(type, payload) {
  const tag = Buffer.from(type, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${tag.length} `, "utf8"), tag,
    Buffer.from(` ${payload.length} `, "utf8"), payload,
  ]);
}

function signedBytes(manifest, options) {
  const text = options.canonical(body(manifest));
  return pae(PAYLOAD_TYPE, Buffer.from(text, "utf8"));
}

// -- time -------------------------------------------------------------------------------

const TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$/;

function micros(text) {
  const parts = TIME.exec(text);
  if (parts === null) throw new Error(`not a protocol time: ${text}`);
  const [, y, mo, d, h, mi, s, us] = parts.map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, s) * 1000 + us;
}

function timestamp(us) {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 19)}.${String(us - Math.floor(ms / 1000) * 1e6).padStart(6, "0")}Z`;
}

// Seconds to whole microseconds, halves to even, as Python's timedelta rounds (R-WIRE-5).
function duration(seconds) {
  const exact = seconds * 1e6;
  const floor = Math.floor(exact);
  const rest = exact - floor;
  if (rest > 0.5 || (rest === 0.5 && floor % 2 !== 0)) return floor + 1;
  return floor;
}

// -- the system -------------------------------------------------------------------------

class Denied extends Error {
  constructor(reason) {
    super(reason);
    this.reason = reason;
  }
}

function deny(reason) {
  throw new Denied(reason);
}

// The named stop conditions a contract may carry (R-WIRE-8); each system gets its own.
function stopConditions(names) {
  let asked = 0;
  const known = {
    no_external_network: (manifest) => manifest.resources.network_policy.allow_external,
    roots_only: (manifest) => {
      if (manifest.parent_id !== null) throw new Error("written for roots only");
      return false;
    },
    every_third: () => ++asked % 3 === 0,
  };
  return names.map((name) => known[name]);
}

class System {
  constructor(request, options) {
    const contract = request.contract;
    this.options = options;
    this.maxDepth = contract.max_depth;
    this.maxReplicas = contract.max_replicas;
    this.cooldown = duration(contract.cooldown_seconds);
    this.expiration = contract.expiration_seconds === null ? null : duration(contract.expiration_seconds);
    this.clockSkew = duration(contract.clock_skew_seconds);
    this.stopConditions = stopConditions(contract.stop_conditions);
    const seed = Buffer.from(request.signing_key, "hex");
    const raw = Buffer.from(request.verifying_key, "hex");
    this.privateKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
    this.publicKey = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
    this.keyId = crypto.createHash("sha256").update(raw).digest("hex").slice(0, 16);
    this.killSwitch = false;
    this.registry = new Map(); // worker id -> { manifest, registeredAt, lastHeartbeat }
    this.quarantined = new Map(); // worker id -> since when
    this.spawnTimes = new Map(); // parent id -> when its latest child registered
    this.issued = new Set();
    this.registeredEver = new Set();
    this.containers = new Set();
  }

  sign(manifest) {
    const signature = crypto.sign(null, signedBytes(manifest, this.options), this.privateKey);
    return { ...manifest, signature: `ed25519:${this.keyId}:${signature.toString("hex")}` };
  }

  verifies(manifest) {
    // The key id is a hint for people, never consulted (R-SIGN-7).
    const parts = SIGNATURE.exec(manifest.signature);
    if (parts === null) return false;
    return crypto.verify(null, signedBytes(manifest, this.options), this.publicKey, Buffer.from(parts[2], "hex"));
  }

  checkKillSwitch() {
    if (this.killSwitch) deny("kill_switch");
  }

  checkQuota() {
    if (this.registry.size >= this.maxReplicas) deny("quota");
  }

  parent(parentId) {
    const parent = this.registry.get(parentId);
    if (parent === undefined) deny("parent_unknown");
    if (this.quarantined.has(parentId)) deny("parent_quarantined");
    return parent;
  }

  checkDepth(depth) {
    if (depth > this.maxDepth) deny("depth_exceeded");
  }

  checkCooldown(parentId, now) {
    const last = this.spawnTimes.get(parentId);
    if (last !== undefined && now - last < this.cooldown) deny("cooldown");
  }

  // R-ISSUE-1: the kill switch, the quota, then for a child its parent, the depth, the cooldown.
  maySpawn(parentId, now) {
    this.checkKillSwitch();
    this.checkQuota();
    if (parentId === null) return 0;
    const depth = this.parent(parentId).manifest.depth + 1;
    this.checkDepth(depth);
    this.checkCooldown(parentId, now);
    return depth;
  }

  nextWorkerId() {
    let serial = this.issued.size + 1;
    while (this.issued.has(`w${serial}`) || this.registeredEver.has(`w${serial}`)) serial += 1;
    return `w${serial}`;
  }

  issue(request, now) {
    const depth = this.maySpawn(request.parent_id, now);
    let workerId = request.worker_id;
    if (workerId === null) {
      workerId = this.nextWorkerId();
    } else if (this.issued.has(workerId) || this.registeredEver.has(workerId)) {
      deny("duplicate_worker_id");
    }
    const manifest = this.sign({
      worker_id: workerId,
      parent_id: request.parent_id,
      depth,
      state_snapshot: request.state_snapshot,
      issued_at: request.now,
      resources: request.resources,
      signature: "",
    });
    this.issued.add(workerId);
    return { manifest };
  }

  register(request, now) {
    const manifest = request.manifest;
    const workerId = manifest.worker_id;
    this.checkKillSwitch();
    if (!this.verifies(manifest)) deny("bad_signature");
    if (this.registeredEver.has(workerId)) deny("replay");
    if (micros(manifest.issued_at) - now > this.clockSkew) deny("issued_in_future");
    let expected = 0;
    if (manifest.parent_id !== null) expected = this.parent(manifest.parent_id).manifest.depth + 1;
    if (manifest.depth !== expected) deny("depth_mismatch");
    this.checkDepth(expected);
    this.checkQuota();
    if (manifest.parent_id !== null) this.checkCooldown(manifest.parent_id, now);
    for (const fires of this.stopConditions) {
      let fired;
      try {
        fired = fires(manifest);
      } catch (error) {
        fired = true; // a condition that fails, fails closed (R-REGISTER-5)
      }
      if (fired) deny("stop_condition");
    }
    this.registry.set(workerId, { manifest, registeredAt: now, lastHeartbeat: now });
    this.registeredEver.add(workerId);
    if (manifest.parent_id !== null) this.spawnTimes.set(manifest.parent_id, now);
    return {};
  }

  launch(request) {
    const manifest = request.manifest;
    const workerId = manifest.worker_id;
    this.checkKillSwitch();
    const entry = this.registry.get(workerId);
    if (entry === undefined) deny("unknown_worker");
    // Equal manifests: the same signature over the same signed bytes (R-SIGN-8).
    const same = entry.manifest.signature === manifest.signature
      && this.options.canonical(body(entry.manifest)) === this.options.canonical(body(manifest));
    if (!same) deny("manifest_mismatch");
    if (this.quarantined.has(workerId)) deny("quarantined");
    if (this.containers.has(workerId)) deny("already_running");
    this.containers.add(workerId);
    return {};
  }

  heartbeat(request, now) {
    const entry = this.registry.get(request.worker_id);
    if (entry === undefined) deny("unknown_worker");
    if (this.quarantined.has(request.worker_id)) deny("quarantined");
    entry.lastHeartbeat = now;
    return {};
  }

  kill(request) {
    this.containers.delete(request.worker_id);
    return {};
  }

  remove(workerId) {
    this.containers.delete(workerId);
    this.registry.delete(workerId);
    this.quarantined.delete(workerId);
    this.spawnTimes.delete(workerId);
  }

  removeOlder(field, now, age) {
    const cutoff = now - age;
    const old = [...this.registry].filter(([, entry]) => entry[field] < cutoff).map(([id]) => id);
    old.forEach((workerId) => this.remove(workerId));
  }

  reap(request, now) {
    this.removeOlder("lastHeartbeat", now, duration(request.timeout_seconds));
    return {};
  }

  expire(request, now) {
    if (this.expiration !== null) this.removeOlder("registeredAt", now, this.expiration);
    return {};
  }

  deregister(request) {
    if (!this.registry.has(request.worker_id)) deny("unknown_worker");
    this.remove(request.worker_id);
    return {};
  }

  kill_switch() {
    this.containers.clear();
    this.registry.clear();
    this.quarantined.clear();
    this.spawnTimes.clear();
    this.killSwitch = true;
    return {};
  }

  quarantine(request, now) {
    if (!this.registry.has(request.worker_id)) deny("unknown_worker");
    if (this.quarantined.has(request.worker_id)) deny("already_quarantined");
    this.quarantined.set(request.worker_id, now);
    return {};
  }

  release(request) {
    if (!this.registry.has(request.worker_id)) deny("unknown_worker");
    if (!this.quarantined.has(request.worker_id)) deny("not_quarantined");
    this.quarantined.delete(request.worker_id);
    return {};
  }

  observe() {
    const workers = {};
    for (const [workerId, entry] of this.registry) {
      const lastChild = this.spawnTimes.get(workerId);
      // defineProperty: a worker id such as "__proto__" is a member like any other.
      Object.defineProperty(workers, workerId, {
        enumerable: true,
        value: {
          parent_id: entry.manifest.parent_id,
          depth: entry.manifest.depth,
          registered_at: timestamp(entry.registeredAt),
          last_heartbeat: timestamp(entry.lastHeartbeat),
          last_child_registered_at: lastChild === undefined ? null : timestamp(lastChild),
          manifest: entry.manifest,
        },
      });
    }
    return {
      observation: {
        workers,
        containers: [...this.containers],
        kill_switch_engaged: this.killSwitch,
        quarantined: [...this.quarantined.keys()],
        registered_ever: [...this.registeredEver],
      },
    };
  }
}

// -- the protocol -------------------------------------------------------------------------

const ACTIONS = new Set([
  "issue", "register", "launch", "heartbeat", "kill", "reap", "kill_switch",
  "quarantine", "release", "deregister", "expire", "observe",
]);

function handle(state, request, options) {
  const op = request.op;
  if (op === "hello") {
    if (request.protocol !== PROTOCOL) {
      return { status: "error", definite: true, message: `this implementation speaks protocol ${PROTOCOL}` };
    }
    return {
      status: "ok", protocol: PROTOCOL, name: options.name, version: "1.0.0",
      gaps: [], unreported: [], signs: false,
    };
  }
  if (op === "reset") {
    state.system = null;
    return { status: "ok" };
  }
  if (op === "start") {
    state.system = new System(request, options);
    return { status: "ok" };
  }
  if (!ACTIONS.has(op)) return { status: "error", definite: true, message: `unknown op ${op}` };
  if (state.system === null) return { status: "error", definite: true, message: `${op} before start` };
  const refused = (error) => {
    if (error instanceof Denied) return { status: "denied", reason: error.reason };
    throw error;
  };
  try {
    const result = state.system[op](request, micros(request.now));
    // An action may finish later (a promise); its response is written when it does.
    if (result instanceof Promise) return result.then((done) => ({ status: "ok", ...done }), refused);
    return { status: "ok", ...result };
  } catch (error) {
    return refused(error);
  }
}

function main(options = {}) {
  const settings = { name: "replication-js", canonical, ...options };
  const state = { system: null };
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    let request;
    try {
      request = JSON.parse(line);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ id: null, status: "error", definite: true, message: "not JSON" })}\n`);
      return;
    }
    const failed = (error) => {
      process.stderr.write(`${request.op} failed: ${error.stack}\n`);
      return { status: "error", definite: false, message: String(error) };
    };
    const respond = (response) => {
      process.stdout.write(`${JSON.stringify({ id: request.id, ...response })}\n`);
    };
    let response;
    try {
      response = handle(state, request, settings);
    } catch (error) {
      response = failed(error);
    }
    if (response instanceof Promise) response.catch(failed).then(respond);
    else respond(response);
  });
}

module.exports = { main, canonical, System, Denied, deny };

if (require.main === module) main();
