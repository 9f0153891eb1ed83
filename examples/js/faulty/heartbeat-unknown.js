#!/usr/bin/env node
// Faulty on purpose: a heartbeat from a worker that is not registered is accepted silently,
// as the older Python API did, where R-HEARTBEAT-1 refuses it with unknown_worker. The
// sequential kit finds it in a few programs and shrinks it to three steps.
"use strict";

const { main, System } = require("../impl.js");

const heartbeat = System.prototype.heartbeat;
System.prototype.heartbeat = function (request, now) {
  if (!this.registry.has(request.worker_id)) return {}; // the fault
  return heartbeat.call(this, request, now);
};

main({ name: "replication-js (faulty: heartbeat-unknown)" });
