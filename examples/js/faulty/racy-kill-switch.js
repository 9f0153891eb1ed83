#!/usr/bin/env node
// Faulty on purpose, and only under concurrency: the kill switch takes a snapshot of what
// runs, then finishes a moment later (as if it waited for a container runtime). A launch
// that arrives in between is allowed and its container survives the kill switch
// (INV-KILL-SWITCH). One request at a time, as the sequential kit sends them, nothing
// arrives in between and the kit finds nothing: `--concurrent` does.
"use strict";

const { main, System } = require("../impl.js");

System.prototype.kill_switch = function () {
  const running = [...this.containers];
  const registered = [...this.registry.keys()];
  this.quarantined.clear();
  this.spawnTimes.clear();
  return new Promise((resolve) => {
    setTimeout(() => {
      running.forEach((workerId) => this.containers.delete(workerId));
      registered.forEach((workerId) => this.registry.delete(workerId));
      this.killSwitch = true;
      resolve({});
    }, 30);
  });
};

main({ name: "replication-js (faulty: racy-kill-switch)" });
